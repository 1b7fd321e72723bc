//! Model specs: parsed from plain data, shapes inferred, errors that name the layer.

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{ModelSpec, Module, parameter_count, summary};

fn parse(json: &str) -> ModelSpec {
    serde_json::from_str(json).unwrap()
}

#[test]
fn a_cnn_spec_infers_every_input_size() {
    let spec = parse(
        r#"{"layers": [
            {"type": "reshape", "shape": [1, 8, 8]},
            {"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
            {"type": "batchnorm2d"},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2},
            {"type": "residual", "layers": [{"type": "conv2d", "channels": 4, "kernel": [3, 3], "padding": [1, 1]}]},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.1},
            {"type": "linear", "units": 10}
        ]}"#,
    );
    let (model, out) = spec.build(&[64], &mut Rng::seed(0)).unwrap();
    assert_eq!(out, vec![10]);
    // conv 1*4*9+4, bn 4+4, residual conv 4*4*9+4, linear 64*10+10
    assert_eq!(parameter_count(&model), 40 + 8 + 148 + 650);
    let x = Tensor::randn((2, 64), 0.0, 1.0, DType::F32, &mut Rng::seed(1));
    assert_eq!(model.forward(&x).unwrap().dims(), [2, 10]);
    let table = summary(&model, &[2, 64]).unwrap().to_string();
    assert!(table.contains("conv2d") && table.contains("[2, 10]"), "{table}");
}

#[test]
fn sequence_specs_build_recurrent_and_attention_models() {
    let spec = parse(
        r#"{"layers": [
            {"type": "reshape", "shape": [8, 8]},
            {"type": "transformer", "heads": 2, "ff": 16, "causal": true},
            {"type": "attention", "heads": 4},
            {"type": "gru", "hidden": 6, "bidirectional": true, "return_sequences": true},
            {"type": "lstm", "hidden": 5, "layers": 2},
            {"type": "linear", "units": 3}
        ]}"#,
    );
    let (model, out) = spec.build(&[64], &mut Rng::seed(0)).unwrap();
    assert_eq!(out, vec![3]);
    let x = Tensor::randn((2, 64), 0.0, 1.0, DType::F32, &mut Rng::seed(1));
    assert_eq!(model.forward(&x).unwrap().dims(), [2, 3]);
}

#[test]
fn specs_round_trip_through_serde_with_defaults_filled_in() {
    let spec = parse(r#"{"layers": [{"type": "conv1d", "channels": 2, "kernel": 3}, {"type": "leaky_relu"}]}"#);
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains(r#""stride":1"#) && json.contains(r#""slope":0.01"#), "{json}");
    assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
}

#[test]
fn unknown_types_and_arguments_are_refused_by_name() {
    let err = serde_json::from_str::<ModelSpec>(r#"{"layers": [{"type": "linaer", "units": 3}]}"#).unwrap_err();
    assert!(err.to_string().contains("linaer"), "{err}");
    let err = serde_json::from_str::<ModelSpec>(r#"{"layers": [{"type": "linear", "unit": 3}]}"#).unwrap_err();
    assert!(err.to_string().contains("unit"), "{err}");
}

#[test]
fn shape_errors_name_the_layer_and_what_it_expected() {
    let spec = parse(r#"{"layers": [{"type": "linear", "units": 8}, {"type": "conv2d", "channels": 2, "kernel": 3}]}"#);
    let err = spec.build(&[64], &mut Rng::seed(0)).err().unwrap().to_string();
    assert!(err.contains("model layer 2 (conv2d)") && err.contains("[channels, height, width]"), "{err}");
    let spec = parse(r#"{"layers": [{"type": "reshape", "shape": [3, 3]}]}"#);
    let err = spec.build(&[64], &mut Rng::seed(0)).err().unwrap().to_string();
    assert!(err.contains("model layer 1 (reshape)") && err.contains("64 values"), "{err}");
    let spec = parse(r#"{"layers": [{"type": "residual", "layers": [{"type": "linear", "units": 3}]}]}"#);
    let err = spec.build(&[4], &mut Rng::seed(0)).err().unwrap().to_string();
    assert!(err.contains("residual needs the same shape"), "{err}");
    assert!(ModelSpec::default().build(&[4], &mut Rng::seed(0)).is_err());
}
