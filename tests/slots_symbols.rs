//! Slots and symbols (SPEC §11): `Select` routing by a slot set from the scene, `RunOptions` or
//! `--slot`; the end-of-tick write rule (a `SlotLoad` write is seen from the next tick, never in
//! its own tick, at any delta); saturating conversion; `Symbol` delays from the scene,
//! `RunOptions` or `--symbol`, resolved at run start without re-planning (same `plan_digest`);
//! the located errors; and identical results under `Kpn` and `IplsAuto`.

mod common;
use common::*;
use std::collections::BTreeMap;
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Outcome, Plan, RunOptions, Scene};

fn opts_slots(slots: &[(u32, u64)]) -> RunOptions {
    RunOptions {
        slots: slots.iter().copied().collect(),
        ..RunOptions::default()
    }
}

fn opts_symbols(symbols: &[(&str, u64)]) -> RunOptions {
    RunOptions {
        symbols: symbols.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..RunOptions::default()
    }
}

/// Runs `scene` with `opts` under `Kpn` and under `IplsAuto`; asserts that the probe streams
/// (digests) and the final slot table are identical, and returns the `Kpn` engine.
fn run_both(scene: &Scene, opts: RunOptions) -> Engine {
    let run = |schedule: ScheduleSpec| {
        let mut e = Engine::from_scene(
            scene,
            RunOptions {
                schedule: Some(schedule),
                ..opts.clone()
            },
        )
        .expect("scene plans");
        e.run();
        e
    };
    let kpn = run(ScheduleSpec::Kpn);
    let ipls = run(ScheduleSpec::IplsAuto);
    let (rk, ri) = (kpn.report(), ipls.report());
    assert_eq!(kpn.outcome(), ipls.outcome());
    assert_eq!(rk.output_digest, ri.output_digest, "Kpn vs IplsAuto");
    assert_eq!(rk.makespan_ticks, ri.makespan_ticks, "Kpn vs IplsAuto");
    assert_eq!(rk.json["slots"], ri.json["slots"], "Kpn vs IplsAuto");
    for n in 0..256 {
        assert_eq!(kpn.slot(n), ipls.slot(n), "slot {n}: Kpn vs IplsAuto");
    }
    kpn
}

/// `data` (1, 2, 3 at ticks 0, 1, 2) through `Select(slot: 5)`.
const ROUTE: &str = r#"Scene(version: 1, name: "route",
    nodes: [
        Node(name: "data", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(3)),
        Node(name: "sel", kernel: Select(slot: 5)),
        Node(name: "hi", kernel: Probe),
        Node(name: "lo", kernel: Probe),
    ],
    edges: [
        Edge(from: "data.out", to: "sel.in"),
        Edge(from: "sel.then", to: "hi.in"),
        Edge(from: "sel.else", to: "lo.in"),
    ],
    SLOTS
)"#;

fn route(slots: &str) -> Scene {
    parse(&ROUTE.replace("SLOTS", slots))
}

const ALL: [(u64, u64, f32); 3] = [(0, 0, 1.0), (1, 1, 2.0), (2, 2, 3.0)];

#[test]
fn select_routes_by_a_slot_set_in_the_scene() {
    let e = run_both(&route("slots: {5: 1},"), RunOptions::default());
    assert_eq!(e.outcome(), Some(Outcome::Completed));
    assert_eq!(stream(&e, "hi"), ALL.to_vec());
    assert!(stream(&e, "lo").is_empty());
    assert_eq!(e.slot(5), Some(1));
    assert_eq!(e.report().json["slots"], serde_json::json!({"5": 1}));
    // Without the slot (every slot starts at 0) everything takes `else`.
    let e = run_both(&route(""), RunOptions::default());
    assert_eq!(stream(&e, "lo"), ALL.to_vec());
    assert!(stream(&e, "hi").is_empty());
    assert_eq!(e.report().json["slots"], serde_json::json!({}));
    // Any non-zero value means `then`.
    let e = run_both(
        &route("slots: {5: 0xffffffffffffffff},"),
        RunOptions::default(),
    );
    assert_eq!(stream(&e, "hi"), ALL.to_vec());
}

#[test]
fn select_routes_by_a_slot_set_through_run_options_over_the_scene() {
    let e = run_both(&route(""), opts_slots(&[(5, 7)]));
    assert_eq!(stream(&e, "hi"), ALL.to_vec());
    assert_eq!(e.slot(5), Some(7));
    // RunOptions override the scene's value (precedence scene < RunOptions).
    let e = run_both(&route("slots: {5: 1},"), opts_slots(&[(5, 0)]));
    assert_eq!(stream(&e, "lo"), ALL.to_vec());
    assert!(stream(&e, "hi").is_empty());
    // Another slot leaves slot 5 as the scene set it.
    let e = run_both(&route("slots: {5: 1},"), opts_slots(&[(6, 0)]));
    assert_eq!(stream(&e, "hi"), ALL.to_vec());
    assert_eq!(e.slot(256), None);
}

#[test]
fn select_routes_by_a_slot_set_on_the_command_line() {
    let dir = out_dir("slots_cli_slot");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("route.ron");
    std::fs::write(&scene, ROUTE.replace("SLOTS", "slots: {5: 0},")).unwrap();
    let out = dir.join("run");
    let (code, stdout, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--slot",
        "5=1",
        "--slot",
        "9=0x10",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let hi = std::fs::read_to_string(out.join("probes/hi.csv")).unwrap();
    assert_eq!(
        hi,
        "tick,seq,batch,channel,frame,value\n0,0,0,0,0,1\n1,1,0,0,0,2\n2,2,0,0,0,3\n"
    );
    let lo = std::fs::read_to_string(out.join("probes/lo.csv")).unwrap();
    assert_eq!(lo, "tick,seq,batch,channel,frame,value\n");
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["slots"], serde_json::json!({"5": 1, "9": 16}));
    // The same run under ipls-auto gives the same probes.
    let out2 = dir.join("run_ipls");
    let (code, _, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--slot",
        "5=1",
        "--schedule",
        "ipls-auto",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out2.join("probes/hi.csv")).unwrap(),
        hi
    );
    assert_eq!(
        read_json(&out2.join("report.json"))["output_digest"],
        r["output_digest"]
    );
}

/// `ctl` fires once at tick 1 (value 1.0) into `load` (SlotLoad into slot 0); `data` (10, 11,
/// 12, 13 at ticks 0..3) reaches `sel` through two zero-delay copies, so `sel` fires at delta 3
/// of each tick, after `load` fired at delta 1 of tick 1.
const SAME_TICK: &str = r#"Scene(version: 1, name: "same_tick",
    nodes: [
        Node(name: "ctl", kernel: Const(value: 1.0), offset: 1, count: Some(1)),
        Node(name: "load", kernel: SlotLoad(slot: 0, index: 0), latency: LOAD_LATENCY),
        Node(name: "data", kernel: Ramp(start: 10.0, step: 1.0), period: Some(1), count: Some(COUNT)),
        Node(name: "c1", kernel: Copy),
        Node(name: "c2", kernel: Copy),
        Node(name: "sel", kernel: Select(slot: 0)),
        Node(name: "hi", kernel: Probe),
        Node(name: "lo", kernel: Probe),
    ],
    edges: [
        Edge(from: "ctl.out", to: "load.in"),
        Edge(from: "data.out", to: "c1.in"),
        Edge(from: "c1.out", to: "c2.in"),
        Edge(from: "c2.out", to: "sel.in"),
        Edge(from: "sel.then", to: "hi.in"),
        Edge(from: "sel.else", to: "lo.in"),
    ],
)"#;

fn same_tick(latency: u64, count: u64) -> Scene {
    parse(
        &SAME_TICK
            .replace("LOAD_LATENCY", &latency.to_string())
            .replace("COUNT", &count.to_string()),
    )
}

#[test]
fn a_slot_write_is_not_seen_in_its_own_tick_and_is_seen_from_the_next() {
    // Tick 1: load writes slot 0 = 1 at (1, 1); sel fires at (1, 3) and still reads 0, so 11
    // goes to `else`. From tick 2 sel reads 1: 12 and 13 go to `then`.
    let e = run_both(&same_tick(0, 4), RunOptions::default());
    assert_eq!(e.outcome(), Some(Outcome::Completed));
    assert_eq!(stream(&e, "lo"), vec![(0, 0, 10.0), (1, 1, 11.0)]);
    assert_eq!(stream(&e, "hi"), vec![(2, 0, 12.0), (3, 1, 13.0)]);
    assert_eq!(e.slot(0), Some(1));
    assert_eq!(e.report().json["slots"], serde_json::json!({"0": 1}));
}

#[test]
fn engine_slot_reads_the_table_between_steps() {
    let mut e = Engine::from_scene(&same_tick(0, 4), RunOptions::default()).unwrap();
    assert_eq!(e.slot(0), Some(0));
    // Step through tick 1: the write made at (1, 1) is not applied while tick 1 lasts.
    while e.next_instant().tick < 2 {
        assert_eq!(e.slot(0), Some(0), "at {:?}", e.next_instant());
        e.step();
    }
    // The next instant is at tick 2: a read there sees the write.
    assert_eq!(e.next_instant().tick, 2);
    assert_eq!(e.slot(0), Some(1));
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(e.slot(0), Some(1));
}

#[test]
fn a_slot_write_is_made_when_its_firing_completes() {
    // load fires at tick 1 with latency 3: it completes, and writes, at tick 4; the write is
    // seen from tick 5. data now runs ticks 0..6.
    let e = run_both(&same_tick(3, 7), RunOptions::default());
    assert_eq!(
        stream(&e, "lo"),
        vec![
            (0, 0, 10.0),
            (1, 1, 11.0),
            (2, 2, 12.0),
            (3, 3, 13.0),
            (4, 4, 14.0)
        ]
    );
    assert_eq!(stream(&e, "hi"), vec![(5, 0, 15.0), (6, 1, 16.0)]);
    assert_eq!(e.report().makespan_ticks, 6);
}

#[test]
fn writes_to_one_slot_in_one_tick_apply_in_canonical_node_order() {
    // `a` (nodes[1]) and `b` (nodes[2]) both write slot 3 at tick 0; `a` fires two deltas later
    // than `b` (behind a Copy), yet canonical order decides: `b`'s 9 is applied last.
    let scene = parse(
        r#"Scene(version: 1, name: "order",
        nodes: [
            Node(name: "s", kernel: Const(value: 3.0), count: Some(1)),
            Node(name: "a", kernel: SlotLoad(slot: 3)),
            Node(name: "b", kernel: SlotLoad(slot: 3)),
            Node(name: "t", kernel: Const(value: 9.0), count: Some(1)),
            Node(name: "c", kernel: Copy),
        ],
        edges: [
            Edge(from: "s.out", to: "c.in"), Edge(from: "c.out", to: "a.in"),
            Edge(from: "t.out", to: "b.in"),
        ],
    )"#,
    );
    let e = run_both(&scene, RunOptions::default());
    assert_eq!(e.slot(3), Some(9));
}

#[test]
fn slot_load_converts_saturating() {
    // -3.0 → 0, 1e30 → u64::MAX, NaN (√−1) → 0, −∞ (ln 0) → 0, 2.9 → 2, and element 2 of a
    // token [1.0, 2.0, 7.5] → 7. Slots 1, 3 and 4 start non-zero so a 0 is a real write.
    let scene = parse(
        r#"Scene(version: 1, name: "convert",
        nodes: [
            Node(name: "neg", kernel: Const(value: -3.0), count: Some(1)),
            Node(name: "big", kernel: Const(value: 1e30), count: Some(1)),
            Node(name: "m1", kernel: Const(value: -1.0), count: Some(1)),
            Node(name: "nan", kernel: Map(op: Sqrt)),
            Node(name: "zero", kernel: Const(value: 0.0), count: Some(1)),
            Node(name: "ninf", kernel: Map(op: Log)),
            Node(name: "frac", kernel: Const(value: 2.9), count: Some(1)),
            Node(name: "tok", kernel: Const(value: 0.0), count: Some(0), shape: Some((frames: 3))),
            Node(name: "l1", kernel: SlotLoad(slot: 1)),
            Node(name: "l2", kernel: SlotLoad(slot: 2)),
            Node(name: "l3", kernel: SlotLoad(slot: 3)),
            Node(name: "l4", kernel: SlotLoad(slot: 4)),
            Node(name: "l5", kernel: SlotLoad(slot: 5)),
            Node(name: "l6", kernel: SlotLoad(slot: 6, index: 2), shape: Some((frames: 3))),
        ],
        edges: [
            Edge(from: "neg.out", to: "l1.in"),
            Edge(from: "big.out", to: "l2.in"),
            Edge(from: "m1.out", to: "nan.in"), Edge(from: "nan.out", to: "l3.in"),
            Edge(from: "zero.out", to: "ninf.in"), Edge(from: "ninf.out", to: "l4.in"),
            Edge(from: "frac.out", to: "l5.in"),
            Edge(from: "tok.out", to: "l6.in", initial: [[1.0, 2.0, 7.5]]),
        ],
        slots: {1: 5, 3: 5, 4: 5},
    )"#,
    );
    let e = run_both(&scene, RunOptions::default());
    assert_eq!(e.outcome(), Some(Outcome::Completed));
    let got: Vec<u64> = (1..=6).map(|n| e.slot(n).unwrap()).collect();
    assert_eq!(got, vec![0, u64::MAX, 0, 0, 2, 7]);
    assert_eq!(
        e.report().json["slots"],
        serde_json::json!({"2": u64::MAX, "5": 2, "6": 7})
    );
}

/// `src` (1, 2 at ticks 0, 1) to the probe through a channel whose delay is the symbol `link`.
fn linked(symbols: &str) -> Scene {
    parse(&format!(
        r#"Scene(version: 1, name: "linked",
        nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(2)),
            Node(name: "p", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "p.in", delay: Symbol("link"), capacity: 4)],
        {symbols}
    )"#
    ))
}

#[test]
fn a_symbol_delay_comes_from_the_scene() {
    let e = run_both(&linked(r#"symbols: {"link": 3},"#), RunOptions::default());
    assert_eq!(stream(&e, "p"), vec![(3, 0, 1.0), (4, 1, 2.0)]);
    let r = e.report();
    assert_eq!(r.json["symbols"], serde_json::json!({"link": 3}));
    assert_eq!(r.json["channels"]["src.out->p.in"]["delay"], 3);
    assert_eq!(r.json["channels"]["src.out->p.in"]["delay_symbol"], "link");
}

#[test]
fn a_symbol_delay_comes_from_run_options_over_the_scene() {
    let e = run_both(
        &linked(r#"symbols: {"link": 3},"#),
        opts_symbols(&[("link", 5)]),
    );
    assert_eq!(stream(&e, "p"), vec![(5, 0, 1.0), (6, 1, 2.0)]);
    // A symbol the scene does not declare, given only at run start.
    let e = run_both(&linked(""), opts_symbols(&[("link", 0)]));
    assert_eq!(stream(&e, "p"), vec![(0, 0, 1.0), (1, 1, 2.0)]);
    assert_eq!(e.report().json["symbols"], serde_json::json!({"link": 0}));
}

#[test]
fn a_symbol_delay_comes_from_the_command_line() {
    let dir = out_dir("slots_cli_symbol");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("linked.ron");
    let text = std::fs::read_to_string(repo().join("scenes/slot_select.ron")).unwrap();
    std::fs::write(&scene, &text).unwrap();
    let out = dir.join("run");
    let (code, stdout, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--symbol",
        "link=7",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // slot_select: 10 … 13 take `else` at ticks 0 … 3 and arrive 7 ticks later.
    assert_eq!(
        std::fs::read_to_string(out.join("probes/lo.csv")).unwrap(),
        "tick,seq,batch,channel,frame,value\n7,0,0,0,0,10\n8,1,0,0,0,11\n9,2,0,0,0,12\n10,3,0,0,0,13\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("probes/hi.csv")).unwrap(),
        "tick,seq,batch,channel,frame,value\n4,0,0,0,0,14\n5,1,0,0,0,15\n6,2,0,0,0,16\n7,3,0,0,0,17\n"
    );
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["symbols"], serde_json::json!({"link": 7}));
    assert_eq!(r["slots"], serde_json::json!({"0": 2}));
    assert_eq!(r["end_tick"], 10);
    // Without the flag the scene's value (2) holds; the plan digest is the same either way.
    let out2 = dir.join("run_default");
    let (code, _, _) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let r2 = read_json(&out2.join("report.json"));
    assert_eq!(r2["plan_digest"], r["plan_digest"]);
    assert_eq!(
        std::fs::read_to_string(out2.join("probes/lo.csv")).unwrap(),
        "tick,seq,batch,channel,frame,value\n2,0,0,0,0,10\n3,1,0,0,0,11\n4,2,0,0,0,12\n5,3,0,0,0,13\n"
    );
}

/// `src` fires at 0, 10, 20; its tokens reach `work` (latency 5) through a channel whose delay
/// is the symbol `l2c` (capacity 4, so the source is never held back).
const MAKESPAN: &str = r#"Scene(version: 1, name: "makespan",
    nodes: [
        Node(name: "src", kernel: Const(value: 1.0), period: Some(10), count: Some(3)),
        Node(name: "work", kernel: Gain(gain: 2.0), latency: 5),
        Node(name: "out", kernel: Probe),
    ],
    edges: [
        Edge(from: "src.out", to: "work.in", delay: Symbol("l2c"), capacity: 4),
        Edge(from: "work.out", to: "out.in"),
    ],
    symbols: {"l2c": 0},
)"#;

#[test]
fn raising_a_channel_latency_through_a_symbol_increases_the_makespan_without_re_planning() {
    let plan = Plan::compile(&parse(MAKESPAN)).unwrap();
    let run = |l2c: u64| {
        let mut e = Engine::new(plan.clone(), opts_symbols(&[("l2c", l2c)])).unwrap();
        assert_eq!(e.run(), Outcome::Completed);
        e
    };
    let (fast, slow) = (run(0), run(50));
    // l2c = 0: work fires at 0, 10, 20 and completes at 5, 15, 25.
    assert_eq!(ticks(&fast, "out"), vec![5, 15, 25]);
    assert_eq!(fast.report().makespan_ticks, 25);
    // l2c = 50: tokens visible at 50, 60, 70; work completes at 55, 65, 75.
    assert_eq!(ticks(&slow, "out"), vec![55, 65, 75]);
    assert_eq!(slow.report().makespan_ticks, 75);
    assert_eq!(
        slow.report().makespan_ticks - fast.report().makespan_ticks,
        50
    );
    // Same plan, same digest; the values are equal, the ticks are not.
    assert_eq!(fast.report().plan_digest, plan.digest);
    assert_eq!(slow.report().plan_digest, plan.digest);
    assert_eq!(fast.report().values_digest, slow.report().values_digest);
    assert_ne!(fast.report().output_digest, slow.report().output_digest);
    // The engine's plan holds the resolved delay; a new engine from it re-resolves.
    assert_eq!(slow.plan().channels[0].delay, 50);
    assert_eq!(slow.plan().digest, plan.digest);
    let again = Engine::new(slow.plan().clone(), opts_symbols(&[("l2c", 0)])).unwrap();
    assert_eq!(again.plan().channels[0].delay, 0);
    // And the scene's own value when the run gives none.
    let mut default = Engine::new(plan.clone(), RunOptions::default()).unwrap();
    default.run();
    assert_eq!(default.report().makespan_ticks, 25);
    // Kpn and IplsAuto agree for both values.
    for l2c in [0, 50] {
        let e = run_both(&parse(MAKESPAN), opts_symbols(&[("l2c", l2c)]));
        assert_eq!(e.report().makespan_ticks, 25 + l2c);
    }
}

#[test]
fn plan_digest_never_depends_on_slot_or_symbol_values() {
    let digest = |t: &str| Plan::compile(&parse(t)).unwrap().digest;
    let base = digest(MAKESPAN);
    let other_values = MAKESPAN.replace(
        r#"symbols: {"l2c": 0},"#,
        r#"symbols: {"l2c": 50, "unused": 3}, slots: {0: 1, 255: 9},"#,
    );
    assert_eq!(digest(&other_values), base);
    let no_values = MAKESPAN.replace(r#"symbols: {"l2c": 0},"#, "");
    assert_eq!(digest(&no_values), base);
    // The symbol's *name* is part of the plan, and a symbol delay is not a tick delay.
    let renamed = MAKESPAN.replace(r#"Symbol("l2c")"#, r#"Symbol("other")"#);
    assert_ne!(digest(&renamed), base);
    let ticks0 = MAKESPAN.replace(r#"delay: Symbol("l2c")"#, "delay: 0");
    assert_ne!(digest(&ticks0), base);
    // Scenes without symbols keep their digests (pinned in example_scenes.rs for hello).
}

#[test]
fn an_unknown_symbol_is_a_located_error() {
    // API: the plan compiles (it keeps the name); the run cannot start without a value.
    let scene = linked("");
    let plan = Plan::compile(&scene).unwrap();
    let err = Engine::new(plan.clone(), RunOptions::default())
        .err()
        .expect("no value for `link`");
    assert_eq!(err.exit_code(), 2);
    let d = &err.diagnostics()[0];
    assert_eq!(d.code, "E280");
    assert_eq!(d.location_text().as_deref(), Some("edges[0].delay"));
    assert!(d.message.contains("`link`"), "{}", d.message);
    assert!(Engine::new(plan, opts_symbols(&[("other", 1)])).is_err());
    // CLI: run and check exit 2 naming the edge; `--symbol` makes both succeed.
    let dir = out_dir("slots_unknown_symbol");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("linked.ron");
    std::fs::write(
        &file,
        r#"Scene(version: 1, name: "linked",
        nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(2)),
            Node(name: "p", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "p.in", delay: Symbol("link"), capacity: 4)],
    )"#,
    )
    .unwrap();
    let out = dir.join("run");
    let f = file.to_str().unwrap();
    let o = out.to_str().unwrap();
    let (code, _, stderr) = cli(&["run", f, "--out", o]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error[E280]") && stderr.contains("--> edges[0].delay"),
        "{stderr}"
    );
    assert!(!out.join("report.json").exists());
    let (code, _, stderr) = cli(&["check", f]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("error[E280]"), "{stderr}");
    let (code, stdout, stderr) = cli(&["check", f, "--symbol", "link=4"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("src.out->p.in  capacity 4  delay 4 (symbol link)"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["run", f, "--out", o, "--symbol", "link=4"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("probes/p.csv")).unwrap(),
        "tick,seq,batch,channel,frame,value\n4,0,0,0,0,1\n5,1,0,0,0,2\n"
    );
}

#[test]
fn slot_indices_of_256_and_above_are_located_errors() {
    let dir = out_dir("slots_out_of_range");
    std::fs::create_dir_all(&dir).unwrap();
    // In the scene's `slots`: E113 at `slots.N`.
    let file = dir.join("slots.ron");
    std::fs::write(&file, ROUTE.replace("SLOTS", "slots: {255: 1, 256: 1},")).unwrap();
    let (code, _, stderr) = cli(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error[E113]") && stderr.contains("--> slots.256"),
        "{stderr}"
    );
    assert!(!stderr.contains("slots.255"), "{stderr}");
    // In a kernel: E220 at `nodes[i].kernel.slot`.
    let file = dir.join("kernel.ron");
    std::fs::write(
        &file,
        ROUTE
            .replace("Select(slot: 5)", "Select(slot: 256)")
            .replace("SLOTS", ""),
    )
    .unwrap();
    let (code, _, stderr) = cli(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error[E220]") && stderr.contains("--> nodes[1].kernel.slot"),
        "{stderr}"
    );
    // On the command line: E106 at the argument.
    let ok = dir.join("ok.ron");
    std::fs::write(&ok, ROUTE.replace("SLOTS", "")).unwrap();
    let (code, _, stderr) = cli(&["run", ok.to_str().unwrap(), "--slot", "256=1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error[E106]") && stderr.contains("--> --slot 256=1"),
        "{stderr}"
    );
    // Through RunOptions: E106 too.
    let err = Engine::from_scene(&route(""), opts_slots(&[(999, 1)]))
        .err()
        .expect("slot 999");
    assert_eq!(err.exit_code(), 2);
    assert_eq!(err.diagnostics()[0].code, "E106");
    let plan = Plan::compile(&route("")).unwrap();
    assert!(Engine::new(plan, opts_slots(&[(256, 1)])).is_err());
}

#[test]
fn bad_slot_and_symbol_arguments_are_e106_at_the_argument() {
    let dir = out_dir("slots_bad_args");
    std::fs::create_dir_all(&dir).unwrap();
    let ok = dir.join("ok.ron");
    std::fs::write(&ok, ROUTE.replace("SLOTS", "")).unwrap();
    let scene = ok.to_str().unwrap();
    for (flag, value) in [
        ("--slot", "5"),
        ("--slot", "x=1"),
        ("--slot", "5=abc"),
        ("--slot", "5=-1"),
        ("--slot", "-1=5"),
        ("--symbol", "link"),
        ("--symbol", "=3"),
        ("--symbol", "link=1.5"),
        ("--symbol", "link=18446744073709551616"),
    ] {
        let out = dir.join("run");
        let (code, _, stderr) = cli(&[
            "run",
            scene,
            "--out",
            out.to_str().unwrap(),
            &format!("{flag}={value}"),
        ]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains("error[E106]") && stderr.contains(&format!("--> {flag} {value}")),
            "{flag} {value}: {stderr}"
        );
        assert!(!out.join("report.json").exists());
    }
    // Every bad argument is listed, not just the first.
    let (code, _, stderr) = cli(&["run", scene, "--slot", "1", "--symbol", "x"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.matches("error[E106]").count(), 2, "{stderr}");
}

#[test]
fn select_and_slot_load_refuse_backward_with_a_typed_reason() {
    use tapwheel::kernels::{BackwardIo, BuildCtx, KernelRegistry, Signature, TapSig, instantiate};
    use tapwheel::scene::{KernelSpec, Shape};
    let tap = |name: &str| TapSig {
        name: name.into(),
        rate: 1,
        token_len: 1,
        shape: Shape::default(),
    };
    let registry = KernelRegistry::default();
    for (spec, outs) in [
        (
            KernelSpec::Select { slot: 0 },
            vec![tap("then"), tap("else")],
        ),
        (KernelSpec::SlotLoad { slot: 0, index: 0 }, vec![]),
    ] {
        let sig = Signature {
            inputs: vec![tap("in")],
            outputs: outs,
        };
        let ctx = BuildCtx {
            sig: &sig,
            tick_hz: 1.0,
            file: None,
            registry: &registry,
        };
        let k = instantiate(&spec, &ctx).expect("built-in kernel");
        let mut gi = vec![vec![0.0f64]];
        let mut io = BackwardIo {
            firing: 0,
            tick: 0,
            inputs: &[],
            outputs: &[],
            saved: &[],
            grad_outputs: &[],
            grad_inputs: &mut gi,
            grad_state: &mut [],
            grad_params: &mut [],
        };
        let err = k.backward(&mut io).expect_err("no adjoint");
        assert_eq!(err.kind, spec.kind());
        assert!(!err.reason.is_empty());
    }
}

#[test]
fn slot_select_example_routes_as_documented() {
    let e = run_both(&scene("slot_select"), RunOptions::default());
    assert_eq!(e.outcome(), Some(Outcome::Completed));
    assert_eq!(
        stream(&e, "lo"),
        vec![(2, 0, 10.0), (3, 1, 11.0), (4, 2, 12.0), (5, 3, 13.0)]
    );
    assert_eq!(
        stream(&e, "hi"),
        vec![(4, 0, 14.0), (5, 1, 15.0), (6, 2, 16.0), (7, 3, 17.0)]
    );
    // ctl writes 0, 1, 2 at ticks 0, 3, 6: the last value stays.
    assert_eq!(e.slot(0), Some(2));
    let mut symbols = BTreeMap::new();
    symbols.insert("link".to_string(), 2u64);
    assert_eq!(
        e.report().json["symbols"],
        serde_json::to_value(&symbols).unwrap()
    );
}

#[test]
fn slot_cohorts_fired_in_parallel_chunks_keep_canonical_write_order() {
    // Eight sources (4096-frame tokens, values i, i+1, i+2 at ticks 0, 1, 2) each feed a
    // SlotLoad into slot i % 4 (element 4095) and a Select on slot i % 4. Under IplsAuto the
    // eight SlotLoads and the eight Selects are two cohorts, large enough for parallel chunks.
    // Slot k is written by load{k} and load{k+4} at every tick: load{k+4} is later in canonical
    // order and wins, so from tick 1 on slot k = (k + 4) + (t − 1) ≠ 0.
    let mut nodes = String::new();
    let mut edges = String::new();
    for i in 0..8 {
        nodes += &format!(
            r#"Node(name: "src{i}", kernel: Ramp(start: {i}.0, step: 1.0), period: Some(1), count: Some(3)),
            Node(name: "load{i}", kernel: SlotLoad(slot: {}, index: 4095)),
            Node(name: "sel{i}", kernel: Select(slot: {})),
            Node(name: "hi{i}", kernel: Probe), Node(name: "lo{i}", kernel: Probe),
            "#,
            i % 4,
            i % 4
        );
        edges += &format!(
            r#"Edge(from: "src{i}.out", to: "load{i}.in"), Edge(from: "src{i}.out", to: "sel{i}.in"),
            Edge(from: "sel{i}.then", to: "hi{i}.in"), Edge(from: "sel{i}.else", to: "lo{i}.in"),
            "#
        );
    }
    let scene = parse(&format!(
        r#"Scene(version: 1, name: "wide", defaults: (shape: (frames: 4096), capacity: 2),
        nodes: [{nodes}], edges: [{edges}])"#
    ));
    let run = |schedule: ScheduleSpec, threads: Option<usize>| {
        let mut e = Engine::from_scene(
            &scene,
            RunOptions {
                schedule: Some(schedule),
                threads,
                ..RunOptions::default()
            },
        )
        .unwrap();
        assert_eq!(e.run(), Outcome::Completed);
        e
    };
    let kpn = run(ScheduleSpec::Kpn, None);
    for i in 0..8u32 {
        let t = |p: &str| ticks(&kpn, &format!("{p}{i}"));
        assert_eq!(t("lo"), vec![0], "sel{i}");
        assert_eq!(t("hi"), vec![1, 2], "sel{i}");
        assert_eq!(values(&kpn, &format!("hi{i}"))[0], (i + 1) as f32);
    }
    for k in 0..4u32 {
        assert_eq!(kpn.slot(k), Some(u64::from(k) + 6), "slot {k}");
    }
    for threads in [Some(1), Some(4)] {
        let ipls = run(ScheduleSpec::IplsAuto, threads);
        let r = ipls.report();
        assert_eq!(r.output_digest, kpn.report().output_digest, "{threads:?}");
        assert_eq!(r.json["slots"], kpn.report().json["slots"], "{threads:?}");
        if threads == Some(4) {
            assert!(
                r.json["schedule"]["parallel_cohort_calls"]
                    .as_u64()
                    .unwrap()
                    > 0,
                "{}",
                r.json["schedule"]
            );
        }
    }
}

#[test]
fn under_dispatch_cost_a_firing_reads_at_its_issue_tick_and_writes_at_its_completion() {
    // Three domains, dispatch_cost 2 (§9: issued at t, starts at s = max(t, free) + 2, completes
    // at s + L). Domain 0: ctl issued at 0 completes at 2; load issued at 2 completes at 4, so
    // its write (slot 0 = 1) is made at tick 4 and seen from tick 5. Domain 1: data (concurrency
    // 1) completes at 2, 4, 6, … Domain 2: sel is issued when a token arrives (2, 4, 6, …) and
    // reads the slot at that tick: 0 at ticks 2 and 4 (the write of tick 4 is not seen), 1 from
    // tick 6. Its outputs complete two ticks later.
    let scene = parse(
        r#"Scene(version: 1, name: "disp",
        nodes: [
            Node(name: "ctl", kernel: Const(value: 1.0), count: Some(1), domain: Some(0)),
            Node(name: "load", kernel: SlotLoad(slot: 0), domain: Some(0)),
            Node(name: "data", kernel: Ramp(start: 10.0, step: 1.0), period: Some(1), count: Some(8), domain: Some(1)),
            Node(name: "sel", kernel: Select(slot: 0), domain: Some(2)),
            Node(name: "hi", kernel: Probe),
            Node(name: "lo", kernel: Probe),
        ],
        edges: [
            Edge(from: "ctl.out", to: "load.in"),
            Edge(from: "data.out", to: "sel.in", capacity: 8),
            Edge(from: "sel.then", to: "hi.in", capacity: 8),
            Edge(from: "sel.else", to: "lo.in", capacity: 8),
        ],
        dispatch: Some((domains: 3, policy: RoundRobin, dispatch_cost: 2, workers: None)),
    )"#,
    );
    let (outcome, e) = run(&scene);
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(stream(&e, "lo"), vec![(4, 0, 10.0), (6, 1, 11.0)]);
    assert_eq!(
        stream(&e, "hi"),
        vec![
            (8, 0, 12.0),
            (10, 1, 13.0),
            (12, 2, 14.0),
            (14, 3, 15.0),
            (16, 4, 16.0),
            (18, 5, 17.0)
        ]
    );
    assert_eq!(e.slot(0), Some(1));
}
