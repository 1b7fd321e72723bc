//! Saving and loading weights: exact round trip, strict names and shapes, no half-written files.

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Linear, Module, Relu, Sequential, load_weights, save_weights, weights};

fn mlp(seed: u64) -> Sequential {
    let mut rng = Rng::seed(seed);
    Sequential::new().with(Linear::new(5, 7, true, &mut rng)).with(Relu).with(Linear::new(7, 3, true, &mut rng))
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn save_load_and_predict_again_gives_identical_bits() {
    let dir = std::env::temp_dir().join(format!("tensile-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let trained = mlp(1);
    save_weights(&trained, &path).unwrap();
    let restored = mlp(2);
    let x = Tensor::randn((4, 5), 0.0, 1.0, DType::F32, &mut Rng::seed(3));
    assert_ne!(bits(&trained.forward(&x).unwrap()), bits(&restored.forward(&x).unwrap()));
    load_weights(&restored, &path).unwrap();
    assert_eq!(bits(&trained.forward(&x).unwrap()), bits(&restored.forward(&x).unwrap()));
    // No temporary file is left beside the result.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_holds_pytorch_style_names() {
    let bytes = weights::to_safetensors(&mlp(1)).unwrap();
    let names: Vec<String> = weights::decode(&bytes).unwrap().into_keys().collect();
    assert_eq!(names, vec!["0.bias", "0.weight", "2.bias", "2.weight"]);
}

#[test]
fn loading_into_a_different_architecture_names_what_does_not_match() {
    let bytes = weights::to_safetensors(&mlp(1)).unwrap();
    let mut rng = Rng::seed(0);
    let other = Sequential::new().with(Linear::new(5, 7, true, &mut rng)).with(Linear::new(7, 3, true, &mut rng));
    let err = weights::load_safetensors(&other, &bytes).unwrap_err().to_string();
    assert!(err.contains("missing [\"1.weight\", \"1.bias\"]") && err.contains("unexpected"), "{err}");
    let wider =
        Sequential::new().with(Linear::new(5, 8, true, &mut rng)).with(Relu).with(Linear::new(8, 3, true, &mut rng));
    let err = weights::load_safetensors(&wider, &bytes).unwrap_err().to_string();
    assert!(err.contains("'0.weight' has shape [7, 5] in the file but [8, 5] in the model"), "{err}");
}

#[test]
fn corrupt_bytes_are_an_error_not_a_panic() {
    let mut bytes = weights::to_safetensors(&mlp(1)).unwrap();
    bytes.truncate(bytes.len() / 2);
    assert!(weights::load_safetensors(&mlp(1), &bytes).is_err());
    assert!(weights::load_safetensors(&mlp(1), b"not a safetensors file").is_err());
    assert!(weights::load_safetensors(&mlp(1), &[]).is_err());
}
