//! Losses: forward values equal to PyTorch's on fixed inputs (numbers printed by
//! `tests/reference/losses.py`), gradients against finite differences for every option and
//! reduction, stability at huge logits, and errors (never panics) for bad shapes and options.
// The reference numbers are pasted as printed (16 significant digits), not trimmed to what
// each literal can hold exactly.
#![allow(clippy::excessive_precision)]

mod common;

use common::{check_fn, rand};
use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{
    BceWithLogitsLoss, CrossEntropyLoss, HuberLoss, KlDivLoss, KlReduction, L1Loss, Loss, MseLoss, NllLoss, Reduction,
    SmoothL1Loss, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div, l1_loss, mse_loss, nll_loss,
    smooth_l1_loss,
};

fn t64(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape).unwrap()
}

fn u32s(data: &[u32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape).unwrap()
}

#[track_caller]
fn assert_values(label: &str, got: &Tensor, expected: &[f64]) {
    let got = got.to_f64_vec().unwrap();
    assert_eq!(got.len(), expected.len(), "{label}: {got:?} vs {expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() <= 1e-12 + 1e-12 * e.abs(), "{label}: {got:?} vs {expected:?}");
    }
}

// ---- fixed inputs shared with losses.py -----------------------------------------------------

fn logits() -> Tensor {
    t64(&[1.0, -2.0, 0.5, 3.0, 0.0, 0.2, -1.0, 1.5, 2.5, 2.4, -0.3, 0.0], &[3, 4])
}
fn targets() -> Tensor {
    u32s(&[3, 0, 1], &[3])
}
fn class_weight() -> Option<Tensor> {
    Some(t64(&[0.5, 1.0, 2.0, 1.5], &[4]))
}
fn probs() -> Tensor {
    t64(&[0.1, 0.2, 0.3, 0.4, 1.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.5, 0.0], &[3, 4])
}
fn ce(
    weight: Option<Tensor>,
    ignore_index: Option<u32>,
    label_smoothing: f64,
    reduction: Reduction,
) -> CrossEntropyLoss {
    CrossEntropyLoss { weight, ignore_index, label_smoothing, reduction }
}

// ---- forward values (losses.py) -------------------------------------------------------------

#[test]
fn cross_entropy_with_class_indices_matches_pytorch_for_every_option() {
    let (x, y) = (logits(), targets());
    let check = |label: &str, loss: CrossEntropyLoss, expected: &[f64]| {
        assert_values(label, &loss.forward(&x, &y).unwrap(), expected);
    };
    assert_values("ce_mean", &cross_entropy(&x, &y).unwrap(), &[9.916614568226332e-01]);
    check("ce_sum", ce(None, None, 0.0, Reduction::Sum), &[2.974984370467900e+00]);
    check(
        "ce_none",
        ce(None, None, 0.0, Reduction::None),
        &[2.022534476793517e-01, 1.955997849492604e+00, 8.167330732959437e-01],
    );
    check("ce_weight_mean", ce(class_weight(), None, 0.0, Reduction::Mean), &[6.993707231870911e-01]);
    check(
        "ce_weight_none",
        ce(class_weight(), None, 0.0, Reduction::None),
        &[3.033801715190276e-01, 9.779989247463021e-01, 8.167330732959437e-01],
    );
    check("ce_smooth_mean", ce(None, None, 0.1, Reduction::Mean), &[1.106661456822633e+00]);
    check("ce_smooth_weight_mean", ce(class_weight(), None, 0.2, Reduction::Mean), &[1.132411942755331e+00]);
    check(
        "ce_smooth_weight_none",
        ce(class_weight(), None, 0.2, Reduction::None),
        &[8.432674991350601e-01, 1.248898602170193e+00, 1.305069726960741e+00],
    );
    check("ce_ignore_mean", ce(None, Some(0), 0.0, Reduction::Mean), &[5.094932604876476e-01]);
    check("ce_ignore_weight_smooth_mean", ce(class_weight(), Some(0), 0.3, Reduction::Mean), &[1.064979686694486e+00]);
    check("ce_ignore_weight_smooth_sum", ce(class_weight(), Some(0), 0.3, Reduction::Sum), &[2.662449216736216e+00]);
    check(
        "ce_ignore_weight_smooth_none",
        ce(class_weight(), Some(0), 0.3, Reduction::None),
        &[1.113211162943076e+00, 0.0, 1.549238053793139e+00],
    );
}

#[test]
fn cross_entropy_mean_over_only_ignored_targets_is_nan_as_in_pytorch() {
    let loss = ce(None, Some(2), 0.0, Reduction::Mean).forward(&logits(), &u32s(&[2, 2, 2], &[3])).unwrap();
    assert!(loss.item().unwrap().is_nan());
}

#[test]
fn cross_entropy_with_class_probabilities_matches_pytorch() {
    let (x, p) = (logits(), probs());
    assert_values("ce_probs_mean", &cross_entropy(&x, &p).unwrap(), &[2.083328123489300e+00]);
    let sum = ce(None, None, 0.0, Reduction::Sum).forward(&x, &p).unwrap();
    assert_values("ce_probs_sum", &sum, &[6.249984370467899e+00]);
    let mean = ce(class_weight(), None, 0.1, Reduction::Mean).forward(&x, &p).unwrap();
    assert_values("ce_probs_weight_smooth_mean", &mean, &[2.590990002001815e+00]);
    let none = ce(class_weight(), None, 0.1, Reduction::None).forward(&x, &p).unwrap();
    assert_values(
        "ce_probs_weight_smooth_none",
        &none,
        &[2.904222430181473e+00, 1.113448763458248e+00, 3.755298812365723e+00],
    );
}

#[test]
fn cross_entropy_on_spatial_and_unbatched_inputs_matches_pytorch() {
    let x = t64(&[0.3, -1.2, 1.1, 0.4, -0.5, 2.0, 0.0, 0.7, -2.0, 0.1, 1.5, -0.6], &[2, 3, 2]);
    let y = u32s(&[2, 0, 1, 1], &[2, 2]);
    let w = Some(t64(&[2.0, 0.5, 1.0], &[3]));
    assert_values("ce3_mean", &cross_entropy(&x, &y).unwrap(), &[2.611036842358755e+00]);
    let mean = ce(w.clone(), Some(0), 0.1, Reduction::Mean).forward(&x, &y).unwrap();
    assert_values("ce3_weight_ignore_smooth_mean", &mean, &[2.290461499409290e+00]);
    let none = ce(w, Some(0), 0.1, Reduction::None).forward(&x, &y).unwrap();
    assert_eq!(none.dims(), [2, 2]);
    assert_values(
        "ce3_weight_ignore_smooth_none",
        &none,
        &[2.056543024144349e+00, 0.0, 1.861287827897906e+00, 6.630921467763239e-01],
    );

    let x1 = logits().narrow(0, 0, 1).unwrap().reshape(4).unwrap();
    let y1 = u32s(&[2], &[]);
    let none = ce(None, None, 0.0, Reduction::None).forward(&x1, &y1).unwrap();
    assert_eq!(none.rank(), 0);
    assert_values("ce1_none", &none, &[2.702253447679352e+00]);
    let smooth = ce(None, None, 0.1, Reduction::Mean).forward(&x1, &y1).unwrap();
    assert_values("ce1_smooth_mean", &smooth, &[2.689753447679352e+00]);
}

#[test]
fn nll_loss_matches_pytorch() {
    let (x, y) = (logits(), targets());
    assert_values("nll_mean", &nll_loss(&x, &y).unwrap(), &[-1.8]);
    let nll = |weight, ignore_index, reduction| NllLoss { weight, ignore_index, reduction };
    assert_values("nll_sum", &nll(None, None, Reduction::Sum).forward(&x, &y).unwrap(), &[-5.4]);
    let mean = nll(class_weight(), Some(3), Reduction::Mean).forward(&x, &y).unwrap();
    assert_values("nll_weight_ignore_mean", &mean, &[-1.6]);
    let none = nll(class_weight(), Some(3), Reduction::None).forward(&x, &y).unwrap();
    assert_values("nll_weight_ignore_none", &none, &[0.0, 0.0, -2.4]);
}

#[test]
fn cross_entropy_equals_nll_of_log_softmax() {
    let mut rng = Rng::seed(3);
    let x = rand(&[5, 7], -3.0, 3.0, &mut rng);
    let y = u32s(&[0, 6, 3, 3, 1], &[5]);
    let w = Some(rand(&[7], 0.1, 2.0, &mut rng));
    let a = ce(w.clone(), Some(3), 0.0, Reduction::None).forward(&x, &y).unwrap();
    let b = NllLoss { weight: w, ignore_index: Some(3), reduction: Reduction::None };
    let b = b.forward(&x.log_softmax(1).unwrap(), &y).unwrap();
    assert_values("ce vs nll", &a, &b.to_f64_vec().unwrap());
}

fn bce_inputs() -> (Tensor, Tensor) {
    (t64(&[0.5, -1.0, 2.0, -3.0, 0.0, 4.0], &[2, 3]), t64(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.3], &[2, 3]))
}

#[test]
fn binary_cross_entropy_with_logits_matches_pytorch() {
    let (x, y) = bce_inputs();
    let pos_weight = Some(t64(&[1.5, 0.5, 2.0], &[3]));
    let bce = |weight, pos_weight, reduction| BceWithLogitsLoss { weight, pos_weight, reduction };
    assert_values("bce_mean", &binary_cross_entropy_with_logits(&x, &y).unwrap(), &[7.456918571321332e-01]);
    assert_values("bce_sum", &bce(None, None, Reduction::Sum).forward(&x, &y).unwrap(), &[4.474151142792799e+00]);
    assert_values(
        "bce_none",
        &bce(None, None, Reduction::None).forward(&x, &y).unwrap(),
        &[
            4.740769841801067e-01,
            3.132616875182228e-01,
            1.269280110429725e-01,
            4.858735157374205e-02,
            std::f64::consts::LN_2, // logit 0
            2.818149927917810e+00,
        ],
    );
    let mean = bce(None, pos_weight.clone(), Reduction::Mean).forward(&x, &y).unwrap();
    assert_values("bce_pos_weight_mean", &mean, &[7.494981723368660e-01]);
    let weight = Some(t64(&[2.0, 1.0, 0.5], &[3]));
    let none = bce(weight, pos_weight, Reduction::None).forward(&x, &y).unwrap();
    assert_values(
        "bce_weight_pos_weight_none",
        &none,
        &[
            1.422230952540320e+00,
            3.132616875182228e-01,
            1.269280110429725e-01,
            9.717470314748411e-02,
            3.465735902799726e-01,
            1.411797453146576e+00,
        ],
    );
}

fn regression_inputs() -> (Tensor, Tensor) {
    (t64(&[0.5, -1.0, 2.0, 3.0, 0.2, -0.7], &[2, 3]), t64(&[0.0, 0.5, -0.1, 3.3, 0.2, 1.0], &[2, 3]))
}

#[test]
fn regression_losses_match_pytorch() {
    let (a, b) = regression_inputs();
    assert_values("mse_mean", &mse_loss(&a, &b).unwrap(), &[1.648333333333333e+00]);
    let none = MseLoss { reduction: Reduction::None }.forward(&a, &b).unwrap();
    assert_values("mse_none", &none, &[0.25, 2.25, 4.41, 8.999999999999990e-02, 0.0, 2.89]);
    assert_values("l1_mean", &l1_loss(&a, &b).unwrap(), &[1.016666666666667e+00]);
    assert_values("l1_sum", &L1Loss { reduction: Reduction::Sum }.forward(&a, &b).unwrap(), &[6.100000000000001e+00]);

    let huber = |delta, reduction| HuberLoss { delta, reduction }.forward(&a, &b).unwrap();
    let huber_one = [0.125, 1.0, 1.6, 4.499999999999995e-02, 0.0, 1.2];
    assert_values("huber_none", &huber(1.0, Reduction::None), &huber_one);
    assert_values("huber_default_mean", &huber_loss(&a, &b).unwrap(), &[huber_one.iter().sum::<f64>() / 6.0]);
    assert_values(
        "huber_delta_half_none",
        &huber(0.5, Reduction::None),
        &[0.125, 0.625, 0.925, 4.499999999999995e-02, 0.0, 0.725],
    );
    assert_values("huber_delta_half_mean", &huber(0.5, Reduction::Mean), &[0.4075]);

    let smooth = |beta, reduction| SmoothL1Loss { beta, reduction }.forward(&a, &b).unwrap();
    assert_values("smooth_l1_none", &smooth(1.0, Reduction::None), &huber_one);
    assert_values("smooth_l1_default_mean", &smooth_l1_loss(&a, &b).unwrap(), &[huber_one.iter().sum::<f64>() / 6.0]);
    assert_values(
        "smooth_l1_beta_half_none",
        &smooth(0.5, Reduction::None),
        &[0.25, 1.25, 1.85, 8.999999999999990e-02, 0.0, 1.45],
    );
    assert_values("smooth_l1_beta_half_sum", &smooth(0.5, Reduction::Sum), &[4.890000000000001e+00]);
    assert_values("smooth_l1_beta_zero_mean", &smooth(0.0, Reduction::Mean), &[1.016666666666667e+00]);
}

#[test]
fn huber_is_beta_times_smooth_l1() {
    let mut rng = Rng::seed(4);
    let (a, b) = (rand(&[4, 5], -3.0, 3.0, &mut rng), rand(&[4, 5], -3.0, 3.0, &mut rng));
    for beta in [0.25, 1.0, 2.5] {
        let h = HuberLoss { delta: beta, reduction: Reduction::None }.forward(&a, &b).unwrap();
        let s = SmoothL1Loss { beta, reduction: Reduction::None }.forward(&a, &b).unwrap();
        let scaled: Vec<f64> = s.to_f64_vec().unwrap().iter().map(|v| v * beta).collect();
        let h = h.to_f64_vec().unwrap();
        assert!(h.iter().zip(&scaled).all(|(x, y)| (x - y).abs() < 1e-12), "beta {beta}: {h:?} vs {scaled:?}");
    }
}

fn kl_inputs() -> (Tensor, Tensor) {
    let input = t64(&[0.2, -0.4, 1.0, 1.5, 0.0, -1.0], &[2, 3]).log_softmax(1).unwrap();
    (input, t64(&[0.2, 0.5, 0.3, 0.0, 0.6, 0.4], &[2, 3]))
}

#[test]
fn kl_div_matches_pytorch_for_every_reduction_and_log_target() {
    let (input, target) = kl_inputs();
    let kl = |reduction, log_target| KlDivLoss { reduction, log_target };
    assert_values("kl_mean", &kl_div(&input, &target).unwrap(), &[3.086553467759402e-01]);
    assert_values("kl_sum", &kl(KlReduction::Sum, false).forward(&input, &target).unwrap(), &[1.851932080655641e+00]);
    let batchmean = kl(KlReduction::BatchMean, false).forward(&input, &target).unwrap();
    assert_values("kl_batchmean", &batchmean, &[9.259660403278206e-01]);
    assert_values(
        "kl_none",
        &kl(KlReduction::None, false).forward(&input, &target).unwrap(),
        &[
            -5.624181010235263e-02,
            6.175408406811960e-01,
            -2.027231827210797e-01,
            0.0,
            7.533253656246859e-01,
            7.400308671731913e-01,
        ],
    );
    let log_target = t64(&[0.2, 0.5, 0.3, 0.1, 0.5, 0.4], &[2, 3]).log().unwrap();
    let v = kl(KlReduction::BatchMean, true).forward(&input, &log_target).unwrap();
    assert_values("kl_log_target_batchmean", &v, &[7.157976776679291e-01]);
}

// ---- gradients ------------------------------------------------------------------------------

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

#[test]
fn cross_entropy_gradients_match_finite_differences_for_every_option() {
    let mut rng = Rng::seed(10);
    let x = rand(&[4, 5], -2.0, 2.0, &mut rng).requires_grad();
    let y = u32s(&[4, 0, 2, 0], &[4]);
    let w = Some(rand(&[5], 0.2, 2.0, &mut rng));
    for reduction in REDUCTIONS {
        for (weight, ignore, eps) in [
            (None, None, 0.0),
            (w.clone(), None, 0.0),
            (None, None, 0.15),
            (None, Some(0), 0.0),
            (w.clone(), Some(0), 0.3),
            (w.clone(), Some(4), 1.0),
        ] {
            let loss = ce(weight.clone(), ignore, eps, reduction);
            let label = format!("cross_entropy {reduction:?} weight {} ignore {ignore:?} eps {eps}", weight.is_some());
            check_fn(&label, |t| loss.forward(&t[0], &y).unwrap(), std::slice::from_ref(&x));
        }
    }
}

#[test]
fn cross_entropy_probability_target_gradients_reach_logits_and_targets() {
    let mut rng = Rng::seed(11);
    let x = rand(&[3, 4], -2.0, 2.0, &mut rng).requires_grad();
    let p = rand(&[3, 4], 0.0, 1.0, &mut rng).requires_grad();
    for reduction in REDUCTIONS {
        for (weight, eps) in [(None, 0.0), (Some(rand(&[4], 0.2, 2.0, &mut rng)), 0.2)] {
            let loss = ce(weight, None, eps, reduction);
            check_fn(
                &format!("cross_entropy probabilities {reduction:?} eps {eps}"),
                |t| loss.forward(&t[0], &t[1]).unwrap(),
                &[x.clone(), p.clone()],
            );
        }
    }
}

#[test]
fn cross_entropy_gradients_on_spatial_and_unbatched_inputs() {
    let mut rng = Rng::seed(12);
    let x = rand(&[2, 3, 4], -2.0, 2.0, &mut rng).requires_grad();
    let y = u32s(&[0, 1, 2, 1, 2, 2, 0, 1], &[2, 4]);
    let loss = ce(Some(rand(&[3], 0.5, 1.5, &mut rng)), Some(1), 0.1, Reduction::Mean);
    check_fn("cross_entropy [B, C, T]", |t| loss.forward(&t[0], &y).unwrap(), std::slice::from_ref(&x));

    let x1 = rand(&[5], -2.0, 2.0, &mut rng).requires_grad();
    let y1 = u32s(&[3], &[]);
    let loss = ce(None, None, 0.2, Reduction::None);
    check_fn("cross_entropy [C]", |t| loss.forward(&t[0], &y1).unwrap(), std::slice::from_ref(&x1));
}

#[test]
fn nll_gradients_match_finite_differences() {
    let mut rng = Rng::seed(13);
    let x = rand(&[4, 3], -3.0, 0.0, &mut rng).requires_grad();
    let y = u32s(&[2, 1, 1, 0], &[4]);
    for reduction in REDUCTIONS {
        for (weight, ignore) in [(None, None), (Some(rand(&[3], 0.2, 2.0, &mut rng)), Some(1))] {
            let loss = NllLoss { weight, ignore_index: ignore, reduction };
            check_fn(
                &format!("nll {reduction:?} {ignore:?}"),
                |t| loss.forward(&t[0], &y).unwrap(),
                std::slice::from_ref(&x),
            );
        }
    }
}

#[test]
fn bce_with_logits_gradients_reach_logits_and_targets_for_every_option() {
    let mut rng = Rng::seed(14);
    let x = rand(&[3, 4], -4.0, 4.0, &mut rng).requires_grad();
    let y = rand(&[3, 4], 0.0, 1.0, &mut rng).requires_grad();
    let pos_weight = Some(rand(&[4], 0.3, 3.0, &mut rng));
    let weight = Some(rand(&[3, 1], 0.3, 3.0, &mut rng));
    for reduction in REDUCTIONS {
        for (weight, pos_weight) in [(None, None), (None, pos_weight.clone()), (weight.clone(), pos_weight.clone())] {
            let loss = BceWithLogitsLoss { weight, pos_weight, reduction };
            check_fn(&format!("bce {reduction:?}"), |t| loss.forward(&t[0], &t[1]).unwrap(), &[x.clone(), y.clone()]);
        }
    }
}

#[test]
fn regression_gradients_match_finite_differences_on_both_sides_of_delta_and_beta() {
    // Differences on both sides of 0.5 and of 1.0, none within the finite-difference step of a
    // kink.
    let d = [-2.5, -0.7, -0.2, 0.3, 0.9, 1.8, -1.3, 0.05];
    let mut rng = Rng::seed(15);
    let b = rand(&[2, 4], -1.0, 1.0, &mut rng).requires_grad();
    let bv = b.to_f64_vec().unwrap();
    let a: Vec<f64> = d.iter().zip(&bv).map(|(d, b)| d + b).collect();
    let a = t64(&a, &[2, 4]).requires_grad();
    let inputs = [a, b];
    for reduction in REDUCTIONS {
        check_fn("mse", |t| MseLoss { reduction }.forward(&t[0], &t[1]).unwrap(), &inputs);
        check_fn("l1", |t| L1Loss { reduction }.forward(&t[0], &t[1]).unwrap(), &inputs);
        for cut in [0.5, 1.0] {
            let huber = HuberLoss { delta: cut, reduction };
            check_fn(&format!("huber {cut} {reduction:?}"), |t| huber.forward(&t[0], &t[1]).unwrap(), &inputs);
            let smooth = SmoothL1Loss { beta: cut, reduction };
            check_fn(&format!("smooth_l1 {cut} {reduction:?}"), |t| smooth.forward(&t[0], &t[1]).unwrap(), &inputs);
        }
        let l1 = SmoothL1Loss { beta: 0.0, reduction };
        check_fn("smooth_l1 beta 0", |t| l1.forward(&t[0], &t[1]).unwrap(), &inputs);
    }
}

#[test]
fn kl_div_gradients_reach_input_and_target_for_every_reduction() {
    let mut rng = Rng::seed(16);
    let input = rand(&[3, 4], -3.0, 0.0, &mut rng).requires_grad();
    let target = rand(&[3, 4], 0.05, 1.0, &mut rng).requires_grad();
    let log_target = rand(&[3, 4], -3.0, 0.0, &mut rng).requires_grad();
    for reduction in [KlReduction::Mean, KlReduction::BatchMean, KlReduction::Sum, KlReduction::None] {
        let kl = KlDivLoss { reduction, log_target: false };
        check_fn(&format!("kl {reduction:?}"), |t| kl.forward(&t[0], &t[1]).unwrap(), &[input.clone(), target.clone()]);
        let kl = KlDivLoss { reduction, log_target: true };
        check_fn(
            &format!("kl log_target {reduction:?}"),
            |t| kl.forward(&t[0], &t[1]).unwrap(),
            &[input.clone(), log_target.clone()],
        );
    }
}

#[test]
fn kl_div_gradient_is_finite_where_the_target_is_zero() {
    let (input, target) = kl_inputs();
    let (input, target) = (input.detach().requires_grad(), target.requires_grad());
    let g = kl_div(&input, &target).unwrap().backward().unwrap();
    for t in [&input, &target] {
        assert!(g.get(t).unwrap().to_f64_vec().unwrap().iter().all(|v| v.is_finite()));
    }
}

// ---- stability ------------------------------------------------------------------------------

#[test]
fn huge_logits_give_finite_losses_and_gradients() {
    let x = Tensor::from_vec(vec![1e4f32, -1e4, 0.0, -1e4, 1e4, 5e3], (2, 3)).unwrap().requires_grad();
    let y = u32s(&[1, 0], &[2]);
    let loss = cross_entropy(&x, &y).unwrap();
    // Each row puts -2e4 of log-probability on its target.
    assert_eq!(loss.item().unwrap(), 2e4);
    let smoothed = ce(Some(Tensor::ones(3, DType::F32)), None, 0.1, Reduction::Mean).forward(&x, &y).unwrap();
    for l in [&loss, &smoothed] {
        assert!(l.item().unwrap().is_finite());
        let g = l.backward().unwrap().get(&x).unwrap().to_f64_vec().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }

    let z = Tensor::from_vec(vec![1e4f32, -1e4, 1e4, -1e4], 4).unwrap().requires_grad();
    let t = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], 4).unwrap();
    let pos = Some(Tensor::full(3.0, 4, DType::F32));
    let none = BceWithLogitsLoss { reduction: Reduction::None, pos_weight: pos, ..Default::default() };
    assert_eq!(none.forward(&z, &t).unwrap().to_vec::<f32>().unwrap(), vec![1e4, 3e4, 0.0, 0.0]);
    let g = binary_cross_entropy_with_logits(&z, &t).unwrap().backward().unwrap();
    // σ(x) - y, over the 4 elements of the mean.
    assert_eq!(g.get(&z).unwrap().to_vec::<f32>().unwrap(), vec![0.25, -0.25, 0.0, 0.0]);
}

// ---- API ------------------------------------------------------------------------------------

#[test]
fn losses_work_as_trait_objects_and_in_f32() {
    let losses: Vec<Box<dyn Loss>> = vec![
        Box::new(MseLoss::default()),
        Box::new(L1Loss::default()),
        Box::new(HuberLoss::default()),
        Box::new(SmoothL1Loss::default()),
        Box::new(BceWithLogitsLoss::default()),
        Box::new(KlDivLoss::default()),
    ];
    let (a, b) = regression_inputs();
    let (a, b) = (a.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap().abs().unwrap());
    for loss in &losses {
        let v = loss.forward(&a, &b).unwrap();
        assert_eq!((v.dtype(), v.rank()), (DType::F32, 0), "{}", loss.name());
    }
    let ce: Box<dyn Loss> = Box::new(CrossEntropyLoss::default());
    let v = ce.forward(&logits().to_dtype(DType::F32).unwrap(), &targets()).unwrap();
    assert!((v.item().unwrap() - 9.916614568226332e-01).abs() < 1e-6);
    assert_eq!(ce.name(), "cross_entropy");
}

#[test]
fn reductions_serialize_as_pytorch_strings() {
    assert_eq!(serde_json::to_string(&Reduction::None).unwrap(), "\"none\"");
    assert_eq!(serde_json::from_str::<Reduction>("\"sum\"").unwrap(), Reduction::Sum);
    assert_eq!(serde_json::to_string(&KlReduction::BatchMean).unwrap(), "\"batchmean\"");
    assert_eq!(Reduction::default(), Reduction::Mean);
}

// ---- errors ---------------------------------------------------------------------------------

#[track_caller]
fn assert_err(result: tensile_nn::Result<Tensor>, needles: &[&str]) {
    let msg = match result {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should mention {n:?}");
    }
}

#[test]
fn bad_shapes_dtypes_targets_and_options_are_errors_naming_the_loss() {
    let (x, y) = (logits(), targets());
    assert_err(cross_entropy(&x, &u32s(&[0, 1], &[2])), &["cross_entropy", "[3, 4]", "[3]", "[2]"]);
    assert_err(cross_entropy(&x, &Tensor::zeros(3, DType::U8)), &["cross_entropy", "U8"]);
    assert_err(cross_entropy(&x, &u32s(&[0, 4, 1], &[3])), &["cross_entropy", "target 4", "position 1", "4 classes"]);
    assert_err(cross_entropy(&x, &Tensor::zeros((3, 5), DType::F64)), &["cross_entropy", "[3, 4]", "[3, 5]"]);
    assert_err(cross_entropy(&x, &Tensor::zeros((3, 4), DType::F32)), &["cross_entropy", "F32"]);
    assert_err(cross_entropy(&Tensor::zeros((), DType::F64), &u32s(&[0], &[])), &["cross_entropy", "[]"]);
    assert_err(cross_entropy(&Tensor::zeros(3, DType::U32), &y), &["cross_entropy", "U32"]);
    assert_err(ce(Some(t64(&[1.0; 3], &[3])), None, 0.0, Reduction::Mean).forward(&x, &y), &["weight", "[4]", "[3]"]);
    assert_err(ce(None, None, 1.5, Reduction::Mean).forward(&x, &y), &["cross_entropy", "label_smoothing", "1.5"]);
    assert_err(ce(None, Some(0), 0.0, Reduction::Mean).forward(&x, &probs()), &["cross_entropy", "ignore_index"]);
    assert_err(nll_loss(&x, &u32s(&[9, 0, 0], &[3])), &["nll_loss", "target 9"]);

    let (a, b) = regression_inputs();
    let short = Tensor::zeros((2, 2), DType::F64);
    assert_err(mse_loss(&a, &short), &["mse_loss", "[2, 3]", "[2, 2]"]);
    assert_err(l1_loss(&a, &b.to_dtype(DType::F32).unwrap()), &["l1_loss", "F64", "F32"]);
    assert_err(huber_loss(&short, &a), &["huber_loss", "[2, 2]", "[2, 3]"]);
    assert_err(HuberLoss { delta: 0.0, reduction: Reduction::Mean }.forward(&a, &b), &["huber_loss", "delta"]);
    assert_err(SmoothL1Loss { beta: -1.0, reduction: Reduction::Mean }.forward(&a, &b), &["smooth_l1_loss", "beta"]);
    assert_err(smooth_l1_loss(&a, &u32s(&[0; 6], &[2, 3])), &["smooth_l1_loss", "U32"]);
    assert_err(kl_div(&a, &short), &["kl_div", "[2, 3]", "[2, 2]"]);

    let (x, y) = bce_inputs();
    assert_err(binary_cross_entropy_with_logits(&x, &short), &["binary_cross_entropy_with_logits", "[2, 2]"]);
    let bad = BceWithLogitsLoss { pos_weight: Some(t64(&[1.0; 2], &[2])), ..Default::default() };
    assert_err(bad.forward(&x, &y), &["binary_cross_entropy_with_logits", "pos_weight", "[2]", "[2, 3]"]);
    let bad = BceWithLogitsLoss { weight: Some(t64(&[1.0; 12], &[2, 2, 3])), ..Default::default() };
    assert_err(bad.forward(&x, &y), &["weight", "[2, 2, 3]", "[2, 3]"]);
}
