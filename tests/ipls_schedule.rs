//! IPLS schedules (SPEC §5): stage barriers (zero-time outputs of a stage are visible to the
//! later stages of the same step), delta repetition when the order sends tokens backwards (and
//! the W260 warning for it), `IplsAuto` levels and cohorts, and cohort execution through the
//! kernels' batched form — in parallel chunks when the work is large — bit-identical to `Kpn`.

mod common;
use common::*;
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

fn run_opts(scene: &Scene, schedule: Option<ScheduleSpec>, threads: Option<usize>) -> Engine {
    let mut e = Engine::from_scene(
        scene,
        RunOptions {
            schedule,
            threads,
            ..RunOptions::default()
        },
    )
    .expect("scene plans");
    e.run();
    e
}

const CHAIN: &str = r#"Scene(version: 1, name: "chain",
    nodes: [
        Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(10), count: Some(3)),
        Node(name: "a", kernel: Gain(gain: 2.0)),
        Node(name: "b", kernel: AddScalar(value: 1.0)),
        Node(name: "c", kernel: MulScalar(value: -1.0)),
        Node(name: "out", kernel: Probe),
    ],
    edges: [
        Edge(from: "src.out", to: "a.in"), Edge(from: "a.out", to: "b.in"),
        Edge(from: "b.out", to: "c.in"), Edge(from: "c.out", to: "out.in"),
    ],
)"#;

fn with_schedule(text: &str, schedule: &str) -> Scene {
    let i = text.rfind(')').expect("scene text ends with )");
    parse(&format!("{}    schedule: {schedule},\n)", &text[..i]))
}

#[test]
fn ipls_auto_runs_a_zero_delay_chain_in_one_delta_per_tick() {
    // Kpn: each zero-delay hop costs a delta, so the probe fires at (t, 4). IplsAuto puts the
    // chain on five levels; each stage sees the previous stage's output at once.
    let scene = parse(CHAIN);
    let kpn = run_opts(&scene, None, None);
    let ipls = run_opts(&scene, Some(ScheduleSpec::IplsAuto), None);
    for e in [&kpn, &ipls] {
        assert_eq!(e.outcome(), Some(Outcome::Completed));
        assert_eq!(ticks(e, "out"), vec![0, 10, 20]);
        assert_eq!(values(e, "out"), vec![-3.0, -5.0, -7.0]);
    }
    assert_eq!(ipls.stages(), 5);
    let r = ipls.report();
    assert_eq!(r.output_digest, kpn.report().output_digest);
    assert_eq!(r.json["schedule"]["mode"], "ipls-auto");
    assert_eq!(r.json["schedule"]["extra_deltas"], 0);
    let stages: Vec<String> = r.json["schedule"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0]["nodes"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["src", "a", "b", "c", "out"]);
    // Kpn: per source tick 5 firing deltas + 1 quiet delta; at tick 20 the end-of-stream
    // cascade overlaps the firings (src closes at (20,0), out finishes at (20,5)), then one quiet
    // delta. IplsAuto: one step per tick; at tick 20 the cascade (20,1)…(20,4) and a quiet (20,5).
    assert_eq!(kpn.steps(), 6 + 6 + 7);
    assert_eq!(ipls.steps(), 1 + 1 + 6);
}

#[test]
fn an_order_against_the_flow_repeats_deltas_and_warns() {
    // Stages in reverse: every hop reaches its consumer only in the next delta (W260 for each
    // of the four channels), so each tick needs deltas 0..4 — four extra firing deltas per tick.
    let scene = with_schedule(
        CHAIN,
        r#"Ipls(stages: [
            Stage(cohorts: [Cohort(kind: "Probe", nodes: ["out"])]),
            Stage(cohorts: [Cohort(kind: "MulScalar", nodes: ["c"])]),
            Stage(cohorts: [Cohort(kind: "AddScalar", nodes: ["b"])]),
            Stage(cohorts: [Cohort(kind: "Gain", nodes: ["a"])]),
            Stage(cohorts: [Cohort(kind: "Ramp", nodes: ["src"])]),
        ])"#,
    );
    let e = run_opts(&scene, None, None);
    let w = &e.plan().warnings;
    assert_eq!(w.len(), 4);
    assert!(w.iter().all(|d| d.code == "W260"));
    assert!(
        w[0].message
            .contains("src.out->a.in runs from stage 4 back to stage 3")
    );
    assert_eq!(ticks(&e, "out"), vec![0, 10, 20]);
    let r = e.report();
    assert_eq!(r.json["schedule"]["extra_deltas"], 12);
    assert_eq!(r.json["warnings"][0]["code"], "W260");
    assert_eq!(
        r.output_digest,
        run_opts(&parse(CHAIN), None, None).report().output_digest
    );
}

#[test]
fn a_stage_does_not_see_its_own_zero_time_outputs() {
    // a and b share one stage: b sees a's token only in the next delta (one extra delta per
    // tick, and W260), while c in the next stage sees b's output in the same step.
    let scene = with_schedule(
        CHAIN,
        r#"Ipls(stages: [
            Stage(cohorts: [Cohort(kind: "Ramp", nodes: ["src"])]),
            Stage(cohorts: [Cohort(kind: "Gain", nodes: ["a"]), Cohort(kind: "AddScalar", nodes: ["b"])]),
            Stage(cohorts: [Cohort(kind: "MulScalar", nodes: ["c"]), Cohort(kind: "Probe", nodes: ["out"])]),
        ])"#,
    );
    let e = run_opts(&scene, None, None);
    // a→b within stage 1 and c→out within stage 2.
    assert_eq!(e.plan().warnings.len(), 2);
    assert!(
        e.plan().warnings[0]
            .message
            .contains("a.out->b.in runs within stage 1")
    );
    assert_eq!(ticks(&e, "out"), vec![0, 10, 20]);
    // Per tick: (t,0) src, a; (t,1) b, c; (t,2) out.
    assert_eq!(e.report().json["schedule"]["extra_deltas"], 6);
}

#[test]
fn ipls_auto_levels_and_cohorts_by_kind() {
    // A diamond: two Gain branches of different depth meet in an Add; the probe is last.
    let scene = parse(
        r#"Scene(version: 1, name: "diamond",
        nodes: [
            Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
            Node(name: "g1", kernel: Gain(gain: 2.0)),
            Node(name: "g2", kernel: Gain(gain: 3.0)),
            Node(name: "o", kernel: Offset(value: 1.0)),
            Node(name: "add", kernel: Add),
            Node(name: "p", kernel: Probe),
            Node(name: "late", kernel: Gain(gain: 5.0), latency: 2),
            Node(name: "q", kernel: Probe),
        ],
        edges: [
            Edge(from: "s.out", to: "g1.in"), Edge(from: "s.out", to: "g2.in"),
            Edge(from: "g2.out", to: "o.in"), Edge(from: "g1.out", to: "add.a"),
            Edge(from: "o.out", to: "add.b"), Edge(from: "add.out", to: "p.in"),
            Edge(from: "s.out", to: "late.in"), Edge(from: "late.out", to: "q.in"),
        ],
        schedule: IplsAuto)"#,
    );
    let plan = tapwheel::Plan::compile(&scene).unwrap();
    let names = |s: usize| -> Vec<(String, Vec<String>)> {
        plan.schedule.stages[s]
            .cohorts
            .iter()
            .map(|c| {
                (
                    c.kind.clone(),
                    c.nodes
                        .iter()
                        .map(|&n| plan.nodes[n].name.clone())
                        .collect(),
                )
            })
            .collect()
    };
    let v = |k: &str, n: &[&str]| (k.to_string(), n.iter().map(|s| s.to_string()).collect());
    // Levels over zero-time channels: s 0; g1, g2, late 1; o 2; add 3 (after o); p 4. `late`
    // has latency 2, so late→q is not zero-time and q has level 0.
    assert_eq!(plan.schedule.stages.len(), 5);
    assert_eq!(names(0), vec![v("Const", &["s"]), v("Probe", &["q"])]);
    assert_eq!(names(1), vec![v("Gain", &["g1", "g2", "late"])]);
    assert_eq!(names(2), vec![v("Offset", &["o"])]);
    assert_eq!(names(3), vec![v("Add", &["add"])]);
    assert_eq!(names(4), vec![v("Probe", &["p"])]);
    assert!(plan.warnings.is_empty());
    let e = run_opts(&scene, None, None);
    assert_eq!(values(&e, "p"), vec![6.0]);
    assert_eq!(ticks(&e, "q"), vec![2]);
    assert_eq!(e.report().json["schedule"]["extra_deltas"], 0);
}

/// A bank of `n` stereo Biquads over 512-frame blocks, fed by one oscillator.
fn bank(n: usize) -> Scene {
    let mut nodes = vec![
        r#"Node(name: "osc", kernel: Sine(freq_hz: 440.0, amp: 0.5, phase: 0.0), period: Some(512), count: Some(4))"#.to_string(),
    ];
    let mut edges = Vec::new();
    for i in 0..n {
        let cutoff = 200.0 + 150.0 * i as f64;
        nodes.push(format!(
            r#"Node(name: "lp{i}", kernel: Biquad(mode: Lowpass, cutoff_hz: {cutoff:.1}, q: 0.707, gain_db: 0.0))"#
        ));
        nodes.push(format!(
            r#"Node(name: "g{i}", kernel: Gain(gain: {}))"#,
            1.0 + i as f64 * 0.01
        ));
        nodes.push(format!(r#"Node(name: "p{i}", kernel: Probe)"#));
        edges.push(format!(r#"Edge(from: "osc.out", to: "lp{i}.in")"#));
        edges.push(format!(r#"Edge(from: "lp{i}.out", to: "g{i}.in")"#));
        edges.push(format!(r#"Edge(from: "g{i}.out", to: "p{i}.in")"#));
    }
    parse(&format!(
        r#"Scene(version: 1, name: "bank", tick_hz: 48000.0,
        defaults: (shape: (batch: 1, channels: 2, frames: 512)),
        nodes: [{}], edges: [{}])"#,
        nodes.join(",\n"),
        edges.join(",\n")
    ))
}

#[test]
fn cohorts_run_batched_and_in_parallel_bit_identically() {
    let scene = bank(24);
    let kpn = run_opts(&scene, None, None);
    let one = run_opts(&scene, Some(ScheduleSpec::IplsAuto), Some(1));
    let two = run_opts(&scene, Some(ScheduleSpec::IplsAuto), Some(2));
    let (rk, r1, r2) = (kpn.report(), one.report(), two.report());
    assert_eq!(kpn.outcome(), Some(Outcome::Completed));
    assert_eq!(rk.output_digest, r1.output_digest);
    assert_eq!(rk.output_digest, r2.output_digest);
    assert_eq!(values(&kpn, "p23"), values(&two, "p23"));
    assert_eq!(values(&two, "p23").len(), 4 * 1024);
    // Stages: osc; 24 Biquads; 24 Gains; 24 Probes — one cohort call per stage and firing.
    assert_eq!(one.stages(), 4);
    assert_eq!(r1.json["schedule"]["cohort_calls"], 4 * 4);
    assert_eq!(r1.json["schedule"]["parallel_cohort_calls"], 0);
    // With two threads a cohort moving ≥ 16384 elements splits across the pool: Biquads and
    // Gains (24 × 1024 in + 24 × 1024 out) and Probes (24 × 1024 in); the one-member source
    // cohort never splits. Three parallel calls in each of the 4 firing steps.
    assert_eq!(r2.json["schedule"]["parallel_cohort_calls"], 3 * 4);
    assert_eq!(kpn.report().json["schedule"]["cohort_calls"], 0);
}

#[test]
fn cli_schedule_and_threads_flags() {
    let dir = out_dir("cli_ipls");
    let (code, _, stderr) = cli(&[
        "run",
        "scenes/filter_chain.ron",
        "--schedule",
        "ipls-auto",
        "--threads",
        "2",
        "--out",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["schedule"]["mode"], "ipls-auto");
    let kpn = run_opts(&scene("filter_chain"), None, None).report();
    assert_eq!(r["output_digest"], kpn.output_digest.as_str());
    // A schedule changes the plan: its digest differs from the Kpn plan's.
    assert_ne!(r["plan_digest"], kpn.plan_digest.as_str());

    let (code, stdout, _) = cli(&["check", "scenes/hello.ron", "--schedule", "ipls-auto"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("schedule ipls-auto"), "{stdout}");
    // gain→bias has delay 3, so bias starts a level of its own next to the source.
    assert!(
        stdout.contains("stage 0: Ramp[src], Offset[bias]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stage 1: Gain[gain], Probe[out]"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["run", "scenes/hello.ron", "--threads", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("E106"));
}

#[test]
fn warnings_go_to_stderr_and_keep_exit_0() {
    let dir = out_dir("cli_w260");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rev.ron");
    let text = CHAIN.replacen(
        "],\n)",
        r#"],
    schedule: Ipls(stages: [
        Stage(cohorts: [Cohort(kind: "Probe", nodes: ["out"]), Cohort(kind: "MulScalar", nodes: ["c"])]),
        Stage(cohorts: [Cohort(kind: "AddScalar", nodes: ["b"]), Cohort(kind: "Gain", nodes: ["a"]),
                        Cohort(kind: "Ramp", nodes: ["src"])]),
    ]),
)"#,
        1,
    );
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = cli(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning[W260]"), "{stderr}");
    assert!(stderr.contains("--> edges[0]"), "{stderr}");
}
