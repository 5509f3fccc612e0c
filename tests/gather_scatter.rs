//! SPEC §8 gather/scatter adapters, end to end: exact token values and sequence numbers.

mod common;
use common::*;
use tapwheel::Outcome;

/// Two ramps concatenated along channels, summed by SumFanIn, and split back.
#[test]
fn concat_channels_stacks_rows_in_edge_order() {
    let s = parse(
        r#"Scene(version: 1, name: "cat",
        nodes: [
            Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(3)),
            Node(name: "b", kernel: Ramp(start: 100.0, step: 100.0), period: Some(1), count: Some(3)),
            Node(name: "out", kernel: Probe, shape: Some((batch: 1, channels: 2, frames: 1)),
                 taps: {"in": (adapter: Some(ConcatChannels))}),
        ],
        edges: [Edge(from: "a.out", to: "out.in"), Edge(from: "b.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "out"), vec![1.0, 100.0, 2.0, 200.0, 3.0, 300.0]);
    assert_eq!(e.probe("out").unwrap().seqs, vec![0, 1, 2]);
    assert_eq!(ticks(&e, "out"), vec![0, 1, 2]);
}

#[test]
fn sum_fan_in_adds_every_channel() {
    let s = parse(
        r#"Scene(version: 1, name: "sum",
        nodes: [
            Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(3)),
            Node(name: "b", kernel: Const(value: 0.5), period: Some(1), count: Some(3)),
            Node(name: "c", kernel: Const(value: 10.0), period: Some(1), count: Some(3)),
            Node(name: "g", kernel: Gain(gain: 2.0), taps: {"in": (adapter: Some(SumFanIn))}),
            Node(name: "out", kernel: Probe),
        ],
        edges: [Edge(from: "a.out", to: "g.in"), Edge(from: "b.out", to: "g.in"),
                Edge(from: "c.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "out"), vec![23.0, 25.0, 27.0]);
}

/// A gather whose channels come over paths of different depth: the short path's channel closes
/// (its producer finished) while the last tokens of the long path are still a few zero-delay
/// hops (deltas) away. The tap must wait for them — an open channel that is behind does not end
/// it — under `Kpn` as under `IplsAuto` (which runs the whole path in one step). Before the fix
/// the `Kpn` run finished the node and discarded the last tokens (with `count: 1`, all of them).
#[test]
fn a_gather_is_not_ended_by_a_closed_channel_while_a_longer_path_delivers() {
    for (count, rate) in [(1, 1), (6, 1), (6, 2)] {
        let text = r#"Scene(version: 1, name: "depth",
            nodes: [
                Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(COUNT)),
                Node(name: "a", kernel: Gain(gain: 1.0)),
                Node(name: "b1", kernel: Gain(gain: 10.0)),
                Node(name: "b2", kernel: Gain(gain: 10.0)),
                Node(name: "b3", kernel: Gain(gain: 1.0)),
                Node(name: "fan", kernel: Copy,
                     taps: {"in": (adapter: Some(SumFanIn), rate: RATE), "out": (rate: RATE)}),
                Node(name: "out", kernel: Probe),
            ],
            edges: [Edge(from: "src.out", to: "a.in"), Edge(from: "src.out", to: "b1.in"),
                    Edge(from: "b1.out", to: "b2.in"), Edge(from: "b2.out", to: "b3.in"),
                    Edge(from: "a.out", to: "fan.in"), Edge(from: "b3.out", to: "fan.in"),
                    Edge(from: "fan.out", to: "out.in")],
            defaults: (shape: (batch: 1, channels: 1, frames: 1), capacity: 4))"#
            .replace("COUNT", &count.to_string())
            .replace("RATE", &rate.to_string());
        let s = parse(&text);
        // Token k is (k + 1) + 100·(k + 1).
        let want: Vec<f32> = (1..=count).map(|k| 101.0 * k as f32).collect();
        for schedule in [None, Some(tapwheel::scene::ScheduleSpec::IplsAuto)] {
            let mut e = tapwheel::Engine::from_scene(
                &s,
                tapwheel::RunOptions {
                    schedule: schedule.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(e.run(), Outcome::Completed);
            assert_eq!(
                values(&e, "out"),
                want,
                "count {count} rate {rate} {schedule:?}"
            );
            let r = e.report().json;
            assert_eq!(r["channels"]["a.out->fan.in"]["discarded"], 0);
            assert_eq!(r["channels"]["b3.out->fan.in"]["discarded"], 0);
        }
    }
}

#[test]
fn a_gather_waits_for_its_slowest_channel() {
    // `b` arrives 3 ticks late: the gather fires when both tokens are visible.
    let s = parse(
        r#"Scene(version: 1, name: "late",
        nodes: [
            Node(name: "a", kernel: Const(value: 1.0), count: Some(1)),
            Node(name: "b", kernel: Const(value: 2.0), count: Some(1)),
            Node(name: "out", kernel: Probe, taps: {"in": (adapter: Some(SumFanIn))}),
        ],
        edges: [Edge(from: "a.out", to: "out.in"), Edge(from: "b.out", to: "out.in", delay: 3)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(stream(&e, "out"), vec![(3, 0, 3.0)]);
}

#[test]
fn broadcast_expands_size_one_axes() {
    let s = parse(
        r#"Scene(version: 1, name: "bc",
        nodes: [
            Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(2),
                 shape: Some((batch: 1, channels: 1, frames: 2))),
            Node(name: "out", kernel: Probe, shape: Some((batch: 2, channels: 2, frames: 2)),
                 taps: {"in": (adapter: Some(Broadcast))}),
        ],
        edges: [Edge(from: "a.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    let v = values(&e, "out");
    assert_eq!(v.len(), 16);
    assert_eq!(&v[..8], &[1.0; 8]);
    assert_eq!(&v[8..], &[2.0; 8]);
}

#[test]
fn split_channels_scatters_parts_in_edge_order() {
    // A (1, 4, 1) ramp token split into two (1, 2, 1) parts; part 1 goes through a gain.
    let s = parse(
        r#"Scene(version: 1, name: "split",
        nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(2),
                 shape: Some((batch: 1, channels: 4, frames: 1)),
                 taps: {"out": (adapter: Some(SplitChannels(2)))}),
            Node(name: "g", kernel: Gain(gain: -1.0)),
            Node(name: "lo", kernel: Probe),
            Node(name: "hi", kernel: Probe),
        ],
        defaults: (shape: (batch: 1, channels: 2, frames: 1)),
        edges: [Edge(from: "src.out", to: "lo.in"), Edge(from: "src.out", to: "g.in"),
                Edge(from: "g.out", to: "hi.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "lo"), vec![1.0, 1.0, 2.0, 2.0]);
    assert_eq!(values(&e, "hi"), vec![-1.0, -1.0, -2.0, -2.0]);
}

#[test]
fn split_and_concat_batch_round_trip() {
    let s = parse(
        r#"Scene(version: 1, name: "batch",
        nodes: [
            Node(name: "src", kernel: Noise(seed: 7, amp: 1.0), period: Some(1), count: Some(2),
                 shape: Some((batch: 4, channels: 1, frames: 3)),
                 taps: {"out": (adapter: Some(SplitBatch(2)))}),
            Node(name: "whole", kernel: Noise(seed: 7, amp: 1.0), period: Some(1), count: Some(2),
                 shape: Some((batch: 4, channels: 1, frames: 3))),
            Node(name: "join", kernel: Copy, shape: Some((batch: 4, channels: 1, frames: 3)),
                 taps: {"in": (adapter: Some(ConcatBatch))}),
            Node(name: "out", kernel: Probe, shape: Some((batch: 4, channels: 1, frames: 3))),
            Node(name: "ref", kernel: Probe, shape: Some((batch: 4, channels: 1, frames: 3))),
        ],
        defaults: (shape: (batch: 2, channels: 1, frames: 3)),
        edges: [Edge(from: "src.out", to: "join.in"), Edge(from: "src.out", to: "join.in"),
                Edge(from: "join.out", to: "out.in"), Edge(from: "whole.out", to: "ref.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    let (got, want) = (values(&e, "out"), values(&e, "ref"));
    assert_eq!(got.len(), 24);
    assert_eq!(
        got, want,
        "split then concatenated in edge order restores the token"
    );
}
