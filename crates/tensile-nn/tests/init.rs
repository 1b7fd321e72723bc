//! Initializers: fans and gains exactly as PyTorch computes them, the empirical mean, standard
//! deviation and bounds of large draws against each formula, determinism per seed, in-place
//! filling, names and serialization, and errors for bad arguments.

mod common;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::init::{
    self, FanMode, Init, Nonlinearity, calculate_gain, fan_in_and_fan_out, kaiming_normal, kaiming_uniform,
    xavier_normal, xavier_uniform,
};

struct Stats {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

fn stats(t: &Tensor) -> Stats {
    let v = t.to_f64_vec().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Stats { mean, std, min, max }
}

/// Mean within 4 standard errors of `mean`, std within 2% of `std`.
#[track_caller]
fn assert_moments(label: &str, t: &Tensor, mean: f64, std: f64) {
    let s = stats(t);
    let n = t.elem_count() as f64;
    assert!((s.mean - mean).abs() < 4.0 * std / n.sqrt(), "{label}: mean {} vs {mean}", s.mean);
    assert!((s.std / std - 1.0).abs() < 0.02, "{label}: std {} vs {std}", s.std);
}

/// Inside `[-bound, bound]` and reaching within 1% of both ends.
#[track_caller]
fn assert_symmetric_bound(label: &str, t: &Tensor, bound: f64) {
    let s = stats(t);
    assert!(s.min >= -bound && s.max <= bound, "{label}: [{}, {}] vs ±{bound}", s.min, s.max);
    assert!(s.min < -0.99 * bound && s.max > 0.99 * bound, "{label}: [{}, {}] vs ±{bound}", s.min, s.max);
}

#[test]
fn fans_are_computed_as_pytorch_for_linear_and_conv_weights() {
    assert_eq!(fan_in_and_fan_out(&[3, 5]).unwrap(), (5, 3));
    // conv1d [O, I, k], conv2d [O, I, kh, kw], conv3d [O, I, kd, kh, kw].
    assert_eq!(fan_in_and_fan_out(&[6, 2, 5]).unwrap(), (10, 30));
    assert_eq!(fan_in_and_fan_out(&[8, 4, 3, 3]).unwrap(), (36, 72));
    assert_eq!(fan_in_and_fan_out(&[2, 3, 2, 4, 5]).unwrap(), (120, 80));
    assert_eq!(fan_in_and_fan_out(&[4, 0, 3]).unwrap(), (0, 12));
    for bad in [&[][..], &[7][..]] {
        let err = fan_in_and_fan_out(bad).unwrap_err().to_string();
        assert!(err.contains("at least 2 dimensions"), "{err}");
    }
}

#[test]
fn gains_are_pytorch_calculate_gain() {
    assert_eq!(calculate_gain(Nonlinearity::Linear, None), 1.0);
    assert_eq!(calculate_gain(Nonlinearity::Sigmoid, None), 1.0);
    assert_eq!(calculate_gain(Nonlinearity::Tanh, None), 5.0 / 3.0);
    assert_eq!(calculate_gain(Nonlinearity::Relu, None), 2f64.sqrt());
    assert_eq!(calculate_gain(Nonlinearity::Selu, None), 0.75);
    // torch.nn.init.calculate_gain('leaky_relu') = sqrt(2 / (1 + 0.01²)) = 1.4141428569978354
    assert!((calculate_gain(Nonlinearity::LeakyRelu, None) - 1.4141428569978354).abs() < 1e-15);
    assert!((calculate_gain(Nonlinearity::LeakyRelu, Some(0.2)) - (2.0 / 1.04f64).sqrt()).abs() < 1e-15);
    assert_eq!(calculate_gain(Nonlinearity::LeakyRelu, Some(0.0)), 2f64.sqrt());
    for name in ["conv2d", "identity", "conv_transpose1d"] {
        assert_eq!(Nonlinearity::from_name(name).unwrap(), Nonlinearity::Linear);
    }
    assert_eq!(Nonlinearity::from_name("leaky_relu").unwrap(), Nonlinearity::LeakyRelu);
    assert!(Nonlinearity::from_name("softmax").is_err());
}

#[test]
fn kaiming_draws_have_the_std_and_bounds_of_the_formula() {
    let mut rng = Rng::seed(1);
    // Linear [out 256, in 512]: fan_in 512, fan_out 256.
    let shape = [256, 512];
    let relu = kaiming_normal(&shape, 0.0, FanMode::FanIn, Nonlinearity::Relu, DType::F32, &mut rng).unwrap();
    assert_eq!((relu.dims(), relu.dtype()), (&shape[..], DType::F32));
    assert_moments("kaiming_normal relu fan_in", &relu, 0.0, 2f64.sqrt() / 512f64.sqrt());
    let leaky = kaiming_normal(&shape, 0.2, FanMode::FanOut, Nonlinearity::LeakyRelu, DType::F32, &mut rng).unwrap();
    assert_moments("kaiming_normal leaky fan_out", &leaky, 0.0, (2.0 / 1.04f64).sqrt() / 256f64.sqrt());

    // Conv [out 64, in 32, 4, 4]: fan_in 512, fan_out 1024.
    let conv = [64, 32, 4, 4];
    let u = kaiming_uniform(&conv, 0.0, FanMode::FanOut, Nonlinearity::Tanh, DType::F64, &mut rng).unwrap();
    let bound = 3f64.sqrt() * (5.0 / 3.0) / 1024f64.sqrt();
    assert_symmetric_bound("kaiming_uniform tanh fan_out", &u, bound);
    assert_moments("kaiming_uniform tanh fan_out", &u, 0.0, bound / 3f64.sqrt());

    // PyTorch's default for nn.Linear/Conv: kaiming_uniform(a = √5) gives bound 1/√fan_in.
    let default = kaiming_uniform(&conv, 5f64.sqrt(), FanMode::FanIn, Nonlinearity::LeakyRelu, DType::F32, &mut rng);
    assert_symmetric_bound("kaiming_uniform a=√5", &default.unwrap(), 1.0 / 512f64.sqrt());
}

#[test]
fn xavier_draws_have_the_std_and_bounds_of_the_formula() {
    let mut rng = Rng::seed(2);
    let shape = [300, 200];
    let std = 2.0 * (2.0 / 500f64).sqrt();
    let n = xavier_normal(&shape, 2.0, DType::F32, &mut rng).unwrap();
    assert_moments("xavier_normal gain 2", &n, 0.0, std);
    let u = xavier_uniform(&shape, 2.0, DType::F32, &mut rng).unwrap();
    assert_symmetric_bound("xavier_uniform gain 2", &u, 3f64.sqrt() * std);
    assert_moments("xavier_uniform gain 2", &u, 0.0, std);
    // Conv [16, 8, 3, 3]: fan_in 72, fan_out 144.
    let c = xavier_uniform(&[16, 8, 3, 3], 1.0, DType::F64, &mut rng).unwrap();
    assert_symmetric_bound("xavier_uniform conv", &c, (6.0 / 216f64).sqrt());
}

#[test]
fn uniform_normal_and_constants_follow_their_arguments() {
    let mut rng = Rng::seed(3);
    let u = init::uniform(&[100_000], -1.0, 3.0, DType::F32, &mut rng).unwrap();
    let s = stats(&u);
    assert!(s.min >= -1.0 && s.max < 3.0 && s.min < -0.99 && s.max > 2.99, "[{}, {}]", s.min, s.max);
    assert_moments("uniform(-1, 3)", &u, 1.0, 4.0 / 12f64.sqrt());
    let n = init::normal(&[100_000], 0.5, 0.1, DType::F64, &mut rng).unwrap();
    assert_moments("normal(0.5, 0.1)", &n, 0.5, 0.1);
    assert_eq!(init::constant(&[2, 2], 0.25, DType::F32).to_vec::<f32>().unwrap(), vec![0.25; 4]);
    let before = rng.state();
    let ones = Init::Ones.tensor(&[3], DType::F64, &mut rng).unwrap();
    let zeros = Init::Zeros.tensor(&[3], DType::F64, &mut rng).unwrap();
    assert_eq!((ones.to_vec::<f64>().unwrap(), zeros.to_vec::<f64>().unwrap()), (vec![1.0; 3], vec![0.0; 3]));
    assert_eq!(rng.state(), before, "constants draw nothing");
}

#[test]
fn same_seed_gives_the_same_tensor_and_different_seeds_differ() {
    let inits = [
        Init::from_name("kaiming_normal").unwrap(),
        Init::from_name("kaiming_uniform").unwrap(),
        Init::from_name("xavier_normal").unwrap(),
        Init::from_name("xavier_uniform").unwrap(),
        Init::Uniform { low: -2.0, high: 2.0 },
        Init::Normal { mean: 1.0, std: 3.0 },
    ];
    for init in inits {
        let draw = |seed| init.tensor(&[8, 4, 3], DType::F32, &mut Rng::seed(seed)).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(draw(7), draw(7), "{init:?}");
        assert_ne!(draw(7), draw(8), "{init:?}");
    }
}

#[test]
fn fill_overwrites_a_parameter_in_place_with_the_same_draw_as_tensor() {
    let param = Tensor::zeros((6, 5), DType::F64).requires_grad();
    let id = param.id();
    let init = Init::KaimingNormal { a: 0.0, mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu };
    init.fill_(&param, &mut Rng::seed(4)).unwrap();
    assert_eq!(param.id(), id);
    assert!(param.tracks_grad());
    let expected = init.tensor(&[6, 5], DType::F64, &mut Rng::seed(4)).unwrap();
    assert_eq!(param.to_vec::<f64>().unwrap(), expected.to_vec::<f64>().unwrap());
    Init::Constant { value: 2.0 }.fill_(&param, &mut Rng::seed(0)).unwrap();
    assert_eq!(param.to_vec::<f64>().unwrap(), vec![2.0; 30]);
}

#[test]
fn names_parse_with_pytorch_defaults_and_serialize_as_plain_data() {
    let he = Init::KaimingNormal { a: 0.0, mode: FanMode::FanIn, nonlinearity: Nonlinearity::LeakyRelu };
    assert_eq!(Init::from_name("kaiming_normal").unwrap(), he);
    assert_eq!("he_normal".parse::<Init>().unwrap(), he);
    assert_eq!(Init::from_name("glorot_uniform").unwrap(), Init::XavierUniform { gain: 1.0 });
    assert_eq!(Init::from_name("uniform").unwrap(), Init::Uniform { low: 0.0, high: 1.0 });
    for init in [Init::Zeros, Init::Ones, he, Init::XavierNormal { gain: 1.0 }, Init::Normal { mean: 0.0, std: 1.0 }] {
        assert_eq!(Init::from_name(init.name()).unwrap(), init);
    }
    let err = Init::from_name("orthogonal").unwrap_err().to_string();
    assert!(err.contains("orthogonal"), "{err}");

    let json = serde_json::to_string(&Init::KaimingUniform {
        a: 0.0,
        mode: FanMode::FanOut,
        nonlinearity: Nonlinearity::Relu,
    });
    assert_eq!(json.unwrap(), r#"{"kind":"kaiming_uniform","a":0.0,"mode":"fan_out","nonlinearity":"relu"}"#);
    // Arguments with PyTorch defaults may be left out.
    assert_eq!(serde_json::from_str::<Init>(r#"{"kind":"kaiming_normal"}"#).unwrap(), he);
    let xavier = serde_json::from_str::<Init>(r#"{"kind":"xavier_uniform","gain":2.0}"#).unwrap();
    assert_eq!(xavier, Init::XavierUniform { gain: 2.0 });
    assert!(serde_json::from_str::<Init>(r#"{"kind":"constant"}"#).is_err());
}

#[test]
fn bad_arguments_are_errors_naming_the_initializer() {
    let mut rng = Rng::seed(5);
    let cases: Vec<(Init, &[usize], DType, &str)> = vec![
        (Init::from_name("kaiming_normal").unwrap(), &[5], DType::F32, "kaiming_normal"),
        (Init::XavierUniform { gain: 1.0 }, &[], DType::F32, "xavier_uniform"),
        (Init::Uniform { low: 1.0, high: 0.0 }, &[3], DType::F32, "uniform"),
        (Init::Uniform { low: f64::NAN, high: 0.0 }, &[3], DType::F32, "uniform"),
        (Init::Normal { mean: 0.0, std: -1.0 }, &[3], DType::F32, "normal"),
        (Init::XavierNormal { gain: f64::NAN }, &[3, 3], DType::F32, "xavier_normal"),
        (Init::XavierUniform { gain: -1.0 }, &[3, 3], DType::F32, "xavier_uniform"),
        (Init::Zeros, &[3], DType::U32, "zeros"),
    ];
    for (init, shape, dtype, name) in cases {
        let err = init.tensor(shape, dtype, &mut rng).unwrap_err().to_string();
        assert!(err.starts_with(name), "{init:?}: {err}");
    }
    // Empty weights are left alone, as PyTorch does, rather than divided by a zero fan.
    let empty = Init::from_name("kaiming_uniform").unwrap().tensor(&[4, 0, 3], DType::F32, &mut rng).unwrap();
    assert_eq!(empty.dims(), [4, 0, 3]);
}

#[test]
fn uniform_fan_in_is_pytorchs_linear_default() {
    let w = init::uniform_fan_in(&[50, 100], 100, DType::F32, &mut Rng::seed(6));
    assert_symmetric_bound("uniform_fan_in", &w, 0.1);
}
