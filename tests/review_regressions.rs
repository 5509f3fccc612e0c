//! Review regressions (failing until the engine is fixed). Each test names the SPEC clause it
//! checks; the scenes are the smallest found that show the problem.

mod common;
use common::*;
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Outcome, RunOptions};

fn run_mode(text: &str, schedule: ScheduleSpec) -> (Outcome, Engine) {
    let mut e = Engine::from_scene(
        &parse(text),
        RunOptions {
            schedule: Some(schedule),
            ..RunOptions::default()
        },
    )
    .expect("scene plans");
    let o = e.run();
    (o, e)
}

/// §4 Kahn determinism, §9 "each node issues at most one task per step ... its next task in
/// the next delta (same tick)". A node with concurrency 2 and latency 5 holds three visible
/// tokens at (0,0); the task window (8 slots, one domain, unlimited workers) is never
/// contended. Under `Kpn` the node issues at (0,0) and (0,1): outputs at 5, 5, 10. Under
/// `IplsAuto` nothing marks the step `pending` after an L > 0 firing, so the engine jumps to
/// the completion at 5 and the second task is issued 5 ticks late (5, 10, 15).
const CONCURRENT_UNCONTENDED: &str = r#"Scene(version: 1, name: "conc_init",
    nodes: [
        Node(name: "s", kernel: Ramp(start: 0.0, step: 1.0), count: Some(1), offset: 100),
        Node(name: "g", kernel: Gain(gain: 2.0), latency: 5, concurrency: Some(2)),
        Node(name: "p", kernel: Probe),
    ],
    edges: [
        Edge(from: "s.out", to: "g.in", capacity: 8, initial: [10.0, 11.0, 12.0]),
        Edge(from: "g.out", to: "p.in", capacity: 8),
    ],
    task_window: Some((size: 8, mode: Stall, scope: Global)),
)"#;

#[test]
fn ipls_issues_the_next_concurrent_task_in_the_next_delta_like_kpn() {
    let (ok, kpn) = run_mode(CONCURRENT_UNCONTENDED, ScheduleSpec::Kpn);
    assert_eq!(ok, Outcome::Completed);
    assert_eq!(ticks(&kpn, "p"), vec![5, 5, 10, 105]);
    let (oi, ipls) = run_mode(CONCURRENT_UNCONTENDED, ScheduleSpec::IplsAuto);
    assert_eq!(oi, Outcome::Completed);
    assert_eq!(ticks(&ipls, "p"), ticks(&kpn, "p"), "IplsAuto differs from Kpn");
    assert_eq!(
        ipls.report().json["output_digest"],
        kpn.report().json["output_digest"]
    );
}

/// §2 (a step that changed anything is followed by `(t, δ+1)`), §9 (a window slot frees when
/// its task completes). Window 1: `a` and `b` (latency 0, period 10) are both due at 0; `a`
/// goes first and its slot frees at the next step, so `b` is issued at (0,1) — as `Kpn` does.
/// Under `IplsAuto` the deferred release does not mark the step pending: the engine jumps to
/// tick 10 and `b` fires 10 ticks late (its stream is 10, 20 instead of 0, 10). The same
/// happens when a rendezvous releases an L = 0 task later in its issue tick (the release is
/// deferred by tick equality, `Dispatcher::retire`).
const WINDOW_RELEASE: &str = r#"Scene(version: 1, name: "window_skip",
    nodes: [
        Node(name: "a", kernel: Const(value: 1.0), count: Some(2), period: Some(10)),
        Node(name: "b", kernel: Const(value: 2.0), count: Some(2), period: Some(10)),
        Node(name: "pa", kernel: Probe), Node(name: "pb", kernel: Probe),
    ],
    edges: [Edge(from: "a.out", to: "pa.in"), Edge(from: "b.out", to: "pb.in")],
    task_window: Some((size: 1, mode: Stall, scope: Global)),
)"#;

#[test]
fn ipls_does_not_skip_a_tick_when_a_window_slot_frees_in_the_next_delta() {
    let (_, kpn) = run_mode(WINDOW_RELEASE, ScheduleSpec::Kpn);
    assert_eq!(ticks(&kpn, "pb"), vec![0, 10]);
    let (_, ipls) = run_mode(WINDOW_RELEASE, ScheduleSpec::IplsAuto);
    assert_eq!(ticks(&ipls, "pb"), vec![0, 10], "b was held back a whole tick");
}

const RENDEZVOUS_RELEASE: &str = r#"Scene(version: 1, name: "rv_defer",
    nodes: [
        Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
        Node(name: "c", kernel: Gain(gain: 2.0)),
        Node(name: "q", kernel: Const(value: 5.0), count: Some(2), period: Some(10)),
        Node(name: "r", kernel: Const(value: 6.0), count: Some(2), period: Some(10)),
        Node(name: "pc", kernel: Probe), Node(name: "pq", kernel: Probe), Node(name: "pr", kernel: Probe),
    ],
    edges: [
        Edge(from: "s.out", to: "c.in", capacity: 0),
        Edge(from: "c.out", to: "pc.in"),
        Edge(from: "q.out", to: "pq.in"),
        Edge(from: "r.out", to: "pr.in"),
    ],
    task_window: Some((size: 2, mode: Stall, scope: Global)),
)"#;

#[test]
fn ipls_does_not_skip_a_tick_after_a_rendezvous_release() {
    let (_, kpn) = run_mode(RENDEZVOUS_RELEASE, ScheduleSpec::Kpn);
    assert_eq!(ticks(&kpn, "pc"), vec![0]);
    assert_eq!(ticks(&kpn, "pr"), vec![0, 10]);
    let (_, ipls) = run_mode(RENDEZVOUS_RELEASE, ScheduleSpec::IplsAuto);
    assert_eq!(ticks(&ipls, "pc"), vec![0]);
    assert_eq!(ticks(&ipls, "pr"), vec![0, 10]);
}

/// §6: a gate's members are one unit dispatched together; "if the unit does not fit, none of
/// them fires". A `Probe` member is admitted by dispatch's probe shortcut before (and besides)
/// its unit: here `h` holds the only window slot until 10, `gb` is refused, yet `pa` fires
/// alone at 0. Correct: both fire at 10 (pb = [10]).
const GATE_PROBE_REFUSED: &str = r#"Scene(version: 1, name: "gate_probe3",
    nodes: [
        Node(name: "h", kernel: Const(value: 9.0), count: Some(1), latency: 10, lane: Control),
        Node(name: "sa", kernel: Const(value: 1.0), count: Some(1), offset: 100),
        Node(name: "pa", kernel: Probe),
        Node(name: "gb", kernel: Copy),
        Node(name: "pb", kernel: Probe),
    ],
    edges: [
        Edge(from: "sa.out", to: "pa.in", initial: [0.0]),
        Edge(from: "sa.out", to: "gb.in", initial: [7.0]),
        Edge(from: "gb.out", to: "pb.in"),
    ],
    gates: [Gate(name: "g", members: ["pa", "gb"])],
    task_window: Some((size: 1, mode: Stall, scope: Global)),
)"#;

#[test]
fn a_probe_gate_member_never_fires_without_its_unit() {
    for mode in [ScheduleSpec::Kpn, ScheduleSpec::IplsAuto] {
        let (_, e) = run_mode(GATE_PROBE_REFUSED, mode.clone());
        assert_eq!(ticks(&e, "pb"), vec![10], "{mode:?}: gb must fire with pa at 10");
    }
}

/// §6 (members fire once each per opening) and §3 (consumers see visible tokens only). With an
/// uncontended window, a `Probe` gate member is admitted twice in one step (once as a probe,
/// once in its unit). Under `Kpn` its second firing skips the readiness re-check and pops the
/// token still in its 5-tick delay: at tick 5 `pa` records a token whose visible tick is 6, and
/// the run ends `completed` at 5. Correct (as `IplsAuto` does): `pa` consumes one token at 5;
/// at 6 it is ready again but `gb` has finished, so the run ends `deadlock` (kind `gate`).
const GATE_PROBE_TWICE: &str = r#"Scene(version: 1, name: "gate_probe2",
    nodes: [
        Node(name: "sa", kernel: Ramp(start: 0.0, step: 1.0), count: Some(2), period: Some(1)),
        Node(name: "pa", kernel: Probe),
        Node(name: "sb", kernel: Const(value: 7.0), count: Some(1), offset: 5),
        Node(name: "gb", kernel: Copy),
        Node(name: "pb", kernel: Probe),
    ],
    edges: [
        Edge(from: "sa.out", to: "pa.in", delay: 5),
        Edge(from: "sb.out", to: "gb.in"),
        Edge(from: "gb.out", to: "pb.in"),
    ],
    gates: [Gate(name: "g", members: ["pa", "gb"])],
    task_window: Some((size: 8, mode: Stall, scope: Global)),
)"#;

#[test]
fn a_probe_gate_member_fires_once_per_opening_and_never_reads_an_invisible_token() {
    let (o, e) = run_mode(GATE_PROBE_TWICE, ScheduleSpec::Kpn);
    assert_eq!(ticks(&e, "pa"), vec![5], "pa consumed a token before it was visible");
    assert_eq!(e.report().json["firings"]["pa"], 1);
    assert_eq!(o, Outcome::Deadlock);
}
