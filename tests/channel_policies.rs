//! Channel overflow policies and watermarks (SPEC §3 channel fields, §4 condition 3, §9 lanes,
//! §13/§19 counts): `DropOldest` / `DropNewest` never hold their producer back and drop by rule,
//! a `Telemetry` watermark sheds down to `low`, a `Data` watermark blocks its producer with
//! hysteresis, a `Control` watermark only counts. Every figure below is worked out by hand.
//!
//! The scenes share one shape: a `Ramp` source due every tick (token k carries the value k and,
//! on its channel, seq k) writes through a zero-delay channel (token k is visible from
//! `(k, 1)`, so a probe's tick for it is k) into a consumer that needs several ticks per token
//! (a `Probe` with a latency, so the probe sees the channel's own seqs). Rules used throughout
//! (docs/semantics.md, "Channel policies and watermarks"): a channel settles at the end of each
//! step — a Drop channel then pays for every arrival that found it full (after the step's
//! consumption), and watermarks are judged on tokens + reservations.

mod common;
use common::*;
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

/// A fast source into a slow probe through one channel with the given fields.
fn fast_into_slow(count: u32, latency: u32, channel: &str) -> Scene {
    parse(&format!(
        r#"Scene(version: 1, name: "policy", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: {count}),
            Node(name: "out", kernel: Probe, latency: {latency})],
          edges: [Edge(from: "src.out", to: "out.in", {channel})])"#
    ))
}

const CH: &str = "src.out->out.in";

fn channel(e: &Engine, name: &str) -> serde_json::Value {
    e.report().json["channels"][name].clone()
}

/// The source fired at every tick 0..count: never stalled, and every token written.
fn assert_never_stalled(e: &Engine, count: u64) {
    let r = e.report();
    assert_eq!(r.json["firings"]["src"], count);
    assert!(
        r.json["stalls"]["nodes"].get("src").is_none(),
        "the producer of a dropping channel is never stalled: {}",
        r.json["stalls"]
    );
    assert_eq!(r.json["channels"][CH]["tokens_written"], count);
}

#[test]
fn drop_oldest_keeps_the_newest_tokens_and_never_stalls_its_producer() {
    let (o, e) = run(&fast_into_slow(10, 3, "capacity: 2, policy: DropOldest"));
    assert_eq!(o, Outcome::Completed);
    // t0: v0 written, taken at (0,1); `out` is busy until 3.   t1: [v1]   t2: [v1 v2]
    // t3: v3 arrives and `out` takes v1 in the same step: [v2 v3], nothing to pay.
    // t4: v4 finds [v2 v3] full → v2 dropped.   t5: v5 → v3 dropped: [v4 v5]
    // t6: v6 arrives, `out` takes v4: [v5 v6].   t7: v5 dropped.   t8: v6 dropped: [v7 v8]
    // t9: v9 arrives, `out` takes v7: [v8 v9]; then v8 at 12 and v9 at 15.
    assert_eq!(
        stream(&e, "out"),
        vec![
            (0, 0, 0.0),
            (1, 1, 1.0),
            (4, 4, 4.0),
            (7, 7, 7.0),
            (8, 8, 8.0),
            (9, 9, 9.0)
        ]
    );
    assert_never_stalled(&e, 10);
    let ch = channel(&e, CH);
    assert_eq!(ch["shed"], 4); // v2, v3, v5, v6
    assert_eq!(ch["tokens_passed"], 6);
    assert_eq!(ch["high_water"], 2); // settled occupancy never exceeds capacity
    assert_eq!(ch["policy"], "DropOldest");
    assert_eq!(e.report().end_tick, 18); // v9 taken at 15, done at 18
}

#[test]
fn drop_newest_drops_the_arrivals_that_find_the_channel_full() {
    let (o, e) = run(&fast_into_slow(10, 3, "capacity: 2, policy: DropNewest"));
    assert_eq!(o, Outcome::Completed);
    // t0: v0 taken at (0,1).   t1: [v1]   t2: [v1 v2]   t3: v3 arrives, `out` takes v1: [v2 v3]
    // t4, t5: v4, v5 find [v2 v3] full and are dropped.   t6: v6 arrives, `out` takes v2: [v3 v6]
    // t7, t8: v7, v8 dropped.   t9: v9 arrives, `out` takes v3: [v6 v9]; v6 at 12, v9 at 15.
    assert_eq!(
        stream(&e, "out"),
        vec![
            (0, 0, 0.0),
            (1, 1, 1.0),
            (2, 2, 2.0),
            (3, 3, 3.0),
            (6, 6, 6.0),
            (9, 9, 9.0)
        ]
    );
    assert_never_stalled(&e, 10);
    let ch = channel(&e, CH);
    assert_eq!(ch["shed"], 4); // v4, v5, v7, v8
    assert_eq!(ch["tokens_passed"], 6);
    assert_eq!(ch["high_water"], 2);
}

#[test]
fn the_same_scene_under_block_holds_the_producer_back_instead() {
    // The contrast: under Block the source waits (CHANNEL_FULL_WAIT) and nothing is lost.
    let (o, e) = run(&fast_into_slow(10, 3, "capacity: 2"));
    assert_eq!(o, Outcome::Completed);
    let seqs: Vec<u64> = stream(&e, "out").iter().map(|t| t.1).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    let r = e.report();
    assert!(r.json["stalls"]["nodes"]["src"]["CHANNEL_FULL_WAIT"]["ticks"].as_u64() > Some(0));
    assert_eq!(r.json["channels"][CH]["shed"], 0);
}

#[test]
fn drop_oldest_drops_tokens_still_in_their_delay() {
    // delay 5: token k is visible from tick k + 5. The oldest token is dropped even though no
    // consumer has seen it yet: t2 drops v0, t3 v1, t4 v2, t5 v3 (v0 would have become
    // visible at 5). What is left, [v4 v5], is seen at 9 and 10 by a probe that is always free.
    let (o, e) = run(&fast_into_slow(
        6,
        0,
        "capacity: 2, delay: 5, policy: DropOldest",
    ));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(stream(&e, "out"), vec![(9, 4, 4.0), (10, 5, 5.0)]);
    assert_never_stalled(&e, 6);
    assert_eq!(channel(&e, CH)["shed"], 4);
}

#[test]
fn initial_tokens_above_capacity_are_not_trimmed_only_arrivals_pay() {
    // Three initial tokens on a one-slot DropNewest channel. `out` (10 ticks per token) takes
    // i0 at (0,0); v0 (t0) and v1 (t1) arrive at a channel holding [i1 i2], above capacity:
    // each arrival is dropped, the initial tokens stay and are taken at 10 and 20.
    let text = r#"Scene(version: 1, name: "initial", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: 2),
            Node(name: "out", kernel: Probe, latency: 10)],
          edges: [Edge(from: "src.out", to: "out.in", capacity: 1, policy: DropNewest,
                       initial: [10.0, 20.0, 30.0])])"#;
    let (o, e) = run(&parse(text));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        stream(&e, "out"),
        vec![(0, 0, 10.0), (0, 1, 20.0), (0, 2, 30.0)]
    );
    assert_eq!(channel(&e, CH)["shed"], 2);
    // Under DropOldest each arrival drops the oldest token instead (i1 for v0, i2 for v1), and
    // `out` takes v0 (seq 3) at 10 and v1 (seq 4) at 20.
    let (_, e) = run(&parse(&text.replace("DropNewest", "DropOldest")));
    assert_eq!(
        stream(&e, "out"),
        vec![(0, 0, 10.0), (0, 3, 0.0), (1, 4, 1.0)]
    );
    assert_eq!(channel(&e, CH)["shed"], 2);
}

#[test]
fn a_telemetry_channel_at_its_high_watermark_sheds_its_oldest_down_to_low() {
    let (o, e) = run(&fast_into_slow(
        12,
        4,
        "capacity: 4, lane: Telemetry, watermarks: Some((3, 1))",
    ));
    assert_eq!(o, Outcome::Completed);
    // t0: v0 taken at (0,1); `out` busy until 4.   t1: [v1]   t2: [v1 v2]
    // t3: [v1 v2 v3] reaches high 3 → crossing 1, shed v1 v2 down to low 1: [v3]
    // t4: `out` takes v3, v4 arrives: [v4].   t5: [v4 v5]   t6: crossing 2, shed v4 v5: [v6]
    // t7: [v6 v7]   t8: `out` takes v6, v8 arrives: [v7 v8] (2, below high)
    // t9: crossing 3, shed v7 v8: [v9]   t10: [v9 v10]   t11: crossing 4, shed v9 v10: [v11]
    // t12: `out` takes v11. Shed 8, crossings 4.
    assert_eq!(
        stream(&e, "out"),
        vec![(0, 0, 0.0), (3, 3, 3.0), (6, 6, 6.0), (11, 11, 11.0)]
    );
    assert_never_stalled(&e, 12);
    let ch = channel(&e, CH);
    assert_eq!(ch["shed"], 8);
    assert_eq!(ch["watermark_crossings"], 4);
    assert_eq!(ch["high_water"], 3); // never reached capacity 4
    assert_eq!(ch["blocked_by_watermark"]["instants"], 0);
    assert_eq!(ch["lane"], "Telemetry");
    assert_eq!(ch["watermarks"], serde_json::json!({"high": 3, "low": 1}));
}

#[test]
fn a_data_watermark_blocks_the_producer_until_the_channel_drains_to_low() {
    let (o, e) = run(&fast_into_slow(
        8,
        3,
        "capacity: 4, lane: Data, watermarks: Some((3, 1))",
    ));
    assert_eq!(o, Outcome::Completed);
    // t0: v0 taken at (0,1); `out` busy until 3.   t1: [v1]   t2: [v1 v2]
    // t3: v3 arrives, `out` takes v1: [v2 v3] (2).   t4: [v2 v3 v4] reaches high 3: crossing 1.
    // t5: src is due but blocked (room for one more, but above the watermark).
    // t6: `out` takes v2: [v3 v4] — 2 is below high but above low: still blocked (hysteresis).
    // t9: `out` takes v3: [v4] is at low 1 → the excursion ends; src fires at (9,1): v5.
    // t10: [v4 v5 v6] crossing 2.   t12: `out` takes v4, [v5 v6] still blocked.
    // t15: `out` takes v5: [v6] → src fires v7 at (15,1).
    // The source fires at 0, 1, 2, 3, 4, 9, 10, 15 (its tokens' visible ticks).
    assert_eq!(
        stream(&e, "out"),
        vec![
            (0, 0, 0.0),
            (1, 1, 1.0),
            (2, 2, 2.0),
            (3, 3, 3.0),
            (4, 4, 4.0),
            (9, 5, 5.0),
            (10, 6, 6.0),
            (15, 7, 7.0)
        ]
    );
    let r = e.report();
    // Stalled 5→9 and 11→15. Processed instants while stalled: (5,0) (src due), (6,0) and
    // (6,1) (`out` fires, then a quiet delta), (9,0); then (11,0) (12,0) (12,1) (15,0).
    let stall = serde_json::json!({"instants": 8, "ticks": 8, "longest_ticks": 4});
    assert_eq!(r.json["stalls"]["nodes"]["src"]["CHANNEL_FULL_WAIT"], stall);
    assert_eq!(r.json["stalls"]["channels"][CH]["CHANNEL_FULL_WAIT"], stall);
    let ch = channel(&e, CH);
    assert_eq!(ch["blocked_by_watermark"], stall);
    assert_eq!(ch["watermark_crossings"], 2);
    assert_eq!(ch["shed"], 0);
    assert_eq!(ch["tokens_passed"], 8);
    assert_eq!(ch["high_water"], 3);
}

#[test]
fn a_control_watermark_only_counts_its_crossing() {
    let plain = run(&fast_into_slow(8, 3, "capacity: 4")).1;
    let (o, e) = run(&fast_into_slow(
        8,
        3,
        "capacity: 4, lane: Control, watermarks: Some((3, 1))",
    ));
    assert_eq!(o, Outcome::Completed);
    // Exactly what the channel does without watermarks: plain back-pressure at capacity 4.
    // t4: [v2 v3 v4] reaches 3 → crossing 1. t5: [v2..v5] full. t6: `out` takes v2, src fires
    // at (6,1); t7 src waits until `out` takes v3 at 9. The channel stays at 2 or more until the
    // source has finished, so the excursion never ends and is counted once.
    assert_eq!(stream(&e, "out"), stream(&plain, "out"));
    assert_eq!(
        ticks(&e, "out"),
        vec![0, 1, 2, 3, 4, 5, 6, 9] // src fires at 0…6 and (9,1)
    );
    let r = e.report();
    assert_eq!(r.output_digest, plain.report().output_digest);
    assert_eq!(
        r.json["stalls"]["nodes"]["src"]["CHANNEL_FULL_WAIT"],
        serde_json::json!({"instants": 3, "ticks": 2, "longest_ticks": 2})
    );
    let ch = channel(&e, CH);
    assert_eq!(ch["watermark_crossings"], 1);
    assert_eq!(ch["shed"], 0);
    assert_eq!(ch["blocked_by_watermark"]["instants"], 0);
    assert_eq!(ch["tokens_passed"], 8);
}

#[test]
fn growth_never_relieves_a_data_watermark() {
    // `out` needs 3 tokens per firing but the Data watermark (high 2) stops the source at 2:
    // blocked only by "room", yet Parks growth cannot help, so the run ends in an artificial
    // deadlock whose mitigation names the watermark, with no growth recorded.
    let s = parse(
        r#"Scene(version: 1, name: "wm_deadlock", nodes: [
            Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: 6),
            Node(name: "out", kernel: Probe, taps: {"in": (rate: 3)})],
          edges: [Edge(from: "src.out", to: "out.in", capacity: 4, watermarks: Some((2, 1)))])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Deadlock);
    let r = e.report();
    assert_eq!(r.json["growths"], serde_json::json!([]));
    let d = r.deadlock.expect("a deadlock report");
    assert_eq!(d.kind, "artificial");
    assert!(
        d.mitigations
            .iter()
            .any(|m| m.contains("Data watermark (high 2, low 1)")),
        "{:?}",
        d.mitigations
    );
    assert_eq!(r.json["channels"][CH]["watermark_crossings"], 1);
}

/// The scenes above and the example scene, with their figures pinned.
fn scenes() -> Vec<Scene> {
    vec![
        fast_into_slow(10, 3, "capacity: 2, policy: DropOldest"),
        fast_into_slow(10, 3, "capacity: 2, policy: DropNewest"),
        fast_into_slow(6, 0, "capacity: 2, delay: 5, policy: DropOldest"),
        fast_into_slow(
            12,
            4,
            "capacity: 4, lane: Telemetry, watermarks: Some((3, 1))",
        ),
        fast_into_slow(8, 3, "capacity: 4, lane: Data, watermarks: Some((3, 1))"),
        fast_into_slow(8, 3, "capacity: 4, lane: Control, watermarks: Some((3, 1))"),
        scene("telemetry_shed"),
    ]
}

fn digest(scene: &Scene, opts: RunOptions) -> (String, String, serde_json::Value) {
    let mut e = Engine::from_scene(scene, opts).expect("scene plans");
    e.run();
    let r = e.report();
    (r.output_digest, r.values_digest, r.json["channels"].clone())
}

#[test]
fn output_digest_is_identical_across_thread_counts_and_runs() {
    for s in scenes() {
        let threads = |n| RunOptions {
            threads: Some(n),
            ..RunOptions::default()
        };
        let one = digest(&s, threads(1));
        assert_eq!(
            digest(&s, threads(2)),
            one,
            "{}: 1 vs 2 threads",
            s.spec.name
        );
        assert_eq!(digest(&s, threads(1)), one, "{}: second run", s.spec.name);
        // IPLS: staged steps settle once, after the last stage, so these scenes (which the
        // spec allows to differ across modes) come out the same under IplsAuto too.
        let ipls = |n| RunOptions {
            threads: Some(n),
            schedule: Some(ScheduleSpec::IplsAuto),
            ..RunOptions::default()
        };
        for n in [1, 2] {
            let staged = digest(&s, ipls(n));
            assert_eq!(staged.0, one.0, "{}: ipls-auto output_digest", s.spec.name);
            assert_eq!(staged.1, one.1, "{}: ipls-auto values_digest", s.spec.name);
            for (name, ch) in one.2.as_object().expect("channels") {
                for key in ["shed", "watermark_crossings", "blocked_by_watermark"] {
                    assert_eq!(
                        staged.2[name][key], ch[key],
                        "{}: {name} {key}",
                        s.spec.name
                    );
                }
            }
        }
    }
}

#[test]
fn the_example_scene_sheds_and_drops_without_stalling_the_sensor() {
    let (o, e) = run(&scene("telemetry_shed"));
    assert_eq!(o, Outcome::Completed);
    // Logger (Telemetry, capacity 4, watermarks (3, 1), 4 ticks per sample): crossings at
    // 3, 6, 9, 11, 14, each shedding 2 (see the scene's comment and the Telemetry test).
    assert_eq!(
        stream(&e, "logger"),
        vec![
            (0, 0, 0.0),
            (3, 3, 3.0),
            (6, 6, 6.0),
            (11, 11, 11.0),
            (14, 14, 14.0),
            (15, 15, 15.0)
        ]
    );
    // Sampler (DropNewest, one slot, 5 ticks per sample): takes v0 at (0,1); v1 waits in the
    // slot and v2..v4 are dropped; at 5 it takes v1 and v5 arrives; v6..v9 dropped; at 10 it
    // takes v5 (v10 arrives), at 15 v10 (v15 arrives), at 20 v15. Outputs ×10, 5 ticks later.
    assert_eq!(
        stream(&e, "samples"),
        vec![
            (5, 0, 0.0),
            (10, 1, 10.0),
            (15, 2, 50.0),
            (20, 3, 100.0),
            (25, 4, 150.0)
        ]
    );
    let r = e.report();
    assert_eq!(r.json["firings"]["sensor"], 16);
    assert!(r.json["stalls"]["nodes"].get("sensor").is_none());
    let logger = &r.json["channels"]["sensor.out->logger.in"];
    assert_eq!(
        (&logger["shed"], &logger["watermark_crossings"]),
        (&10.into(), &5.into())
    );
    let sampler = &r.json["channels"]["sensor.out->sampler.in"];
    assert_eq!(sampler["shed"], 11); // v2–v4, v6–v9, v11–v14
    assert_eq!(sampler["tokens_passed"], 5);
}

mod arena_order_independence {
    //! Property: on a Drop channel, the tokens held after a step settles do not depend on how
    //! the step's consumption and arrivals interleave, and equal the rule
    //! `drops = min(arrivals, max(0, held − capacity))` — oldest first for `DropOldest`, newest
    //! arrivals for `DropNewest` — with every token keeping its seq.
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use tapwheel::arena::TokenArena;
    use tapwheel::overflow::ChannelRules;
    use tapwheel::scene::Policy;
    use tapwheel::time::Instant;

    /// One step: how many tokens the consumer takes (at most what was held at the step's
    /// start), how many arrive, and an interleaving (true = take one next).
    #[derive(Debug, Clone)]
    struct Step {
        pops: usize,
        writes: usize,
        order: Vec<bool>,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (
                0usize..4,
                0usize..5,
                prop::collection::vec(any::<bool>(), 10),
            )
                .prop_map(|(pops, writes, order)| Step {
                    pops,
                    writes,
                    order,
                }),
            1..40,
        )
    }

    /// Runs the steps on an arena; `pops_first` overrides the interleaving.
    fn arena_run(policy: Policy, cap: u32, steps: &[Step], pops_first: Option<bool>) -> Vec<u64> {
        let mut a = TokenArena::new(1 << 20);
        let ch = a.add_channel(cap, 1).unwrap();
        a.set_rules(ch, ChannelRules::policy(policy));
        let (mut v, mut m) = (Vec::new(), Vec::new());
        for (t, s) in steps.iter().enumerate() {
            let now = Instant::new(t as u64, 0);
            let pops = s.pops.min(a.ring(ch).len());
            let (mut p, mut w) = (0, 0);
            let mut k = 0;
            while p < pops || w < s.writes {
                let take = match pops_first {
                    Some(f) => f,
                    None => s.order.get(k).copied().unwrap_or(true),
                };
                k += 1;
                if (take && p < pops) || w == s.writes {
                    a.pop(ch, 1, &mut v, &mut m);
                    p += 1;
                } else {
                    a.reserve(ch, 1);
                    a.write(ch, &[0.0], now.after_delay(0)).unwrap();
                    w += 1;
                }
            }
            a.settle();
            a.end_step();
            assert!(a.ring(ch).len() <= cap as usize);
        }
        (0..a.ring(ch).len()).map(|i| a.meta(ch, i).seq).collect()
    }

    fn model(policy: Policy, cap: usize, steps: &[Step]) -> (Vec<u64>, u64) {
        let mut held: VecDeque<u64> = VecDeque::new();
        let (mut next, mut shed) = (0u64, 0u64);
        for s in steps {
            let pops = s.pops.min(held.len());
            held.drain(..pops);
            for _ in 0..s.writes {
                held.push_back(next);
                next += 1;
            }
            let k = s.writes.min(held.len().saturating_sub(cap));
            for _ in 0..k {
                if policy == Policy::DropOldest {
                    held.pop_front();
                } else {
                    held.pop_back();
                }
            }
            shed += k as u64;
        }
        (held.into_iter().collect(), shed)
    }

    proptest! {
        #[test]
        fn drops_follow_the_rule_in_any_interleaving(
            cap in 1u32..4,
            oldest in any::<bool>(),
            steps in steps(),
        ) {
            let policy = if oldest { Policy::DropOldest } else { Policy::DropNewest };
            let (want, _) = model(policy, cap as usize, &steps);
            prop_assert_eq!(&arena_run(policy, cap, &steps, None), &want);
            prop_assert_eq!(&arena_run(policy, cap, &steps, Some(true)), &want);
            prop_assert_eq!(&arena_run(policy, cap, &steps, Some(false)), &want);
        }
    }
}
