//! The training loop the benchmarks time, and the protocol around it.
//!
//! The loop has the peers' shape (`../shared/peers/torch_bench.py` and `common.py`): batches in
//! file order with no shuffling and full batches only; per step forward, loss, backward, Adam
//! step (lr 1e-3, PyTorch's defaults). One warm-up epoch from the fresh initialization records
//! every step's loss; then `reps` timed epochs continue training without reading the loss back.
//! The checks time the same epochs inside fixed-size thread pools.

use std::time::Instant;

use tensile_core::{Rng, Tensor};
use tensile_nn::{Adam, AdamConfig, Module, Optimizer, cross_entropy, mse_loss, named_parameters};

use crate::data::{Data, Target};
use crate::error::{Error, Result};
use crate::models;

/// A model, its optimizer and its data: one workload ready to train.
pub struct Bench {
    data: Data,
    model: Box<dyn Module>,
    opt: Adam,
}

impl Bench {
    /// The workload's model initialized from `seed`, with Adam at PyTorch's defaults (lr 1e-3).
    pub fn new(data: Data, seed: u64) -> Result<Bench> {
        let model = models::build(data.work(), &mut Rng::seed(seed))?;
        let opt = Adam::new(named_parameters(model.as_ref()), AdamConfig::default());
        Ok(Bench { data, model, opt })
    }

    pub fn data(&self) -> &Data {
        &self.data
    }
    pub fn model(&self) -> &dyn Module {
        self.model.as_ref()
    }

    /// One training step on batch `i`; returns the loss (a scalar tensor).
    pub fn step(&mut self, i: usize) -> Result<Tensor> {
        let (x, y) = self.data.batch(i)?;
        let out = self.model.forward(&x)?;
        let loss = match self.data.work().spec().target {
            Target::Classes(_) => cross_entropy(&out, &y)?,
            Target::Values => mse_loss(&out, &y)?,
        };
        let grads = loss.backward()?;
        self.opt.step(&grads)?;
        Ok(loss)
    }

    /// One pass over every full batch. With `record`, returns each step's loss; otherwise the
    /// loss is never read back (as in the peers' timed epochs) and the vector is empty.
    pub fn epoch(&mut self, record: bool) -> Result<Vec<f64>> {
        let mut losses = Vec::with_capacity(if record { self.data.steps() } else { 0 });
        for i in 0..self.data.steps() {
            let loss = self.step(i)?;
            if record {
                losses.push(loss.item()?);
            }
        }
        Ok(losses)
    }

    /// One epoch without recording, in seconds.
    pub fn timed_epoch(&mut self) -> Result<f64> {
        let t = Instant::now();
        self.epoch(false)?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// What the protocol measured for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// Per-step losses of the warm-up epoch (epoch 1, from the fresh initialization).
    pub warmup_losses: Vec<f64>,
    /// Seconds of each timed epoch, in order.
    pub times: Vec<f64>,
}

/// The peers' protocol: a recorded warm-up epoch, then `reps` timed epochs.
pub fn run_protocol(bench: &mut Bench, reps: usize) -> Result<EpochStats> {
    if reps == 0 {
        return Err(Error::Invalid("the number of timed epochs must be at least 1, found 0".into()));
    }
    // On a pool thread, as `Trainer::fit` runs its loop.
    tensile_core::threads::run(|| {
        let warmup_losses = bench.epoch(true)?;
        let times = (0..reps).map(|_| bench.timed_epoch()).collect::<Result<_>>()?;
        Ok(EpochStats { warmup_losses, times })
    })
}

/// A rayon pool of exactly `threads` threads; kernels run inside [`rayon::ThreadPool::install`]
/// read its size, so work there uses that many threads whatever `TENSILE_NUM_THREADS` says.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::ThreadPool { threads, message: e.to_string() })
}

/// Epoch times of one workload with 1 and with 2 threads, taken in one process and interleaved
/// (1, 2, 1, 2, ...) so that a change in machine speed hits both alike. One model trains
/// throughout; each thread count gets one untimed warm-up epoch first.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCheck {
    pub one: Vec<f64>,
    pub two: Vec<f64>,
}

pub fn thread_check(data: Data, reps: usize) -> Result<ThreadCheck> {
    let (p1, p2) = (pool(1)?, pool(2)?);
    let mut bench = Bench::new(data, 0)?;
    p1.install(|| bench.epoch(false))?;
    p2.install(|| bench.epoch(false))?;
    let (mut one, mut two) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        one.push(p1.install(|| bench.timed_epoch())?);
        two.push(p2.install(|| bench.timed_epoch())?);
    }
    Ok(ThreadCheck { one, two })
}

/// Epoch times on the data as it is and on the data repeated `factor` times, interleaved, each
/// with its own model (same seed) after one untimed warm-up epoch's worth of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingCheck {
    pub factor: usize,
    pub rows: usize,
    pub small: Vec<f64>,
    pub large: Vec<f64>,
}

pub fn scaling_check(data: Data, factor: usize, reps: usize) -> Result<ScalingCheck> {
    if factor < 2 {
        return Err(Error::Invalid(format!("the scaling factor must be at least 2, found {factor}")));
    }
    let rows = data.rows();
    let mut large = Bench::new(data.repeat(factor)?, 0)?;
    let mut small = Bench::new(data, 0)?;
    small.epoch(false)?;
    // The large model's first steps warm up as well; a whole epoch would cost `factor` of them.
    for i in 0..small.data.steps() {
        large.step(i)?;
    }
    let mut out = ScalingCheck { factor, rows, small: Vec::with_capacity(reps), large: Vec::with_capacity(reps) };
    for _ in 0..reps {
        out.small.push(small.timed_epoch()?);
        out.large.push(large.timed_epoch()?);
    }
    Ok(out)
}
