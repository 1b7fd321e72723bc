//! Memory does not grow across training steps: backward frees the graph as it goes, so after a
//! step only the parameters (and whatever the caller still holds) are alive.
//!
//! `live_tensors()` is a process-wide counter and cargo runs the tests of one file on parallel
//! threads, so this file holds a single test: no other test may create tensors meanwhile.

use tensile_core::{DType, Rng, Tensor, live_tensors};

/// A 2-layer MLP (8 -> 16 -> 3) with softmax cross-entropy; returns the loss, graph attached.
fn forward(x: &Tensor, labels: &Tensor, params: &[Tensor]) -> Tensor {
    let [w1, b1, w2, b2] = params else { panic!("four parameters") };
    let h = x.matmul(w1).unwrap().add(b1).unwrap().relu().unwrap();
    let logp = h.matmul(w2).unwrap().add(b2).unwrap().log_softmax(-1).unwrap();
    logp.gather(&labels.unsqueeze(1).unwrap(), 1).unwrap().mean_all().unwrap().neg().unwrap()
}

#[test]
fn live_tensor_count_is_flat_across_training_steps() {
    let mut rng = Rng::seed(0);
    let x = Tensor::randn([64, 8], 0.0, 1.0, DType::F32, &mut rng);
    let labels: Vec<u32> = (0..64).map(|_| rng.below(3) as u32).collect();
    let labels = Tensor::from_vec(labels, 64).unwrap();
    let params: Vec<Tensor> = [vec![8, 16], vec![16], vec![16, 3], vec![3]]
        .into_iter()
        .map(|s| Tensor::randn(s, 0.0, 0.3, DType::F32, &mut rng).requires_grad())
        .collect();
    let lr = 0.5f32;

    let mut counts = Vec::new();
    let mut losses = Vec::new();
    for step in 0..50 {
        let before = live_tensors();
        let loss = forward(&x, &labels, &params);
        let grads = loss.backward().unwrap();
        // The graph is gone: beyond what the step started with, only the loss and the four
        // gradients are alive.
        assert_eq!(live_tensors(), before + 1 + params.len() as u64, "step {step}: graph kept after backward");
        for p in &params {
            let g = grads.get(p).unwrap().to_vec::<f32>().unwrap();
            p.update_(|w: &mut [f32]| w.iter_mut().zip(&g).for_each(|(w, g)| *w -= lr * g)).unwrap();
        }
        losses.push(loss.item().unwrap());
        drop((loss, grads));
        counts.push(live_tensors());
    }

    assert!(counts[1..].iter().all(|&c| c == counts[1]), "live tensors per step: {counts:?}");
    assert!(losses[49] < 0.5 * losses[0], "the loop should train: {losses:?}");
}
