//! Time of one training step (forward, backward, Adam update) of a 784-512-256-10 ReLU MLP with
//! softmax cross-entropy at batch 128, the shape of the W1 workload in BENCHMARKS.md.
//!
//! Run: `cargo bench -p tensile-train --bench step` (threads: `TENSILE_NUM_THREADS`, default every
//! core). Prints the median, min and max over samples of 20 steps each, and the implied seconds
//! per 60,000-row epoch. A plain binary keeps bench-only dependencies out of the crate.

use std::time::Instant;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Adam, AdamConfig, Linear, Module, Optimizer, Relu, Sequential, cross_entropy, named_parameters};

const BATCH: usize = 128;
const STEPS_PER_SAMPLE: usize = 20;
const SAMPLES: usize = 15;

fn main() {
    let threads = tensile_core::threads::init();
    let mut rng = Rng::seed(0);
    let model = Sequential::new()
        .with(Linear::new(784, 512, true, &mut rng))
        .with(Relu)
        .with(Linear::new(512, 256, true, &mut rng))
        .with(Relu)
        .with(Linear::new(256, 10, true, &mut rng));
    let mut opt = Adam::new(named_parameters(&model), AdamConfig::default());
    let x = Tensor::randn((BATCH, 784), 0.0, 1.0, DType::F32, &mut rng);
    let labels: Vec<u32> = (0..BATCH).map(|_| rng.below(10) as u32).collect();
    let y = Tensor::from_vec(labels, BATCH).expect("batch labels");
    let mut step = || {
        let loss = cross_entropy(&model.forward(&x).expect("forward"), &y).expect("loss");
        let grads = loss.backward().expect("backward");
        opt.step(&grads).expect("step");
    };
    for _ in 0..10 {
        step();
    }
    let mut times: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..STEPS_PER_SAMPLE {
                step();
            }
            t.elapsed().as_secs_f64() / STEPS_PER_SAMPLE as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[SAMPLES / 2];
    println!("MLP 784-512-256-10, batch {BATCH}, Adam, {threads} threads");
    println!(
        "step: median {:.3} ms  (min {:.3}, max {:.3});  per 60,000-row epoch: {:.2} s",
        median * 1e3,
        times[0] * 1e3,
        times[SAMPLES - 1] * 1e3,
        median * (60_000.0 / BATCH as f64)
    );
}
