//! A table column with many categories through the `tensile` binary: above `data.one_hot_max`
//! distinct values it becomes one index feature, looked up in a learned embedding in front of
//! the model. The generated table's label is a function of the id column alone (a scrambled
//! one, so no order of the ids predicts it), so only the embedding can learn it; `eval` and
//! `predict` read the ids through the encoding saved in `model.json`, and an id training never
//! saw is an error naming it.

mod common;
use common::{ok, tensile};

const IDS: usize = 100;

/// The class of id `i`: scrambled by a multiplicative hash, so neighbouring ids differ.
fn class_of(i: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) >> 7) % 3
}

/// `reps` rows per id with a noise column `x` that says nothing about the label.
fn table(reps: usize, with_target: bool) -> String {
    let mut text = String::from(if with_target { "user,x,label\n" } else { "user,x\n" });
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for r in 0..reps {
        for i in 0..IDS {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = (state >> 40) as f64 / (1u64 << 24) as f64;
            let id = (i * 37 + r * 11) % IDS;
            text.push_str(&format!("u{id:03},{x:.4}"));
            if with_target {
                text.push_str(&format!(",c{}", class_of(id)));
            }
            text.push('\n');
        }
    }
    text
}

#[test]
fn many_valued_text_column_is_learned_through_an_embedding_and_reused_by_eval_and_predict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("ids.csv"), table(8, true)).expect("write");
    std::fs::write(d.join("new.csv"), table(1, false)).expect("write");
    std::fs::write(d.join("unseen.csv"), "user,x\nu001,0.5\nnobody,0.25\n").expect("write");
    std::fs::write(
        d.join("run.toml"),
        "[data]\ntrain = \"ids.csv\"\ntarget = \"label\"\n\n[model]\nhidden = [64]\n\n\
         [training]\nepochs = 40\nbatch_size = 32\nvalidation_split = 0.2\n\
         optimizer = { type = \"adam\", lr = 1e-2 }\nseed = 5\n\n[output]\ndir = \"run\"\n",
    )
    .expect("write config");

    ok(tensile(&["train", "run.toml", "--quiet"], d));

    // The id column is one index feature with a 100-row table of fast.ai's width; `x` is numeric.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/model.json")).expect("model.json"))
            .expect("model.json is JSON");
    assert_eq!(info["feature_names"], serde_json::json!(["user", "x"]), "{info}");
    assert_eq!(info["input_shape"], serde_json::json!([2]));
    assert_eq!(info["embedding"], serde_json::json!([{ "position": 0, "categories": 100, "dim": 21 }]));
    assert_eq!(info["input"]["columns"][0]["indexed"], true);
    assert_eq!(info["input"]["columns"][0]["categories"].as_array().map(Vec::len), Some(IDS));
    // Scaling left the index feature as it was.
    if let Some(std) = info["standardizer"].as_object() {
        assert_eq!((std["mean"][0].as_f64(), std["std"][0].as_f64()), (Some(0.0), Some(1.0)), "{info}");
    }
    let weights = std::fs::read(d.join("run/model.safetensors")).expect("weights");
    assert!(weights.windows(18).any(|w| w == b"embedding.0.weight"), "the table is saved by name");

    let report: serde_json::Value =
        serde_json::from_str(&ok(tensile(&["eval", "run", "--data", "ids.csv", "--json"], d))).expect("JSON");
    let accuracy = report["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy >= 0.9, "{report}");

    let pred = ok(tensile(&["predict", "run", "--data", "new.csv"], d));
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("prediction,p_c0,p_c1,p_c2"));
    let right = lines.enumerate().filter(|(i, l)| l.starts_with(&format!("c{},", class_of((i * 37) % IDS)))).count();
    assert!(right >= 90, "{right} of {IDS} right:\n{pred}");

    let o = tensile(&["predict", "run", "--data", "unseen.csv"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("'nobody'") && err.contains("user") && err.contains("seen in training"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let summary = ok(tensile(&["summary", "run.toml"], d));
    assert!(summary.contains("embedding"), "{summary}");
}

#[test]
fn a_streamed_run_builds_the_same_embedding_model_and_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("ids.csv"), table(8, true)).expect("write");
    std::fs::write(d.join("new.csv"), table(1, false)).expect("write");
    let config = |stream: bool, out: &str| {
        format!(
            "[data]\ntrain = \"ids.csv\"\ntarget = \"label\"\nstream = {stream}\n\n[model]\nhidden = [64]\n\n\
             [training]\nepochs = 40\nbatch_size = 32\nvalidation_split = 0.2\n\
             optimizer = {{ type = \"adam\", lr = 1e-2 }}\nseed = 5\n\n[output]\ndir = \"{out}\"\n"
        )
    };
    std::fs::write(d.join("memory.toml"), config(false, "memory")).expect("write config");
    std::fs::write(d.join("stream.toml"), config(true, "stream")).expect("write config");
    ok(tensile(&["train", "memory.toml", "--quiet"], d));
    ok(tensile(&["train", "stream.toml", "--quiet"], d));

    let info = |run: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join(run).join("model.json")).expect("model.json"))
            .expect("model.json is JSON")
    };
    let (memory, stream) = (info("memory"), info("stream"));
    assert_eq!(stream["embedding"], serde_json::json!([{ "position": 0, "categories": 100, "dim": 21 }]), "{stream}");
    for key in ["embedding", "feature_names", "input_shape", "spec", "class_names"] {
        assert_eq!(stream[key], memory[key], "{key}");
    }
    assert_eq!(stream["input"]["columns"], memory["input"]["columns"]);
    if let Some(std) = stream["standardizer"].as_object() {
        assert_eq!((std["mean"][0].as_f64(), std["std"][0].as_f64()), (Some(0.0), Some(1.0)), "{stream}");
    }

    let pred = ok(tensile(&["predict", "stream", "--data", "new.csv"], d));
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("prediction,p_c0,p_c1,p_c2"));
    let right = lines.enumerate().filter(|(i, l)| l.starts_with(&format!("c{},", class_of((i * 37) % IDS)))).count();
    assert!(right >= 85, "{right} of {IDS} right:\n{pred}");
}
