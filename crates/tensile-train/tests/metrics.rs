//! Metrics against values computed by hand (and matching scikit-learn's conventions), on the
//! whole set at once.

use tensile_train::history::Mode;
use tensile_train::metrics::{
    self, Accuracy, MacroF1, Metric, Outputs, R2, Task, TopKAccuracy, accuracy, confusion_matrix, default_metrics,
    macro_scores, mae, predictions, r2, rmse, top_k_accuracy,
};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// Six samples, three classes; class 2 is never predicted.
///
/// ```text
/// row  logits          argmax  label
/// 0    [2, 1, 0]       0       0   ok
/// 1    [0, 3, 1]       1       1   ok
/// 2    [1, 2, 0]       1       0
/// 3    [0, 1, 0.5]     1       2
/// 4    [3, 0, 1]       0       2
/// 5    [0, 2, 1]       1       1   ok
/// ```
fn six() -> (Vec<f32>, Vec<u32>) {
    let logits = vec![2., 1., 0., 0., 3., 1., 1., 2., 0., 0., 1., 0.5, 3., 0., 1., 0., 2., 1.];
    (logits, vec![0, 1, 0, 2, 2, 1])
}

#[test]
fn accuracy_and_confusion_matrix_by_hand() {
    let (logits, labels) = six();
    assert_eq!(predictions(&logits, 3), vec![0, 1, 1, 1, 0, 1]);
    close(accuracy(&logits, 3, &labels), 0.5);
    let cm = confusion_matrix(&logits, 3, &labels);
    // Rows are true classes, columns predicted classes.
    assert_eq!(cm.counts, vec![1, 1, 0, 0, 2, 0, 1, 1, 0]);
    assert_eq!((cm.get(2, 0), cm.row(1), cm.support(2), cm.predicted(1), cm.total()), (1, &[0, 2, 0][..], 2, 4, 6));
}

#[test]
fn macro_f1_with_a_class_never_predicted_counts_it_as_zero() {
    let (logits, labels) = six();
    let cm = confusion_matrix(&logits, 3, &labels);
    let per = cm.per_class();
    // class 0: TP 1, predicted 2, support 2; class 1: TP 2, predicted 4, support 2;
    // class 2: never predicted -> precision 0 (zero_division=0), recall 0, F1 0.
    let got: Vec<(f64, f64, f64, u64)> = per.iter().map(|s| (s.precision, s.recall, s.f1, s.support)).collect();
    assert_eq!(got, vec![(0.5, 0.5, 0.5, 2), (0.5, 1.0, 4.0 / 6.0, 2), (0.0, 0.0, 0.0, 2)]);
    let m = macro_scores(&logits, 3, &labels);
    close(m.precision, 1.0 / 3.0);
    close(m.recall, 0.5);
    close(m.f1, 7.0 / 18.0);
}

#[test]
fn macro_average_leaves_out_a_class_absent_from_labels_and_predictions() {
    let (six_logits, labels) = six();
    // A fourth class that no sample has and the model never predicts.
    let logits: Vec<f32> = six_logits.chunks(3).flat_map(|r| [r[0], r[1], r[2], -10.0]).collect();
    let m = macro_scores(&logits, 4, &labels);
    close(m.f1, 7.0 / 18.0);
    close(m.precision, 1.0 / 3.0);
}

#[test]
fn top_k_with_ties_ranks_the_lower_index_first_and_top_1_is_accuracy() {
    // Row 0: all tied, label 2 ranks third. Rows 1-2: classes 1 and 2 tied; label 1 ranks
    // first, label 2 second.
    let logits = vec![1., 1., 1., 0.5, 2., 2., 0.5, 2., 2.];
    let labels = vec![2, 1, 2];
    close(top_k_accuracy(&logits, 3, &labels, 1), 1.0 / 3.0);
    close(accuracy(&logits, 3, &labels), 1.0 / 3.0);
    close(top_k_accuracy(&logits, 3, &labels, 2), 2.0 / 3.0);
    close(top_k_accuracy(&logits, 3, &labels, 3), 1.0);
    close(top_k_accuracy(&logits, 3, &labels, 10), 1.0);
}

#[test]
fn nan_scores_rank_below_every_number() {
    let logits = vec![f32::NAN, 0., -1., f32::NAN, f32::NAN, f32::NAN];
    assert_eq!(predictions(&logits, 3), vec![1, 0]);
    close(top_k_accuracy(&logits, 3, &[0, 0], 1), 0.5);
    close(top_k_accuracy(&logits, 3, &[0, 0], 2), 0.5);
}

#[test]
fn regression_perfect_worse_than_mean_and_constant_targets() {
    let t = [1.0f32, 2.0, 3.0];
    close(r2(&t, &t, 1), 1.0);
    close(mae(&t, &t), 0.0);
    close(rmse(&t, &t), 0.0);
    // Reversed: SS_res = 8, SS_tot = 2.
    let p = [3.0f32, 2.0, 1.0];
    close(r2(&p, &t, 1), -3.0);
    close(mae(&p, &t), 4.0 / 3.0);
    close(rmse(&p, &t), (8.0f64 / 3.0).sqrt());
    // Predicting the mean scores 0.
    close(r2(&[2.0, 2.0, 2.0], &t, 1), 0.0);
    // Constant targets: 1 when exact, 0 otherwise (never infinite or NaN).
    close(r2(&[2.0, 2.0, 2.0], &[2.0, 2.0, 2.0], 1), 1.0);
    close(r2(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0], 1), 0.0);
}

#[test]
fn r2_of_several_outputs_is_the_mean_over_outputs() {
    // Output 0 exact (R² 1), output 1 predicted by its mean (R² 0).
    let targets = [1.0f32, 10., 2., 20., 3., 30.];
    let preds = [1.0f32, 20., 2., 20., 3., 20.];
    close(r2(&preds, &targets, 2), 0.5);
}

#[test]
fn empty_sets_score_nan() {
    assert!(accuracy(&[], 3, &[]).is_nan());
    assert!(macro_scores(&[], 3, &[]).f1.is_nan());
    assert!(mae(&[], &[]).is_nan() && rmse(&[], &[]).is_nan() && r2(&[], &[], 1).is_nan());
}

#[test]
fn outputs_are_checked_when_built() {
    assert!(Outputs::classification(vec![0.0; 5], 3, vec![0, 1]).is_err());
    let err = Outputs::classification(vec![0.0; 6], 3, vec![0, 3]).unwrap_err().to_string();
    assert!(err.contains("label 3 of sample 1"), "{err}");
    assert!(Outputs::classification(vec![], 0, vec![]).is_err());
    assert!(Outputs::regression(vec![0.0; 3], vec![0.0; 4], 1).is_err());
    assert!(Outputs::regression(vec![0.0; 3], vec![0.0; 3], 2).is_err());
    let out = Outputs::regression(vec![0.0; 4], vec![0.0; 4], 2).unwrap();
    assert_eq!(out.len(), 2);
}

#[test]
fn metric_trait_names_modes_and_task_mismatch() {
    let (logits, labels) = six();
    let out = Outputs::classification(logits, 3, labels).unwrap();
    close(Accuracy.compute(&out), 0.5);
    close(MacroF1.compute(&out), 7.0 / 18.0);
    close(TopKAccuracy { k: 3 }.compute(&out), 1.0);
    assert_eq!(TopKAccuracy { k: 5 }.name(), "top5_accuracy");
    // A regression metric on classification outputs is NaN, not a plausible number.
    assert!(R2.compute(&out).is_nan());
    for m in default_metrics(Task::Classification { n_classes: 10 }) {
        assert_eq!(m.mode(), Mode::for_metric(&format!("val_{}", m.name())), "{}", m.name());
    }
    let names = |t| default_metrics(t).iter().map(|m| m.name()).collect::<Vec<_>>();
    assert_eq!(names(Task::Classification { n_classes: 3 }), ["accuracy", "f1", "precision", "recall"]);
    assert_eq!(
        names(Task::Classification { n_classes: 10 }),
        ["accuracy", "f1", "precision", "recall", "top5_accuracy"]
    );
    assert_eq!(names(Task::Regression), ["rmse", "mae", "r2"]);
    let reg = Outputs::regression(vec![3.0, 2.0, 1.0], vec![1.0, 2.0, 3.0], 1).unwrap();
    let all = metrics::compute_all(&default_metrics(Task::Regression), &reg);
    assert_eq!(all[0].0, "rmse");
    close(all[2].1, -3.0);
}
