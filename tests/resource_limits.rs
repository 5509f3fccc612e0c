//! Resource limits with typed errors (issue 11, SPEC §13): probe memory (E404), and the
//! documented limits' defaults. The arena limit (R330) is covered by tests/back_pressure.rs and
//! tests/parks_growth.rs, zero-time loops (E403) by tests/runaway_deltas.rs, steps by `max_steps`.

mod common;
use tapwheel::{Engine, Outcome, RunOptions};

#[test]
fn the_probe_memory_limit_ends_the_run_failed_with_e404() {
    let s = common::scene("hello");
    // hello's probe records one value per token: 4 + 16 bytes. 45 bytes hold two tokens; the
    // third (tick 11) takes the streams to 60 bytes and the run fails there.
    let mut e = Engine::from_scene(
        &s,
        RunOptions {
            max_probe_bytes: 45,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.run(), Outcome::Failed);
    assert_eq!(e.probe_bytes(), 60);
    let r = e.report();
    assert_eq!(r.end_tick, 11);
    assert_eq!(r.error.as_ref().map(|d| d.code), Some("E404"));
    // What was recorded stays readable.
    assert_eq!(e.probe("out").unwrap().values, vec![1.0, 3.0, 5.0]);
    // Exactly at the limit is fine.
    let mut e = Engine::from_scene(
        &s,
        RunOptions {
            max_probe_bytes: 80,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(e.probe_bytes(), 80);
}

#[test]
fn the_probe_limit_from_the_command_line() {
    let dir = common::out_dir("probe_limit");
    let (code, out, err) = common::cli(&[
        "run",
        "scenes/hello.ron",
        "--max-probe-bytes",
        "45",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.contains("error[E404]: the probe streams hold 60 bytes after tick 11"),
        "{err}"
    );
    let r = common::read_json(&dir.join("report.json"));
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["error"]["code"], "E404");
    let csv = std::fs::read_to_string(dir.join("probes/out.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4); // header + the three recorded tokens
}

#[test]
fn the_limits_have_documented_defaults() {
    let o = RunOptions::default();
    assert_eq!(o.max_probe_bytes, 1 << 30);
    assert_eq!(o.max_arena_bytes, 4 << 30);
    assert_eq!(o.max_deltas, 1 << 20);
    assert_eq!(o.max_steps, None);
    let docs = std::fs::read_to_string(common::repo().join("docs/errors.md")).unwrap();
    for code in ["E403", "E404", "R330"] {
        assert!(
            docs.contains(&format!("| {code} |")),
            "{code} is not in docs/errors.md"
        );
    }
}
