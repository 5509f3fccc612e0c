//! §4 firing rule details: sources (offset, period, count), rates, optional inputs, data-
//! dependent demand (Take, Filter, OrderedMerge), end of stream and discarded tokens, Actors.

mod common;
use common::*;
use tapwheel::Outcome;

#[test]
fn sources_fire_at_offset_then_every_period_at_most_count_times() {
    let s = parse(
        r#"Scene(version: 1, name: "src", nodes: [
            Node(name: "src", kernel: Ramp(start: 10.0, step: -2.5), offset: 5, period: 7, count: 3),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![(5, 0, 10.0), (12, 1, 7.5), (19, 2, 5.0)]
    );
    assert_eq!(e.report().end_tick, 19);
}

#[test]
fn count_zero_source_finishes_at_zero_zero() {
    let s = parse(
        r#"Scene(version: 1, name: "none", nodes: [
            Node(name: "src", kernel: Const(value: 1.0), count: 0),
            Node(name: "g", kernel: Gain(gain: 2.0)),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert!(ticks(&e, "out").is_empty());
    let r = e.report();
    assert_eq!(r.end_tick, 0);
    assert_eq!(r.json["finished_at"]["src"], 0);
    assert_eq!(r.json["firings"]["src"], 0);
}

#[test]
fn unbounded_source_runs_until_the_limit() {
    let s = parse(
        r#"Scene(version: 1, name: "forever", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 3),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "out.in")], run: (until: 10))"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::LimitReached);
    assert_eq!(ticks(&e, "out"), vec![0, 3, 6, 9]);
    assert_eq!(e.report().end_tick, 10);
}

#[test]
fn elementwise_rate_is_r_independent_applications() {
    let s = parse(
        r#"Scene(version: 1, name: "rate", nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 3),
            Node(name: "g", kernel: Gain(gain: -1.0), latency: 2,
                 taps: {"in": (rate: 3), "out": (rate: 3)}),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "g.in", capacity: 3),
                  Edge(from: "g.out", to: "out.in", capacity: 3)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    // g fires once at tick 2 (after the third token), completes at 4.
    assert_eq!(
        stream(&e, "out"),
        vec![(4, 0, -1.0), (4, 1, -2.0), (4, 2, -3.0)]
    );
    assert_eq!(e.report().json["firings"]["g"], 1);
}

#[test]
fn add_with_an_optional_input_uses_default_or_hold_last() {
    let s = parse(
        r#"Scene(version: 1, name: "opt", nodes: [
            Node(name: "x", kernel: Ramp(start: 1.0, step: 1.0), period: 10, count: 4),
            Node(name: "y", kernel: Const(value: 100.0), offset: 12, count: 1),
            Node(name: "sum", kernel: Add, taps: {"b": (optional: true, hold_last: true, default: 0.5)}),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "x.out", to: "sum.a"), Edge(from: "y.out", to: "sum.b"),
                  Edge(from: "sum.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    // 1 + default, 2 + default (y not yet written), 3 + 100 (y's token, consumed at 20),
    // 4 + 100 again (nothing new on b at 30: hold_last repeats the last consumed token).
    assert_eq!(values(&e, "out"), vec![1.5, 2.5, 103.0, 104.0]);
}

#[test]
fn take_passes_n_then_finishes_and_never_blocks_its_producer() {
    let s = parse(
        r#"Scene(version: 1, name: "take", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: 6),
            Node(name: "t", kernel: Take(n: 2)),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "t.in", capacity: 1), Edge(from: "t.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(stream(&e, "out"), vec![(0, 0, 0.0), (1, 1, 1.0)]);
    let r = e.report();
    // The source keeps its period: after t finished, its tokens are discarded on arrival.
    assert_eq!(r.json["firings"]["src"], 6);
    assert_eq!(r.end_tick, 5);
    assert_eq!(r.json["channels"]["src.out->t.in"]["discarded"], 4);
}

#[test]
fn filter_drops_tokens_whose_first_element_fails() {
    let s = parse(
        r#"Scene(version: 1, name: "filter", nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 12),
            Node(name: "f", kernel: Filter(pred: NotMultipleOf(3.0))),
            Node(name: "g", kernel: Filter(pred: Gt(4.0))),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "f.in"), Edge(from: "f.out", to: "g.in"),
                  Edge(from: "g.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![
            (4, 0, 5.0),
            (6, 1, 7.0),
            (7, 2, 8.0),
            (9, 3, 10.0),
            (10, 4, 11.0)
        ]
    );
}

#[test]
fn ordered_merge_copies_through_after_one_input_ends() {
    let s = parse(
        r#"Scene(version: 1, name: "merge", nodes: [
            Node(name: "a", kernel: Ramp(start: 1.0, step: 2.0), period: 1, count: 3),
            Node(name: "b", kernel: Ramp(start: 2.0, step: 2.0), period: 1, count: 6),
            Node(name: "m", kernel: OrderedMerge(dedup: false)),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "a.out", to: "m.a"), Edge(from: "b.out", to: "m.b"),
                  Edge(from: "m.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        values(&e, "out"),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0]
    );
    assert!(e.report().json["finished_at"]["m"].is_u64());
}

#[test]
fn ordered_merge_without_dedup_keeps_equal_heads_a_first() {
    let s = parse(
        r#"Scene(version: 1, name: "eq", nodes: [
            Node(name: "a", kernel: Const(value: 7.0), period: 1, count: 2),
            Node(name: "b", kernel: Const(value: 7.0), period: 1, count: 1),
            Node(name: "m", kernel: OrderedMerge(dedup: false)),
            Node(name: "d", kernel: OrderedMerge(dedup: true)),
            Node(name: "out", kernel: Probe), Node(name: "out_d", kernel: Probe)],
          edges: [Edge(from: "a.out", to: "m.a"), Edge(from: "b.out", to: "m.b"),
                  Edge(from: "a.out", to: "d.a"), Edge(from: "b.out", to: "d.b"),
                  Edge(from: "m.out", to: "out.in"), Edge(from: "d.out", to: "out_d.in")])"#,
    );
    let (_, e) = run(&s);
    assert_eq!(values(&e, "out"), vec![7.0, 7.0, 7.0]);
    assert_eq!(values(&e, "out_d"), vec![7.0, 7.0]);
}

#[test]
fn actor_writes_rate_tokens_filled_with_its_firing_index() {
    let s = parse(
        r#"Scene(version: 1, name: "actor", nodes: [
            Node(name: "p", kernel: Actor, period: 2, count: 3, taps: {"o": (dir: Out, rate: 2)}),
            Node(name: "c", kernel: Actor, latency: 1, taps: {"i": (dir: In, rate: 3), "o": (dir: Out, rate: 1)}),
            Node(name: "out", kernel: Probe), Node(name: "raw", kernel: Probe)],
          edges: [Edge(from: "p.o", to: "c.i", capacity: 6), Edge(from: "c.o", to: "out.in"),
                  Edge(from: "p.o", to: "raw.in", capacity: 6)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "raw"), vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
    // c fires when 3 tokens are visible: after p's 2nd firing (tick 2) and 3rd (tick 4).
    assert_eq!(stream(&e, "out"), vec![(3, 0, 0.0), (5, 1, 1.0)]);
}

#[test]
fn multi_element_tokens_are_row_major_blocks() {
    let s = parse(
        r#"Scene(version: 1, name: "blocks",
          defaults: (shape: (batch: 2, channels: 1, frames: 3)),
          nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 1),
            Node(name: "k", kernel: Const(value: 0.0), count: 0),
            Node(name: "sum", kernel: Add),
            Node(name: "out", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "sum.a"),
                  Edge(from: "src.out", to: "sum.b", initial: [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]),
                  Edge(from: "sum.out", to: "out.in")])"#,
    );
    let (_, e) = run(&s);
    // The initial block is consumed first: (1,1,1,1,1,1) + (1,2,3,4,5,6).
    assert_eq!(values(&e, "out"), vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let p = e.probe("out").unwrap();
    assert_eq!((p.batch, p.channels, p.frames), (2, 1, 3));
}

#[test]
fn channels_of_different_shapes_share_the_arena_without_mixing() {
    // Regression for the arena addressing bug found by the property tests: rings with different
    // token lengths must not overlap, also across Parks growth (which relocates a ring).
    let s = parse(
        r#"Scene(version: 1, name: "mixed", nodes: [
            Node(name: "wide", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 4,
                 shape: (batch: 1, channels: 3, frames: 2), taps: {"out": (rate: 2)}),
            Node(name: "narrow", kernel: Const(value: -1.0), period: 1, count: 4),
            Node(name: "w_out", kernel: Probe, shape: (batch: 1, channels: 3, frames: 2)),
            Node(name: "n_out", kernel: Probe)],
          edges: [Edge(from: "wide.out", to: "w_out.in", capacity: 1),
                  Edge(from: "narrow.out", to: "n_out.in", capacity: 1)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    let w = e.probe("w_out").unwrap();
    assert_eq!(w.len(), 8);
    for i in 0..8 {
        assert_eq!(w.token(i), &[(i + 1) as f32; 6][..], "wide token {i}");
    }
    assert_eq!(values(&e, "n_out"), vec![-1.0; 4]);
    assert_eq!(
        e.report().json["channels"]["wide.out->w_out.in"]["capacity"],
        2
    );
}

#[test]
fn an_optional_probe_records_only_consumed_tokens() {
    let s = parse(
        r#"Scene(version: 1, name: "optprobe", nodes: [
            Node(name: "src", kernel: Const(value: 3.0), offset: 1, count: 1),
            Node(name: "out", kernel: Probe, period: 1, count: 3, taps: {"in": (optional: true)})],
          edges: [Edge(from: "src.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    // The probe fires at 0, 1, 2; only at 2 is src's token (written at 1, visible (1,1)) there.
    assert_eq!(stream(&e, "out"), vec![(1, 0, 3.0)]);
}
