//! Synchrony gates (SPEC §6): members fire together, in the same step, only when every member is
//! ready; a ready member waiting for the others is stalled with `GATE_WAIT`; a gate that can
//! never open ends the run `deadlock` (kind `gate`) naming the gate and the members not ready.
//! Exact ticks are worked out by hand in each test's comment.

mod common;
use common::*;
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Outcome, RunOptions};

/// Two sources at periods 2 and 3 feed one gated node each.
const TWO_RATES: &str = r#"Scene(version: 1, name: "two_rates",
    nodes: [
        Node(name: "sa", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2), count: Some(4)),
        Node(name: "sb", kernel: Ramp(start: 100.0, step: 1.0), period: Some(3), count: Some(4)),
        Node(name: "ga", kernel: Copy),
        Node(name: "gb", kernel: Copy),
        Node(name: "pa", kernel: Probe),
        Node(name: "pb", kernel: Probe),
    ],
    edges: [
        Edge(from: "sa.out", to: "ga.in"), Edge(from: "sb.out", to: "gb.in"),
        Edge(from: "ga.out", to: "pa.in"), Edge(from: "gb.out", to: "pb.in"),
    ],
    gates: [Gate(name: "sync", members: ["ga", "gb"])],
)"#;

fn run_with(text: &str, schedule: Option<ScheduleSpec>) -> (Outcome, Engine) {
    let mut e = Engine::from_scene(
        &parse(text),
        RunOptions {
            schedule,
            ..RunOptions::default()
        },
    )
    .expect("scene plans");
    let o = e.run();
    (o, e)
}

#[test]
fn members_fire_together_when_all_are_ready() {
    // sa writes at 0, 2, 4, 6 and sb at 0, 3, 6, 9 (visible one delta later). The gate opens
    // when both have a token: 0, then 3 (ga has waited since 2), 6 (ga since 4), 9 (ga since 6,
    // holding its 4th token written at 6).
    let (o, e) = run_with(TWO_RATES, None);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(ticks(&e, "pa"), vec![0, 3, 6, 9]);
    assert_eq!(ticks(&e, "pb"), vec![0, 3, 6, 9]);
    assert_eq!(values(&e, "pa"), vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(values(&e, "pb"), vec![100.0, 101.0, 102.0, 103.0]);
    let r = e.report().json;
    // ga waits 2→3, 4→6 and 6→9: 1 + 2 + 3 ticks; gb never waits for ga.
    assert_eq!(r["stalls"]["nodes"]["ga"]["GATE_WAIT"]["ticks"], 6);
    assert_eq!(r["stalls"]["nodes"]["ga"]["GATE_WAIT"]["longest_ticks"], 3);
    assert!(r["stalls"]["nodes"]["gb"].get("GATE_WAIT").is_none());
    assert_eq!(r["stalls"]["gates"]["sync"]["GATE_WAIT"]["ticks"], 6);
    assert_eq!(r["stalls"]["gates"]["sync"]["openings"], 4);
    // Without the gate, ga would follow sa: 0, 2, 4, 6.
    let ungated = TWO_RATES.replace(r#"gates: [Gate(name: "sync", members: ["ga", "gb"])],"#, "");
    let (_, e) = run_with(&ungated, None);
    assert_eq!(ticks(&e, "pa"), vec![0, 2, 4, 6]);
}

/// `src` fans out to a gated node `g1` and an ungated `u`; `g1`'s partner `g2` is fed slowly.
const FANOUT: &str = r#"Scene(version: 1, name: "gate_fanout",
    nodes: [
        Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1), count: Some(5)),
        Node(name: "slow", kernel: Ramp(start: 10.0, step: 10.0), period: Some(4), count: Some(3)),
        Node(name: "g1", kernel: Copy, gate: Some("pair")),
        Node(name: "g2", kernel: Copy, gate: Some("pair")),
        Node(name: "u", kernel: Copy),
        Node(name: "p1", kernel: Probe),
        Node(name: "p2", kernel: Probe),
        Node(name: "pu", kernel: Probe),
    ],
    edges: [
        Edge(from: "src.out", to: "g1.in"), Edge(from: "src.out", to: "u.in"),
        Edge(from: "slow.out", to: "g2.in"),
        Edge(from: "g1.out", to: "p1.in"), Edge(from: "g2.out", to: "p2.in"),
        Edge(from: "u.out", to: "pu.in"),
    ],
    gates: [Gate(name: "pair", members: [])],
    memory: Fixed,
)"#;

#[test]
fn a_gated_consumer_holds_back_its_producer_for_every_consumer() {
    // The gate opens when slow fires: 0, 4, 8. src fills g1's channel (capacity 2) at 1 and 2,
    // stalls CHANNEL_FULL_WAIT from 3 until g1 consumes at (4, 1) and the room is seen at (4, 2),
    // and again from 5 to (8, 2). The ungated u therefore receives tokens 3 and 4 only at 4 and
    // 8 — back-pressure through fan-out.
    for schedule in [None, Some(ScheduleSpec::IplsAuto)] {
        let (o, e) = run_with(FANOUT, schedule.clone());
        assert_eq!(o, Outcome::Deadlock, "{schedule:?}");
        assert_eq!(ticks(&e, "p1"), vec![0, 4, 8]);
        assert_eq!(values(&e, "p1"), vec![0.0, 1.0, 2.0]);
        assert_eq!(ticks(&e, "p2"), vec![0, 4, 8]);
        assert_eq!(values(&e, "p2"), vec![10.0, 20.0, 30.0]);
        assert_eq!(ticks(&e, "pu"), vec![0, 1, 2, 4, 8]);
        assert_eq!(values(&e, "pu"), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let r = e.report();
        assert_eq!(r.end_tick, 8);
        let j = &r.json;
        let full = &j["stalls"]["nodes"]["src"]["CHANNEL_FULL_WAIT"];
        assert_eq!(
            (full["ticks"].as_u64(), full["longest_ticks"].as_u64()),
            (Some(4), Some(3))
        );
        assert_eq!(
            j["stalls"]["channels"]["src.out->g1.in"]["CHANNEL_FULL_WAIT"]["ticks"],
            4
        );
        // g1 waits for its partner 1→4, (4,2)→8 and from 8 to the end.
        let wait = &j["stalls"]["nodes"]["g1"]["GATE_WAIT"];
        assert_eq!(
            (wait["ticks"].as_u64(), wait["longest_ticks"].as_u64()),
            (Some(7), Some(4))
        );
        assert_eq!(j["stalls"]["gates"]["pair"]["openings"], 3);
        // slow finishes after its third firing, so g2 finishes and the gate can never open
        // again while g1 holds tokens 3 and 4.
        let d = r.deadlock.expect("gate deadlock report");
        assert_eq!(d.kind, "gate");
        assert_eq!(d.gates.len(), 1);
        assert_eq!(d.gates[0].gate, "pair");
        assert_eq!(d.gates[0].ready, vec!["g1".to_string()]);
        assert_eq!(d.gates[0].not_ready[0].node, "g2");
        assert_eq!(d.gates[0].not_ready[0].why, "finished at tick 8");
        assert_eq!(d.blocked[0].node, "g1");
        assert_eq!(d.blocked[0].reason, "GATE_WAIT");
        assert!(d.mitigations[0].contains("member g2 finished at tick 8"));
    }
}

#[test]
fn gate_deadlock_exits_3_with_the_report() {
    let dir = out_dir("gate_deadlock");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("fanout.ron");
    std::fs::write(&scene, FANOUT).unwrap();
    let (code, stdout, stderr) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.contains("deadlock (gate)"), "{stdout}");
    assert!(stdout.contains("gate pair: ready g1; not ready g2 (finished at tick 8)"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(r["deadlock"]["kind"], "gate");
    assert_eq!(r["deadlock"]["gates"][0]["not_ready"][0]["node"], "g2");
}

#[test]
fn members_in_later_stages_fire_at_the_gate_stage() {
    // An IPLS puts gb two stages after ga; the gate opens at ga's stage and both fire there, so
    // the streams equal the Kpn run's.
    let ipls = TWO_RATES.replace(
        r#"gates: [Gate(name: "sync", members: ["ga", "gb"])],"#,
        r#"gates: [Gate(name: "sync", members: ["ga", "gb"])],
        schedule: Ipls(stages: [
            Stage(cohorts: [Cohort(kind: "Ramp", nodes: ["sa", "sb"])]),
            Stage(cohorts: [Cohort(kind: "Copy", nodes: ["ga"])]),
            Stage(cohorts: [Cohort(kind: "Probe", nodes: ["pa"])]),
            Stage(cohorts: [Cohort(kind: "Copy", nodes: ["gb"]), Cohort(kind: "Probe", nodes: ["pb"])]),
        ]),"#,
    );
    let (o, e) = run_with(&ipls, None);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(e.stages(), 4);
    assert_eq!(ticks(&e, "pa"), vec![0, 3, 6, 9]);
    assert_eq!(ticks(&e, "pb"), vec![0, 3, 6, 9]);
    let (_, kpn) = run_with(TWO_RATES, None);
    assert_eq!(e.report().output_digest, kpn.report().output_digest);
    // Every member firing happened in the first delta of its tick: no extra deltas.
    assert_eq!(e.report().json["schedule"]["extra_deltas"], 0);
}

#[test]
fn a_gate_opens_once_per_step_even_with_free_concurrency() {
    // a and b (concurrency 2, latency 3) each hold two initial tokens at (0, 0). Ungated, each
    // would start both firings at (0, 0); gated, one unit per step: (0, 0) and (0, 1) — the same
    // tick, so both firings complete at 3 either way, and the gate opened twice.
    let text = r#"Scene(version: 1, name: "conc",
        nodes: [
            Node(name: "none", kernel: Const(value: 0.0), count: Some(0)),
            Node(name: "a", kernel: Copy, latency: 3, concurrency: Some(2)),
            Node(name: "b", kernel: Copy, latency: 3, concurrency: Some(2)),
            Node(name: "pa", kernel: Probe), Node(name: "pb", kernel: Probe),
        ],
        edges: [
            Edge(from: "none.out", to: "a.in", initial: [1.0, 2.0]),
            Edge(from: "none.out", to: "b.in", initial: [5.0, 6.0]),
            Edge(from: "a.out", to: "pa.in", capacity: 4), Edge(from: "b.out", to: "pb.in", capacity: 4),
        ],
        gates: [Gate(name: "g", members: ["a", "b"])],
    )"#;
    for schedule in [None, Some(ScheduleSpec::IplsAuto)] {
        let (o, e) = run_with(text, schedule);
        assert_eq!(o, Outcome::Completed);
        assert_eq!(ticks(&e, "pa"), vec![3, 3]);
        assert_eq!(values(&e, "pb"), vec![5.0, 6.0]);
        assert_eq!(e.report().json["stalls"]["gates"]["g"]["openings"], 2);
    }
    let ungated = text.replace(r#"gates: [Gate(name: "g", members: ["a", "b"])],"#, "");
    let (_, e) = run_with(&ungated, None);
    assert_eq!(ticks(&e, "pa"), vec![3, 3]);
}
