//! Building scenes in code and writing them back as RON (SPEC §20): a builder scene equals the
//! same scene written in RON, runs to exact probe values, every example scene survives
//! `to_ron` → `parse` unchanged (spec and values digest), and builder misuse is a located
//! error from the planner, never a panic.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tapwheel::scene::{
    EdgeSpec, KernelSpec, LatencySpec, LatencyWord, NodeSpec, Policy, SceneSpec, Shape,
    TapOverride, ThermalSpec, TokenSpec,
};
use tapwheel::{Engine, Location, Outcome, RunOptions, Scene, SceneBuilder};

const THERMAL: ThermalSpec = ThermalSpec {
    capacity: 0.02,
    resistance: 35.0,
    ambient: 318.0,
    input_coeff: 0.0,
    work_power: 2.4,
};

/// Three independent graphs in one scene:
/// - a synchrony gate (`ga`, `gb`) over sources of periods 2 and 3, `ga` with thermal state;
/// - `x` through a `Symbol("link")` delay into an `Add` whose `b` is optional with hold-last;
/// - a running sum `acc` fed back to itself through an initial token and a 1-tick delay.
fn kitchen_sink() -> Scene {
    SceneBuilder::new("kitchen_sink")
        .node(
            NodeSpec::new(
                "sa",
                KernelSpec::Ramp {
                    start: 0.0,
                    step: 1.0,
                },
            )
            .period(2)
            .count(4),
        )
        .node(
            NodeSpec::new(
                "sb",
                KernelSpec::Ramp {
                    start: 100.0,
                    step: 1.0,
                },
            )
            .period(3)
            .count(4),
        )
        .node(
            NodeSpec::new("ga", KernelSpec::Copy)
                .gate("sync")
                .thermal(THERMAL),
        )
        .node(NodeSpec::new("gb", KernelSpec::Copy).gate("sync"))
        .node(NodeSpec::new("pa", KernelSpec::Probe))
        .node(NodeSpec::new("pb", KernelSpec::Probe))
        .node(
            NodeSpec::new(
                "x",
                KernelSpec::Ramp {
                    start: 1.0,
                    step: 1.0,
                },
            )
            .period(10)
            .count(4),
        )
        .node(
            NodeSpec::new("y", KernelSpec::Const { value: 100.0 })
                .offset(15)
                .count(1),
        )
        .node(NodeSpec::new("sum", KernelSpec::Add).tap(
            "b",
            TapOverride {
                optional: true,
                hold_last: true,
                default: 0.5,
                ..TapOverride::default()
            },
        ))
        .node(NodeSpec::new("out", KernelSpec::Probe))
        .node(
            NodeSpec::new(
                "r",
                KernelSpec::Ramp {
                    start: 1.0,
                    step: 1.0,
                },
            )
            .period(2)
            .count(3),
        )
        .node(NodeSpec::new("acc", KernelSpec::Add))
        .node(NodeSpec::new("q", KernelSpec::Probe))
        .connect("sa.out", "ga.in")
        .connect("sb.out", "gb.in")
        .connect("ga.out", "pa.in")
        .connect("gb.out", "pb.in")
        .edge(EdgeSpec::new("x.out", "sum.a").delay_symbol("link"))
        .connect("y.out", "sum.b")
        .edge(EdgeSpec::new("sum.out", "out.in").capacity(4))
        .connect("r.out", "acc.a")
        .edge(
            EdgeSpec::new("acc.out", "acc.b")
                .delay(1)
                .initial([10.0])
                .policy(Policy::Block),
        )
        .connect("acc.out", "q.in")
        .gate("sync", ["ga", "gb"])
        .symbol("link", 3)
        .build()
}

const KITCHEN_SINK_RON: &str = r#"
Scene(version: 1, name: "kitchen_sink",
    nodes: [
        Node(name: "sa", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2), count: Some(4)),
        Node(name: "sb", kernel: Ramp(start: 100.0, step: 1.0), period: Some(3), count: Some(4)),
        Node(name: "ga", kernel: Copy, gate: Some("sync"),
             thermal: Some((capacity: 0.02, resistance: 35.0, ambient: 318.0, input_coeff: 0.0, work_power: 2.4))),
        Node(name: "gb", kernel: Copy, gate: "sync"),
        Node(name: "pa", kernel: Probe),
        Node(name: "pb", kernel: Probe),
        Node(name: "x", kernel: Ramp(start: 1.0, step: 1.0), period: 10, count: 4),
        Node(name: "y", kernel: Const(value: 100.0), offset: 15, count: 1),
        Node(name: "sum", kernel: Add, taps: {"b": (optional: true, hold_last: true, default: 0.5)}),
        Node(name: "out", kernel: Probe),
        Node(name: "r", kernel: Ramp(start: 1.0, step: 1.0), period: 2, count: 3),
        Node(name: "acc", kernel: Add),
        Node(name: "q", kernel: Probe),
    ],
    edges: [
        Edge(from: "sa.out", to: "ga.in"), Edge(from: "sb.out", to: "gb.in"),
        Edge(from: "ga.out", to: "pa.in"), Edge(from: "gb.out", to: "pb.in"),
        Edge(from: "x.out", to: "sum.a", delay: Symbol("link")),
        Edge(from: "y.out", to: "sum.b"),
        Edge(from: "sum.out", to: "out.in", capacity: 4),
        Edge(from: "r.out", to: "acc.a"),
        Edge(from: "acc.out", to: "acc.b", delay: 1, initial: [10.0], policy: Block),
        Edge(from: "acc.out", to: "q.in"),
    ],
    gates: [Gate(name: "sync", members: ["ga", "gb"])],
    symbols: {"link": 3},
)
"#;

#[test]
fn a_built_scene_equals_the_same_scene_written_in_ron() {
    let built = kitchen_sink();
    let parsed = parse(KITCHEN_SINK_RON);
    assert_eq!(built.spec, parsed.spec);
    assert_eq!(built.origin, "<builder>");
    // The parts that have a non-trivial RON form, spelled out.
    let s = &built.spec;
    assert_eq!(s.version, 1);
    assert_eq!(s.nodes[2].thermal, Some(THERMAL));
    assert_eq!(s.nodes[2].concurrency, Some(1));
    assert_eq!(s.edges[8].initial, vec![TokenSpec::Scalar(10.0)]);
    assert_eq!(s.symbols["link"], 3);
}

#[test]
fn a_built_scene_runs_to_exact_probe_values_and_ticks() {
    let (o, e) = run(&kitchen_sink());
    assert_eq!(o, Outcome::Completed);
    // The gate: sa delivers at 0, 2, 4, 6 and sb at 0, 3, 6, 9; the pair fires together at
    // 0, 3, 6, 9 (ga waits for gb each time).
    assert_eq!(ticks(&e, "pa"), vec![0, 3, 6, 9]);
    assert_eq!(values(&e, "pa"), vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(ticks(&e, "pb"), vec![0, 3, 6, 9]);
    assert_eq!(values(&e, "pb"), vec![100.0, 101.0, 102.0, 103.0]);
    // x fires at 0, 10, 20, 30; `link` = 3 makes its tokens visible at 3, 13, 23, 33. y's 100
    // is visible from 15: 1 + 0.5 (default), 2 + 0.5, 3 + 100, 4 + 100 (held).
    assert_eq!(ticks(&e, "out"), vec![3, 13, 23, 33]);
    assert_eq!(values(&e, "out"), vec![1.5, 2.5, 103.0, 104.0]);
    // acc: 1 + 10 (the initial token) at 0, 2 + 11 at 2, 3 + 13 at 4.
    assert_eq!(ticks(&e, "q"), vec![0, 2, 4]);
    assert_eq!(values(&e, "q"), vec![11.0, 13.0, 16.0]);
}

#[test]
fn the_built_scene_survives_to_ron_and_parse() {
    let built = kitchen_sink();
    let text = built.to_ron();
    assert!(text.contains(r#"delay: Symbol("link")"#), "{text}");
    assert!(text.contains("gate: Some(\"sync\")"), "{text}");
    let back = Scene::parse(&text, "<to_ron>", PathBuf::from(".")).expect("to_ron parses");
    assert_eq!(back.spec, built.spec);
}

#[test]
fn awkward_values_survive_to_ron_bit_for_bit() {
    // Floats with no short decimal form, extremes, a negative zero, Measured latency,
    // full-block tokens, options set and unset, maps with several keys.
    let floats = [
        0.1 + 0.2,
        1.0 / 3.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        -1e300,
        123456789.125,
        std::f64::consts::PI,
    ];
    let scene = SceneBuilder::new("awkward \"quoted\" name")
        .tick_hz(44100.0 * 1.000_000_1)
        .default_shape(Shape::new(2, 3, 4))
        .default_capacity(7)
        .node(
            NodeSpec::new(
                "f",
                KernelSpec::Fir {
                    taps: floats.to_vec(),
                },
            )
            .latency_measured()
            .concurrency(None)
            .domain(2)
            .lane(tapwheel::scene::Lane::Telemetry)
            .shape(Shape::new(1, 1, 3)),
        )
        .node(NodeSpec::new(
            "c",
            KernelSpec::Custom {
                kind: "Mine".into(),
                params: [("a".to_string(), 0.7), ("b".to_string(), -2.5e-7)].into(),
            },
        ))
        .edge(
            EdgeSpec::new("c.out", "f.in")
                .initial_tokens([
                    TokenSpec::Block(vec![0.1, 0.2, 0.3]),
                    TokenSpec::Scalar(1e-7),
                ])
                .watermarks(5, 2)
                .capacity(6)
                .policy(Policy::DropNewest),
        )
        .slot(3, u64::MAX)
        .slot(0, 1)
        .symbol("z", 0)
        .symbol("a", 9)
        .until(100)
        .max_steps(1 << 40)
        .seed(u64::MAX)
        .strict(true)
        .build();
    assert_eq!(
        scene.spec.nodes[0].latency,
        LatencySpec::Word(LatencyWord::Measured)
    );
    let text = scene.to_ron();
    let back = Scene::parse(&text, "<to_ron>", PathBuf::from(".")).expect("parses");
    assert_eq!(back.spec, scene.spec);
    // Options are written `Some(..)`, so plain RON (no implicit_some) reads the text too.
    let plain: SceneSpec = ron::from_str(&text).expect("plain RON parses");
    assert_eq!(plain, scene.spec);
    let KernelSpec::Fir { taps } = &back.spec.nodes[0].kernel else {
        panic!("a Fir");
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(taps), bits(&floats));
    assert_eq!(back.spec.tick_hz.to_bits(), scene.spec.tick_hz.to_bits());
}

fn example_scenes() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "ron") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("scenes"), &mut out);
    out.sort();
    out
}

/// What a run of an example scene must reproduce: outcome, last tick, values digest and firing
/// counts (the SDF3 graphs have no probes, so their firings are what they show), plus the
/// number of tokens the probes recorded.
fn run_summary(scene: &Scene) -> (Outcome, u64, String, serde_json::Value, usize) {
    let mut e = Engine::from_scene(
        scene,
        RunOptions {
            threads: Some(1),
            ..RunOptions::default()
        },
    )
    .expect("example scene plans");
    let o = e.run();
    let tokens = e.probes().iter().map(|p| p.len()).sum();
    let r = e.report();
    (
        o,
        r.end_tick,
        r.values_digest,
        r.json["firings"].clone(),
        tokens,
    )
}

#[test]
fn every_example_scene_round_trips_through_to_ron_with_equal_spec_and_values() {
    let scenes = example_scenes();
    assert!(scenes.len() >= 30, "{} example scenes", scenes.len());
    let mut recorded = 0;
    for path in &scenes {
        let name = path.display().to_string();
        let loaded = Scene::load(path).expect("example scene loads");
        let text = loaded.to_ron();
        let back = Scene::parse(&text, &name, loaded.base_dir.clone())
            .unwrap_or_else(|e| panic!("{name}: to_ron does not parse: {e}\n{text}"));
        assert_eq!(back.spec, loaded.spec, "{name}: spec changed\n{text}");
        // Writing is a fixed point too: the text of the re-read scene is the same text.
        assert_eq!(back.to_ron(), text, "{name}");

        let start = Instant::now();
        let first = run_summary(&loaded);
        let second = run_summary(&back);
        assert_eq!(first, second, "{name}: runs differ");
        let (o1, _, _, _, tokens) = first;
        if tokens > 0 {
            recorded += 1;
        }
        eprintln!("{name}: {o1:?}, {tokens} tokens, in {:?}", start.elapsed());
    }
    // Not vacuous: most scenes record values before the cut.
    assert!(recorded >= 20, "{recorded} scenes recorded values");
}

#[test]
fn an_edge_to_an_unknown_node_is_the_ron_paths_e231_not_a_panic() {
    let built = SceneBuilder::new("m")
        .node(
            NodeSpec::new("src", KernelSpec::Const { value: 1.0 })
                .period(1)
                .count(3),
        )
        .node(NodeSpec::new("out", KernelSpec::Probe))
        .connect("src.out", "out.in")
        .connect("src.out", "ghost.in")
        .build();
    let from_ron = Scene::load(repo().join("tests/malformed/sem_unknown_node_in_edge.ron"))
        .expect("the malformed scene parses");
    assert_eq!(built.spec, from_ron.spec);
    let diagnostics = |s: &Scene| match Engine::from_scene(s, RunOptions::default()) {
        Ok(_) => panic!("an unknown node plans"),
        Err(e) => e.diagnostics().to_vec(),
    };
    let b = diagnostics(&built);
    assert_eq!(b, diagnostics(&from_ron));
    assert_eq!(b[0].code, "E231");
    assert_eq!(b[0].location, Location::ScenePath("edges[1].to".into()));
    assert!(b[0].message.contains("ghost"), "{}", b[0].message);
}

#[test]
fn other_builder_misuse_is_a_located_error_too() {
    let plan_err = |b: SceneBuilder| match Engine::from_scene(&b.build(), RunOptions::default()) {
        Ok(_) => panic!("misuse plans"),
        Err(e) => e.diagnostics()[0].clone(),
    };
    // No nodes at all.
    assert_eq!(plan_err(SceneBuilder::new("empty")).code, "E200");
    // Two nodes of one name.
    let dup = SceneBuilder::new("dup")
        .node(NodeSpec::new("p", KernelSpec::Probe))
        .node(NodeSpec::new("p", KernelSpec::Probe));
    assert_eq!(plan_err(dup).code, "E202");
    // An endpoint without a tap.
    let bad_end = SceneBuilder::new("end")
        .node(NodeSpec::new("s", KernelSpec::Const { value: 1.0 }).count(1))
        .node(NodeSpec::new("p", KernelSpec::Probe))
        .connect("s", "p.in");
    let d = plan_err(bad_end);
    assert_eq!(d.code, "E230");
    assert_eq!(d.location, Location::ScenePath("edges[0].from".into()));
}
