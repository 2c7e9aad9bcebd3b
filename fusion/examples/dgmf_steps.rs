//! Times the DGMF score network outside the pipeline: training steps (forward + backward + Adam)
//! and sampling evaluations, on synthetic 2-D fields of the default model grid. The burn side of
//! `bench/dgmf_vs_torch.py`, which builds the identical network in PyTorch:
//! `cargo run --release -p mfpipe-fusion --example dgmf_steps -- STEPS [BATCH] [GRID] [CHANNELS]`.

use mfpipe_fusion::dgmf::{self, Batchable, Fourier, NetShape, ScoreNet, TrainSettings, VeSde};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (steps, batch, grid, channels) = (arg(1, 200), arg(2, 32), arg(3, 32), arg(4, 16));
    let shape = NetShape {
        channels,
        ..NetShape::default()
    };
    let n = 64;
    let m = grid * grid;
    // Smooth fields of three parameters, so the loss has something to learn.
    let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 5) % 13) as f64 / 6.5 - 1.0);
    let fields = Array2::from_shape_fn((n, m), |(i, k)| {
        let (r, c) = (
            (k / grid) as f64 / grid as f64,
            (k % grid) as f64 / grid as f64,
        );
        (x[[i, 0]] * r + x[[i, 1]] * c).sin() + x[[i, 2]] * r * c
    });
    let fid = Array2::from_shape_fn((n, 2), |(i, j)| ((i % 2) == j) as u8 as f64);
    let sde = VeSde {
        sigma_min: 2e-3,
        sigma_max: dgmf::max_pairwise_distance(fields.view()),
    };
    let fourier = Fourier::new(shape.emb, 0);
    let net = ScoreNet::new(&shape, 3, 2, false, 0);
    let data = Batchable {
        fields: fields.view(),
        x: x.view(),
        fid: fid.view(),
        hw: [grid, grid],
    };
    let s = TrainSettings {
        precond: Default::default(),
        noise: Default::default(),
        steps,
        batch,
        lr: 2e-3,
        seed: 0,
    };
    let t0 = Instant::now();
    let mut first = f64::NAN;
    let (net, loss) = dgmf::train(net, &data, &sde, &fourier, &s, &mut |k, l| {
        if k == 0 {
            first = l
        }
    })
    .expect("finite loss");
    let t = t0.elapsed().as_secs_f64();
    println!(
        "train: {steps} steps of batch {batch} on {grid}x{grid}, {channels} channels: {t:.2} s ({:.1} ms/step), loss {first:.3} -> {loss:.3}",
        1e3 * t / steps as f64
    );
    let rows = 256;
    let xs = Array2::from_shape_fn((rows, 3), |(i, j)| x[[i % n, j]]);
    let fs = Array2::from_shape_fn((rows, 2), |(i, j)| fid[[i % n, j]]);
    let z = vec![0.1; rows * m];
    let evals = 10;
    let t0 = Instant::now();
    for _ in 0..evals {
        let _ = dgmf::score_batch(
            &net,
            Default::default(),
            &fourier,
            [grid, grid],
            &z,
            0.5,
            xs.view(),
            fs.view(),
        );
    }
    let t = t0.elapsed().as_secs_f64();
    println!(
        "sample: {:.2} ms per field per score evaluation (batches of {rows})",
        1e3 * t / (evals * rows) as f64
    );
}
