//! Convolution, pooling, normalization, dropout, embedding, shape, residual and activation
//! layers: forward values worked out by hand or by `tests/reference/layers.py`, finite-difference
//! gradient checks in f64, PyTorch's initialization and names, errors, and the summary table.

mod common;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{
    AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig,
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Flatten, Gelu, GlobalAvgPool, LayerNorm, LayerNormConfig,
    LeakyRelu, Linear, MaxPool1d, MaxPool2d, Module, Pool1dConfig, Pool2dConfig, Relu, Reshape, Residual, Sequential,
    Sigmoid, Silu, Softmax, Tanh, named_parameters, summary,
};

fn t32(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{label}: element {i}: got {g}, want {w}");
    }
}

/// `((i·a) mod m − off) / scale` for `i` in `0..n`: inputs the reference script rebuilds exactly.
fn seq(n: usize, a: usize, m: usize, off: f64, scale: f64) -> Vec<f64> {
    (0..n).map(|i| (((i * a) % m) as f64 - off) / scale).collect()
}

fn f64t(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

fn err_text<T>(r: tensile_nn::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

// ---- convolution ------------------------------------------------------------------------

#[test]
fn conv2d_forward_matches_hand_computation_on_a_3x3_image() {
    let cfg = Conv2dConfig::new(1, 1, (2, 2));
    let w = t32(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    let conv = Conv2d::from_tensors(cfg, w, Some(t32(&[0.5], &[1]))).unwrap();
    let x = t32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &[1, 1, 3, 3]);
    let y = conv.forward(&x).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    // top-left: 1·1 + 2·2 + 3·4 + 4·5 = 37; then 2+6+15+24 = 47; 4+10+21+32 = 67; 5+12+24+36 = 77.
    assert_eq!(f32s(&y), vec![37.5, 47.5, 67.5, 77.5]);
}

#[test]
fn grouped_dilated_strided_conv2d_matches_reference_script() {
    let cfg = Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        dilation: (2, 1),
        groups: 2,
        ..Conv2dConfig::new(4, 4, (2, 2))
    };
    let w = f64t(seq(32, 5, 7, 3.0, 5.0), &[4, 2, 2, 2]);
    let b = f64t(vec![0.1, -0.2, 0.3, 0.0], &[4]);
    let conv = Conv2d::from_tensors(cfg, w, Some(b)).unwrap();
    let x = f64t(seq(80, 7, 11, 5.0, 4.0), &[1, 4, 4, 5]);
    let y = conv.forward(&x).unwrap();
    assert_eq!(y.dims(), [1, 4, 2, 3]);
    // Printed by tests/reference/layers.py ("conv2d").
    let want = [
        -0.35, 0.5, -0.4, 0.25, -1.3, 1.55, -0.15, -1.05, 0.05, -0.5, 0.65, -0.15, 0.4, -0.25, 0.1, 0.0, -0.15, 0.95,
        0.0, -0.55, -0.3, 0.15, 2.6, 0.65,
    ];
    assert_close(&y.to_vec::<f64>().unwrap(), &want, 1e-9, "conv2d");
}

#[test]
fn grouped_dilated_strided_conv1d_matches_reference_script() {
    let cfg = Conv1dConfig { stride: 2, padding: 1, dilation: 2, groups: 2, ..Conv1dConfig::new(4, 2, 3) };
    let w = f64t(seq(12, 4, 9, 4.0, 3.0), &[2, 2, 3]);
    let b = f64t(vec![0.25, -0.5], &[2]);
    let conv = Conv1d::from_tensors(cfg, w, Some(b)).unwrap();
    let x = f64t(seq(56, 3, 13, 6.0, 5.0), &[2, 4, 7]);
    let y = conv.forward(&x).unwrap();
    assert_eq!(y.dims(), [2, 2, 3]);
    // Printed by tests/reference/layers.py ("conv1d"); they are multiples of 1/60, written so.
    let want = [139.0, -77.0, 23.0, 10.0, -122.0, 14.0, -105.0, 79.0, 27.0, -202.0, 34.0, -2.0].map(|v: f64| v / 60.0);
    assert_close(&y.to_vec::<f64>().unwrap(), &want, 1e-9, "conv1d");
}

#[test]
fn conv_initialization_is_bounded_by_fan_in_over_groups_and_named_like_pytorch() {
    let cfg = Conv2dConfig { groups: 2, ..Conv2dConfig::new(4, 6, (3, 3)) };
    let conv = Conv2d::new(cfg, &mut Rng::seed(0)).unwrap();
    let names: Vec<String> = named_parameters(&conv).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["weight", "bias"]);
    assert_eq!(conv.weight().dims(), [6, 2, 3, 3]);
    // fan_in = in_channels / groups · KH · KW = 2 · 9.
    let bound = 1.0 / 18f32.sqrt();
    for t in [conv.weight(), conv.bias().unwrap()] {
        let v = f32s(t);
        assert!(v.iter().all(|w| w.abs() <= bound), "{t:?}");
    }
    let spread = f32s(conv.weight()).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.9 * bound, "weights should fill the range, max |w| = {spread}");

    let conv1 = Conv1d::new(Conv1dConfig { bias: false, ..Conv1dConfig::new(3, 5, 4) }, &mut Rng::seed(1)).unwrap();
    assert_eq!(conv1.weight().dims(), [5, 3, 4]);
    assert!(conv1.bias().is_none());
    assert!(f32s(conv1.weight()).iter().all(|w| w.abs() <= 1.0 / 12f32.sqrt()));
}

#[test]
fn conv2d_gradients_match_finite_differences_across_stride_padding_dilation_and_groups() {
    let mut rng = Rng::seed(2);
    let cases = [
        ("plain", Conv2dConfig::new(2, 3, (2, 2)), [2, 2, 4, 4]),
        ("groups=2", Conv2dConfig { groups: 2, ..Conv2dConfig::new(4, 2, (2, 3)) }, [1, 4, 4, 5]),
        ("dilation=2", Conv2dConfig { dilation: (2, 2), ..Conv2dConfig::new(2, 2, (2, 2)) }, [1, 2, 5, 5]),
        (
            "stride=2 padding=1",
            Conv2dConfig { stride: (2, 2), padding: (1, 1), ..Conv2dConfig::new(2, 3, (3, 3)) },
            [2, 2, 5, 4],
        ),
        (
            "all at once, no bias",
            Conv2dConfig {
                stride: (2, 1),
                padding: (1, 2),
                dilation: (1, 2),
                groups: 3,
                bias: false,
                ..Conv2dConfig::new(3, 6, (2, 2))
            },
            [1, 3, 5, 4],
        ),
    ];
    for (label, cfg, shape) in cases {
        let conv = Conv2d::new(cfg, &mut rng).unwrap();
        common::check_module(&format!("conv2d {label}"), &conv, &common::rand(&shape, -1.0, 1.0, &mut rng));
    }
}

#[test]
fn conv1d_gradients_match_finite_differences_across_stride_padding_dilation_and_groups() {
    let mut rng = Rng::seed(3);
    let cases = [
        ("plain", Conv1dConfig::new(2, 3, 3), [2, 2, 6]),
        ("groups=2", Conv1dConfig { groups: 2, ..Conv1dConfig::new(4, 4, 2) }, [2, 4, 5]),
        ("dilation=2", Conv1dConfig { dilation: 2, ..Conv1dConfig::new(2, 2, 3) }, [1, 2, 7]),
        ("stride=2 padding=1", Conv1dConfig { stride: 2, padding: 1, ..Conv1dConfig::new(3, 2, 3) }, [2, 3, 6]),
    ];
    for (label, cfg, shape) in cases {
        let conv = Conv1d::new(cfg, &mut rng).unwrap();
        common::check_module(&format!("conv1d {label}"), &conv, &common::rand(&shape, -1.0, 1.0, &mut rng));
    }
}

// ---- pooling and shapes -----------------------------------------------------------------

#[test]
fn max_and_avg_pool_forward_match_hand_computation() {
    let x = Tensor::arange(16, DType::F32).reshape([1, 1, 4, 4]).unwrap();
    let max2 = MaxPool2d::new(Pool2dConfig::new((2, 2))).unwrap();
    assert_eq!(f32s(&max2.forward(&x).unwrap()), vec![5.0, 7.0, 13.0, 15.0]);
    let avg2 = AvgPool2d::new(Pool2dConfig::new((2, 2))).unwrap();
    // (0+1+4+5)/4, (2+3+6+7)/4, (8+9+12+13)/4, (10+11+14+15)/4
    assert_eq!(f32s(&avg2.forward(&x).unwrap()), vec![2.5, 4.5, 10.5, 12.5]);

    // Overlapping windows with stride 1: [1,3] [3,2] [2,5] [5,4].
    let x1 = t32(&[1.0, 3.0, 2.0, 5.0, 4.0], &[1, 1, 5]);
    let max1 = MaxPool1d::new(Pool1dConfig { stride: Some(1), ..Pool1dConfig::new(2) }).unwrap();
    assert_eq!(f32s(&max1.forward(&x1).unwrap()), vec![3.0, 3.0, 5.0, 5.0]);
    let avg1 = AvgPool1d::new(Pool1dConfig { stride: Some(1), ..Pool1dConfig::new(2) }).unwrap();
    assert_eq!(f32s(&avg1.forward(&x1).unwrap()), vec![2.0, 2.5, 3.5, 4.5]);

    // Padding 1: windows [pad, a] and [b, c]. Max padding never wins (even over negatives);
    // average padding counts as a zero in the denominator.
    let neg = t32(&[-1.0, -3.0, -2.0], &[1, 1, 3]);
    let cfg = Pool1dConfig { padding: 1, ..Pool1dConfig::new(2) };
    assert_eq!(f32s(&MaxPool1d::new(cfg.clone()).unwrap().forward(&neg).unwrap()), vec![-1.0, -2.0]);
    let pos = t32(&[2.0, 4.0, 6.0], &[1, 1, 3]);
    assert_eq!(f32s(&AvgPool1d::new(cfg).unwrap().forward(&pos).unwrap()), vec![1.0, 5.0]);
}

#[test]
fn global_avg_pool_flatten_and_reshape_forward() {
    let x = Tensor::arange(12, DType::F32).reshape([1, 2, 2, 3]).unwrap();
    // Channel 0 holds 0..6 (mean 2.5), channel 1 holds 6..12 (mean 8.5).
    assert_eq!(f32s(&GlobalAvgPool.forward(&x).unwrap()), vec![2.5, 8.5]);
    let x1 = Tensor::arange(6, DType::F32).reshape([1, 2, 3]).unwrap();
    assert_eq!(f32s(&GlobalAvgPool.forward(&x1).unwrap()), vec![1.0, 4.0]);

    let flat = Flatten.forward(&x).unwrap();
    assert_eq!(flat.dims(), [1, 12]);
    assert_eq!(f32s(&flat), f32s(&x));

    let rows = Tensor::arange(128, DType::F32).reshape([2, 64]).unwrap();
    let img = Reshape::new(&[1, 8, 8]).unwrap().forward(&rows).unwrap();
    assert_eq!(img.dims(), [2, 1, 8, 8]);
    assert_eq!(f32s(&img), f32s(&rows));
}

#[test]
fn pool_gradients_match_finite_differences() {
    let mut rng = Rng::seed(4);
    // Distinct random values, so no max ties make the derivative undefined.
    let x2 = common::rand(&[2, 2, 5, 4], -1.0, 1.0, &mut rng);
    let x1 = common::rand(&[2, 3, 7], -1.0, 1.0, &mut rng);
    let two_d = [
        Pool2dConfig::new((2, 2)),
        Pool2dConfig { stride: Some((1, 2)), padding: (1, 1), ..Pool2dConfig::new((3, 2)) },
    ];
    for cfg in two_d {
        common::check_module("max_pool2d", &MaxPool2d::new(cfg.clone()).unwrap(), &x2);
        common::check_module("avg_pool2d", &AvgPool2d::new(cfg).unwrap(), &x2);
    }
    let one_d = [Pool1dConfig::new(2), Pool1dConfig { stride: Some(2), padding: 1, ..Pool1dConfig::new(3) }];
    for cfg in one_d {
        common::check_module("max_pool1d", &MaxPool1d::new(cfg.clone()).unwrap(), &x1);
        common::check_module("avg_pool1d", &AvgPool1d::new(cfg).unwrap(), &x1);
    }
    common::check_module("global_avg_pool 2d", &GlobalAvgPool, &x2);
    common::check_module("global_avg_pool 1d", &GlobalAvgPool, &x1);
    common::check_module("flatten", &Flatten, &x2);
    common::check_module("reshape", &Reshape::new(&[4, 10]).unwrap(), &x2);
}

// ---- normalization ----------------------------------------------------------------------

#[test]
fn batch_norm_normalizes_with_batch_statistics_and_tracks_running_statistics_like_pytorch() {
    let mut bn = BatchNorm1d::new(BatchNormConfig::new(2)).unwrap();
    assert!(bn.is_training(), "PyTorch modules start in training mode");
    let x1 = f64t(vec![1.0, 2.0, 3.0, 6.0, 5.0, 10.0], &[3, 2]);
    tensile_nn::cast(&bn, DType::F64).unwrap();
    let y1 = bn.forward(&x1).unwrap().to_vec::<f64>().unwrap();
    // Channel 0: mean 3, biased variance 8/3; channel 1: mean 6, biased variance 32/3.
    let (s0, s1) = ((8.0f64 / 3.0 + 1e-5).sqrt(), (32.0f64 / 3.0 + 1e-5).sqrt());
    assert_close(&y1, &[-2.0 / s0, -4.0 / s1, 0.0, 0.0, 2.0 / s0, 4.0 / s1], 1e-12, "training output");

    // Running statistics use the unbiased variance: step 1 (n = 3) has [4, 16].
    //   mean = 0.9·0 + 0.1·[3, 6] = [0.3, 0.6]; var = 0.9·1 + 0.1·[4, 16] = [1.3, 2.5]
    // Step 2 (n = 2) has mean [1, -2] and unbiased variance [2, 8].
    //   mean = 0.9·[0.3, 0.6] + 0.1·[1, -2] = [0.37, 0.34]
    //   var  = 0.9·[1.3, 2.5] + 0.1·[2, 8]  = [1.37, 3.05]
    let x2 = f64t(vec![0.0, 0.0, 2.0, -4.0], &[2, 2]);
    bn.forward(&x2).unwrap();
    let rm = bn.running_mean().unwrap().to_vec::<f64>().unwrap();
    let rv = bn.running_var().unwrap().to_vec::<f64>().unwrap();
    assert_close(&rm, &[0.37, 0.34], 1e-12, "running_mean");
    assert_close(&rv, &[1.37, 3.05], 1e-12, "running_var");
    assert!(!bn.running_mean().unwrap().tracks_grad());

    bn.set_training(false);
    let y = bn.forward(&f64t(vec![1.0, 1.0], &[1, 2])).unwrap().to_vec::<f64>().unwrap();
    let want = [(1.0 - 0.37) / (1.37f64 + 1e-5).sqrt(), (1.0 - 0.34) / (3.05f64 + 1e-5).sqrt()];
    assert_close(&y, &want, 1e-12, "eval output");
    // Evaluation leaves the running statistics alone.
    assert_close(&bn.running_mean().unwrap().to_vec::<f64>().unwrap(), &[0.37, 0.34], 1e-12, "after eval");
}

#[test]
fn batch_norm2d_running_statistics_match_the_formula_over_batch_and_positions() {
    let mut rng = Rng::seed(5);
    let bn = BatchNorm2d::new(BatchNormConfig { momentum: 0.3, ..BatchNormConfig::new(3) }).unwrap();
    let (b, c, hw) = (2, 3, 6);
    let mut want_mean = vec![0.0f64; c];
    let mut want_var = vec![1.0f64; c];
    for _ in 0..2 {
        let x = Tensor::randn([b, c, 2, 3], 1.0, 2.0, DType::F32, &mut rng);
        bn.forward(&x).unwrap();
        let v = x.to_f64_vec().unwrap();
        for ch in 0..c {
            let vals: Vec<f64> = (0..b).flat_map(|i| v[(i * c + ch) * hw..(i * c + ch + 1) * hw].to_vec()).collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let unbiased = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            want_mean[ch] = 0.7 * want_mean[ch] + 0.3 * mean;
            want_var[ch] = 0.7 * want_var[ch] + 0.3 * unbiased;
        }
    }
    assert_close(&bn.running_mean().unwrap().to_f64_vec().unwrap(), &want_mean, 1e-5, "running_mean");
    assert_close(&bn.running_var().unwrap().to_f64_vec().unwrap(), &want_var, 1e-5, "running_var");
    let names: Vec<String> = named_parameters(&bn).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["weight", "bias"]);
    let mut buffers = Vec::new();
    bn.visit_buffers("bn", &mut |n, _| buffers.push(n.to_string()));
    assert_eq!(buffers, vec!["bn.running_mean", "bn.running_var"]);
}

/// Sets a parameter's values in place (it owns its storage), keeping its identity.
fn set(t: &Tensor, values: &[f64]) {
    let v: Vec<f64> = values.to_vec();
    match t.dtype() {
        DType::F64 => t.update_::<f64, _>(|w| w.copy_from_slice(&v)).unwrap(),
        _ => t.update_::<f32, _>(|w| w.iter_mut().zip(&v).for_each(|(a, b)| *a = *b as f32)).unwrap(),
    }
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_training_and_eval_mode() {
    let mut rng = Rng::seed(6);
    let mut bn1 = BatchNorm1d::new(BatchNormConfig::new(3)).unwrap();
    set(bn1.weight().unwrap(), &[0.5, -1.5, 2.0]);
    set(bn1.bias().unwrap(), &[0.1, 0.2, -0.3]);
    let x = common::rand(&[4, 3], -2.0, 2.0, &mut rng);
    common::check_module("batch_norm1d [B, C] training", &bn1, &x);
    let x3 = common::rand(&[2, 3, 4], -2.0, 2.0, &mut rng);
    common::check_module("batch_norm1d [B, C, L] training", &bn1, &x3);
    bn1.set_training(false);
    common::check_module("batch_norm1d eval", &bn1, &x3);

    let mut bn2 = BatchNorm2d::new(BatchNormConfig::new(2)).unwrap();
    set(bn2.weight().unwrap(), &[1.5, 0.7]);
    let x4 = common::rand(&[2, 2, 3, 2], -2.0, 2.0, &mut rng);
    common::check_module("batch_norm2d training", &bn2, &x4);
    bn2.set_training(false);
    common::check_module("batch_norm2d eval", &bn2, &x4);

    let plain =
        BatchNorm1d::new(BatchNormConfig { affine: false, track_running_stats: false, ..BatchNormConfig::new(3) });
    let mut plain = plain.unwrap();
    plain.set_training(false);
    assert!(named_parameters(&plain).is_empty());
    // Without running statistics, evaluation also normalizes with the batch's.
    common::check_module("batch_norm1d without running stats", &plain, &x);
}

#[test]
fn layer_norm_forward_matches_hand_computation_and_gradients_check() {
    let ln = LayerNorm::new(LayerNormConfig::new(&[4])).unwrap();
    set(ln.weight().unwrap(), &[1.0, 2.0, 1.0, 1.0]);
    set(ln.bias().unwrap(), &[0.0, 0.0, 1.0, 0.0]);
    let x = t32(&[1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0], &[2, 4]);
    let y: Vec<f64> = ln.forward(&x).unwrap().to_f64_vec().unwrap();
    // Row 1: mean 2.5, biased variance 1.25. Row 2 is constant: all zeros before the affine.
    let s = (1.25f64 + 1e-5).sqrt();
    let want = [-1.5 / s, 2.0 * -0.5 / s, 0.5 / s + 1.0, 1.5 / s, 0.0, 0.0, 1.0, 0.0];
    assert_close(&y, &want, 1e-6, "layer_norm");

    let mut rng = Rng::seed(7);
    common::check_module("layer_norm [D]", &ln, &common::rand(&[3, 4], -2.0, 2.0, &mut rng));
    let ln2 = LayerNorm::new(LayerNormConfig::new(&[2, 3])).unwrap();
    set(ln2.weight().unwrap(), &[1.0, -0.5, 2.0, 0.3, 1.1, 0.9]);
    common::check_module("layer_norm [2, 3]", &ln2, &common::rand(&[2, 2, 2, 3], -2.0, 2.0, &mut rng));
}

// ---- dropout ----------------------------------------------------------------------------

#[test]
fn dropout_zeroes_about_p_scales_the_rest_and_is_identity_in_eval() {
    let p = 0.3;
    let mut drop = Dropout::new(DropoutConfig { p }, &mut Rng::seed(8)).unwrap();
    let x = Tensor::ones(10_000, DType::F32);
    let y = f32s(&drop.forward(&x).unwrap());
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    assert!((2_700..3_300).contains(&zeros), "{zeros} of 10000 zeroed at p = {p}");
    let scale = (1.0 / (1.0 - p)) as f32;
    assert!(y.iter().all(|&v| v == 0.0 || v == scale));
    // A fresh draw each step.
    assert_ne!(f32s(&drop.forward(&x).unwrap()), y);

    drop.set_training(false);
    let x2 = Tensor::randn(50, 0.0, 1.0, DType::F32, &mut Rng::seed(9));
    assert_eq!(f32s(&drop.forward(&x2).unwrap()), f32s(&x2));
}

#[test]
fn dropout_same_seed_gives_same_mask_and_its_stream_can_be_restored() {
    let x = Tensor::ones(64, DType::F32);
    let a = Dropout::new(DropoutConfig::default(), &mut Rng::seed(10)).unwrap();
    let b = Dropout::new(DropoutConfig::default(), &mut Rng::seed(10)).unwrap();
    assert_eq!(f32s(&a.forward(&x).unwrap()), f32s(&b.forward(&x).unwrap()));

    let mut names = Vec::new();
    let mut saved = None;
    a.visit_rngs("3", &mut |n, r| {
        names.push(n.to_string());
        saved = Some(r.lock().unwrap().clone());
    });
    assert_eq!(names, vec!["3.rng"]);
    let first = f32s(&a.forward(&x).unwrap());
    a.visit_rngs("", &mut |_, r| *r.lock().unwrap() = saved.clone().unwrap());
    assert_eq!(f32s(&a.forward(&x).unwrap()), first);

    // Two layers built from one generator draw different masks.
    let mut rng = Rng::seed(11);
    let c = Dropout::new(DropoutConfig::default(), &mut rng).unwrap();
    let d = Dropout::new(DropoutConfig::default(), &mut rng).unwrap();
    assert_ne!(f32s(&c.forward(&x).unwrap()), f32s(&d.forward(&x).unwrap()));
}

#[test]
fn dropout_gradient_in_eval_mode_is_identity_and_masked_in_training() {
    let mut drop = Dropout::new(DropoutConfig { p: 0.5 }, &mut Rng::seed(12)).unwrap();
    let x = Tensor::ones(32, DType::F64).requires_grad();
    let y = drop.forward(&x).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap();
    // The gradient is the mask itself, which is the output for an input of ones.
    assert_eq!(g, y.to_vec::<f64>().unwrap());
    drop.set_training(false);
    common::check_module("dropout eval", &drop, &common::rand(&[3, 4], -1.0, 1.0, &mut Rng::seed(13)));
}

// ---- embedding --------------------------------------------------------------------------

#[test]
fn embedding_looks_up_rows_for_indices_of_any_shape() {
    let w = t32(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]);
    let emb = Embedding::from_tensor(w).unwrap();
    let idx = Tensor::from_vec(vec![2u32, 0, 1, 2], [2, 2]).unwrap();
    let y = emb.forward(&idx).unwrap();
    assert_eq!(y.dims(), [2, 2, 2]);
    assert_eq!(f32s(&y), vec![20.0, 21.0, 0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    let one = emb.forward(&Tensor::from_vec(vec![1u32], [1]).unwrap()).unwrap();
    assert_eq!(one.dims(), [1, 2]);
}

#[test]
fn embedding_weight_gradient_matches_finite_differences_with_repeated_indices() {
    let emb = Embedding::new(EmbeddingConfig { num_embeddings: 5, embedding_dim: 3 }, &mut Rng::seed(14)).unwrap();
    tensile_nn::cast(&emb, DType::F64).unwrap();
    let idx = Tensor::from_vec(vec![4u32, 1, 4, 0, 2, 1], [2, 3]).unwrap();
    // check_module would cast the u32 indices to f64, so the weight is checked as a function
    // input instead: the layer's own weight for the analytic pass, a rebuilt table for the
    // perturbed ones.
    let weight = emb.weight().clone();
    let f = |ts: &[Tensor]| {
        if ts[0].id() == weight.id() {
            emb.forward(&idx).unwrap()
        } else {
            Embedding::from_tensor(ts[0].clone()).unwrap().forward(&idx).unwrap()
        }
    };
    common::check_fn("embedding weight", f, std::slice::from_ref(&weight));
}

#[test]
fn embedding_initialization_is_standard_normal_and_named_weight() {
    let emb = Embedding::new(EmbeddingConfig { num_embeddings: 100, embedding_dim: 50 }, &mut Rng::seed(15)).unwrap();
    let names: Vec<String> = named_parameters(&emb).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["weight"]);
    let v = emb.weight().to_f64_vec().unwrap();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.08, "mean {mean}, variance {var}");
}

// ---- activations and residual -----------------------------------------------------------

#[test]
fn activation_layers_forward_values() {
    let x = t32(&[-2.0, 0.0, 1.0], &[3]);
    let run = |m: &dyn Module| m.forward(&x).unwrap().to_f64_vec().unwrap();
    assert_close(&run(&Relu), &[0.0, 0.0, 1.0], 0.0, "relu");
    assert_close(&run(&LeakyRelu::default()), &[-0.02, 0.0, 1.0], 1e-7, "leaky_relu");
    assert_close(&run(&LeakyRelu { negative_slope: 0.2 }), &[-0.4, 0.0, 1.0], 1e-7, "leaky_relu 0.2");
    // Φ(1) = 0.8413447460685429; tanh form: 0.5·(1 + tanh(√(2/π)·1.044715)).
    assert_close(&run(&Gelu::default())[1..], &[0.0, 0.8413447460685429], 1e-6, "gelu");
    assert_close(&run(&Gelu { approximate: true })[1..], &[0.0, 0.8411919906082768], 1e-6, "gelu tanh");
    assert_close(&run(&Tanh), &[-0.9640275800758169, 0.0, 0.7615941559557649], 1e-6, "tanh");
    assert_close(&run(&Sigmoid), &[0.11920292202211755, 0.5, 0.7310585786300049], 1e-6, "sigmoid");
    assert_close(&run(&Silu), &[-0.2384058440442351, 0.0, 0.7310585786300049], 1e-6, "silu");

    let m = t32(&[0.0, 0.0, 1.0, 1.0], &[2, 2]);
    let rows = Softmax::default().forward(&m).unwrap().to_f64_vec().unwrap();
    assert_close(&rows, &[0.5, 0.5, 0.5, 0.5], 1e-7, "softmax last dim");
    let cols = Softmax { dim: 0 }.forward(&m).unwrap().to_f64_vec().unwrap();
    let e = 1.0 / (1.0 + std::f64::consts::E);
    assert_close(&cols, &[e, e, 1.0 - e, 1.0 - e], 1e-7, "softmax dim 0");
}

#[test]
fn activation_layer_gradients_match_finite_differences() {
    let mut rng = Rng::seed(16);
    // Away from 0, where relu-like kinks make finite differences meaningless.
    let mut x = common::rand(&[3, 4], 0.1, 2.0, &mut rng).to_vec::<f64>().unwrap();
    x.iter_mut().step_by(2).for_each(|v| *v = -*v);
    let x = f64t(x, &[3, 4]);
    let layers: Vec<Box<dyn Module>> = vec![
        Box::new(Relu),
        Box::new(LeakyRelu::default()),
        Box::new(Gelu::default()),
        Box::new(Gelu { approximate: true }),
        Box::new(Tanh),
        Box::new(Sigmoid),
        Box::new(Softmax::default()),
        Box::new(Softmax { dim: 0 }),
        Box::new(Silu),
    ];
    for layer in &layers {
        common::check_module(layer.kind(), layer.as_ref(), &x);
    }
}

#[test]
fn residual_adds_input_checks_gradients_and_names_parameters_through_the_wrapper() {
    let mut rng = Rng::seed(17);
    let block = Sequential::new().with(Linear::new(3, 3, true, &mut rng)).with(Tanh);
    let model = Sequential::new().with(Linear::new(3, 3, true, &mut rng)).with(Residual::new(block));
    let names: Vec<String> = named_parameters(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["0.weight", "0.bias", "1.0.weight", "1.0.bias"]);
    let children: Vec<String> = model.layers()[1].children().into_iter().map(|(n, _)| n).collect();
    assert_eq!(children, vec!["0", "1"]);
    common::check_module("residual", &model, &common::rand(&[2, 3], -1.0, 1.0, &mut rng));

    // x + f(x) with a fixed f: identity weights, zero bias, so x + tanh(x).
    let lin = Linear::from_tensors(Tensor::ones((1, 1), DType::F64), Some(Tensor::zeros(1, DType::F64))).unwrap();
    let res = Residual::new(Sequential::new().with(lin).with(Tanh));
    let y = res.forward(&f64t(vec![1.0], &[1, 1])).unwrap().item().unwrap();
    assert!((y - (1.0 + 1f64.tanh())).abs() < 1e-15);
}

// ---- errors -----------------------------------------------------------------------------

#[test]
fn bad_configs_are_refused_naming_the_layer_and_field() {
    let mut rng = Rng::seed(18);
    let msg = err_text(Conv2d::new(Conv2dConfig { groups: 3, ..Conv2dConfig::new(4, 6, (3, 3)) }, &mut rng));
    assert!(msg.contains("conv2d") && msg.contains("groups"), "{msg}");
    let msg = err_text(Conv1d::new(Conv1dConfig { stride: 0, ..Conv1dConfig::new(1, 1, 3) }, &mut rng));
    assert!(msg.contains("conv1d") && msg.contains("stride"), "{msg}");
    let msg = err_text(Conv2d::new(Conv2dConfig::new(1, 1, (0, 2)), &mut rng));
    assert!(msg.contains("kernel height"), "{msg}");
    let w = Tensor::zeros([2, 1, 3, 3], DType::F32);
    let msg = err_text(Conv2d::from_tensors(Conv2dConfig::new(2, 2, (3, 3)), w, None));
    assert!(msg.contains("weight must have shape [2, 2, 3, 3]"), "{msg}");

    let msg = err_text(MaxPool2d::new(Pool2dConfig { padding: (2, 0), ..Pool2dConfig::new((3, 3)) }));
    assert!(msg.contains("max_pool2d") && msg.contains("padding height"), "{msg}");
    let msg = err_text(AvgPool1d::new(Pool1dConfig { stride: Some(0), ..Pool1dConfig::new(2) }));
    assert!(msg.contains("avg_pool1d") && msg.contains("stride"), "{msg}");

    for p in [1.0, -0.1, f64::NAN] {
        let msg = err_text(Dropout::new(DropoutConfig { p }, &mut rng));
        assert!(msg.contains("dropout") && msg.contains("p ="), "{msg}");
    }
    let msg = err_text(BatchNorm1d::new(BatchNormConfig { momentum: 1.5, ..BatchNormConfig::new(2) }));
    assert!(msg.contains("batch_norm1d") && msg.contains("momentum"), "{msg}");
    let msg = err_text(BatchNorm2d::new(BatchNormConfig::new(0)));
    assert!(msg.contains("num_features"), "{msg}");
    let msg = err_text(LayerNorm::new(LayerNormConfig::new(&[])));
    assert!(msg.contains("layer_norm") && msg.contains("normalized_shape"), "{msg}");
    let msg = err_text(Embedding::new(EmbeddingConfig { num_embeddings: 0, embedding_dim: 4 }, &mut rng));
    assert!(msg.contains("embedding") && msg.contains("num_embeddings"), "{msg}");
}

#[test]
fn wrong_inputs_are_errors_not_panics() {
    let mut rng = Rng::seed(19);
    let conv = Conv2d::new(Conv2dConfig::new(3, 2, (2, 2)), &mut rng).unwrap();
    let msg = err_text(conv.forward(&Tensor::zeros([3, 4, 4], DType::F32)));
    assert!(msg.contains("conv2d") && msg.contains("[3, 4, 4]"), "{msg}");
    let msg = err_text(conv.forward(&Tensor::zeros([1, 2, 4, 4], DType::F32)));
    assert!(msg.contains("C = 3"), "{msg}");
    // Smaller than the kernel: the core's window check.
    assert!(conv.forward(&Tensor::zeros([1, 3, 1, 4], DType::F32)).is_err());
    let conv1 = Conv1d::new(Conv1dConfig::new(2, 2, 2), &mut rng).unwrap();
    assert!(conv1.forward(&Tensor::zeros([2, 5], DType::F32)).is_err());

    assert!(MaxPool2d::new(Pool2dConfig::new((2, 2))).unwrap().forward(&Tensor::zeros([4, 4], DType::F32)).is_err());
    assert!(AvgPool1d::new(Pool1dConfig::new(2)).unwrap().forward(&Tensor::zeros([1, 1, 2, 2], DType::F32)).is_err());
    assert!(GlobalAvgPool.forward(&Tensor::zeros([2, 3], DType::F32)).is_err());
    assert!(Flatten.forward(&Tensor::zeros(3, DType::F32)).is_err());

    let bn = BatchNorm1d::new(BatchNormConfig::new(3)).unwrap();
    assert!(bn.forward(&Tensor::zeros([2, 3, 2, 2], DType::F32)).is_err());
    assert!(bn.forward(&Tensor::zeros([2, 4], DType::F32)).is_err());
    let msg = err_text(bn.forward(&Tensor::zeros([1, 3], DType::F32)));
    assert!(msg.contains("more than one value per channel"), "{msg}");
    assert!(BatchNorm2d::new(BatchNormConfig::new(3)).unwrap().forward(&Tensor::zeros([2, 3, 4], DType::F32)).is_err());
    let ln = LayerNorm::new(LayerNormConfig::new(&[4])).unwrap();
    assert!(ln.forward(&Tensor::zeros([2, 3], DType::F32)).is_err());

    let emb = Embedding::new(EmbeddingConfig { num_embeddings: 3, embedding_dim: 2 }, &mut rng).unwrap();
    let msg = err_text(emb.forward(&Tensor::from_vec(vec![0u32, 3], 2).unwrap()));
    assert!(msg.contains("index 3") && msg.contains("3 rows"), "{msg}");
    assert!(emb.forward(&Tensor::zeros(2, DType::F32)).is_err());

    let res = Residual::new(Linear::new(3, 2, true, &mut rng));
    let msg = err_text(res.forward(&Tensor::zeros([4, 3], DType::F32)));
    assert!(msg.contains("[4, 3]") && msg.contains("[4, 2]"), "{msg}");
}

#[test]
fn reshape_that_does_not_fit_names_both_shapes() {
    let r = Reshape::new(&[1, 8, 8]).unwrap();
    let msg = err_text(r.forward(&Tensor::zeros([2, 60], DType::F32)));
    assert!(msg.contains("[2, 60]") && msg.contains("[2, 1, 8, 8]"), "{msg}");
    assert!(Reshape::new(&[0, 4]).is_err());
}

// ---- summary ----------------------------------------------------------------------------

fn small_cnn(rng: &mut Rng) -> Sequential {
    let block = Sequential::new()
        .with(Conv2d::new(Conv2dConfig { padding: (1, 1), ..Conv2dConfig::new(4, 4, (3, 3)) }, rng).unwrap())
        .with(Relu);
    Sequential::new()
        .with(Reshape::new(&[1, 8, 8]).unwrap())
        .with(Conv2d::new(Conv2dConfig::new(1, 4, (3, 3)), rng).unwrap())
        .with(BatchNorm2d::new(BatchNormConfig::new(4)).unwrap())
        .with(Relu)
        .with(Residual::new(block))
        .with(MaxPool2d::new(Pool2dConfig::new((2, 2))).unwrap())
        .with(Flatten)
        .with(Dropout::new(DropoutConfig::default(), rng).unwrap())
        .with(Linear::new(36, 10, true, rng))
}

#[test]
fn summary_table_snapshot_for_a_small_cnn() {
    let model = small_cnn(&mut Rng::seed(20));
    let s = summary(&model, &[2, 64]).unwrap();
    assert_eq!(s.output_shape, vec![2, 10]);
    assert_eq!(s.trainable_params, 40 + 8 + 148 + 370);
    assert_eq!(s.buffers, 8);
    let expected = "\
Layer (type)       Output Shape   Param #
=========================================
0 (reshape)        [2, 1, 8, 8]         0
1 (conv2d)         [2, 4, 6, 6]        40
2 (batch_norm2d)   [2, 4, 6, 6]        16
3 (relu)           [2, 4, 6, 6]         0
4 (residual)       [2, 4, 6, 6]       148
  4.0 (conv2d)     [2, 4, 6, 6]       148
  4.1 (relu)       [2, 4, 6, 6]         0
5 (max_pool2d)     [2, 4, 3, 3]         0
6 (flatten)        [2, 36]              0
7 (dropout)        [2, 36]              0
8 (linear)         [2, 10]            370
=========================================
Total params: 574
Trainable params: 566
Non-trainable params: 8
";
    assert_eq!(s.to_string(), expected, "\n{s}");
}

#[test]
fn summary_leaves_running_statistics_and_dropout_streams_untouched() {
    let mut rng = Rng::seed(21);
    let model = small_cnn(&mut rng);
    let x = Tensor::randn([4, 64], 0.0, 1.0, DType::F32, &mut rng);
    model.forward(&x).unwrap();
    let before: Vec<Vec<f32>> = {
        let mut v = Vec::new();
        model.visit_buffers("", &mut |_, t| v.push(f32s(t)));
        v
    };
    let twin = small_cnn(&mut Rng::seed(21));
    twin.forward(&x).unwrap();

    summary(&model, &[3, 64]).unwrap();
    let mut after = Vec::new();
    model.visit_buffers("", &mut |_, t| after.push(f32s(t)));
    assert_eq!(before, after);
    // Same next dropout mask as an identical model that was never summarized.
    assert_eq!(f32s(&model.forward(&x).unwrap()), f32s(&twin.forward(&x).unwrap()));
}

#[test]
fn summary_of_a_single_layer_and_of_an_embedding_model() {
    let lin = Linear::new(3, 2, true, &mut Rng::seed(22));
    let s = summary(&lin, &[5, 3]).unwrap();
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.rows[0].output_shape, Some(vec![5, 2]));
    assert!(s.to_string().starts_with("Layer (type)   Output Shape   Param #\n"), "{s}");

    let mut rng = Rng::seed(23);
    let model = Sequential::new()
        .with(Embedding::new(EmbeddingConfig { num_embeddings: 10, embedding_dim: 4 }, &mut rng).unwrap())
        .with(LayerNorm::new(LayerNormConfig::new(&[4])).unwrap());
    let s = summary(&model, &[2, 7]).unwrap();
    assert_eq!(s.output_shape, vec![2, 7, 4]);
    assert_eq!(s.trainable_params, 40 + 8);
}

/// A module whose summary name is "relu" but which is not a ReLU.
struct Doubling;
impl Module for Doubling {
    fn forward(&self, x: &Tensor) -> tensile_nn::Result<Tensor> {
        Ok(x.mul_scalar(2.0)?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "relu"
    }
}

#[test]
fn sequential_folds_a_relu_into_the_linear_or_conv_layer_before_it_without_changing_results() {
    let mut rng = Rng::seed(21);
    let (l1, l2) = (Linear::new(6, 8, true, &mut rng), Linear::new(8, 3, false, &mut rng));
    let (w1, b1, w2) = (l1.weight().clone(), l1.bias().unwrap().clone(), l2.weight().clone());
    let model = Sequential::new().with(l1).with(Relu).with(l2).with(Relu);
    let x = Tensor::randn((5, 6), 0.0, 1.0, DType::F32, &mut rng);
    let y = model.forward(&x).unwrap();
    let by_hand = x.linear(&w1, Some(&b1)).unwrap().relu().unwrap().linear(&w2, None).unwrap().relu().unwrap();
    assert_eq!(f32s(&y), f32s(&by_hand));
    assert!(f32s(&y).contains(&0.0) && f32s(&y).iter().any(|&v| v > 0.0), "both sides of the ReLU are exercised");
    let (g, h) = (y.sum_all().unwrap().backward().unwrap(), by_hand.sum_all().unwrap().backward().unwrap());
    for p in [&w1, &b1, &w2] {
        assert_eq!(f32s(g.get(p).unwrap()), f32s(h.get(p).unwrap()));
    }
    // A convolution followed by a ReLU, the same way.
    let conv = Conv2d::new(Conv2dConfig { padding: (1, 1), ..Conv2dConfig::new(2, 3, (3, 3)) }, &mut rng).unwrap();
    let (cw, cb) = (conv.weight().clone(), conv.bias().unwrap().clone());
    let images = Tensor::randn((2, 2, 5, 5), 0.0, 1.0, DType::F32, &mut rng);
    let y = Sequential::new().with(conv).with(Relu).forward(&images).unwrap();
    let by_hand = images.conv2d(&cw, Some(&cb), (1, 1), (1, 1), (1, 1), 1).unwrap().relu().unwrap();
    assert_eq!(y.op_name(), Some("conv2d_relu"));
    assert_eq!(f32s(&y), f32s(&by_hand));
    let (g, h) = (y.sum_all().unwrap().backward().unwrap(), by_hand.sum_all().unwrap().backward().unwrap());
    for p in [&cw, &cb] {
        assert_eq!(f32s(g.get(p).unwrap()), f32s(h.get(p).unwrap()));
    }
    // Only a real ReLU is folded: a module merely named "relu" runs as itself.
    let l = Linear::new(6, 4, true, &mut rng);
    let (w, b) = (l.weight().clone(), l.bias().unwrap().clone());
    let doubled = Sequential::new().with(l).with(Doubling).forward(&x).unwrap();
    assert_eq!(f32s(&doubled), f32s(&x.linear(&w, Some(&b)).unwrap().mul_scalar(2.0).unwrap()));
}

#[test]
fn sequential_folds_a_conv_relu_and_max_pool_into_one_op_without_changing_results() {
    let mut rng = Rng::seed(22);
    let conv = Conv2d::new(Conv2dConfig::new(2, 4, (3, 3)), &mut rng).unwrap();
    let (cw, cb) = (conv.weight().clone(), conv.bias().unwrap().clone());
    let pool = Pool2dConfig { stride: Some((1, 2)), ..Pool2dConfig::new((2, 3)) };
    let model = Sequential::new().with(conv).with(Relu).with(MaxPool2d::new(pool).unwrap());
    let images = Tensor::randn((3, 2, 9, 10), 0.0, 1.0, DType::F32, &mut rng).requires_grad();
    let y = model.forward(&images).unwrap();
    assert_eq!(y.op_name(), Some("conv2d_relu_max_pool2d"));
    let by_hand = images
        .conv2d(&cw, Some(&cb), (1, 1), (0, 0), (1, 1), 1)
        .unwrap()
        .relu()
        .unwrap()
        .max_pool2d((2, 3), (1, 2), (0, 0))
        .unwrap();
    assert_eq!(f32s(&y), f32s(&by_hand));
    assert!(f32s(&y).contains(&0.0) && f32s(&y).iter().any(|&v| v > 0.0), "both sides of the ReLU are exercised");
    let (g, h) = (y.sum_all().unwrap().backward().unwrap(), by_hand.sum_all().unwrap().backward().unwrap());
    for p in [&cw, &cb, &images] {
        assert_eq!(f32s(g.get(p).unwrap()), f32s(h.get(p).unwrap()));
    }
    // A pool whose window does not fit the convolution's 3x3 output: the error names the pool
    // layer, as it does without the fold.
    let conv = Conv2d::new(Conv2dConfig::new(2, 4, (3, 3)), &mut rng).unwrap();
    let too_large = MaxPool2d::new(Pool2dConfig::new((4, 4))).unwrap();
    let small = Tensor::randn((1, 2, 5, 5), 0.0, 1.0, DType::F32, &mut rng);
    let err = Sequential::new().with(conv).with(Relu).with(too_large).forward(&small).unwrap_err().to_string();
    assert!(err.contains("max_pool2d") && !err.contains("conv2d_relu_max_pool2d"), "{err}");
    // Without a ReLU between them, nothing is folded into the pool.
    let conv = Conv2d::new(Conv2dConfig::new(2, 4, (3, 3)), &mut rng).unwrap();
    let plain = Sequential::new().with(conv).with(MaxPool2d::new(Pool2dConfig::new((2, 2))).unwrap());
    assert_eq!(plain.forward(&images).unwrap().op_name(), Some("max_pool2d"));
}
