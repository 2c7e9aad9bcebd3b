//! DGMF's accuracy against sampling cost: one fit on a dataset's two levels, then its
//! predictions drawn with each sampler and number of steps; RMSE, 95 % coverage and seconds
//! per prediction. The measurement behind the default `sample_steps` (BENCHMARKS.md):
//! `cargo run --release -p mfpipe-fusion --example dgmf_curve -- FILE.h5 N_LF N_HF [CONFIG.json]`
//! (HF samples 0..N_HF train, the others test; CONFIG.json holds dgmf hyperparameters).

use mfpipe_data::NoProgress;
use mfpipe_fusion::dgmf::Sampler;
use mfpipe_fusion::models::dgmf::{Dgmf, DgmfParams};
use mfpipe_fusion::{Budget, FitContext, FusionModel, MfTrainSet, Source};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ds = mfpipe_data::h5::read(std::path::Path::new(&args[1])).expect("readable dataset");
    let (n_lf, n_hf): (usize, usize) = (args[2].parse().unwrap(), args[3].parse().unwrap());
    let params: DgmfParams = match args.get(4) {
        Some(f) => serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap(),
        None => DgmfParams::default(),
    };
    let (lf, hf) = (&ds.levels[0], ds.levels.last().unwrap());
    let pick = |l: &mfpipe_data::dataset::LevelData, idx: &[usize]| {
        let ax = ndarray::Axis(0);
        Source::new(l.inputs.select(ax, idx), l.outputs.select(ax, idx)).at(l.level, &l.name)
    };
    let n = hf.inputs.nrows();
    let test: Vec<usize> = (n_hf..n).collect();
    let train = MfTrainSet::new(vec![
        pick(lf, &(0..n_lf).collect::<Vec<_>>()),
        pick(hf, &(0..n_hf).collect::<Vec<_>>()),
    ])
    .with_shape(ds.meta.output_shape());
    let truth = hf.outputs.select(ndarray::Axis(0), &test);
    let x = hf.inputs.select(ndarray::Axis(0), &test);
    let mut m = Dgmf::new(params).unwrap();
    let t0 = Instant::now();
    let rep = m
        .fit(
            &train,
            &mut FitContext {
                seed: 0,
                budget: Budget::default(),
                progress: &NoProgress,
                memo: None,
            },
        )
        .unwrap();
    println!(
        "fit: {:.1} s, final loss {:.4}, sigma_max {:.2}",
        t0.elapsed().as_secs_f64(),
        rep.final_loss,
        rep.hyperparameters["sigma_max"]
    );
    println!("sampler steps K  rmse      cover95  s/prediction");
    for (sampler, ladder) in [
        (Sampler::Ode, [5, 10, 20, 40]),
        (Sampler::Sde, [10, 20, 40, 80]),
    ] {
        for steps in ladder {
            let k = 4;
            m.set_sampling(sampler, steps, k).unwrap();
            let t0 = Instant::now();
            let p = m.predict(x.view()).unwrap();
            let t = t0.elapsed().as_secs_f64() / test.len() as f64;
            let err = &p.mean - &truth;
            let rmse = (err.mapv(|e| e * e).mean().unwrap()).sqrt();
            let var = p.variance().unwrap();
            let inside = err
                .iter()
                .zip(var.iter())
                .filter(|(e, v)| e.abs() <= 1.96 * v.sqrt())
                .count() as f64
                / err.len() as f64;
            println!("{sampler:?} {steps:5} {k}  {rmse:.3e} {inside:.3}    {t:.4}");
        }
    }
}
