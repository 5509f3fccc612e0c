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
    assert_eq!(
        ticks(&ipls, "p"),
        ticks(&kpn, "p"),
        "IplsAuto differs from Kpn"
    );
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
    assert_eq!(
        ticks(&ipls, "pb"),
        vec![0, 10],
        "b was held back a whole tick"
    );
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
/// alone at 0. Correct: both fire at 10 (pb = [10], then 100 when `sa` refills both taps; `pa`
/// records the initial token's visible tick 0).
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
        // The unit fires at 10, when h's slot frees, and again at 100 when sa refills both.
        assert_eq!(
            ticks(&e, "pb"),
            vec![10, 100],
            "{mode:?}: gb must fire with pa at 10"
        );
        assert_eq!(ticks(&e, "pa"), vec![0, 100], "{mode:?}");
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
    assert_eq!(
        ticks(&e, "pa"),
        vec![5],
        "pa consumed a token before it was visible"
    );
    assert_eq!(e.report().json["firings"]["pa"], 1);
    assert_eq!(o, Outcome::Deadlock);
}

/// §9: "A task holds its window slot and its worker from issue to completion." `g`'s second
/// task (RoundRobin → domain 1, start 5, completes 6) completes before its first (domain 0,
/// behind `h1`/`h2` on the issue timeline: start 15, completes 16). Its window slot is only
/// returned when the firing is *written out* (in firing order, at 16), so `q`, due at 7 and
/// waiting `WINDOW_FULL`, is issued at 16 (token at 21) instead of 7 (start 12, token at 12).
const OUT_OF_ORDER_COMPLETION: &str = r#"Scene(version: 1, name: "ooo",
    nodes: [
        Node(name: "h1", kernel: Const(value: 1.0), count: Some(1), latency: 100, domain: Some(0)),
        Node(name: "h2", kernel: Const(value: 2.0), count: Some(1), latency: 100, domain: Some(0)),
        Node(name: "sg", kernel: Const(value: 3.0), count: Some(1), offset: 50),
        Node(name: "g", kernel: Gain(gain: 2.0), latency: 1, concurrency: Some(2)),
        Node(name: "q", kernel: Const(value: 4.0), count: Some(1), offset: 7, domain: Some(1)),
        Node(name: "p1", kernel: Probe), Node(name: "p2", kernel: Probe),
        Node(name: "pg", kernel: Probe), Node(name: "pq", kernel: Probe),
    ],
    edges: [
        Edge(from: "h1.out", to: "p1.in"), Edge(from: "h2.out", to: "p2.in"),
        Edge(from: "sg.out", to: "g.in", capacity: 4, initial: [1.0, 2.0]),
        Edge(from: "g.out", to: "pg.in", capacity: 4),
        Edge(from: "q.out", to: "pq.in"),
    ],
    dispatch: Some((domains: 2, policy: RoundRobin, dispatch_cost: 5, workers: None)),
    task_window: Some((size: 4, mode: Stall, scope: Global)),
)"#;

#[test]
fn a_task_completing_out_of_order_frees_its_window_slot_at_its_completion() {
    let (_, e) = run_mode(OUT_OF_ORDER_COMPLETION, ScheduleSpec::Kpn);
    // g's outputs are still written in firing order, both at 16.
    assert_eq!(ticks(&e, "pg")[..2], [16, 16]);
    assert_eq!(
        ticks(&e, "pq"),
        vec![12],
        "g's 2nd task held its slot past its completion"
    );
}

/// §20 cancellation: `cancel_at(T)` processes every instant with tick ≤ T, then the run ends
/// `cancelled` with `end_tick = T`. With `until: 100` and the next event at 200, the jump
/// check ends the run `limit_reached` at 100 instead — past the cancel fence at 5. (With
/// `until: 300` the same scene correctly ends `cancelled` at 5.)
#[test]
fn cancel_at_before_until_wins_even_when_the_next_event_is_past_until() {
    let text = r#"Scene(version: 1, name: "cancel_lim",
        nodes: [
            Node(name: "s", kernel: Const(value: 1.0), count: Some(2), period: Some(200)),
            Node(name: "p", kernel: Probe),
        ],
        edges: [Edge(from: "s.out", to: "p.in")],
        run: (until: Some(100)),
    )"#;
    for schedule in [ScheduleSpec::Kpn, ScheduleSpec::IplsAuto] {
        let mut e = Engine::from_scene(
            &parse(text),
            RunOptions {
                schedule: Some(schedule.clone()),
                ..RunOptions::default()
            },
        )
        .expect("scene plans");
        e.cancel_at(5);
        assert_eq!(e.run(), Outcome::Cancelled, "{schedule:?}");
        assert_eq!(e.report().json["end_tick"], 5, "{schedule:?}");
    }
}

/// §4 condition 4 ("`period` ticks after its previous firing started"): a source whose next
/// due tick would pass `u64::MAX` saturates to `u64::MAX` and then fires again at every delta
/// of tick `u64::MAX`, forever (`until` cannot stop it: the tick never passes it). It should
/// fire once at `u64::MAX - 2` and never again. Bounded here by `max_steps`.
#[test]
fn a_source_period_never_saturates_into_a_same_tick_refire() {
    let text = r#"Scene(version: 1, name: "huge",
        nodes: [
            Node(name: "s", kernel: Const(value: 1.0), offset: 18446744073709551613, period: Some(5)),
            Node(name: "p", kernel: Probe),
        ],
        edges: [Edge(from: "s.out", to: "p.in")],
        run: (max_steps: Some(200)),
    )"#;
    let (_, e) = run(&parse(text));
    assert_eq!(e.report().json["firings"]["s"], 1);
}

/// §13 "Never a panic on any input". A gated `Probe` with a gathering input (`SumFanIn`) under
/// an uncontended task window: the probe is admitted twice (probe shortcut + its gate unit),
/// the second firing pops from the now-empty channels and `consume_inputs` slices past the
/// popped parts: panic at src/ecs.rs (`range end index 1 out of range for slice of length 0`),
/// CLI exit 1. Under `IplsAuto` it completes.
#[test]
fn a_gated_gathering_probe_under_dispatch_does_not_panic() {
    let text = r#"Scene(version: 1, name: "gate_probe_gather",
        nodes: [
            Node(name: "s1", kernel: Const(value: 1.0), count: Some(1)),
            Node(name: "s2", kernel: Const(value: 2.0), count: Some(1)),
            Node(name: "pa", kernel: Probe, taps: {"in": (adapter: SumFanIn)}),
            Node(name: "sb", kernel: Const(value: 7.0), count: Some(1)),
            Node(name: "gb", kernel: Copy),
            Node(name: "pb", kernel: Probe),
        ],
        edges: [
            Edge(from: "s1.out", to: "pa.in"), Edge(from: "s2.out", to: "pa.in"),
            Edge(from: "sb.out", to: "gb.in"),
            Edge(from: "gb.out", to: "pb.in"),
        ],
        gates: [Gate(name: "g", members: ["pa", "gb"])],
        task_window: Some((size: 8, mode: Stall, scope: Global)),
    )"#;
    let (o, e) = run_mode(text, ScheduleSpec::Kpn);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "pa"), vec![3.0]);
}
