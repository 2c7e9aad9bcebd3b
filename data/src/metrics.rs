//! Accuracy metrics over test sets of flattened fields, in the data's own units.

use ndarray::{Array1, ArrayView2, Axis};

/// Root-mean-square error over every sample and output point.
pub fn rmse(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    let n = pred.len() as f64;
    ((&pred - &truth).mapv(|e| e * e).sum() / n).sqrt()
}

/// Standard deviation of all test target values (population), the NRMSE denominator.
pub fn target_std(truth: ArrayView2<f64>) -> f64 {
    let n = truth.len() as f64;
    let mean = truth.sum() / n;
    (truth.mapv(|v| (v - mean) * (v - mean)).sum() / n).sqrt()
}

/// RMSE divided by the standard deviation of the test targets.
pub fn nrmse(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    rmse(pred, truth) / target_std(truth)
}

/// Coefficient of determination over all values: 1 - SS_res / SS_tot.
pub fn r2(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    let mean = truth.sum() / truth.len() as f64;
    let ss_res = (&pred - &truth).mapv(|e| e * e).sum();
    let ss_tot = truth.mapv(|v| (v - mean) * (v - mean)).sum();
    1.0 - ss_res / ss_tot
}

/// Mean absolute error over all values.
pub fn mae(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    (&pred - &truth).mapv(f64::abs).mean().unwrap_or(f64::NAN)
}

/// Point-wise mean absolute error over test samples: one value per output point (the
/// paper's MAE fields, Fig. 9).
pub fn mae_field(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> Array1<f64> {
    (&pred - &truth)
        .mapv(f64::abs)
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(pred.ncols()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

    #[test]
    fn metrics_on_a_known_error() {
        let truth = array![[1.0, 2.0], [3.0, 4.0]];
        let pred = array![[1.5, 2.0], [3.0, 3.0]];
        // errors 0.5, 0, 0, -1 -> mse = 1.25/4
        assert_relative_eq!(rmse(pred.view(), truth.view()), (1.25f64 / 4.0).sqrt());
        assert_relative_eq!(mae(pred.view(), truth.view()), 1.5 / 4.0);
        // ss_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5
        assert_relative_eq!(r2(pred.view(), truth.view()), 1.0 - 1.25 / 5.0);
        assert_relative_eq!(
            nrmse(pred.view(), truth.view()),
            (1.25f64 / 4.0).sqrt() / (5.0f64 / 4.0).sqrt()
        );
        assert_eq!(
            mae_field(pred.view(), truth.view()).to_vec(),
            vec![0.25, 0.5]
        );
    }
}
