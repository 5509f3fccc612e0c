//! `timing: Measure` records wall-clock time per firing without changing simulated time;
//! `latency: Measured` makes it the latency and marks the run non-deterministic (SPEC §7).

mod common;
use common::*;
use tapwheel::Outcome;

const SCENE: &str = r#"Scene(version: 1, name: "t",
    nodes: [
        Node(name: "s", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2), count: Some(5)),
        Node(name: "g", kernel: Gain(gain: 3.0), latency: 1, TIMING),
        Node(name: "out", kernel: Probe),
    ],
    edges: [Edge(from: "s.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#;

#[test]
fn measure_records_every_firing_and_keeps_time() {
    let (o1, plain) = run(&parse(&SCENE.replace("TIMING", "timing: Off")));
    let (o2, timed) = run(&parse(&SCENE.replace("TIMING", "timing: Measure")));
    assert_eq!((o1, o2), (Outcome::Completed, Outcome::Completed));
    assert_eq!(stream(&plain, "out"), stream(&timed, "out"));
    assert_eq!(ticks(&timed, "out"), vec![1, 3, 5, 7, 9]);
    let r = timed.report().json;
    assert_eq!(r["timing"]["g"]["firings"], 5);
    let (min, max, total) = (
        r["timing"]["g"]["min_ns"].as_u64().unwrap(),
        r["timing"]["g"]["max_ns"].as_u64().unwrap(),
        r["timing"]["g"]["total_ns"].as_u64().unwrap(),
    );
    assert!(min <= max && max <= total);
    assert_eq!(r["deterministic"], true);
    assert!(
        plain.report().json["timing"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        plain.report().output_digest,
        timed.report().output_digest,
        "timing never changes outputs"
    );
}

#[test]
fn measured_latency_marks_the_run_non_deterministic() {
    let s = parse(
        &SCENE
            .replace("latency: 1, TIMING", "latency: Measured")
            .replace("name: \"t\"", "name: \"t\", tick_hz: 1000.0"),
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    let r = e.report().json;
    assert_eq!(r["deterministic"], false);
    assert_eq!(r["timing"]["g"]["firings"], 5);
    // Values never depend on timing: 3·k for k = 0..5.
    assert_eq!(values(&e, "out"), vec![0.0, 3.0, 6.0, 9.0, 12.0]);
}
