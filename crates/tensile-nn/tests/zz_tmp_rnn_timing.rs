use std::time::Instant;
use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Gru, Module, RecurrentConfig};
#[test]
fn timing() {
    let mut rng = Rng::seed(0);
    for (b, t, d, h, reps) in
        [(32usize, 8usize, 8usize, 64usize, 20), (32, 100, 32, 128, 3), (64, 100, 256, 256, 2), (32, 400, 32, 128, 2)]
    {
        let gru =
            Gru::new(RecurrentConfig { num_layers: 2, bidirectional: true, ..RecurrentConfig::new(d, h) }, &mut rng)
                .unwrap();
        let x = Tensor::randn((b, t, d), 0.0, 1.0, DType::F32, &mut rng);
        let mut best = (f64::MAX, f64::MAX);
        for _ in 0..reps {
            let s = Instant::now();
            let y = gru.forward(&x).unwrap().sum_all().unwrap();
            let f = s.elapsed();
            let _g = y.backward().unwrap();
            let bw = s.elapsed() - f;
            best = (best.0.min(f.as_secs_f64()), best.1.min(bw.as_secs_f64()));
        }
        eprintln!("B={b} T={t} D={d} H={h}: forward {:.1}ms backward {:.1}ms", best.0 * 1e3, best.1 * 1e3);
    }
}
