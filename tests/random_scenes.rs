//! Random valid scenes (issue 11, SPEC §18): proptest builds DAGs of sources, DSP and
//! elementwise kernels with random delays, capacities, latencies and concurrency, and checks
//! that every run ends normally without a panic and is deterministic — the same digests twice,
//! with 1 and 2 threads, under `Kpn` and `IplsAuto`, when paused and when snapshotted and
//! restored at a random tick.

use proptest::prelude::*;
use tapwheel::snapshot::Snapshot;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

#[derive(Debug, Clone)]
struct Source {
    kernel: &'static str,
    period: u64,
    count: u64,
    offset: u64,
}

#[derive(Debug, Clone)]
struct Inner {
    kernel: &'static str,
    /// Indices into the nodes before this one (sources first).
    inputs: Vec<usize>,
    latency: u64,
    concurrency: Option<u32>,
}

#[derive(Debug, Clone)]
struct Wire {
    delay: u64,
    capacity: u32,
}

fn source() -> impl Strategy<Value = Source> {
    (
        prop::sample::select(vec![
            "Ramp(start: 1.0, step: 0.5)",
            "Sine(freq_hz: 50.0, amp: 0.8)",
            "Const(value: -2.0)",
            "Noise(seed: 7, amp: 1.0)",
            "Square(freq_hz: 25.0)",
        ]),
        1u64..8,
        1u64..16,
        0u64..5,
    )
        .prop_map(|(kernel, period, count, offset)| Source {
            kernel,
            period,
            count,
            offset,
        })
}

fn inner(index: usize) -> impl Strategy<Value = Inner> {
    (
        prop::sample::select(vec![
            ("Gain(gain: 1.5)", 1),
            ("Offset(value: 0.25)", 1),
            ("OnePole(coeff: 0.3)", 1),
            ("Biquad(mode: Lowpass, cutoff_hz: 90.0)", 1),
            ("Map(op: Tanh)", 1),
            ("Copy", 1),
            ("Add", 2),
            ("Max", 2),
        ]),
        prop::collection::vec(0..index, 2),
        0u64..4,
        prop::option::of(1u32..3),
    )
        .prop_map(|((kernel, arity), inputs, latency, concurrency)| Inner {
            kernel,
            inputs: inputs[..arity].to_vec(),
            latency,
            concurrency,
        })
}

fn wire() -> impl Strategy<Value = Wire> {
    (0u64..6, 1u32..4).prop_map(|(delay, capacity)| Wire { delay, capacity })
}

/// A scene: sources, then inner nodes reading earlier nodes, then a probe for every node whose
/// output nobody reads (and one reading the last node), all edges with random delays.
fn scene_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(source(), 1..4),
        0usize..7,
        1u32..4,
        prop::collection::vec(wire(), 32),
    )
        .prop_flat_map(|(sources, inners, frames, wires)| {
            let first = sources.len();
            let strategies: Vec<_> = (0..inners).map(|k| inner(first + k)).collect();
            (Just(sources), strategies, Just(frames), Just(wires))
        })
        .prop_map(|(sources, inners, frames, wires)| {
            let mut nodes = Vec::new();
            let mut edges = Vec::new();
            let mut read = vec![false; sources.len() + inners.len()];
            for (i, s) in sources.iter().enumerate() {
                nodes.push(format!(
                    "Node(name: \"n{i}\", kernel: {}, period: Some({}), count: Some({}), offset: {})",
                    s.kernel, s.period, s.count, s.offset
                ));
            }
            let mut w = wires.iter().cycle();
            for (k, n) in inners.iter().enumerate() {
                let i = sources.len() + k;
                let concurrency = n
                    .concurrency
                    .map_or("None".to_string(), |c| format!("Some({c})"));
                nodes.push(format!(
                    "Node(name: \"n{i}\", kernel: {}, latency: {}, concurrency: {concurrency})",
                    n.kernel, n.latency
                ));
                let taps: &[&str] = if n.inputs.len() == 2 { &["a", "b"] } else { &["in"] };
                for (tap, &from) in taps.iter().zip(&n.inputs) {
                    let wire = w.next().cloned().unwrap_or(Wire { delay: 0, capacity: 1 });
                    read[from] = true;
                    edges.push(format!(
                        "Edge(from: \"n{from}.out\", to: \"n{i}.{tap}\", delay: {}, capacity: {})",
                        wire.delay, wire.capacity
                    ));
                }
            }
            for (i, was_read) in read.iter().enumerate() {
                if !was_read || i + 1 == read.len() {
                    nodes.push(format!("Node(name: \"p{i}\", kernel: Probe)"));
                    let wire = w.next().cloned().unwrap_or(Wire { delay: 0, capacity: 1 });
                    edges.push(format!(
                        "Edge(from: \"n{i}.out\", to: \"p{i}.in\", delay: {}, capacity: {})",
                        wire.delay, wire.capacity
                    ));
                }
            }
            format!(
                "Scene(version: 1, name: \"random\", tick_hz: 1000.0,\n  defaults: (shape: (batch: 1, channels: 1, frames: {frames}), capacity: 2),\n  nodes: [\n    {}\n  ],\n  edges: [\n    {}\n  ])",
                nodes.join(",\n    "),
                edges.join(",\n    ")
            )
        })
}

fn run(scene: &Scene, opts: RunOptions) -> Engine {
    let mut e = Engine::from_scene(scene, opts).expect("a generated scene is valid");
    e.run();
    e
}

fn bounded() -> RunOptions {
    RunOptions {
        max_steps: Some(100_000),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_scenes_run_and_are_deterministic(text in scene_text(), cut in 0u64..60) {
        let scene = Scene::parse(&text, "<random>", ".".into()).expect("parses");
        let first = run(&scene, bounded());
        let outcome = first.outcome();
        prop_assert!(
            matches!(outcome, Some(Outcome::Completed) | Some(Outcome::Quiescent)),
            "{outcome:?} for\n{text}"
        );
        let reference = first.report();
        prop_assert!(reference.steps > 0);
        prop_assert!(first.probes().iter().any(|p| !p.is_empty()), "no token reached a probe:\n{text}");
        // Twice, and with a two-thread pool.
        prop_assert_eq!(&run(&scene, bounded()).report().output_digest, &reference.output_digest);
        let threads = RunOptions { threads: Some(2), ..bounded() };
        prop_assert_eq!(&run(&scene, threads).report().output_digest, &reference.output_digest);
        // The same values under an IPLS schedule.
        let ipls = RunOptions { schedule: Some(tapwheel::scene::ScheduleSpec::IplsAuto), ..bounded() };
        prop_assert_eq!(&run(&scene, ipls).report().values_digest, &reference.values_digest);
        // Paused at `cut`, and snapshotted there and restored: the same run.
        let mut paused = Engine::from_scene(&scene, bounded()).expect("valid");
        paused.run_until(cut);
        let bytes = paused.snapshot().expect("snapshot").to_bytes();
        paused.run();
        prop_assert_eq!(&paused.report().output_digest, &reference.output_digest);
        let snap = Snapshot::from_bytes(&bytes).expect("reads back");
        let mut restored = Engine::restore(&snap).expect("restores");
        restored.run();
        let got = restored.report();
        prop_assert_eq!(&got.output_digest, &reference.output_digest);
        prop_assert_eq!(got.end_tick, reference.end_tick);
        prop_assert_eq!(&got.json["firings"], &reference.json["firings"]);
    }
}
