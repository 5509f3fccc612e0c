//! The command line (§19): outputs, report keys, exit codes and typed refusals.

mod common;
use common::*;

#[test]
fn run_writes_report_and_probe_csv() {
    let dir = out_dir("cli_hello");
    let (code, stdout, stderr) = cli(&["run", "scenes/hello.ron", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("hello: completed at tick 15"));
    let csv = std::fs::read_to_string(dir.join("probes/out.csv")).unwrap();
    assert_eq!(
        csv,
        "tick,seq,batch,channel,frame,value\n3,0,0,0,0,1\n7,1,0,0,0,3\n11,2,0,0,0,5\n15,3,0,0,0,7\n"
    );
    let r = read_json(&dir.join("report.json"));
    for key in [
        "outcome",
        "plan_digest",
        "output_digest",
        "values_digest",
        "end_tick",
        "makespan_ticks",
        "steps",
        "firings",
        "stalls",
        "channels",
        "thermal",
        "deadlock",
        "device",
        "deterministic",
    ] {
        assert!(r.get(key).is_some(), "report.json lacks `{key}`");
    }
    assert_eq!(r["outcome"], "completed");
    assert_eq!(r["end_tick"], 15);
    assert_eq!(r["makespan_ticks"], 15); // bias, the last task, fires when its input appears at 15
    assert_eq!(r["firings"]["src"], 4);
    assert_eq!(r["device"]["name"], "Reference");
    assert_eq!(r["deterministic"], true);
    assert!(r["deadlock"].is_null());
    assert_eq!(r["channels"]["gain.out->bias.in"]["delay"], 3);
    assert_eq!(r["channels"]["gain.out->bias.in"]["tokens_passed"], 4);
}

#[test]
fn json_format_prints_the_report() {
    let dir = out_dir("cli_json");
    let (code, stdout, _) = cli(&[
        "run",
        "scenes/delay_line.ron",
        "--out",
        dir.to_str().unwrap(),
        "--format",
        "json",
        "--until",
        "5",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["outcome"], "limit_reached");
    assert_eq!(v["end_tick"], 5);
    assert_eq!(v["probes"]["out"], 1);
}

#[test]
fn float_values_use_shortest_round_trip_form() {
    let dir = out_dir("cli_float");
    let scene = dir.with_extension("ron");
    std::fs::create_dir_all(scene.parent().unwrap()).unwrap();
    std::fs::write(
        &scene,
        r#"Scene(version: 1, name: "f", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.1, step: 0.2), period: 1, count: 3),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "out.in")])"#,
    )
    .unwrap();
    let (code, _, _) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let csv = std::fs::read_to_string(dir.join("probes/out.csv")).unwrap();
    // 0.1, 0.1 + 0.2 and 0.1 + 0.4 computed in f64, stored as f32, printed shortest.
    assert_eq!(
        csv,
        "tick,seq,batch,channel,frame,value\n0,0,0,0,0,0.1\n1,1,0,0,0,0.3\n2,2,0,0,0,0.5\n"
    );
}

#[test]
fn check_prints_the_plan() {
    let (code, stdout, _) = cli(&["check", "scenes/hamming.ron"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("hamming: ok (7 nodes, 9 channels)"));
    let (code, stdout, _) = cli(&["check", "scenes/hamming.ron", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["channels"][0]["initial"], 1);
    assert_eq!(v["plan_digest"].as_str().unwrap().len(), 64);
}

#[test]
fn unimplemented_features_are_refused_with_exit_4() {
    let dir = out_dir("cli_refused");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("biquad.ron");
    std::fs::write(
        &scene,
        r#"Scene(version: 1, name: "r", nodes: [
            Node(name: "src", kernel: Const(value: 1.0), count: 1),
            Node(name: "lp", kernel: Select(slot: 0)),
            Node(name: "out", kernel: Probe, gate: Some("g"))],
          edges: [Edge(from: "src.out", to: "lp.in"), Edge(from: "lp.then", to: "out.in", policy: DropOldest)],
          gates: [Gate(name: "g", members: ["out"])],
          task_window: Some((size: 4, mode: Abort)))"#,
    )
    .unwrap();
    let (code, _, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{stderr}");
    // The refusal names its field.
    let (code, path) = ("R304", "task_window.mode");
    assert!(
        stderr.contains(&format!("refused[{code}]")) && stderr.contains(&format!("--> {path}")),
        "missing {code} at {path} in:\n{stderr}"
    );
    assert!(
        !dir.join("report.json").exists(),
        "a refused run writes nothing"
    );

    // CycleSim is implemented (tests/devices.rs): the same scene runs.
    let (code, _, stderr) = cli(&[
        "run",
        "scenes/hello.ron",
        "--device",
        "cyclesim",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = cli(&["analyze", "scenes/hamming.ron"]);
    assert_eq!(code, 4);
    assert!(
        stderr.contains("refused[R350]") && stderr.contains("--> nodes[3].kernel"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&["analyze", "scenes/gate_sync.ron"]);
    assert_eq!(code, 4);
    assert!(
        stderr.contains("refused[R353]") && stderr.contains("--> gates[0]"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = cli(&["frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, _) = cli(&["run", "scenes/hello.ron", "--until", "soon"]);
    assert_eq!(code, 2);
    let (code, _, stderr) = cli(&["run", "scenes/no_such_scene.ron"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("error[E105]"));
}

#[test]
fn arena_limit_is_a_typed_failure_not_a_crash() {
    let dir = out_dir("cli_arena");
    let (code, _, stderr) = cli(&[
        "run",
        "scenes/hamming.ron",
        "--out",
        dir.to_str().unwrap(),
        "--max-arena-bytes",
        "2000",
    ]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("R330"));
    let r = read_json(&dir.join("report.json"));
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["error"]["code"], "R330");
}

#[test]
fn analyze_prints_the_sdf3_figures() {
    // SDF3's published analysis of its samplerate testbench: q = (147, 147, 98, 28, 32, 160),
    // maximal throughput 1/960 iterations per time unit.
    let (code, stdout, stderr) =
        cli(&["analyze", "scenes/sdf3/samplerate.ron", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["consistent"], true);
    assert_eq!(v["deadlock_free"], true);
    let q: Vec<u64> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| v["repetition_vector"][n].as_u64().unwrap())
        .collect();
    assert_eq!(q, vec![147, 147, 98, 28, 32, 160]);
    assert_eq!(v["throughput_exact"], "1/960");
    assert_eq!(v["iteration_period_ticks"], "960");
    let (code, stdout, _) = cli(&["analyze", "scenes/sdf3/modem.ron"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("throughput: 1/16 iterations per tick"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["analyze", "scenes/no_such.ron"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("E105"));
}
