//! `tapwheel bench` (issue 12): the JSON shape of `--quick --format json --only …`, figures that
//! are positive and finite, the text table, and E106 for an unknown workload. Only the cheap
//! workloads run here; no test asserts a wall-clock time.

mod common;
use common::*;

fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench", "--quick", "--format", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = cli(&all);
    assert_eq!(code, 0, "{stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn positive(v: &serde_json::Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

#[test]
fn quick_json_has_the_issue_shape() {
    let j = bench_json(&["--only", "firing_overhead", "--only", "cyclesim"]);
    let w = j["workloads"].as_array().expect("workloads array");
    // In the issue's order, whatever the order of --only.
    let names: Vec<&str> = w.iter().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(names, ["firing_overhead", "cyclesim"]);
    for x in w {
        for key in [
            "name", "value", "unit", "baseline", "ratio", "goal", "met", "detail",
        ] {
            assert!(x.get(key).is_some(), "{} lacks `{key}`: {x}", x["name"]);
        }
        positive(&x["value"], "value");
        assert!(x["unit"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(x["met"].is_boolean());
    }
    let f = &w[0];
    assert_eq!(f["unit"], "ns/firing");
    assert!(f["baseline"].is_null() && f["ratio"].is_null());
    assert_eq!(f["goal"]["target"], 20.0);
    // 1000 gains, the source and the probe each fire once per tick for 100 ticks.
    assert_eq!(f["figures"]["firings"], 100_200.0);

    let c = &w[1];
    assert_eq!(c["unit"], "M cycles/s");
    positive(&c["baseline"], "cyclesim baseline");
    let ratio = positive(&c["ratio"], "cyclesim ratio");
    // The ratio is CycleSim wall time over Reference wall time: value·baseline·ratio relate
    // through the simulated cycle count.
    let cycles = positive(&c["figures"]["cycles"], "cycles");
    let cyclesim_us = cycles / positive(&c["value"], "value");
    let baseline_us = positive(&c["baseline"], "baseline");
    assert!(((cyclesim_us / baseline_us) / ratio - 1.0).abs() < 1e-6);
    assert_eq!(j["quick"], true);
    positive(&j["wall_seconds"], "wall_seconds");
}

#[test]
fn backward_reports_a_ratio_of_two_times() {
    let j = bench_json(&["--only", "backward"]);
    let b = &j["workloads"][0];
    assert_eq!(b["name"], "backward");
    let (v, base, r) = (
        positive(&b["value"], "backward ms"),
        positive(&b["baseline"], "forward ms"),
        positive(&b["ratio"], "ratio"),
    );
    assert!((v / base / r - 1.0).abs() < 1e-9);
    assert_eq!(b["figures"]["tape_entries"], 2112.0);
}

#[test]
fn text_table_lists_the_workload() {
    let (code, stdout, stderr) = cli(&["bench", "--quick", "--only", "cyclesim"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mut lines = stdout.lines();
    assert!(lines.next().is_some_and(|h| h.starts_with("workload")));
    assert!(lines.next().is_some_and(|l| l.starts_with("cyclesim")));
    assert!(stdout.contains("cycles/s"));
}

#[test]
fn unknown_workload_is_e106_at_only() {
    let (code, stdout, stderr) = cli(&["bench", "--only", "firing", "--format", "json"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error[E106]") && stderr.contains("--only"),
        "{stderr}"
    );
    assert!(
        stderr.contains("firing_overhead"),
        "names the workloads: {stderr}"
    );
}
