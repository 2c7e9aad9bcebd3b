//! Times DMF training steps on synthetic data, for profiling (`perf record`) the step cost
//! outside the pipeline: `cargo run --release -p mfpipe-fusion --example dmf_steps -- 2000`.

use burn::tensor::Tensor;
use mfpipe_fusion::dmf::{self, DmfNet, Schedule, SearchPhase};
use mfpipe_fusion::mlp::{to_tensor, train_device};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let (n, d_in, d_out) = (32, 1, 10);
    let x = Array2::from_shape_fn((n, d_in), |(i, j)| {
        ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5
    });
    let y = Array2::from_shape_fn((n, d_out), |(i, j)| (x[[i, 0]] * (j as f64 + 1.0)).sin());
    let dev = train_device();
    let (xt, yt): (Tensor<2>, Tensor<2>) = (to_tensor(x.view(), &dev), to_tensor(y.view(), &dev));
    let net = DmfNet::new(3, d_in, 20, d_out, 0, &dev);
    let phase = SearchPhase {
        steps,
        k: 5,
        lr_w: 3e-3,
        lr_alpha: 3e-3,
        lambda1: 0.0,
        lambda2: 0.0,
        schedule: Schedule::Alternate,
        batch: 0,
        seed: 0,
    };
    let l0 = dmf::loss(net.forward(xt.clone()), yt.clone()).into_scalar::<f32>();
    println!("initial loss {l0:.6e}");
    let t0 = Instant::now();
    for _ in 0..steps {
        let _ = net.forward(xt.clone());
    }
    let f = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..steps {
        let l = dmf::loss(net.forward(xt.clone()), yt.clone());
        let _ = l.backward();
    }
    let fb = t0.elapsed().as_secs_f64();
    println!(
        "forward {:.3} ms, forward+backward {:.3} ms",
        1e3 * f / steps as f64,
        1e3 * fb / steps as f64
    );
    let t0 = Instant::now();
    let (_, loss) = dmf::train("dmf", net, &xt, &yt, phase).expect("finite");
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{steps} steps: {s:.3} s ({:.3} ms/step), final loss {loss:.4e}",
        1e3 * s / steps as f64
    );
}
