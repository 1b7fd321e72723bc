//! Multi-head self-attention and the transformer encoder layer: forward values against PyTorch,
//! masks (causal, key padding, fully masked rows), gradients against finite differences, names,
//! initialization, dropout and errors.

mod common;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{
    FeedForwardActivation, Module, MultiheadSelfAttention, MultiheadSelfAttentionConfig, TransformerEncoderLayer,
    TransformerEncoderLayerConfig, named_parameters,
};

// ---- fixed weights, as in tests/reference/attention.py ------------------------------------------

/// Element `k` of parameter number `p` (PyTorch's order) is `0.3 sin(1.3 k + 0.7 p + 0.1)`, plus 1
/// for layer-norm weights.
fn set_weights(m: &dyn Module) {
    for (p, (name, w)) in named_parameters(m).iter().enumerate() {
        let shift = if name.starts_with("norm") && name.ends_with("weight") { 1.0 } else { 0.0 };
        let v: Vec<f32> =
            (0..w.elem_count()).map(|k| (shift + 0.3 * (1.3 * k as f64 + 0.7 * p as f64 + 0.1).sin()) as f32).collect();
        w.assign_(&Tensor::from_vec(v, w.shape()).unwrap()).unwrap();
    }
}

/// `[2, 3, 4]` with element `k` equal to `sin(0.9 k + 0.5)`.
fn x_input() -> Tensor {
    Tensor::from_vec((0..24).map(|k| (0.9 * k as f64 + 0.5).sin() as f32).collect::<Vec<_>>(), (2, 3, 4)).unwrap()
}

/// Batch 1 ignores its last key (as `padding` in the reference script).
fn padding() -> Tensor {
    Tensor::from_vec(vec![0u8, 0, 0, 0, 0, 1], (2, 3)).unwrap()
}

fn assert_close(label: &str, got: &Tensor, want: &[f32]) {
    assert_eq!(got.dims(), [2, 3, 4], "{label}: shape");
    let got = got.to_vec::<f32>().unwrap();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "{label}[{i}]: got {g}, PyTorch {w}");
    }
}

fn attention(rng: &mut Rng) -> MultiheadSelfAttention {
    MultiheadSelfAttention::new(MultiheadSelfAttentionConfig::new(4, 2), rng).unwrap()
}

fn encoder(norm_first: bool, activation: FeedForwardActivation, causal: bool) -> TransformerEncoderLayer {
    let config = TransformerEncoderLayerConfig {
        dim_feedforward: 6,
        dropout: 0.0,
        norm_first,
        activation,
        causal,
        ..TransformerEncoderLayerConfig::new(4, 2)
    };
    TransformerEncoderLayer::new(config, &mut Rng::seed(0)).unwrap()
}

// Printed by tests/reference/attention.py (torch 2.x), B=2, T=3, E=4, 2 heads.
const MHA_OUT: [f32; 24] = [
    -0.1008056,
    -0.2960958,
    -0.1343378,
    0.2903649,
    -0.0813178,
    -0.2893976,
    -0.1475492,
    0.2712872,
    -0.05556528,
    -0.2603108,
    -0.1460464,
    0.2436086,
    0.1104678,
    -0.1616776,
    -0.2196569,
    0.07599989,
    0.1174025,
    -0.1572019,
    -0.2223977,
    0.06895598,
    0.05483781,
    -0.1793016,
    -0.1805412,
    0.1302767,
];
const MHA_CAUSAL_OUT: [f32; 24] = [
    -0.1473205,
    -0.4309483,
    -0.2141843,
    0.3503986,
    0.1069848,
    -0.1786451,
    -0.232073,
    0.08133306,
    -0.05556528,
    -0.2603108,
    -0.1460464,
    0.2436086,
    0.5314494,
    0.06787474,
    -0.4255403,
    -0.3464721,
    0.06066188,
    -0.1397848,
    -0.1493366,
    0.1199995,
    0.05483781,
    -0.1793016,
    -0.1805412,
    0.1302767,
];
const MHA_PADDED_OUT: [f32; 24] = [
    -0.1008056,
    -0.2960958,
    -0.1343378,
    0.2903649,
    -0.0813178,
    -0.2893976,
    -0.1475492,
    0.2712872,
    -0.05556528,
    -0.2603108,
    -0.1460464,
    0.2436086,
    0.03091595,
    -0.1502035,
    -0.1293533,
    0.1491432,
    0.06066188,
    -0.1397848,
    -0.1493366,
    0.1199995,
    -0.03110357,
    -0.1773005,
    -0.09272465,
    0.2105625,
];
const ENCODER_PRE_NORM_OUT: [f32; 24] = [
    0.04281649,
    0.1653738,
    0.7215331,
    0.9291717,
    -1.651151,
    -1.685809,
    -0.0006356835,
    1.394835,
    0.5790318,
    0.7239056,
    0.05050367,
    -0.6734877,
    -1.386276,
    -0.8917952,
    0.7026649,
    1.614605,
    0.3651863,
    -0.01504317,
    -0.6490213,
    -0.9370838,
    -0.7884585,
    -0.1141227,
    1.144008,
    1.518034,
];
const ENCODER_PRE_NORM_CAUSAL_OUT: [f32; 24] = [
    -0.3569901,
    -0.09995341,
    0.8566359,
    1.120154,
    -1.453718,
    -1.574513,
    -0.1099918,
    1.172117,
    0.5790318,
    0.7239056,
    0.05050367,
    -0.6734877,
    -0.8604544,
    -0.5381935,
    0.4813659,
    1.004158,
    0.2363927,
    -0.03371543,
    -0.5290686,
    -0.8151908,
    -0.7884585,
    -0.1141227,
    1.144008,
    1.518034,
];
const ENCODER_POST_NORM_GELU_PADDED_OUT: [f32; 24] = [
    -0.1557803, 1.677552, 0.2363037, -1.217749, -0.6708419, -1.214051, 0.09782769, 0.7947165, 1.361708, 1.392529,
    -0.7313459, -1.193092, -1.128247, -0.8837709, 0.4266058, 0.6228525, 1.766082, 1.059781, -1.058541, -0.9905981,
    -1.456181, -0.4292488, 0.7031012, 0.3472453,
];

#[test]
fn attention_matches_pytorch_without_mask_with_causal_mask_and_with_key_padding() {
    let mha = attention(&mut Rng::seed(0));
    set_weights(&mha);
    let x = x_input();
    assert_close("no mask", &mha.forward(&x).unwrap(), &MHA_OUT);
    assert_close("causal", &mha.forward_masked(&x, true, None).unwrap(), &MHA_CAUSAL_OUT);
    assert_close("padded", &mha.forward_masked(&x, false, Some(&padding())).unwrap(), &MHA_PADDED_OUT);
}

#[test]
fn encoder_layer_matches_pytorch_pre_norm_causal_and_post_norm_gelu() {
    let x = x_input();
    let pre = encoder(true, FeedForwardActivation::Relu, false);
    set_weights(&pre);
    assert_close("pre-norm", &pre.forward(&x).unwrap(), &ENCODER_PRE_NORM_OUT);
    assert_close("pre-norm causal", &pre.forward_masked(&x, true, None).unwrap(), &ENCODER_PRE_NORM_CAUSAL_OUT);
    // The config's `causal` flag is what `forward` uses.
    let causal = encoder(true, FeedForwardActivation::Relu, true);
    set_weights(&causal);
    assert_close("causal config", &causal.forward(&x).unwrap(), &ENCODER_PRE_NORM_CAUSAL_OUT);
    let post = encoder(false, FeedForwardActivation::Gelu, false);
    set_weights(&post);
    let y = post.forward_masked(&x, false, Some(&padding())).unwrap();
    assert_close("post-norm gelu padded", &y, &ENCODER_POST_NORM_GELU_PADDED_OUT);
}

// ---- masks ------------------------------------------------------------------------------------

/// Outputs at positions `..t` of `f(x)` and of `f(x')`, where `x'` differs from `x` only at
/// step `t` and later, must be equal.
fn assert_causal(label: &str, f: impl Fn(&Tensor) -> Tensor) {
    let x = Tensor::randn((2, 5, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(1));
    let changed = Tensor::cat(
        &[&x.narrow(1, 0, 3).unwrap(), &Tensor::randn((2, 2, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(2))],
        1,
    )
    .unwrap();
    let (a, b) = (f(&x), f(&changed));
    let early = |y: &Tensor| y.narrow(1, 0, 3).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(early(&a), early(&b), "{label}: steps before the change moved");
    let late = |y: &Tensor| y.narrow(1, 3, 2).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(late(&a), late(&b), "{label}: the changed steps should change");
}

#[test]
fn causal_masking_keeps_earlier_outputs_independent_of_later_inputs() {
    let mha = attention(&mut Rng::seed(3));
    assert_causal("attention", |x| mha.forward_masked(x, true, None).unwrap());
    let layer = TransformerEncoderLayer::new(
        TransformerEncoderLayerConfig { dim_feedforward: 8, causal: true, ..TransformerEncoderLayerConfig::new(4, 2) },
        &mut Rng::seed(4),
    )
    .unwrap();
    let mut layer = layer;
    layer.set_training(false);
    assert_causal("encoder layer", |x| layer.forward(x).unwrap());
    // Without the mask, early positions do see later inputs.
    let x = Tensor::randn((1, 2, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(5));
    let x2 = Tensor::cat(&[&x.narrow(1, 0, 1).unwrap(), &x.narrow(1, 1, 1).unwrap().neg().unwrap()], 1).unwrap();
    let first = |y: Tensor| y.narrow(1, 0, 1).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(first(mha.forward(&x).unwrap()), first(mha.forward(&x2).unwrap()));
}

#[test]
fn padded_keys_do_not_influence_the_output() {
    let mha = attention(&mut Rng::seed(6));
    let x = Tensor::randn((2, 3, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(7));
    // Change batch 1's last step; with it padded, batch 1's first two outputs must not move.
    let other = Tensor::randn((1, 1, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(8));
    let x2 = Tensor::cat(
        &[
            &x.narrow(0, 0, 1).unwrap(),
            &Tensor::cat(&[&x.narrow(0, 1, 1).unwrap().narrow(1, 0, 2).unwrap(), &other], 1).unwrap(),
        ],
        0,
    )
    .unwrap();
    let out = |x: &Tensor| mha.forward_masked(x, false, Some(&padding())).unwrap();
    let kept = |y: Tensor| y.narrow(0, 1, 1).unwrap().narrow(1, 0, 2).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(kept(out(&x)), kept(out(&x2)));
}

#[test]
fn fully_masked_rows_stay_finite_in_values_and_gradients() {
    let mha = attention(&mut Rng::seed(9));
    let x = Tensor::randn((2, 3, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(10)).requires_grad();
    // Every key of batch 0 is padding; with the causal mask too, its rows have nothing to see.
    let all = Tensor::from_vec(vec![1u8, 1, 1, 0, 0, 1], (2, 3)).unwrap();
    let y = mha.forward_masked(&x, true, Some(&all)).unwrap();
    assert!(y.to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()), "{y:?}");
    let grads = y.sum_all().unwrap().backward().unwrap();
    for (name, p) in named_parameters(&mha) {
        let g = grads.get(&p).unwrap().to_vec::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{name}");
    }
    assert!(grads.get(&x).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
}

// ---- gradients --------------------------------------------------------------------------------

/// Random biases and norm parameters, so zero-initialized ones are checked away from zero.
fn randomize(m: &dyn Module, seed: u64) {
    let mut rng = Rng::seed(seed);
    for (_, p) in named_parameters(m) {
        let v = Tensor::randn(p.shape(), 0.0, 0.5, DType::F32, &mut rng);
        p.assign_(&v).unwrap();
    }
}

#[test]
fn attention_gradients_match_finite_differences() {
    let mut rng = Rng::seed(12);
    let mha = attention(&mut rng);
    randomize(&mha, 13);
    let x = Tensor::randn((2, 3, 4), 0.0, 1.0, DType::F64, &mut rng);
    common::check_module("attention", &mha, &x);

    struct Masked(MultiheadSelfAttention);
    impl Module for Masked {
        fn forward(&self, x: &Tensor) -> tensile_nn::Result<Tensor> {
            self.0.forward_masked(x, true, Some(&padding()))
        }
        fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
            self.0.visit_params(prefix, f);
        }
        fn kind(&self) -> &'static str {
            "masked"
        }
    }
    let masked = Masked(attention(&mut rng));
    randomize(&masked, 14);
    common::check_module("attention causal and padded", &masked, &x);
}

#[test]
fn encoder_layer_gradients_match_finite_differences() {
    let mut rng = Rng::seed(15);
    let x = Tensor::randn((2, 3, 4), 0.0, 1.0, DType::F64, &mut rng);
    for (label, norm_first, act, causal) in [
        ("pre-norm relu", true, FeedForwardActivation::Relu, false),
        ("pre-norm gelu causal", true, FeedForwardActivation::Gelu, true),
        ("post-norm relu causal", false, FeedForwardActivation::Relu, true),
    ] {
        let layer = encoder(norm_first, act, causal);
        randomize(&layer, 16);
        common::check_module(label, &layer, &x);
    }
}

// ---- names, initialization, dropout, errors -----------------------------------------------------

#[test]
fn parameters_are_named_and_shaped_like_pytorch() {
    let layer = encoder(true, FeedForwardActivation::Relu, false);
    let got: Vec<(String, Vec<usize>)> =
        named_parameters(&layer).into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("self_attn.in_proj_weight", vec![12, 4]),
        ("self_attn.in_proj_bias", vec![12]),
        ("self_attn.out_proj.weight", vec![4, 4]),
        ("self_attn.out_proj.bias", vec![4]),
        ("linear1.weight", vec![6, 4]),
        ("linear1.bias", vec![6]),
        ("linear2.weight", vec![4, 6]),
        ("linear2.bias", vec![4]),
        ("norm1.weight", vec![4]),
        ("norm1.bias", vec![4]),
        ("norm2.weight", vec![4]),
        ("norm2.bias", vec![4]),
    ];
    let want: Vec<(String, Vec<usize>)> = want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(got, want);

    let no_bias = MultiheadSelfAttention::new(
        MultiheadSelfAttentionConfig { bias: false, ..MultiheadSelfAttentionConfig::new(4, 2) },
        &mut Rng::seed(0),
    )
    .unwrap();
    let names: Vec<String> = named_parameters(&no_bias).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["in_proj_weight", "out_proj.weight"]);
}

#[test]
fn initialization_follows_pytorch() {
    let e = 64;
    let mha = MultiheadSelfAttention::new(MultiheadSelfAttentionConfig::new(e, 4), &mut Rng::seed(0)).unwrap();
    let max_abs = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // Xavier uniform on [3E, E]: bound sqrt(6 / (E + 3E)).
    let xavier = (6.0 / (4 * e) as f64).sqrt() as f32;
    let w = max_abs(mha.in_proj_weight());
    assert!(w <= xavier && w > 0.95 * xavier, "in_proj_weight max {w}, bound {xavier}");
    let w = max_abs(mha.out_proj().weight());
    assert!(w <= 0.125 && w > 0.12, "out_proj.weight max {w}, bound 1/sqrt(64)");
    assert_eq!(max_abs(mha.in_proj_bias().unwrap()), 0.0);
    assert_eq!(max_abs(mha.out_proj().bias().unwrap()), 0.0);
}

#[test]
fn dropout_acts_only_while_training_and_its_streams_are_named() {
    let mut layer = TransformerEncoderLayer::new(
        TransformerEncoderLayerConfig { dim_feedforward: 8, dropout: 0.5, ..TransformerEncoderLayerConfig::new(4, 2) },
        &mut Rng::seed(0),
    )
    .unwrap();
    let mut names = Vec::new();
    layer.visit_rngs("enc", &mut |n, _| names.push(n.to_string()));
    assert_eq!(names, ["enc.self_attn.dropout.rng", "enc.dropout.rng", "enc.dropout1.rng", "enc.dropout2.rng"]);
    let x = Tensor::randn((2, 3, 4), 0.0, 1.0, DType::F32, &mut Rng::seed(1));
    let train = layer.forward(&x).unwrap().to_vec::<f32>().unwrap();
    layer.set_training(false);
    let eval = layer.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(eval, layer.forward(&x).unwrap().to_vec::<f32>().unwrap());
    assert_ne!(train, eval);
}

#[test]
fn unbatched_input_gives_the_batched_result_without_the_batch_dimension() {
    let mha = attention(&mut Rng::seed(2));
    let x = x_input().narrow(0, 1, 1).unwrap();
    let mask = Tensor::from_vec(vec![0u8, 1, 0], (1, 3)).unwrap();
    let batched = mha.forward_masked(&x, true, Some(&mask)).unwrap();
    let single = mha.forward_masked(&x.squeeze(0).unwrap(), true, Some(&mask.squeeze(0).unwrap())).unwrap();
    assert_eq!(single.dims(), [3, 4]);
    assert_eq!(single.to_vec::<f32>().unwrap(), batched.to_vec::<f32>().unwrap());
}

#[test]
fn bad_configs_and_inputs_are_refused_with_the_field_named() {
    let err = |r: tensile_nn::Result<()>| r.unwrap_err().to_string();
    let msg = err(MultiheadSelfAttention::new(MultiheadSelfAttentionConfig::new(6, 4), &mut Rng::seed(0)).map(|_| ()));
    assert!(msg.contains("multihead_attention: embed_dim 6 is not divisible by num_heads 4"), "{msg}");
    let bad = MultiheadSelfAttentionConfig { dropout: 1.0, ..MultiheadSelfAttentionConfig::new(4, 2) };
    assert!(err(MultiheadSelfAttention::new(bad, &mut Rng::seed(0)).map(|_| ())).contains("dropout = 1"));
    let bad = TransformerEncoderLayerConfig { dim_feedforward: 0, ..TransformerEncoderLayerConfig::new(4, 2) };
    let msg = err(TransformerEncoderLayer::new(bad, &mut Rng::seed(0)).map(|_| ()));
    assert!(msg.contains("transformer_encoder_layer: dim_feedforward"), "{msg}");
    let bad = TransformerEncoderLayerConfig { nhead: 0, ..TransformerEncoderLayerConfig::new(4, 2) };
    assert!(err(TransformerEncoderLayer::new(bad, &mut Rng::seed(0)).map(|_| ())).contains("num_heads (0)"));

    let mha = attention(&mut Rng::seed(0));
    let msg = err(mha.forward(&Tensor::zeros((2, 3, 5), DType::F32)).map(|_| ()));
    assert!(msg.contains("5 features, expected embed_dim 4"), "{msg}");
    let msg = err(mha.forward(&Tensor::zeros(4, DType::F32)).map(|_| ()));
    assert!(msg.contains("[B, T, E]"), "{msg}");
    let float_mask = Tensor::zeros((2, 3), DType::F32);
    let msg = err(mha.forward_masked(&x_input(), false, Some(&float_mask)).map(|_| ()));
    assert!(msg.contains("key_padding_mask must be a u8 mask of shape [2, 3]"), "{msg}");
    let short = Tensor::from_vec(vec![0u8; 4], (2, 2)).unwrap();
    assert!(err(mha.forward_masked(&x_input(), false, Some(&short)).map(|_| ())).contains("key_padding_mask"));
}
