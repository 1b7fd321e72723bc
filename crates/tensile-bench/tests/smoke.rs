//! The benchmark runner on small generated data: every workload runs the protocol, the models
//! have the peers' parameter counts, training moves the loss, the data reader checks sizes and
//! ranges, and the result lines carry every key the peers' table script reads. Nothing is timed.

use std::path::Path;

use serde_json::Value;
use tensile_bench::{Bench, Data, Error, Work, gemm, report, run_protocol, train};
use tensile_nn::{named_parameters, parameter_count};

/// Two full batches of the workload's shapes.
fn two_batches(work: Work) -> Data {
    Data::synthetic(work, 2 * work.spec().batch, 11).expect("synthetic data")
}

#[test]
fn every_workload_runs_the_protocol_and_reports_the_peers_keys() {
    for work in Work::ALL {
        let data = two_batches(work);
        let (steps, batch) = (data.steps(), data.batch_size());
        assert_eq!(steps, 2, "{}", work.name());
        let mut bench = Bench::new(data, 0).expect("bench");
        let stats = run_protocol(&mut bench, 2).expect("protocol");
        assert_eq!(stats.warmup_losses.len(), 2, "{}", work.name());
        assert_eq!(stats.times.len(), 2, "{}", work.name());
        assert!(stats.warmup_losses.iter().all(|l| l.is_finite() && *l >= 0.0), "{}: {stats:?}", work.name());

        let v = report::epoch_json(work.name(), steps, batch, &stats, 2);
        // The keys ../shared/peers/make_table.py reads, plus the ones run_all.sh adds.
        for key in [
            "peer",
            "work",
            "epoch_s",
            "min_s",
            "max_s",
            "steps",
            "batch",
            "samples_per_s",
            "us_per_step",
            "loss_ep1_mean",
            "loss_ep1_last20",
            "rss_mib",
            "load1",
        ] {
            assert!(v.get(key).is_some(), "{}: no key {key} in {v}", work.name());
        }
        assert_eq!(v["work"], work.name());
        assert_eq!(v["steps"], 2);
        let line = report::result_line(&v);
        let back: Value = serde_json::from_str(line.strip_prefix("RESULT ").expect("prefix")).expect("json");
        assert_eq!(back, v);
        assert!(report::table(&[v]).contains(work.name()));
    }
}

#[test]
fn models_have_the_peers_parameter_counts() {
    // torch_bench.py's models: counted by hand for W1-W3, from ../shared/peers/RESULTS.md for W5.
    let expected = [
        (Work::W1, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10),
        (Work::W2, (32 * 9 + 32) + (64 * 32 * 9 + 64) + (64 * 5 * 5 * 128 + 128) + (128 * 10 + 10)),
        (Work::W3, 16 * 64 + 64 + 64 * 64 + 64 + 64 + 1),
        (Work::W5Gru, 63_498),
        (Work::W5Tf, 534_026),
    ];
    for (work, count) in expected {
        let bench = Bench::new(two_batches(work), 0).expect("bench");
        assert_eq!(parameter_count(bench.model()), count, "{}", work.name());
    }
}

#[test]
fn training_lowers_the_loss_on_a_repeated_batch() {
    for work in [Work::W1, Work::W3] {
        let mut bench = Bench::new(two_batches(work), 0).expect("bench");
        let first = bench.step(0).expect("step").item().expect("loss");
        let mut last = first;
        for _ in 0..30 {
            last = bench.step(0).expect("step").item().expect("loss");
        }
        assert!(last < 0.8 * first, "{}: loss {first} -> {last} after 30 steps on one batch", work.name());
    }
}

#[test]
fn checks_and_gemm_run_on_small_inputs() {
    let threads = train::thread_check(two_batches(Work::W3), 2).expect("thread check");
    assert_eq!((threads.one.len(), threads.two.len()), (2, 2));
    let v = report::thread_json("w3", &threads);
    assert_eq!(v["work"], "threads_w3");
    assert!(v["speedup"].as_f64().is_some_and(f64::is_finite), "{v}");

    let scaling = train::scaling_check(two_batches(Work::W3), 3, 1).expect("scaling check");
    assert_eq!((scaling.rows, scaling.factor, scaling.small.len(), scaling.large.len()), (64, 3, 1, 1));
    let v = report::scaling_json("w3", &scaling, 2);
    assert_eq!(v["rows_scaled"], 192);

    let rows = gemm::measure(16, &[1, 2], 2, 1e-3).expect("gemm");
    assert_eq!(rows.iter().map(|r| (r.n, r.threads)).collect::<Vec<_>>(), [(16, 1), (16, 2)]);
    for r in &rows {
        assert!(r.min <= r.median && r.median <= r.max && r.min > 0.0, "{r:?}");
        let v = report::gemm_json(r);
        assert_eq!((v["work"].as_str(), v["n"].as_u64()), (Some("w4"), Some(16)));
    }
    assert!(gemm::measure(0, &[1], 1, 1e-3).is_err());
}

#[test]
fn repeat_copies_the_rows_in_order() {
    let data = two_batches(Work::W3);
    let big = data.repeat(3).expect("repeat");
    assert_eq!((big.rows(), big.steps()), (192, 6));
    for i in 0..6 {
        let (x, y) = big.batch(i).expect("batch");
        let (x0, y0) = data.batch(i % 2).expect("batch");
        assert_eq!(x.to_vec::<f32>().unwrap(), x0.to_vec::<f32>().unwrap());
        assert_eq!(y.to_vec::<f32>().unwrap(), y0.to_vec::<f32>().unwrap());
    }
    assert!(big.batch(6).is_err());
    assert!(data.repeat(0).is_err());
}

#[test]
fn median_matches_pythons_statistics_median() {
    assert_eq!(report::median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(report::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(report::round(0.123456789, 4), 0.1235);
}

fn write_le<T: Copy>(path: &Path, values: &[T], to_bytes: fn(T) -> [u8; 4]) {
    let bytes: Vec<u8> = values.iter().flat_map(|&v| to_bytes(v)).collect();
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn load_reads_the_peers_files_and_checks_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = Work::W3.spec();
    let x: Vec<f32> = (0..spec.rows * 16).map(|i| i as f32 * 0.5 - 3.0).collect();
    let y: Vec<f32> = (0..spec.rows).map(|i| i as f32).collect();
    write_le(&dir.path().join("w3_x.f32"), &x, f32::to_le_bytes);
    write_le(&dir.path().join("w3_y.f32"), &y, f32::to_le_bytes);
    let data = Data::load(Work::W3, dir.path()).expect("load");
    assert_eq!((data.rows(), data.steps()), (20_000, 625));
    let (xb, yb) = data.batch(1).expect("batch");
    assert_eq!(xb.dims(), [32, 16]);
    assert_eq!(yb.dims(), [32, 1]);
    assert_eq!(xb.to_vec::<f32>().unwrap(), x[32 * 16..64 * 16]);
    assert_eq!(yb.to_vec::<f32>().unwrap(), y[32..64]);

    // A truncated file: the error names the file and both sizes.
    write_le(&dir.path().join("w3_y.f32"), &y[..100], f32::to_le_bytes);
    let e = Data::load(Work::W3, dir.path()).unwrap_err();
    assert!(matches!(e, Error::Size { found: 400, expected: 80_000, .. }), "{e}");
    assert!(e.to_string().contains("w3_y.f32"), "{e}");

    // A missing file: the error says how to create the data.
    let e = Data::load(Work::W1, dir.path()).unwrap_err();
    assert!(matches!(e, Error::Read { .. }), "{e}");
    assert!(e.to_string().contains("gen_data.py") && e.to_string().contains("w1_x.f32"), "{e}");

    // A token id out of the vocabulary: the error names the element and the range.
    let tokens: Vec<i32> = (0..8192 * 64).map(|i| if i == 777 { 1000 } else { i % 1000 }).collect();
    write_le(&dir.path().join("w5tf_x.i32"), &tokens, i32::to_le_bytes);
    write_le(&dir.path().join("w5tf_y.i32"), &vec![0i32; 8192], i32::to_le_bytes);
    let e = Data::load(Work::W5Tf, dir.path()).unwrap_err();
    assert!(matches!(e, Error::OutOfRange { index: 777, value: 1000, limit: 1000, .. }), "{e}");

    // A negative class label.
    let tokens: Vec<i32> = (0..8192 * 64).map(|i| i % 1000).collect();
    write_le(&dir.path().join("w5tf_x.i32"), &tokens, i32::to_le_bytes);
    let mut labels = vec![3i32; 8192];
    labels[5] = -1;
    write_le(&dir.path().join("w5tf_y.i32"), &labels, i32::to_le_bytes);
    let e = Data::load(Work::W5Tf, dir.path()).unwrap_err();
    assert!(matches!(e, Error::OutOfRange { index: 5, value: -1, limit: 10, .. }), "{e}");

    // Valid token data loads as u32 [N, 64].
    write_le(&dir.path().join("w5tf_y.i32"), &vec![9i32; 8192], i32::to_le_bytes);
    let data = Data::load(Work::W5Tf, dir.path()).expect("load w5tf");
    let (xb, yb) = data.batch(0).expect("batch");
    assert_eq!(xb.dims(), [32, 64]);
    assert_eq!(xb.to_vec::<u32>().unwrap()[..3], [0, 1, 2]);
    assert_eq!(yb.to_vec::<u32>().unwrap(), vec![9; 32]);
}

#[test]
fn flop_counts_follow_the_models_layers() {
    // Forward multiply-adds per sample from the models' own weights, in layer order: a linear
    // layer's weight has in x out elements, a convolution's out x in x 3 x 3, used at each of its
    // output positions (26 x 26 for W2's first, 11 x 11 for its second).
    for (work, positions) in [(Work::W1, &[1, 1, 1][..]), (Work::W2, &[26 * 26, 11 * 11, 1, 1]), (Work::W3, &[1, 1, 1])]
    {
        let bench = Bench::new(two_batches(work), 0).expect("bench");
        let weights: Vec<usize> = named_parameters(bench.model())
            .iter()
            .filter(|(_, p)| p.rank() >= 2)
            .map(|(_, p)| p.elem_count())
            .collect();
        assert_eq!(weights.len(), positions.len(), "{}", work.name());
        let layers: Vec<usize> = weights.iter().zip(positions).map(|(w, p)| w * p).collect();
        let forward: usize = layers.iter().sum();
        // Forward, weight gradient and input gradient, less the first layer's input gradient.
        assert_eq!(work.flop_per_sample(), Some(2.0 * (3 * forward - layers[0]) as f64), "{}", work.name());
    }
    // The per-epoch figures BENCHMARKS.md works from (60,000 and 10,000 samples).
    let gflop = |w: Work, n: f64| (w.flop_per_sample().expect("counted") * n / 1e8).round() / 10.0;
    assert_eq!((gflop(Work::W1, 60_000.0), gflop(Work::W2, 10_000.0)), (144.4, 154.0));
    assert_eq!(Work::W5Gru.flop_per_sample(), None);

    // The result line carries the rate, and the table sets it against a peak measured with as
    // many threads.
    let stats = tensile_bench::EpochStats { warmup_losses: vec![1.0], times: vec![1.0, 1.0] };
    let v = report::epoch_json("w1", 468, 128, &stats, 2);
    // 2,407,424 FLOP a sample, 468 x 128 samples, over a 1 s epoch.
    assert_eq!(v["gflop_per_epoch"], 144.214);
    assert_eq!(v["model_gflops"], 144.21);
    let peak = tensile_bench::peak::PeakStats { threads: 2, isa: "avx512", median: 288.4, min: 280.0, max: 290.0 };
    let table = report::table(&[report::peak_json(&peak), v]);
    assert!(table.contains("288.4 GFLOP/s") && table.contains("50%"), "{table}");
}
