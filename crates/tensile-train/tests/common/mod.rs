//! Shared fixtures for tensile-train's tests: small models on the built-in digits data.
#![allow(dead_code)]

use std::path::PathBuf;

use tensile_core::Rng;
use tensile_nn::{Dropout, DropoutConfig, Linear, Module, Relu, Sequential, weights};

/// An MLP for the 64 digit pixels; `dropout` adds a dropout layer (a random stream to resume).
pub fn mlp(hidden: usize, dropout: f64, rng: &mut Rng) -> Sequential {
    let mut m = Sequential::new().with(Linear::new(64, hidden, true, rng)).with(Relu);
    if dropout > 0.0 {
        let mut drop_rng = rng.fork(77);
        m = m.with(Dropout::new(DropoutConfig { p: dropout }, &mut drop_rng).unwrap());
    }
    m.with(Linear::new(hidden, 10, true, rng))
}

/// Every weight and buffer of `m` as raw bits, in name order.
pub fn weight_bits(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    weights::named_tensors(m)
        .into_iter()
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// A fresh, empty temporary directory unique to this process and `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tensile-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
