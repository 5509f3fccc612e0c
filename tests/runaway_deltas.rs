//! A zero-time loop that never settles (SPEC §13 "a runaway zero-time loop is reported, not
//! hung"): a feedback loop carried by an initial token with no delay or latency circulates in
//! deltas at tick 0; the run ends `failed` with E403 after `max_deltas` deltas.

mod common;
use common::*;
use tapwheel::{Engine, Outcome, RunOptions};

const SPIN: &str = r#"Scene(version: 1, name: "spin",
    nodes: [Node(name: "g", kernel: Gain(gain: 1.0)), Node(name: "h", kernel: Gain(gain: 1.0))],
    edges: [Edge(from: "g.out", to: "h.in"), Edge(from: "h.out", to: "g.in", initial: [1.0])])"#;

#[test]
fn a_runaway_zero_time_loop_fails_after_max_deltas() {
    let scene = parse(SPIN);
    let mut e = Engine::from_scene(
        &scene,
        RunOptions {
            max_deltas: 1000,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(e.run(), Outcome::Failed);
    let r = e.report();
    // Deltas 0..=999 of tick 0 were processed; g and h took turns, 500 firings each.
    assert_eq!(r.steps, 1000);
    assert_eq!(r.end_tick, 0);
    assert_eq!(r.json["firings"]["g"], 500);
    assert_eq!(r.json["firings"]["h"], 500);
    let err = r.error.expect("the failure is reported");
    assert_eq!(err.code, "E403");
    assert!(
        err.message.starts_with("tick 0 took 1000 deltas"),
        "{}",
        err.message
    );
}

#[test]
fn the_cli_reports_e403_and_writes_the_report() {
    let dir = out_dir("runaway");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("spin.ron");
    std::fs::write(&scene, SPIN).unwrap();
    let out = dir.join("out");
    let (code, _, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--max-deltas",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("error[E403]: tick 0 took 64 deltas"),
        "{stderr}"
    );
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["error"]["code"], "E403");
    assert_eq!(r["steps"], 64);
}

#[test]
fn a_settling_scene_is_untouched_by_the_limit() {
    // hello needs a handful of deltas per tick: a limit of 8 does not bite.
    let mut e = Engine::from_scene(
        &scene("hello"),
        RunOptions {
            max_deltas: 8,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(e.report().end_tick, 15);
}
