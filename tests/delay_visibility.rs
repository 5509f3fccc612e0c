//! §3 visibility rule: a token written at (t, δ) with delay d is visible at (t+d, 0), never
//! earlier; with d = 0 at (t, δ+1), never in the step that wrote it.

mod common;
use common::*;
use tapwheel::time::Instant;
use tapwheel::{Outcome, StepStatus};

#[test]
fn delay_line_tokens_appear_exactly_at_t_plus_d() {
    let (o, e) = run(&scene("delay_line"));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![(5, 0, 1.0), (15, 1, 2.0), (25, 2, 3.0)]
    );
    let r = e.report();
    assert_eq!(r.end_tick, 25);
    assert_eq!(r.makespan_ticks, 20); // the source's tasks; probe firings never count
}

#[test]
fn never_visible_at_t_plus_d_minus_one() {
    for d in 1..=7u64 {
        let text = format!(
            r#"Scene(version: 1, name: "d", nodes: [
                Node(name: "src", kernel: Const(value: 4.0), offset: 3, count: Some(1)),
                Node(name: "out", kernel: Probe)],
              edges: [Edge(from: "src.out", to: "out.in", delay: {d})])"#
        );
        let s = parse(&text);
        let (o, e) = run_until(&s, 3 + d - 1);
        assert_eq!(o, Outcome::LimitReached, "d = {d}");
        assert!(ticks(&e, "out").is_empty(), "visible early with d = {d}");
        assert_eq!(e.report().end_tick, 3 + d - 1);
        let (o, e) = run_until(&s, 3 + d);
        assert_eq!(stream(&e, "out"), vec![(3 + d, 0, 4.0)], "d = {d}");
        assert_eq!(o, Outcome::Completed, "d = {d}");
    }
}

#[test]
fn until_processes_every_instant_up_to_and_including_it() {
    let (o, e) = run_until(&scene("delay_line"), 15);
    assert_eq!(o, Outcome::LimitReached);
    assert_eq!(stream(&e, "out"), vec![(5, 0, 1.0), (15, 1, 2.0)]);
    assert_eq!(e.report().end_tick, 15);
    assert_eq!(e.report().json["outcome"], "limit_reached");
}

#[test]
fn zero_delay_chain_advances_one_delta_per_hop() {
    let mut e = engine(&scene("zero_delay_chain"));
    let mut seen_at = None;
    loop {
        let now = e.next_instant();
        let status = e.step();
        if seen_at.is_none() && !e.probe("out").unwrap().is_empty() {
            seen_at = Some(now);
        }
        if let StepStatus::Ended(o) = status {
            assert_eq!(o, Outcome::Completed);
            break;
        }
    }
    // src fires at (0,0), a at (0,1), b at (0,2), c at (0,3), the probe consumes at (0,4).
    assert_eq!(seen_at, Some(Instant::new(0, 4)));
    assert_eq!(stream(&e, "out"), vec![(0, 0, -4.0)]); // -((1.5·2)+1)
    assert_eq!(e.report().end_tick, 0);
}

#[test]
fn zero_delay_write_is_not_seen_by_the_step_that_wrote_it() {
    // A consumer placed before its producer in node order still waits one delta.
    let s = parse(
        r#"Scene(version: 1, name: "order", nodes: [
            Node(name: "out", kernel: Probe),
            Node(name: "g", kernel: Gain(gain: 3.0)),
            Node(name: "src", kernel: Const(value: 2.0), count: Some(1))],
          edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#,
    );
    let mut e = engine(&s);
    let mut seen_at = None;
    loop {
        let now = e.next_instant();
        let st = e.step();
        if seen_at.is_none() && !e.probe("out").unwrap().is_empty() {
            seen_at = Some(now);
        }
        if matches!(st, StepStatus::Ended(_)) {
            break;
        }
    }
    assert_eq!(seen_at, Some(Instant::new(0, 2)));
    assert_eq!(values(&e, "out"), vec![6.0]);
}

#[test]
fn latency_and_delay_add_up() {
    // Fired at 2, latency 3 → written at 5, delay 4 → visible at 9.
    let s = parse(
        r#"Scene(version: 1, name: "ld", nodes: [
            Node(name: "src", kernel: Const(value: 1.0), offset: 2, count: Some(1), latency: 3),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "out.in", delay: 4)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(stream(&e, "out"), vec![(9, 0, 1.0)]);
    assert_eq!(e.report().makespan_ticks, 5);
}
