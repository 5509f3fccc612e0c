//! §4 condition 3: Block channels hold back their producer until there is room, and fan-out
//! needs room on every channel of the tap.

mod common;
use common::*;
use tapwheel::Outcome;

#[test]
fn capacity_one_channel_with_a_slow_consumer() {
    let (o, e) = run(&scene("back_pressure"));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![
            (3, 0, 0.0),
            (6, 1, 10.0),
            (9, 2, 20.0),
            (12, 3, 30.0),
            (15, 4, 40.0)
        ]
    );
    let r = e.report();
    assert_eq!(r.end_tick, 15);
    assert_eq!(r.makespan_ticks, 15);
    // The source is due every tick but fires at 0, 1, 3, 6, 9: stalled from 2→3, 4→6, 7→9.
    let full = &r.json["stalls"]["nodes"]["src"]["CHANNEL_FULL_WAIT"];
    assert_eq!(full["ticks"], 5);
    assert_eq!(full["longest_ticks"], 2);
    assert_eq!(full["instants"], 6);
    let ch = &r.json["channels"]["src.out->slow.in"];
    assert_eq!(ch["capacity"], 1);
    assert_eq!(ch["high_water"], 1);
    assert_eq!(ch["tokens_passed"], 5);
}

#[test]
fn one_slow_consumer_throttles_the_producer_for_all_consumers() {
    let (o, e) = run(&scene("fanout_throttle"));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "fast"),
        vec![(0, 0, 1.0), (1, 1, 2.0), (4, 2, 3.0), (8, 3, 4.0)]
    );
    assert_eq!(
        stream(&e, "slow_out"),
        vec![(4, 0, 100.0), (8, 1, 200.0), (12, 2, 300.0), (16, 3, 400.0)]
    );
    let r = e.report();
    assert_eq!(
        r.json["stalls"]["channels"]["src.out->slow.in"]["CHANNEL_FULL_WAIT"]["ticks"],
        2 + 3 // 2→4 and 5→8
    );
}

#[test]
fn overlapping_firings_write_in_firing_order() {
    // Unlimited concurrency: four firings in flight at once, each taking 5 ticks.
    let s = parse(
        r#"Scene(version: 1, name: "overlap", nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 4),
            Node(name: "work", kernel: MulScalar(value: 2.0), latency: 5, concurrency: None),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "work.in", capacity: 8),
                  Edge(from: "work.out", to: "out.in", capacity: 8)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![(5, 0, 2.0), (6, 1, 4.0), (7, 2, 6.0), (8, 3, 8.0)]
    );
    // With the default concurrency of 1 the same node serialises: 5, 10, 15, 20.
    let serial = parse(&s_without_concurrency());
    let (_, e) = run(&serial);
    assert_eq!(ticks(&e, "out"), vec![5, 10, 15, 20]);
}

fn s_without_concurrency() -> String {
    r#"Scene(version: 1, name: "serial", nodes: [
        Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 4),
        Node(name: "work", kernel: MulScalar(value: 2.0), latency: 5),
        Node(name: "out", kernel: Probe)],
      edges: [Edge(from: "src.out", to: "work.in", capacity: 8),
              Edge(from: "work.out", to: "out.in", capacity: 8)])"#
        .to_string()
}

#[test]
fn concurrency_two_fires_two_per_instant_from_one_queue() {
    let s = parse(
        r#"Scene(version: 1, name: "c2", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: 1,
                 taps: {"out": (rate: 4)}),
            Node(name: "work", kernel: AddScalar(value: 10.0), latency: 3, concurrency: 2),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "work.in", capacity: 4),
                  Edge(from: "work.out", to: "out.in", capacity: 4)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    // Two firings start at (0,1) and two at (3,0): outputs at 3, 3, 6, 6.
    assert_eq!(
        stream(&e, "out"),
        vec![(3, 0, 10.0), (3, 1, 11.0), (6, 2, 12.0), (6, 3, 13.0)]
    );
}
