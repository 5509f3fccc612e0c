//! Kahn determinism (§4, §5, §18): the probe streams — every token's `(seq, visible tick,
//! value)` — and `output_digest` do not depend on the order in which nodes are declared, on the
//! schedule mode (`Kpn`, `IplsAuto`, a hand-written `Ipls`), on the thread count, or on bevy's
//! system order (`shuffle_seed`, with ambiguity detection set to error). Random DAGs with delays,
//! latencies, multi-rate taps, small capacities (back-pressure, Parks growth), fan-out and
//! multi-input nodes, and fixed scenes with feedback, gates and every example scene, are run under
//! all of these.

mod common;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings};
use common::*;
use proptest::prelude::*;
use tapwheel::scene::{CohortSpec, ScheduleSpec, StageSpec};
use tapwheel::{Engine, Outcome, RunOptions, Scene};

/// Everything a run must reproduce exactly.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    outcome: Outcome,
    streams: Vec<Vec<(u64, u64, Vec<u32>)>>,
    output_digest: String,
    values_digest: String,
    end_tick: u64,
    makespan: u64,
    firings: serde_json::Value,
}

fn observe(scene: &Scene, opts: RunOptions, shuffle: Option<u64>) -> Observed {
    let mut e = Engine::from_scene(scene, opts).expect("scene plans");
    if let Some(seed) = shuffle {
        e.set_schedule_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            shuffle_seed: Some(seed),
            ..Default::default()
        })
        .expect("no ambiguity in the step schedule");
    }
    let outcome = e.run();
    let r = e.report();
    Observed {
        outcome,
        streams: e
            .probes()
            .iter()
            .map(|p| {
                (0..p.len())
                    .map(|i| {
                        let bits = p.token(i).iter().map(|v| v.to_bits()).collect();
                        (p.ticks[i], p.seqs[i], bits)
                    })
                    .collect()
            })
            .collect(),
        output_digest: r.output_digest,
        values_digest: r.values_digest,
        end_tick: r.end_tick,
        makespan: r.makespan_ticks,
        firings: r.json["firings"].clone(),
    }
}

/// A valid hand-written IPLS: nodes dealt into `stages` stages by `pick`, cohorts by kind.
fn hand_ipls(scene: &Scene, stages: usize, pick: impl Fn(usize) -> usize) -> ScheduleSpec {
    let mut out: Vec<StageSpec> = (0..stages).map(|_| StageSpec { cohorts: vec![] }).collect();
    for (i, n) in scene.spec.nodes.iter().enumerate() {
        let st = &mut out[pick(i) % stages];
        let kind = n.kernel.kind().to_string();
        match st.cohorts.iter_mut().find(|c| c.kind == kind) {
            Some(c) => c.nodes.push(n.name.clone()),
            None => st.cohorts.push(CohortSpec {
                kind,
                nodes: vec![n.name.clone()],
            }),
        }
    }
    out.retain(|s| !s.cohorts.is_empty());
    ScheduleSpec::Ipls { stages: out }
}

/// Runs a scene under every schedule mode, thread count and shuffle seed; all must agree with
/// the `Kpn` run. Returns the reference observation.
fn assert_schedule_independent(scene: &Scene, salt: u64) -> Observed {
    let with = |schedule: Option<ScheduleSpec>, threads: Option<usize>| RunOptions {
        schedule,
        threads,
        ..RunOptions::default()
    };
    let reference = observe(scene, with(Some(ScheduleSpec::Kpn), None), None);
    let n = scene.spec.nodes.len();
    let reversed = hand_ipls(scene, n, |i| n - 1 - i);
    let dealt = hand_ipls(scene, 3, |i| (i as u64 ^ salt) as usize);
    let variants: Vec<(String, RunOptions, Option<u64>)> = vec![
        (
            "ipls-auto".into(),
            with(Some(ScheduleSpec::IplsAuto), None),
            None,
        ),
        ("ipls reversed".into(), with(Some(reversed), None), None),
        ("ipls dealt".into(), with(Some(dealt), None), None),
        (
            "kpn threads 1".into(),
            with(Some(ScheduleSpec::Kpn), Some(1)),
            None,
        ),
        (
            "ipls-auto threads 1".into(),
            with(Some(ScheduleSpec::IplsAuto), Some(1)),
            None,
        ),
        (
            "ipls-auto threads 2".into(),
            with(Some(ScheduleSpec::IplsAuto), Some(2)),
            None,
        ),
        (
            "kpn shuffle 1".into(),
            with(Some(ScheduleSpec::Kpn), None),
            Some(1),
        ),
        (
            "kpn shuffle 7".into(),
            with(Some(ScheduleSpec::Kpn), None),
            Some(7),
        ),
        (
            "ipls-auto shuffle 42".into(),
            with(Some(ScheduleSpec::IplsAuto), None),
            Some(42),
        ),
        (
            "ipls-auto shuffle 1000".into(),
            with(Some(ScheduleSpec::IplsAuto), Some(2)),
            Some(1000),
        ),
    ];
    for (label, opts, shuffle) in variants {
        let got = observe(scene, opts, shuffle);
        assert_eq!(
            got, reference,
            "{}: {label} differs from kpn",
            scene.spec.name
        );
    }
    reference
}

#[test]
fn example_scenes_do_not_depend_on_schedule_threads_or_system_order() {
    for name in [
        "hello",
        "delay_line",
        "zero_delay_chain",
        "back_pressure",
        "fanout_throttle",
        "hamming",
        "parks_growth",
        "parks_fixed",
        "strict_quiescent",
        "filter_chain",
        "gate_sync",
        "ipls_bank",
        "csp_pipeline",
        "slot_select",
        "telemetry_shed",
        "pto_vector_diamond",
        "pto2_vector_diamond",
        "pto_matmul_diamond",
    ] {
        let o = assert_schedule_independent(&scene(name), 5);
        // parks_fixed and strict_quiescent end before their probes consume; the rest carry tokens.
        assert!(
            ["parks_fixed", "strict_quiescent"].contains(&name)
                || o.streams.iter().any(|s| !s.is_empty()),
            "{name}: no tokens"
        );
    }
}

#[test]
fn feedback_multirate_latency_and_gate_scenes_do_not_depend_on_schedule() {
    // Feedback with an initial token (zero-time loop), a multi-rate Actor chain with latencies
    // and unlimited concurrency, fan-out, and a gate whose producer also feeds an ungated node.
    let scenes = [
        r#"Scene(version: 1, name: "accumulate",
            nodes: [Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(2), count: Some(6)),
                    Node(name: "acc", kernel: Add), Node(name: "d", kernel: Gain(gain: 0.5), latency: 1),
                    Node(name: "p", kernel: Probe), Node(name: "q", kernel: Probe)],
            edges: [Edge(from: "src.out", to: "acc.a"), Edge(from: "acc.out", to: "acc.b", initial: [0.0]),
                    Edge(from: "acc.out", to: "p.in"), Edge(from: "acc.out", to: "d.in"),
                    Edge(from: "d.out", to: "q.in", delay: 2)])"#,
        r#"Scene(version: 1, name: "multirate",
            nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1), count: Some(12),
                         taps: {"out": (rate: 3)}),
                    Node(name: "down", kernel: Actor, latency: 2, concurrency: None,
                         taps: {"i": (dir: In, rate: 2), "o": (dir: Out, rate: 1)}),
                    Node(name: "up", kernel: Actor, latency: 1,
                         taps: {"i": (dir: In, rate: 1), "o": (dir: Out, rate: 4), "o2": (dir: Out, rate: 1)}),
                    Node(name: "g", kernel: Gain(gain: 3.0), taps: {"in": (rate: 2), "out": (rate: 2)}),
                    Node(name: "p1", kernel: Probe), Node(name: "p2", kernel: Probe), Node(name: "p3", kernel: Probe)],
            edges: [Edge(from: "src.out", to: "down.i", capacity: 3), Edge(from: "down.o", to: "up.i", delay: 1),
                    Edge(from: "up.o", to: "g.in", capacity: 4), Edge(from: "g.out", to: "p1.in"),
                    Edge(from: "up.o2", to: "p2.in"), Edge(from: "src.out", to: "p3.in", capacity: 3)])"#,
    ];
    for text in scenes {
        let o = assert_schedule_independent(&parse(text), 11);
        assert_eq!(o.outcome, Outcome::Completed);
    }
    for text in [GATE_TWO_RATES, GATE_FANOUT] {
        assert_schedule_independent(&parse(text), 3);
    }
}

const GATE_TWO_RATES: &str = r#"Scene(version: 1, name: "two_rates",
    nodes: [
        Node(name: "sa", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2), count: Some(4)),
        Node(name: "sb", kernel: Ramp(start: 100.0, step: 1.0), period: Some(3), count: Some(4)),
        Node(name: "ga", kernel: Copy, latency: 1), Node(name: "gb", kernel: Copy),
        Node(name: "pa", kernel: Probe), Node(name: "pb", kernel: Probe),
    ],
    edges: [Edge(from: "sa.out", to: "ga.in"), Edge(from: "sb.out", to: "gb.in"),
            Edge(from: "ga.out", to: "pa.in"), Edge(from: "gb.out", to: "pb.in")],
    gates: [Gate(name: "sync", members: ["ga", "gb"])],
)"#;

const GATE_FANOUT: &str = r#"Scene(version: 1, name: "gate_fanout",
    nodes: [
        Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1), count: Some(5)),
        Node(name: "slow", kernel: Ramp(start: 10.0, step: 10.0), period: Some(4), count: Some(3)),
        Node(name: "g1", kernel: Copy, gate: Some("pair")), Node(name: "g2", kernel: Copy, gate: Some("pair")),
        Node(name: "u", kernel: Copy),
        Node(name: "p1", kernel: Probe), Node(name: "p2", kernel: Probe), Node(name: "pu", kernel: Probe),
    ],
    edges: [Edge(from: "src.out", to: "g1.in"), Edge(from: "src.out", to: "u.in"),
            Edge(from: "slow.out", to: "g2.in"), Edge(from: "g1.out", to: "p1.in"),
            Edge(from: "g2.out", to: "p2.in"), Edge(from: "u.out", to: "pu.in")],
    gates: [Gate(name: "pair", members: [])],
    memory: Fixed,
)"#;

#[derive(Debug, Clone)]
struct Graph {
    /// For node i ≥ 1: (kind, inputs from earlier nodes, latency).
    nodes: Vec<(u8, Vec<usize>, u64)>,
    /// Per edge: (delay, capacity).
    edge_params: Vec<(u64, u32)>,
}

fn graph() -> impl Strategy<Value = Graph> {
    (2usize..9)
        .prop_flat_map(|n| {
            let nodes = (1..n)
                .map(|i| (0u8..4, prop::collection::vec(0..i, 1..=2), 0u64..3))
                .collect::<Vec<_>>();
            (nodes, prop::collection::vec((0u64..3, 1u32..3), 20))
        })
        .prop_map(|(nodes, edge_params)| Graph {
            nodes: nodes
                .into_iter()
                .map(|(k, mut ins, l)| {
                    ins.truncate(if k == 2 { 2 } else { 1 });
                    if k == 2 && ins.len() < 2 {
                        ins.push(ins[0]);
                    }
                    (k, ins, l)
                })
                .collect(),
            edge_params,
        })
}

/// Scene text: node 0 is a Ramp source; every node also feeds a probe `p{i}`.
fn scene_text(g: &Graph, order: &[usize]) -> String {
    let mut decl = vec![
        r#"Node(name: "n0", kernel: Ramp(start: 1.0, step: 1.0), period: 1, count: 6, taps: {"out": (rate: 2)})"#.to_string(),
    ];
    let mut edges = Vec::new();
    let mut e = 0;
    let param = |e: &mut usize| {
        let p = g.edge_params[*e % g.edge_params.len()];
        *e += 1;
        p
    };
    for (i, (kind, ins, lat)) in g.nodes.iter().enumerate() {
        let i = i + 1;
        let (kernel, taps): (&str, Vec<&str>) = match kind {
            0 => ("Gain(gain: 2.0)", vec!["in"]),
            1 => ("Offset(value: -1.0)", vec!["in"]),
            2 => ("Add", vec!["a", "b"]),
            // Multi-rate: consumes 2 tokens, produces 1 (its firing index) per firing.
            _ => (
                "Actor, taps: {\"in\": (dir: In, rate: 2), \"out\": (dir: Out, rate: 1)}",
                vec!["in"],
            ),
        };
        // Concurrency varies with the node so that re-checks within a step are exercised.
        let conc = ["Some(1)", "Some(2)", "None"][i % 3];
        decl.push(format!(
            r#"Node(name: "n{i}", kernel: {kernel}, latency: {lat}, concurrency: {conc})"#
        ));
        for (src, tap) in ins.iter().zip(taps) {
            let (d, c) = param(&mut e);
            edges.push(format!(
                r#"Edge(from: "n{src}.out", to: "n{i}.{tap}", delay: {d}, capacity: {c})"#
            ));
        }
    }
    for i in 0..=g.nodes.len() {
        decl.push(format!(r#"Node(name: "p{i}", kernel: Probe)"#));
        edges.push(format!(
            r#"Edge(from: "n{i}.out", to: "p{i}.in", capacity: 1)"#
        ));
    }
    let mut nodes: Vec<String> = order.iter().map(|&k| decl[k].clone()).collect();
    nodes.extend(decl.iter().skip(order.len()).cloned());
    format!(
        "Scene(version: 1, name: \"dag\", nodes: [{}], edges: [{}], memory: Parks(max_capacity: 64))",
        nodes.join(",\n"),
        edges.join(",\n")
    )
}

/// Each probe's `(tick, seq, value)` stream.
type Streams = Vec<Vec<(u64, u64, f32)>>;

fn streams(text: &str, probes: usize) -> (Streams, String, String) {
    let (o, e) = run(&parse(text));
    assert!(matches!(o, tapwheel::Outcome::Completed), "{o:?}");
    let s = (0..probes).map(|i| stream(&e, &format!("p{i}"))).collect();
    let r = e.report();
    (s, r.output_digest, r.values_digest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn probe_streams_do_not_depend_on_node_order(g in graph(), seed in any::<u64>()) {
        let n = g.nodes.len() + 1;
        let identity: Vec<usize> = (0..n).collect();
        let mut perm = identity.clone();
        // A deterministic shuffle from the seed (Fisher–Yates with SplitMix64).
        let mut x = seed;
        for i in (1..n).rev() {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            perm.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let a = streams(&scene_text(&g, &identity), n);
        let b = streams(&scene_text(&g, &perm), n);
        // Every schedule mode, thread count and system-order shuffle agrees as well.
        let reference = assert_schedule_independent(&parse(&scene_text(&g, &perm)), seed);
        prop_assert_eq!(&reference.output_digest, &b.1);
        prop_assert_eq!(&a.0, &b.0);
        prop_assert_eq!(a.1, b.1);
        prop_assert_eq!(a.2, b.2);
        // The source's twelve tokens reach its probe.
        prop_assert_eq!(a.0[0].len(), 12);
    }
}

#[test]
fn contended_dispatch_does_not_depend_on_threads_or_system_order() {
    // Under contention for dispatch resources the schedule mode decides who goes first (§4), so
    // only threads and system order must not matter — within each mode.
    for name in ["task_window"] {
        let s = scene(name);
        for mode in [ScheduleSpec::Kpn, ScheduleSpec::IplsAuto] {
            let with = |threads| RunOptions {
                schedule: Some(mode.clone()),
                threads,
                ..RunOptions::default()
            };
            let reference = observe(&s, with(None), None);
            assert_eq!(reference.outcome, Outcome::Completed);
            for (threads, shuffle) in [
                (Some(1), None),
                (Some(2), None),
                (None, Some(3)),
                (Some(2), Some(99)),
            ] {
                assert_eq!(
                    observe(&s, with(threads), shuffle),
                    reference,
                    "{name} {mode:?}"
                );
            }
        }
    }
}
