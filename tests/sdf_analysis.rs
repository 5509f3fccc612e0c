//! `tapwheel::sdf`: consistency, deadlock freedom, refusals and exact throughput on small graphs
//! whose figures follow by hand — and, for the timing cases, agree with a self-timed engine run.

mod common;
use common::*;
use tapwheel::sdf::{self, SdfAnalysis};
use tapwheel::{Engine, Error, Outcome, Plan, RunOptions};

fn analyze(text: &str) -> SdfAnalysis {
    let plan = Plan::compile(&parse(text)).expect("plans");
    sdf::analyze(&plan).expect("analysable")
}

fn refusal(text: &str) -> Error {
    let plan = Plan::compile(&parse(text)).expect("plans");
    sdf::analyze(&plan).expect_err("refused")
}

fn period(a: &SdfAnalysis) -> Option<String> {
    a.iteration_period_ticks.map(|r| r.to_string())
}

fn thr(a: &SdfAnalysis) -> Option<String> {
    a.throughput_exact.map(|r| r.to_string())
}

/// Firings of `node` per tick between ticks `t1` and `t2` of a self-timed run.
fn run_rate(text: &str, node: &str, t1: u64, t2: u64) -> f64 {
    let scene = parse(text);
    let count = |t: u64| {
        let mut e = Engine::from_scene(
            &scene,
            RunOptions {
                until: Some(t),
                ..Default::default()
            },
        )
        .expect("plans");
        assert_eq!(e.run(), Outcome::LimitReached);
        e.report().json["firings"][node].as_u64().expect("counted")
    };
    (count(t2) - count(t1)) as f64 / (t2 - t1) as f64
}

#[test]
fn inconsistent_graph_names_the_channel() {
    // b consumes 1 on x but 2 on y while a produces 1 on each: q[a] = q[b] and q[a] = 2·q[b].
    let a = analyze(
        r#"Scene(version: 1, name: "bad",
        nodes: [Node(name: "a", kernel: Actor, period: Some(1),
                     taps: { "x": (dir: Out), "y": (dir: Out) }),
                Node(name: "b", kernel: Actor, taps: { "x": (dir: In), "y": (dir: In, rate: 2) })],
        edges: [Edge(from: "a.x", to: "b.x"), Edge(from: "a.y", to: "b.y")])"#,
    );
    assert!(!a.consistent);
    let msg = a.inconsistency.clone().expect("a message");
    assert!(msg.contains("`a.y->b.y` (edges[1])"), "{msg}");
    assert!(msg.contains("q[from]·1 = q[to]·2"), "{msg}");
    assert!(msg.contains("1 : 1"), "{msg}");
    let j = a.to_json();
    assert_eq!(j["consistent"], false);
    for key in [
        "repetition_vector",
        "deadlock_free",
        "throughput",
        "throughput_exact",
        "iteration_period_ticks",
    ] {
        assert!(j[key].is_null(), "{key}: {j}");
    }
    assert!(
        j["inconsistency"]
            .as_str()
            .is_some_and(|m| m.contains("a.y->b.y"))
    );
    assert!(a.to_text().contains("consistent: no"));
}

#[test]
fn self_loop_with_unequal_rates_is_inconsistent() {
    let a = analyze(
        r#"Scene(version: 1, name: "loop",
        nodes: [Node(name: "a", kernel: Actor, latency: 1,
                     taps: { "o": (dir: Out, rate: 2), "i": (dir: In, rate: 3) })],
        edges: [Edge(from: "a.o", to: "a.i", initial: [0.0, 0.0, 0.0])])"#,
    );
    assert!(!a.consistent);
    let msg = a.inconsistency.expect("a message");
    assert!(
        msg.contains("`a.o->a.i`") && msg.contains("produces 2 but consumes 3"),
        "{msg}"
    );
}

#[test]
fn graph_that_deadlocks_within_one_iteration() {
    // a needs 2 tokens from b per firing (b writes 2, q = (1, 1)); the cycle holds 1: no node
    // can complete the iteration.
    let text = r#"Scene(version: 1, name: "dead",
        nodes: [Node(name: "a", kernel: Actor, latency: 1,
                     taps: { "i": (dir: In, rate: 2), "o": (dir: Out, rate: 1) }),
                Node(name: "b", kernel: Actor, latency: 1,
                     taps: { "i": (dir: In, rate: 1), "o": (dir: Out, rate: 2) })],
        edges: [Edge(from: "a.o", to: "b.i"), Edge(from: "b.o", to: "a.i", initial: [0.0])])"#;
    let a = analyze(text);
    assert!(a.consistent);
    assert_eq!(
        a.repetition_vector.as_ref().map(|q| q.0.clone()),
        Some(vec![("a".to_string(), 1), ("b".to_string(), 1)])
    );
    assert_eq!(a.deadlock_free, Some(false));
    let msg = a.deadlock.clone().expect("a message");
    assert!(
        msg.contains("`a` fires 0 of 1 times (`b.o->a.i` holds 1 of 2 tokens)"),
        "{msg}"
    );
    assert!(
        msg.contains("`b` fires 0 of 1 times (`a.o->b.i` holds 0 of 1 tokens)"),
        "{msg}"
    );
    assert_eq!(a.throughput, Some(0.0));
    assert_eq!(thr(&a), Some("0".into()));
    assert_eq!(a.iteration_period_ticks, None);
    let j = a.to_json();
    assert_eq!(j["deadlock_free"], false);
    assert_eq!(j["throughput"], 0.0);
    // The engine agrees: nothing ever fires, the run ends quiescent.
    let (o, e) = run(&parse(text));
    assert_eq!(o, Outcome::Quiescent);
    assert_eq!(e.report().json["firings"]["a"], 0);

    // With a second initial token the same graph runs: a, then b, 1 tick each per iteration.
    let ok = analyze(&text.replace("initial: [0.0]", "initial: [0.0, 0.0]"));
    assert_eq!(ok.deadlock_free, Some(true));
    assert_eq!(period(&ok), Some("2".into()));
}

#[test]
fn data_dependent_rates_are_refused_all_at_once() {
    let err = refusal(
        r#"Scene(version: 1, name: "dyn",
        nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1)),
                Node(name: "f", kernel: Filter(pred: Gt(2.0))),
                Node(name: "g", kernel: Add, taps: { "b": (optional: true) }),
                Node(name: "m", kernel: Gain(gain: 2.0), latency: Measured),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "src.out", to: "f.in"), Edge(from: "f.out", to: "g.a"),
                Edge(from: "g.out", to: "m.in"), Edge(from: "m.out", to: "out.in")])"#,
    );
    assert_eq!(err.exit_code(), 4);
    let d: Vec<(&str, String)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.code, d.location_text().unwrap_or_default()))
        .collect();
    assert_eq!(
        d,
        vec![
            ("R350", "nodes[1].kernel".to_string()),
            ("R350", "nodes[2].taps.b".to_string()),
            ("R351", "nodes[3].latency".to_string()),
        ]
    );
    let text = err.to_string();
    assert!(text.contains("refused[R350]: `f` (Filter)"), "{text}");
    assert!(text.contains("optional input `g.b`"), "{text}");
}

#[test]
fn measured_latency_refuses_only_the_throughput() {
    let a = analyze(
        r#"Scene(version: 1, name: "measured",
        nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2)),
                Node(name: "g", kernel: Gain(gain: 2.0), latency: Measured),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#,
    );
    assert!(a.consistent);
    assert_eq!(a.deadlock_free, Some(true));
    assert_eq!(a.throughput, None);
    assert_eq!(a.iteration_period_ticks, None);
    assert_eq!(a.refusals.len(), 1);
    assert_eq!(a.refusals[0].code, "R351");
    assert_eq!(a.refusals[0].path, "nodes[1].latency");
    let j = a.to_json();
    assert_eq!(j["refusals"][0]["code"], "R351");
    assert!(j["throughput"].is_null());
    assert!(a.to_text().contains("not computed (refused)"));
}

/// A source (period 2) feeds a worker with latency 6. One firing at a time the worker needs 6
/// ticks per iteration; two at a time 3; unlimited, the source's period (2) bounds it.
const WORKER: &str = r#"Scene(version: 1, name: "worker",
    nodes: [Node(name: "s", kernel: Actor, period: Some(2), taps: { "o": (dir: Out) }),
            Node(name: "w", kernel: Actor, latency: 6, concurrency: CONC,
                 taps: { "i": (dir: In) })],
    edges: [Edge(from: "s.o", to: "w.i", capacity: 64)])"#;

#[test]
fn concurrency_changes_the_throughput() {
    for (conc, want_period, want_thr) in [
        ("Some(1)", "6", "1/6"),
        ("Some(2)", "3", "1/3"),
        ("Some(4)", "2", "1/2"),
        ("None", "2", "1/2"),
    ] {
        let text = WORKER.replace("CONC", conc);
        let a = analyze(&text);
        assert_eq!(period(&a).as_deref(), Some(want_period), "{conc}");
        assert_eq!(thr(&a).as_deref(), Some(want_thr), "{conc}");
        // The self-timed engine run agrees (q = 1 for both nodes).
        let rate = run_rate(&text, "w", 600, 6600);
        let exact = a.throughput.expect("bounded");
        assert!(
            (rate - exact).abs() <= 0.01 * exact,
            "{conc}: run {rate}, analysis {exact}"
        );
    }
    // Without the source's period nothing bounds unlimited concurrency: a source that fires
    // once per tick (period 1) with `w` unlimited gives 1 iteration per tick.
    let a = analyze(
        &WORKER
            .replace("CONC", "None")
            .replace("period: Some(2)", "period: Some(1)"),
    );
    assert_eq!(thr(&a).as_deref(), Some("1"));
    assert_eq!(a.matrix_tokens, Some(2)); // s's period loop and its default concurrency loop
}

#[test]
fn periodic_source_bounds_the_throughput() {
    // s (period 5) writes 3 tokens per firing; w reads 2: q = (2, 3).
    let text = r#"Scene(version: 1, name: "rates",
        nodes: [Node(name: "s", kernel: Actor, period: Some(5), taps: { "o": (dir: Out, rate: 3) }),
                Node(name: "w", kernel: Actor, latency: LAT, taps: { "i": (dir: In, rate: 2) })],
        edges: [Edge(from: "s.o", to: "w.i", capacity: 64)])"#;
    // w: 3 firings × 1 tick = 3 < 2 × 5 = 10: the source's period decides.
    let a = analyze(&text.replace("LAT", "1"));
    assert_eq!(
        a.repetition_vector.as_ref().map(|q| q.0.clone()),
        Some(vec![("s".to_string(), 2), ("w".to_string(), 3)])
    );
    assert_eq!(period(&a).as_deref(), Some("10"));
    assert_eq!(a.throughput, Some(0.1));
    let rate = run_rate(&text.replace("LAT", "1"), "w", 1000, 11000);
    assert!((rate / 3.0 - 0.1).abs() <= 0.001, "run: {rate}");
    // w slower: 3 × 4 = 12 > 10.
    let a = analyze(&text.replace("LAT", "4"));
    assert_eq!(period(&a).as_deref(), Some("12"));
    assert_eq!(thr(&a).as_deref(), Some("1/12"));
    let rate = run_rate(&text.replace("LAT", "4"), "w", 1200, 13200);
    assert!(
        (rate / 3.0 - 1.0 / 12.0).abs() <= 0.01 / 12.0,
        "run: {rate}"
    );
}

#[test]
fn channel_delay_and_initial_tokens_set_the_cycle_mean() {
    // A two-node ring with 3 tokens: per lap 2 + 3 ticks of latency and 4 of delay; period 9/3.
    let text = r#"Scene(version: 1, name: "ring",
        nodes: [Node(name: "a", kernel: Actor, latency: 2, concurrency: None,
                     taps: { "i": (dir: In), "o": (dir: Out) }),
                Node(name: "b", kernel: Actor, latency: 3, concurrency: None,
                     taps: { "i": (dir: In), "o": (dir: Out) })],
        edges: [Edge(from: "a.o", to: "b.i", delay: 4, capacity: 8),
                Edge(from: "b.o", to: "a.i", initial: [0.0, 0.0, 0.0], capacity: 8)])"#;
    let a = analyze(text);
    assert_eq!(period(&a).as_deref(), Some("3"));
    let rate = run_rate(text, "a", 300, 3300);
    assert!((rate - 1.0 / 3.0).abs() <= 0.01 / 3.0, "run: {rate}");
    // Two tokens: 9/2, a fraction.
    let a = analyze(&text.replace("[0.0, 0.0, 0.0]", "[0.0, 0.0]"));
    assert_eq!(period(&a).as_deref(), Some("9/2"));
    assert_eq!(thr(&a).as_deref(), Some("2/9"));
    assert_eq!(a.to_json()["iteration_period_ticks"], "9/2");
}

#[test]
fn zero_time_graph_has_unbounded_throughput() {
    let a = analyze(
        r#"Scene(version: 1, name: "free",
        nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "s.out", to: "out.in")])"#,
    );
    assert!(a.consistent);
    assert_eq!(a.deadlock_free, Some(true));
    assert_eq!(period(&a).as_deref(), Some("0"));
    assert_eq!(a.throughput, None);
    assert!(a.to_json()["throughput"].is_null());
    assert!(a.to_text().contains("throughput: unbounded"));
}

#[test]
fn disconnected_components_have_their_own_vectors() {
    let a = analyze(
        r#"Scene(version: 1, name: "two_parts",
        nodes: [Node(name: "s", kernel: Actor, period: Some(3), taps: { "o": (dir: Out, rate: 2) }),
                Node(name: "t", kernel: Actor, taps: { "i": (dir: In, rate: 4) }),
                Node(name: "u", kernel: Actor, period: Some(7), taps: { "o": (dir: Out, rate: 3) }),
                Node(name: "v", kernel: Actor, taps: { "i": (dir: In, rate: 6) })],
        edges: [Edge(from: "s.o", to: "t.i", capacity: 8), Edge(from: "u.o", to: "v.i", capacity: 8)])"#,
    );
    let q = a.repetition_vector.clone().expect("consistent");
    assert_eq!(
        (q.get("s"), q.get("t"), q.get("u"), q.get("v")),
        (Some(2), Some(1), Some(2), Some(1))
    );
    // An iteration of the whole graph waits for the slower part: 2 × 7.
    assert_eq!(period(&a).as_deref(), Some("14"));
}

#[test]
fn huge_rate_ratios_are_refused_not_overflowed() {
    // Each link multiplies q by 4294967291 (a prime): three links overflow u64.
    let text = r#"Scene(version: 1, name: "wide",
        nodes: [Node(name: "a", kernel: Actor, period: Some(1), taps: { "o": (dir: Out, rate: 4294967291) }),
                Node(name: "b", kernel: Actor, taps: { "i": (dir: In), "o": (dir: Out, rate: 4294967291) }),
                Node(name: "c", kernel: Actor, taps: { "i": (dir: In), "o": (dir: Out, rate: 4294967291) }),
                Node(name: "d", kernel: Actor, taps: { "i": (dir: In) })],
        edges: [Edge(from: "a.o", to: "b.i"), Edge(from: "b.o", to: "c.i"), Edge(from: "c.o", to: "d.i")])"#;
    let err = refusal(text);
    assert_eq!(err.exit_code(), 4);
    assert_eq!(err.diagnostics()[0].code, "R352");
    // Two links fit in u64 (q[c] = p², p = 4294967291), but that is far too many firings to
    // execute: q is reported, deadlock freedom and throughput are refused (R352).
    let a = analyze(
        r#"Scene(version: 1, name: "wide2",
        nodes: [Node(name: "a", kernel: Actor, period: Some(1), taps: { "o": (dir: Out, rate: 4294967291) }),
                Node(name: "b", kernel: Actor, taps: { "i": (dir: In), "o": (dir: Out, rate: 4294967291) }),
                Node(name: "c", kernel: Actor, taps: { "i": (dir: In) })],
        edges: [Edge(from: "a.o", to: "b.i"), Edge(from: "b.o", to: "c.i")])"#,
    );
    let q = a.repetition_vector.clone().expect("consistent");
    assert_eq!(q.get("b"), Some(4294967291));
    assert_eq!(q.get("c"), Some(4294967291u64 * 4294967291));
    assert_eq!(a.deadlock_free, None);
    assert_eq!(a.throughput, None);
    assert_eq!(a.refusals[0].code, "R352");
}

#[test]
fn large_iteration_matrices_stay_exact() {
    // 1000 tokens on b → a, all consumed by one firing of a (latency 5), then b fires 1000 times
    // one at a time (latency 1): every token depends on every other, a dense 1002 × 1002 matrix
    // (1000 tokens and the two concurrency loops). Period 5 + 1000.
    let dense = r#"Scene(version: 1, name: "dense",
        nodes: [Node(name: "a", kernel: Actor, latency: 5,
                     taps: { "i": (dir: In, rate: 1000), "o": (dir: Out, rate: 1000) }),
                Node(name: "b", kernel: Actor, latency: 1, taps: { "i": (dir: In), "o": (dir: Out) })],
        edges: [Edge(from: "a.o", to: "b.i", capacity: 1000),
                Edge(from: "b.o", to: "a.i", capacity: 1000, initial: [INIT])])"#
        .replace("INIT", &vec!["0.0"; 1000].join(", "));
    let a = analyze(&dense);
    assert_eq!(a.matrix_tokens, Some(1002));
    assert_eq!(period(&a).as_deref(), Some("1005"));
    // A ring of 20 tokens (latencies 2 + 3, delay 4: 9/20 per token) where `a` may run 1000
    // firings at once: a sparse 1020 × 1020 matrix with a 1000-cycle of zero-weight shifts.
    let ring = r#"Scene(version: 1, name: "ring",
        nodes: [Node(name: "a", kernel: Actor, latency: 2, concurrency: Some(1000),
                     taps: { "i": (dir: In), "o": (dir: Out) }),
                Node(name: "b", kernel: Actor, latency: 3, concurrency: None,
                     taps: { "i": (dir: In), "o": (dir: Out) })],
        edges: [Edge(from: "a.o", to: "b.i", delay: 4, capacity: 32),
                Edge(from: "b.o", to: "a.i", capacity: 32, initial: [INIT])])"#
        .replace("INIT", &vec!["0.0"; 20].join(", "));
    let a = analyze(&ring);
    assert_eq!(a.matrix_tokens, Some(1020));
    assert_eq!(period(&a).as_deref(), Some("9/20"));
    let rate = run_rate(&ring, "a", 900, 9900);
    assert!(
        (rate - 20.0 / 9.0).abs() <= 0.01 * 20.0 / 9.0,
        "run: {rate}"
    );
}
