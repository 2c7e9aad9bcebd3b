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

/// Largest absolute error over every test sample and output point (the DMF paper's
/// "maximum error", Fig. 12).
pub fn max_abs_error(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    (&pred - &truth).iter().fold(
        0.0f64,
        |m, d| if d.is_nan() { f64::NAN } else { m.max(d.abs()) },
    )
}

/// Point-wise mean absolute error over test samples: one value per output point (the
/// paper's MAE fields, Fig. 9).
pub fn mae_field(pred: ArrayView2<f64>, truth: ArrayView2<f64>) -> Array1<f64> {
    (&pred - &truth)
        .mapv(f64::abs)
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(pred.ncols()))
}

/// The variance floor of [`nll`] and [`coverage`], relative to the test targets' variance: a
/// value predicted exactly with zero variance (a field's fixed boundary, through a PCA basis
/// that is zero there) then neither divides by zero nor counts as a miss.
const VAR_FLOOR: f64 = 1e-12;

fn floor(truth: ArrayView2<f64>) -> f64 {
    VAR_FLOOR * target_std(truth).powi(2).max(f64::MIN_POSITIVE)
}

/// Mean Gaussian negative log predictive density over every test value:
/// 1/2 ln(2 pi s^2) + (y - m)^2 / (2 s^2), in nats per value (lower is better).
pub fn nll(mean: ArrayView2<f64>, var: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    let f = floor(truth);
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let total: f64 = mean
        .iter()
        .zip(var.iter())
        .zip(truth.iter())
        .map(|((m, v), y)| {
            let v = v.max(f);
            0.5 * (ln2pi + v.ln()) + (y - m) * (y - m) / (2.0 * v)
        })
        .sum();
    total / mean.len() as f64
}

/// Share of test values inside the central 95 % Gaussian interval m +- 1.96 s (a calibrated
/// model scores about 0.95).
pub fn coverage95(mean: ArrayView2<f64>, var: ArrayView2<f64>, truth: ArrayView2<f64>) -> f64 {
    const Z95: f64 = 1.959_963_984_540_054;
    let f = floor(truth);
    let inside = mean
        .iter()
        .zip(var.iter())
        .zip(truth.iter())
        .filter(|((m, v), y)| (*y - *m).abs() <= Z95 * v.max(f).sqrt())
        .count();
    inside as f64 / mean.len() as f64
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

    #[test]
    fn nll_and_coverage_of_a_standard_normal_model() {
        // Truth = mean + 1 sd at every value: NLL = 1/2 ln(2 pi) + 1/2, all inside +-1.96 sd.
        let mean = array![[0.0, 1.0], [2.0, 3.0]];
        let var = array![[4.0, 4.0], [4.0, 4.0]];
        let truth = &mean + 2.0;
        let expect = 0.5 * (2.0 * std::f64::consts::PI * 4.0).ln() + 0.5;
        assert_relative_eq!(nll(mean.view(), var.view(), truth.view()), expect);
        assert_relative_eq!(coverage95(mean.view(), var.view(), truth.view()), 1.0);
        // Three sd off at half the values: those fall outside.
        let truth = array![[6.0, 1.0], [8.0, 3.0]];
        assert_relative_eq!(coverage95(mean.view(), var.view(), truth.view()), 0.5);
        // An exact prediction with zero variance neither divides by zero nor misses.
        let zero = array![[0.0, 0.0], [0.0, 0.0]];
        assert!(nll(mean.view(), zero.view(), mean.view()).is_finite());
        assert_relative_eq!(coverage95(mean.view(), zero.view(), mean.view()), 1.0);
    }
}
