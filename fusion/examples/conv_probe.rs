use burn::nn::conv::Conv2dConfig;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Distribution, Tensor};
use mfpipe_fusion::mlp::train_device;
use std::time::Instant;

fn main() {
    let dev = train_device();
    let (b, c, o, h) = (32, 16, 16, 32);
    let conv = Conv2dConfig::new([c, o], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&dev);
    let x = Tensor::<4>::random([b, c, h, h], Distribution::Normal(0.0, 1.0), &dev);
    let reps = 20;
    let t0 = Instant::now();
    for _ in 0..reps {
        let y = conv.forward(x.clone());
        let _ = y.sum().backward();
    }
    println!(
        "flex conv2d fwd+bwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = conv.forward(x.clone()).into_data();
    }
    println!(
        "flex conv2d fwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
    let dw = Conv2dConfig::new([c, c], [3, 3])
        .with_groups(c)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&dev);
    let pw = Conv2dConfig::new([c, o], [1, 1]).init(&dev);
    let t0 = Instant::now();
    for _ in 0..reps {
        let y = pw.forward(dw.forward(x.clone()));
        let _ = y.sum().backward();
    }
    println!(
        "depthwise+pointwise fwd+bwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = pw.forward(dw.forward(x.clone())).into_data();
    }
    println!(
        "depthwise+pointwise fwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
    let gn = burn::nn::GroupNormConfig::new(8, c).init(&dev);
    let t0 = Instant::now();
    for _ in 0..reps {
        let y = burn::tensor::activation::silu(gn.forward(x.clone()));
        let _ = y.sum().backward();
    }
    println!(
        "gn+silu fwd+bwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
    // channels-last im2col by shifted slices + matmul
    let xl = Tensor::<4>::random([b, h, h, c], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let w = Tensor::<2>::random([9 * c, o], Distribution::Normal(0.0, 0.1), &dev).require_grad();
    let f = |xl: Tensor<4>| {
        let p = xl.pad((0, 0, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
        p
    };
    let _ = f;
    let t0 = Instant::now();
    for _ in 0..reps {
        let p = Tensor::<4>::zeros([b, h + 2, h + 2, c], &dev)
            .slice_assign([0..b, 1..h + 1, 1..h + 1, 0..c], xl.clone());
        let mut cols = Vec::new();
        for di in 0..3 {
            for dj in 0..3 {
                cols.push(p.clone().slice([0..b, di..di + h, dj..dj + h, 0..c]));
            }
        }
        let col = Tensor::cat(cols, 3).reshape([b * h * h, 9 * c]);
        let y = col.matmul(w.clone()).reshape([b, h, h, o]);
        let _ = y.sum().backward();
    }
    println!(
        "im2col NHWC fwd+bwd: {:.2} ms",
        1e3 * t0.elapsed().as_secs_f64() / reps as f64
    );
}
