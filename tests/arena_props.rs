//! Property tests for the token arena (SPEC §3) against a plain `VecDeque` model.
//!
//! Properties, over random operation sequences on several channels:
//! 1. FIFO order: popped values and seq numbers equal those written, in order (seq 0, 1, 2, …).
//! 2. No early visibility: `visible_count` (and the incremental `visible_now`) is exactly the number of leading tokens visible at
//!    `now`; a token written at (t, δ) with delay d is invisible at (t+d−1, ·) and, for d = 0, at
//!    (t, δ); it is visible at (t+d, 0) / (t, δ+1).
//! 3. Growth preserves content: `set_capacity` to a larger value keeps every channel's tokens.
//! 4. Occupancy: room == capacity − len − reserved − freed-this-step (saturating); room freed by
//!    a pop appears only after `end_step()`.
//! 5. Byte limit: growth past the limit is `Err(LimitExceeded)` and changes nothing.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::VecDeque;
use tapwheel::arena::{ArenaError, TokenArena, TokenMeta};
use tapwheel::time::Instant;

/// One channel's configuration: (capacity, token length, delay).
type ChanCfg = (u32, usize, u64);

#[derive(Debug, Clone)]
enum Op {
    /// Reserve up to `n` slots (never more than the current room).
    Reserve { ch: usize, n: u32 },
    /// Reserve one slot regardless of room and write it (initial tokens above capacity).
    ForceWrite { ch: usize },
    /// Write one reserved token at the current instant (no-op without a reservation).
    Write { ch: usize },
    /// Return up to `n` reservations unused.
    Release { ch: usize, n: u32 },
    /// Pop up to `n` visible tokens.
    Pop { ch: usize, n: usize },
    /// Grow the capacity by `extra`.
    Grow { ch: usize, extra: u32 },
    /// End the step and advance time: `dt == 0` is the next delta, else `dt` ticks later.
    EndStep { dt: u64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..8, 1u32..4).prop_map(|(ch, n)| Op::Reserve { ch, n }),
        1 => (0usize..8).prop_map(|ch| Op::ForceWrite { ch }),
        6 => (0usize..8).prop_map(|ch| Op::Write { ch }),
        1 => (0usize..8, 1u32..3).prop_map(|(ch, n)| Op::Release { ch, n }),
        4 => (0usize..8, 1usize..4).prop_map(|(ch, n)| Op::Pop { ch, n }),
        2 => (0usize..8, 1u32..8).prop_map(|(ch, extra)| Op::Grow { ch, extra }),
        4 => (0u64..4).prop_map(|dt| Op::EndStep { dt }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MTok {
    values: Vec<f32>,
    seq: u64,
    written: Instant,
    visible: Instant,
}

#[derive(Debug, Clone)]
struct MChan {
    capacity: u32,
    token_len: usize,
    delay: u64,
    tokens: VecDeque<MTok>,
    reserved: u32,
    freed: u32,
    next_seq: u64,
}

impl MChan {
    fn new((capacity, token_len, delay): ChanCfg) -> Self {
        MChan {
            capacity,
            token_len,
            delay,
            tokens: VecDeque::new(),
            reserved: 0,
            freed: 0,
            next_seq: 0,
        }
    }

    fn room(&self) -> u32 {
        self.capacity
            .saturating_sub(self.tokens.len() as u32 + self.reserved + self.freed)
    }

    /// Leading tokens visible at `at`.
    fn visible_at(&self, at: Instant) -> usize {
        self.tokens.iter().take_while(|t| t.visible <= at).count()
    }

    /// A payload unique to (channel, seq), exactly representable in f32.
    fn payload(&self, ch: usize, seq: u64) -> Vec<f32> {
        (0..self.token_len)
            .map(|k| (ch * 100_000 + seq as usize * 8 + k) as f32)
            .collect()
    }
}

/// The instant just before `v` (the latest delta of the previous tick when `v.delta == 0`).
fn just_before(v: Instant) -> Instant {
    if v.delta > 0 {
        Instant::new(v.tick, v.delta - 1)
    } else {
        Instant::new(v.tick - 1, u32::MAX)
    }
}

fn snapshot(arena: &TokenArena, ch: usize) -> Vec<(Vec<f32>, TokenMeta)> {
    (0..arena.ring(ch).len())
        .map(|i| (arena.token(ch, i).to_vec(), arena.meta(ch, i)))
        .collect()
}

/// Every observable of every channel agrees with the model (properties 2, 3, 4).
fn check_all(arena: &TokenArena, model: &[MChan], now: Instant) -> Result<(), TestCaseError> {
    prop_assert_eq!(arena.channels(), model.len());
    for (ch, m) in model.iter().enumerate() {
        let r = arena.ring(ch);
        prop_assert_eq!(r.len(), m.tokens.len(), "len of channel {}", ch);
        prop_assert_eq!(r.reserved, m.reserved, "reserved of channel {}", ch);
        prop_assert_eq!(r.capacity, m.capacity, "capacity of channel {}", ch);
        prop_assert_eq!(r.token_len(), m.token_len);
        // Property 4: occupancy.
        prop_assert_eq!(arena.room(ch), m.room(), "room of channel {}", ch);
        prop_assert_eq!(
            r.occupancy(),
            m.tokens.len() as u32 + m.reserved + m.freed,
            "occupancy of channel {}",
            ch
        );
        // Property 3 (checked after every op, hence across growths/compactions): content.
        for (i, t) in m.tokens.iter().enumerate() {
            prop_assert_eq!(
                arena.token(ch, i),
                &t.values[..],
                "payload {} of channel {}",
                i,
                ch
            );
            let meta = arena.meta(ch, i);
            prop_assert_eq!(meta.seq, t.seq, "seq {} of channel {}", i, ch);
            prop_assert_eq!(meta.visible, t.visible, "visible {} of channel {}", i, ch);
        }
        // Property 2: exact visible count now, and at each token's boundary instants.
        prop_assert_eq!(
            arena.visible_count(ch, now),
            m.visible_at(now),
            "visible_count of channel {} at {}",
            ch,
            now
        );
        for (i, t) in m.tokens.iter().enumerate() {
            let d = m.delay;
            // Never in the step that wrote it.
            prop_assert!(arena.visible_count(ch, t.written) <= i);
            if d > 0 {
                // Not at any delta of tick t+d−1 ...
                for probe in [
                    Instant::new(t.written.tick + d - 1, 0),
                    Instant::new(t.written.tick + d - 1, u32::MAX),
                ] {
                    prop_assert!(
                        arena.visible_count(ch, probe) <= i,
                        "token {} of channel {} (written {}, d {}) visible at {}",
                        i,
                        ch,
                        t.written,
                        d,
                        probe
                    );
                    prop_assert_eq!(arena.visible_count(ch, probe), m.visible_at(probe));
                }
                // ... but at (t+d, 0).
                let at = Instant::new(t.written.tick + d, 0);
                prop_assert!(arena.visible_count(ch, at) > i);
                prop_assert_eq!(arena.visible_count(ch, at), m.visible_at(at));
            } else {
                let at = Instant::new(t.written.tick, t.written.delta + 1);
                prop_assert!(arena.visible_count(ch, at) > i);
                prop_assert_eq!(arena.visible_count(ch, at), m.visible_at(at));
            }
            let before = just_before(t.visible);
            prop_assert!(arena.visible_count(ch, before) <= i);
            prop_assert_eq!(arena.visible_count(ch, before), m.visible_at(before));
        }
    }
    Ok(())
}

/// Runs `ops` on an arena and on the model; `limit` is the arena byte limit.
fn run(cfg: &[ChanCfg], ops: &[Op], limit: usize) -> Result<(), TestCaseError> {
    let mut arena = TokenArena::new(limit);
    let mut model: Vec<MChan> = Vec::new();
    for &c in cfg {
        match arena.add_channel(c.0, c.1) {
            Ok(ch) => {
                prop_assert_eq!(ch, model.len());
                model.push(MChan::new(c));
            }
            Err(ArenaError::LimitExceeded { needed, limit: l }) => {
                prop_assert!(needed > l && l == limit);
            }
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
    if model.is_empty() {
        return Ok(());
    }
    let mut now = Instant::ZERO;
    let mut popped_values = Vec::new();
    let mut popped_metas = Vec::new();
    for op in ops {
        match *op {
            Op::Reserve { ch, n } => {
                let ch = ch % model.len();
                let n = n.min(model[ch].room());
                if n > 0 {
                    arena.reserve(ch, n);
                    model[ch].reserved += n;
                }
            }
            Op::Release { ch, n } => {
                let ch = ch % model.len();
                arena.release(ch, n);
                model[ch].reserved = model[ch].reserved.saturating_sub(n);
            }
            Op::Write { ch } | Op::ForceWrite { ch } => {
                let ch = ch % model.len();
                if matches!(op, Op::ForceWrite { .. }) {
                    arena.reserve(ch, 1);
                    model[ch].reserved += 1;
                } else if model[ch].reserved == 0 {
                    continue;
                }
                let m = &mut model[ch];
                let seq = m.next_seq;
                let values = m.payload(ch, seq);
                let visible = now.after_delay(m.delay);
                let before: Vec<_> = (0..model.len()).map(|c| snapshot(&arena, c)).collect();
                match arena.write(ch, &values, visible) {
                    Ok(s) => {
                        prop_assert_eq!(s, seq, "write seq on channel {}", ch);
                        let m = &mut model[ch];
                        m.reserved -= 1;
                        m.next_seq += 1;
                        m.tokens.push_back(MTok {
                            values,
                            seq,
                            written: now,
                            visible,
                        });
                        // Property 2: a fresh token is never visible in the step that wrote it.
                        let vc = arena.visible_count(ch, now);
                        prop_assert!(vc < model[ch].tokens.len());
                    }
                    Err(ArenaError::LimitExceeded { needed, limit: l }) => {
                        // Only a write that must grow the ring may fail; nothing changes.
                        prop_assert!(needed > l && l == limit);
                        for (c, b) in before.iter().enumerate() {
                            prop_assert_eq!(&snapshot(&arena, c), b);
                        }
                        // The model keeps the reservation; drop it on both sides.
                        arena.release(ch, 1);
                        model[ch].reserved -= 1;
                    }
                    Err(e) => prop_assert!(false, "unexpected error {:?}", e),
                }
            }
            Op::Pop { ch, n } => {
                let ch = ch % model.len();
                let n = n.min(arena.visible_count(ch, now));
                prop_assert_eq!(n, n.min(model[ch].visible_at(now)));
                let room_before = arena.room(ch);
                popped_values.clear();
                popped_metas.clear();
                arena.pop(ch, n, &mut popped_values, &mut popped_metas);
                // Property 1: FIFO values and seq numbers.
                prop_assert_eq!(popped_metas.len(), n);
                prop_assert_eq!(popped_values.len(), n * model[ch].token_len);
                let tl = model[ch].token_len;
                for i in 0..n {
                    let t = model[ch].tokens.pop_front().unwrap();
                    prop_assert_eq!(&popped_values[i * tl..(i + 1) * tl], &t.values[..]);
                    prop_assert_eq!(popped_metas[i].seq, t.seq);
                    prop_assert_eq!(popped_metas[i].visible, t.visible);
                    prop_assert!(t.visible <= now);
                }
                model[ch].freed += n as u32;
                // Property 4: room freed by a pop is not seen before end_step.
                prop_assert_eq!(arena.room(ch), room_before, "room changed by pop on {}", ch);
            }
            Op::Grow { ch, extra } => {
                let ch = ch % model.len();
                let cap = model[ch].capacity + extra;
                let before: Vec<_> = (0..model.len()).map(|c| snapshot(&arena, c)).collect();
                let bytes_before = arena.bytes();
                match arena.set_capacity(ch, cap) {
                    Ok(()) => model[ch].capacity = cap,
                    Err(ArenaError::LimitExceeded { needed, limit: l }) => {
                        // Property 5: a refused growth changes nothing.
                        prop_assert!(needed > l && l == limit);
                        prop_assert_eq!(arena.bytes(), bytes_before);
                        prop_assert_eq!(arena.ring(ch).capacity, model[ch].capacity);
                    }
                    Err(e) => prop_assert!(false, "unexpected error {:?}", e),
                }
                // Property 3: every channel's content is unchanged by the growth.
                for (c, b) in before.iter().enumerate() {
                    prop_assert_eq!(
                        &snapshot(&arena, c),
                        b,
                        "channel {} after growing {}",
                        c,
                        ch
                    );
                }
            }
            Op::EndStep { dt } => {
                arena.end_step();
                for m in model.iter_mut() {
                    m.freed = 0;
                }
                // Property 4: after end_step room is capacity − len − reserved.
                for (ch, m) in model.iter().enumerate() {
                    prop_assert_eq!(
                        arena.room(ch),
                        m.capacity
                            .saturating_sub(m.tokens.len() as u32 + m.reserved)
                    );
                }
                now = if dt == 0 {
                    now.next_delta()
                } else {
                    Instant::new(now.tick + dt, 0)
                };
            }
        }
        prop_assert!(
            arena.bytes() <= limit,
            "arena holds {} > {} bytes",
            arena.bytes(),
            limit
        );
        check_all(&arena, &model, now)?;
        // Property 2 for the engine's incremental look-up: it goes on from what the last
        // look-up found (through pops, growth and time) and must equal the model every time.
        for (ch, m) in model.iter().enumerate() {
            prop_assert_eq!(
                arena.visible_now(ch, now),
                m.visible_at(now),
                "visible_now of channel {} at {}",
                ch,
                now
            );
        }
    }
    // Drain: every remaining token eventually pops, in order (property 1 end to end).
    let far = Instant::new(now.tick + 10, 0);
    for (ch, m) in model.iter().enumerate() {
        prop_assert_eq!(arena.visible_count(ch, far), m.tokens.len());
        popped_values.clear();
        popped_metas.clear();
        arena.pop(ch, m.tokens.len(), &mut popped_values, &mut popped_metas);
        let seqs: Vec<u64> = popped_metas.iter().map(|t| t.seq).collect();
        let want: Vec<u64> = m.tokens.iter().map(|t| t.seq).collect();
        prop_assert_eq!(seqs, want);
        let want_values: Vec<f32> = m.tokens.iter().flat_map(|t| t.values.clone()).collect();
        prop_assert_eq!(&popped_values, &want_values);
    }
    Ok(())
}

fn config() -> Config {
    Config {
        cases: 256,
        // Keep the tree clean: no regression files next to this test.
        failure_persistence: None,
        ..Config::default()
    }
}

fn chan_cfg(token_len: impl Strategy<Value = usize>) -> impl Strategy<Value = ChanCfg> {
    (1u32..8, token_len, 0u64..5)
}

proptest! {
    #![proptest_config(config())]

    /// Properties 1–4 with every channel's token length drawn independently (1..4).
    #[test]
    fn arena_matches_model_mixed_token_lengths(
        cfg in prop::collection::vec(chan_cfg(1usize..5), 1..5),
        ops in prop::collection::vec(op_strategy(), 0..200),
    ) {
        run(&cfg, &ops, usize::MAX)?;
    }

    /// Properties 1–4 with one token length shared by every channel (isolates the other rules
    /// from mixed-length payload addressing).
    #[test]
    fn arena_matches_model_uniform_token_length(
        tl in 1usize..5,
        cfg in prop::collection::vec((1u32..8, 0u64..5), 1..5),
        ops in prop::collection::vec(op_strategy(), 0..200),
    ) {
        let cfg: Vec<ChanCfg> = cfg.into_iter().map(|(c, d)| (c, tl, d)).collect();
        run(&cfg, &ops, usize::MAX)?;
    }

    /// Property 5 (plus 1–4): a small byte limit turns growth into `LimitExceeded`, leaving
    /// content, capacity and bytes intact; the arena never exceeds its limit.
    #[test]
    fn byte_limit_refuses_growth(
        limit in 64usize..1024,
        tl in 1usize..5,
        cfg in prop::collection::vec((1u32..8, 0u64..5), 1..5),
        ops in prop::collection::vec(op_strategy(), 0..200),
    ) {
        let cfg: Vec<ChanCfg> = cfg.into_iter().map(|(c, d)| (c, tl, d)).collect();
        run(&cfg, &ops, limit)?;
    }

    /// Property 5, directly: a growth that alone exceeds the limit fails and changes nothing.
    #[test]
    fn byte_limit_huge_growth_is_refused(
        cap in 1u32..8,
        tl in 1usize..5,
        n in 0u32..8,
    ) {
        let mut arena = TokenArena::new(4096);
        let ch = arena.add_channel(cap, tl).unwrap();
        let n = n.min(cap);
        arena.reserve(ch, n);
        for s in 0..n {
            let v: Vec<f32> = (0..tl).map(|k| (s * 10 + k as u32) as f32).collect();
            arena.write(ch, &v, Instant::new(u64::from(s), 0)).unwrap();
        }
        let before = snapshot(&arena, ch);
        let bytes = arena.bytes();
        let r = arena.set_capacity(ch, 100_000);
        prop_assert!(
            matches!(r, Err(ArenaError::LimitExceeded { needed, limit: 4096 }) if needed > 4096),
            "{:?}",
            r
        );
        prop_assert_eq!(snapshot(&arena, ch), before);
        prop_assert_eq!(arena.ring(ch).capacity, cap);
        prop_assert_eq!(arena.bytes(), bytes);
        prop_assert_eq!(arena.room(ch), cap - n);
    }
}

/// Minimal failing case 1 (found by `arena_matches_model_mixed_token_lengths`, hand-reduced):
/// with channels of different token lengths, one channel's payload slots overlap another's, so a
/// write silently corrupts a neighbour — no growth, no panic.
#[test]
fn mixed_token_lengths_write_corrupts_neighbour() {
    let mut arena = TokenArena::new(usize::MAX);
    let a = arena.add_channel(2, 3).unwrap(); // meta slots 0..2, payload [0..6)
    let b = arena.add_channel(4, 1).unwrap(); // meta slots 2..6, payload at slot·1 = [2..6)
    arena.reserve(a, 1);
    arena.write(a, &[1.0, 2.0, 3.0], Instant::ZERO).unwrap();
    arena.reserve(b, 1);
    arena.write(b, &[9.0], Instant::ZERO).unwrap();
    assert_eq!(arena.token(b, 0), &[9.0]);
    assert_eq!(arena.token(a, 0), &[1.0, 2.0, 3.0]); // fails: [1.0, 2.0, 9.0]
}

/// Minimal failing case 2, exactly as shrunk by proptest: three growths of a token-length-2
/// channel next to a token-length-1 channel trigger a compaction that indexes past the payload
/// allocation and panics.
#[test]
fn mixed_token_lengths_growth_compaction_panics() {
    let mut arena = TokenArena::new(usize::MAX);
    let _a = arena.add_channel(1, 1).unwrap();
    let b = arena.add_channel(1, 2).unwrap();
    arena.set_capacity(b, 6).unwrap();
    arena.set_capacity(b, 7).unwrap();
    arena.set_capacity(b, 8).unwrap(); // panics in compact(): range end 46 > len 45
    assert_eq!(arena.ring(b).capacity, 8);
}
