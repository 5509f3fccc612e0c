//! The unified token arena: every channel's FIFO ring lives in one contiguous `f32` allocation
//! (payloads) with a parallel metadata allocation (`seq`, `visible_at`).
//!
//! The rules it enforces (SPEC §3):
//!
//! **Visibility.** A token written at instant `(t, δ)` on a channel with delay `d` is invisible
//! before tick `t + d`; with `d == 0` it becomes visible at `(t, δ+1)`, never in the step that
//! wrote it. Consumers see visible tokens only, in FIFO order.
//!
//! ```
//! use tapwheel::arena::TokenArena;
//! use tapwheel::time::Instant;
//! let mut arena = TokenArena::new(1 << 20);
//! let ch = arena.add_channel(4, 1).unwrap();
//! let written = Instant::new(10, 0);
//! arena.reserve(ch, 1);
//! arena.write(ch, &[7.0], written.after_delay(3)).unwrap(); // delay d = 3
//! assert_eq!(arena.visible_count(ch, Instant::new(12, 99)), 0); // t + d − 1: never
//! assert_eq!(arena.visible_count(ch, Instant::new(13, 0)), 1);  // t + d: visible
//! arena.reserve(ch, 1);
//! arena.write(ch, &[8.0], Instant::new(13, 0).after_delay(0)).unwrap(); // zero delay
//! assert_eq!(arena.visible_count(ch, Instant::new(13, 0)), 1); // not in the writing step
//! assert_eq!(arena.visible_count(ch, Instant::new(13, 1)), 2); // the next delta
//! ```
//!
//! **Occupancy.** A token occupies a slot from the moment its write is *reserved* until it is
//! consumed, including while invisible. Room freed by a consumer is seen by the producer only
//! from the next step ([`TokenArena::end_step`]), so the order in which nodes fire within one
//! step cannot change what they see:
//!
//! ```
//! use tapwheel::arena::TokenArena;
//! use tapwheel::time::Instant;
//! let mut arena = TokenArena::new(1 << 20);
//! let ch = arena.add_channel(1, 1).unwrap();
//! arena.reserve(ch, 1);
//! assert_eq!(arena.room(ch), 0); // the reservation holds the only slot
//! arena.write(ch, &[1.0], Instant::new(0, 1)).unwrap();
//! assert_eq!(arena.room(ch), 0); // written, not consumed
//! let mut out = Vec::new();
//! arena.pop(ch, 1, &mut out, &mut Vec::new());
//! assert_eq!(out, vec![1.0]);
//! assert_eq!(arena.room(ch), 0); // freed at this instant, seen in the next delta
//! arena.end_step();
//! assert_eq!(arena.room(ch), 1);
//! ```
//!
//! **Overflow policies and watermarks** (`DropOldest`, `DropNewest`, `watermarks` by lane) are
//! applied by [`TokenArena::admits`], [`TokenArena::reserve`], [`TokenArena::write`] and
//! [`TokenArena::settle`]; their rules and examples are in [`crate::overflow`].
//!
//! **Growth** (Parks) relocates a ring and keeps its content and order; a byte limit turns
//! into a typed error instead of an out-of-memory crash:
//!
//! ```
//! use tapwheel::arena::{ArenaError, TokenArena};
//! use tapwheel::time::Instant;
//! let mut arena = TokenArena::new(256);
//! let a = arena.add_channel(1, 2).unwrap();
//! arena.reserve(a, 1);
//! arena.write(a, &[1.0, 2.0], Instant::ZERO).unwrap();
//! arena.set_capacity(a, 2).unwrap();
//! assert_eq!(arena.token(a, 0), &[1.0, 2.0]);
//! assert!(matches!(arena.set_capacity(a, 1000), Err(ArenaError::LimitExceeded { .. })));
//! ```

use crate::overflow::{Admission, ChannelRules};
use crate::scene::Policy;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::mem::MaybeUninit;

/// Per-token metadata kept beside the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// The channel sequence number: 0, 1, 2, … per channel.
    pub seq: u64,
    /// The instant from which consumers may see the token.
    pub visible: Instant,
}

const EMPTY_META: TokenMeta = TokenMeta {
    seq: 0,
    visible: Instant::NEVER,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    #[error(
        "the token arena would need {needed} bytes, above its limit of {limit} bytes (raise it with --max-arena-bytes)"
    )]
    LimitExceeded { needed: usize, limit: usize },
    #[error("channel {channel} has no free slot for a write that was not reserved")]
    Unreserved { channel: usize },
}

/// One channel's FIFO: a ring of `slots` tokens inside the arena, plus its occupancy counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ring {
    /// The step ([`TokenArena::stamp`]) of the last change to the ring (tokens, reservations,
    /// room, closure, rules). A change in step `s` may show only from step `s + 1` (zero-delay
    /// visibility, closures), so a node checked in step `s` whose channels all changed before
    /// `s` would be judged the same again (`systems/readiness.rs` skips it).
    #[serde(default)]
    pub changed_at: u64,
    /// First metadata slot of this ring.
    offset: usize,
    /// First payload element of this ring (rings of different token lengths interleave).
    value_offset: usize,
    slots: usize,
    token_len: usize,
    head: usize,
    len: usize,
    /// The channel's logical capacity (tokens + reservations allowed).
    pub capacity: u32,
    pub reserved: u32,
    /// Slots freed by consumption during the current step; still counted until [`TokenArena::end_step`].
    freed_in_step: u32,
    next_seq: u64,
    /// Set when the producer closes the channel (end of stream).
    pub closed_at: Option<Instant>,
    /// Set when the consumer finished: later writes are discarded on arrival.
    pub consumer_finished_at: Option<Instant>,
    pub high_water: u32,
    pub written: u64,
    pub consumed: u64,
    pub discarded: u64,
    /// Overflow policy, lane and watermarks ([`crate::overflow`]).
    pub rules: ChannelRules,
    /// Above the high watermark and not yet back to low (hysteresis).
    pub above: bool,
    /// Tokens dropped by the policy or shed by a Telemetry watermark.
    pub shed: u64,
    /// Times the occupancy reached the high watermark.
    pub crossings: u64,
    /// Tokens written to a Drop channel in the current step (settled at its end).
    arrived: u32,
    /// Listed for [`TokenArena::settle`] in the current step.
    unsettled: bool,
    /// Slots `0..init` of the ring hold their payload; the others were never written and read
    /// as zeros (their storage is left unwritten until then). A ring fills its slots in order
    /// from 0 (head and tail start at slot 0 and move forward; the tail moves back only over
    /// written slots, when `DropNewest` sheds), so the written slots are always a prefix.
    #[serde(skip)]
    init: usize,
}

impl Ring {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn token_len(&self) -> usize {
        self.token_len
    }
    /// Tokens plus reservations: the slots in use.
    pub fn occupancy(&self) -> u32 {
        (self.len as u32)
            .saturating_add(self.reserved)
            .saturating_add(self.freed_in_step)
    }
    /// No token and no reservation (§4 "drained").
    pub fn drained(&self) -> bool {
        self.len == 0 && self.reserved == 0
    }
    /// Closed as seen from `now`: closures made in the current step are seen from the next one.
    pub fn closed_before(&self, now: Instant) -> bool {
        self.closed_at.is_some_and(|c| c < now)
    }
    pub fn consumer_finished_before(&self, now: Instant) -> bool {
        self.consumer_finished_at.is_some_and(|c| c < now)
    }
    /// A `Data` channel above its high watermark: its producer is held back.
    pub fn watermark_blocks(&self) -> bool {
        self.above && self.rules.blocks_above()
    }
}

/// The arena: one payload allocation and one metadata allocation shared by every channel.
///
/// The payload allocation is made when the first token is written (so a scene's channels,
/// added one after the other, get one allocation of the right size) and a ring's slots are
/// left unwritten until a token goes there: a ring holds its tokens' payloads, its slots
/// never written read as zeros. It serializes as if every slot were stored (zeros for those).
#[derive(bevy_ecs::prelude::Resource, Debug, Clone, Serialize, Deserialize)]
#[serde(into = "ArenaData", from = "ArenaData")]
pub struct TokenArena {
    /// Payload storage: `values_end` elements once allocated (empty before), of which the
    /// slots at or beyond a ring's `Ring::init` are uninitialised; every other element
    /// (written slots, slots left behind by a relocation) is initialised.
    values: Vec<MaybeUninit<f32>>,
    /// The payload elements the rings take (the allocation's length once made).
    values_end: usize,
    meta: Vec<TokenMeta>,
    rings: Vec<Ring>,
    /// Slots no ring uses any more (left behind by relocation); compacted when they dominate.
    dead_slots: usize,
    limit_bytes: usize,
    touched: Vec<u32>,
    /// Channels with policies or watermarks touched in the current step.
    #[serde(default)]
    unsettled: Vec<u32>,
    /// Tokens taken (consumed or discarded) from rendezvous (capacity-0) channels since the
    /// last drain: `(channel, count)`; their producers' firings complete (§10).
    #[serde(default)]
    pub rendezvous_taken: Vec<(usize, usize)>,
    /// The step being processed (the engine sets it before each step); changes are stamped
    /// with it.
    #[serde(default)]
    pub stamp: u64,
    /// Channels first changed in the current step, and in the previous one.
    #[serde(default)]
    changed_now: Vec<u32>,
    #[serde(default)]
    changed_before: Vec<u32>,
    /// Per channel: how many tokens from the head were visible at the instant of its last
    /// [`TokenArena::visible_now`] look-up. Visibility is monotone in FIFO order and time only
    /// moves on, so the next look-up continues from there (amortized O(1) instead of a binary
    /// search per look-up). Consumption and shedding keep it in step.
    #[serde(skip)]
    known_visible: Vec<KnownVisible>,
}

/// What the last [`TokenArena::visible_now`] look-up on a channel found.
#[derive(Debug, Clone, Copy, Default)]
struct KnownVisible {
    /// Tokens from the head visible at `at`.
    count: usize,
    at: Instant,
    /// When the first token not yet visible becomes visible (`None`: not known), so a look-up
    /// before then needs no metadata read (they are cache misses across many channels).
    next: Option<Instant>,
}

impl TokenArena {
    /// An empty arena that refuses to grow beyond `limit_bytes` (payload + metadata).
    pub fn new(limit_bytes: usize) -> Self {
        TokenArena {
            values: Vec::new(),
            values_end: 0,
            meta: Vec::new(),
            rings: Vec::new(),
            dead_slots: 0,
            limit_bytes,
            touched: Vec::new(),
            unsettled: Vec::new(),
            rendezvous_taken: Vec::new(),
            stamp: 0,
            changed_now: Vec::new(),
            changed_before: Vec::new(),
            known_visible: Vec::new(),
        }
    }

    /// Adds a channel ring of `capacity` tokens of `token_len` elements; returns its index.
    pub fn add_channel(&mut self, capacity: u32, token_len: usize) -> Result<usize, ArenaError> {
        let slots = (capacity as usize).max(1);
        self.check_limit(slots, token_len)?;
        let offset = self.meta.len();
        let value_offset = self.values_end;
        self.values_end += slots * token_len;
        self.meta.resize(offset + slots, EMPTY_META);
        self.rings.push(Ring {
            offset,
            value_offset,
            slots,
            token_len,
            head: 0,
            len: 0,
            capacity,
            reserved: 0,
            freed_in_step: 0,
            next_seq: 0,
            closed_at: None,
            consumer_finished_at: None,
            high_water: 0,
            written: 0,
            consumed: 0,
            discarded: 0,
            rules: ChannelRules::default(),
            above: false,
            shed: 0,
            crossings: 0,
            arrived: 0,
            unsettled: false,
            changed_at: 0,
            init: 0,
        });
        Ok(self.rings.len() - 1)
    }

    fn bytes_for(slots: usize, token_len: usize) -> usize {
        slots
            .saturating_mul(token_len.saturating_mul(4))
            .saturating_add(slots.saturating_mul(std::mem::size_of::<TokenMeta>()))
    }

    /// Bytes currently held (payload + metadata).
    pub fn bytes(&self) -> usize {
        self.values_end * 4 + self.meta.len() * std::mem::size_of::<TokenMeta>()
    }

    fn check_limit(&self, extra_slots: usize, token_len: usize) -> Result<(), ArenaError> {
        let needed = self
            .bytes()
            .saturating_add(Self::bytes_for(extra_slots, token_len));
        if needed > self.limit_bytes {
            return Err(ArenaError::LimitExceeded {
                needed,
                limit: self.limit_bytes,
            });
        }
        Ok(())
    }

    pub fn ring(&self, ch: usize) -> &Ring {
        &self.rings[ch]
    }

    pub fn ring_mut(&mut self, ch: usize) -> &mut Ring {
        self.bump(ch);
        &mut self.rings[ch]
    }

    /// Records a change to channel `ch` in the current step ([`Ring::changed_at`]).
    fn bump(&mut self, ch: usize) {
        let stamp = self.stamp;
        if let Some(r) = self.rings.get_mut(ch)
            && r.changed_at != stamp
        {
            r.changed_at = stamp;
            self.changed_now.push(ch as u32);
        }
    }

    /// Starts step `stamp`: changes are stamped with it, and the channels changed in the
    /// previous step stay listed ([`TokenArena::recently_changed`]).
    pub fn set_stamp(&mut self, stamp: u64) {
        if stamp != self.stamp {
            self.changed_before.clear();
            std::mem::swap(&mut self.changed_before, &mut self.changed_now);
            self.stamp = stamp;
        }
    }

    /// The channels changed in the previous step and so far in this one (a channel may be
    /// listed twice).
    pub fn recently_changed(&self) -> impl Iterator<Item = usize> + '_ {
        self.changed_before
            .iter()
            .chain(&self.changed_now)
            .map(|&c| c as usize)
    }

    /// The step of channel `ch`'s last change ([`Ring::changed_at`]).
    pub fn changed_at(&self, ch: usize) -> u64 {
        self.rings.get(ch).map_or(u64::MAX, |r| r.changed_at)
    }

    pub fn channels(&self) -> usize {
        self.rings.len()
    }

    /// Free slots for new reservations: capacity − tokens − reservations − slots freed this step.
    pub fn room(&self, ch: usize) -> u32 {
        self.rings[ch]
            .capacity
            .saturating_sub(self.rings[ch].occupancy())
    }

    /// Sets a channel's overflow policy, lane and watermarks. Call it after writing the initial
    /// tokens: a Drop policy never drops them, but they may stand at or above `high` (judged,
    /// like everything else, when the first step settles).
    pub fn set_rules(&mut self, ch: usize, rules: ChannelRules) {
        self.bump(ch);
        let r = &mut self.rings[ch];
        r.rules = rules;
        r.arrived = 0;
        self.mark(ch);
    }

    /// §4 condition 3 for one output channel whose firing may produce `need` tokens: a Drop
    /// channel always admits; a `Data` channel above its high watermark holds the producer back;
    /// otherwise the channel needs room for `need`.
    pub fn admits(&self, ch: usize, need: u32) -> Admission {
        let r = &self.rings[ch];
        if r.rules.drops() {
            Admission::Room
        } else if r.watermark_blocks() {
            Admission::Watermark
        } else if self.room(ch) < need {
            Admission::Full
        } else {
            Admission::Room
        }
    }

    /// Lists a channel with rules for [`TokenArena::settle`].
    fn mark(&mut self, ch: usize) {
        let r = &mut self.rings[ch];
        if !r.unsettled && !r.rules.plain() {
            r.unsettled = true;
            self.unsettled.push(ch as u32);
        }
    }

    /// Reserves `n` slots for a firing's future output. Drop channels reserve nothing: their
    /// writes are always accepted and settle at the end of the step.
    pub fn reserve(&mut self, ch: usize, n: u32) {
        self.bump(ch);
        let r = &mut self.rings[ch];
        if r.rules.drops() {
            return;
        }
        r.reserved = r.reserved.saturating_add(n);
        r.high_water = r.high_water.max(r.occupancy());
        self.mark(ch);
    }

    /// Returns `n` reserved slots unused (a firing produced less than its maximum).
    pub fn release(&mut self, ch: usize, n: u32) {
        self.bump(ch);
        let r = &mut self.rings[ch];
        r.reserved = r.reserved.saturating_sub(n);
        if n > 0 {
            self.mark(ch);
        }
    }

    /// Writes one reserved token, visible from `visible`. Returns its sequence number.
    /// Writes beyond the ring's slots (initial tokens above capacity, arrivals on a Drop channel
    /// before the step settles) grow the ring.
    pub fn write(&mut self, ch: usize, token: &[f32], visible: Instant) -> Result<u64, ArenaError> {
        self.bump(ch);
        if self.rings[ch].len >= self.rings[ch].slots {
            let want = (self.rings[ch].slots * 2).max(self.rings[ch].len + 1);
            self.resize_ring(ch, want)?;
        }
        self.allocate();
        let r = &mut self.rings[ch];
        let drops = r.rules.drops();
        if !drops {
            r.reserved = r.reserved.saturating_sub(1);
        }
        let local = (r.head + r.len) % r.slots;
        let tl = r.token_len;
        let n = tl.min(token.len());
        let at = r.value_offset + local * tl;
        if local >= r.init {
            // A slot never written (and any skipped before it, which cannot happen as rings
            // fill in order) holds zeros: a short token leaves them in its tail.
            zero(&mut self.values[r.value_offset + r.init * tl..at]);
            zero(&mut self.values[at + n..at + tl]);
            r.init = local + 1;
        }
        if let ([v], [slot]) = (&token[..n], &mut self.values[at..at + n]) {
            slot.write(*v); // one value: no library copy call
        } else {
            self.values[at..at + n].write_copy_of_slice(&token[..n]);
        }
        let seq = r.next_seq;
        self.meta[r.offset + local] = TokenMeta { seq, visible };
        r.next_seq += 1;
        r.len += 1;
        r.written += 1;
        if drops {
            // The high-water mark of a Drop channel is taken once the step has settled.
            r.arrived = r.arrived.saturating_add(1);
        } else {
            r.high_water = r.high_water.max(r.occupancy());
        }
        self.mark(ch);
        Ok(seq)
    }

    /// Counts a token written to a channel whose consumer has finished (discarded on arrival).
    pub fn discard_on_arrival(&mut self, ch: usize) {
        self.bump(ch);
        let r = &mut self.rings[ch];
        if !r.rules.drops() {
            r.reserved = r.reserved.saturating_sub(1);
        }
        r.next_seq += 1;
        r.written += 1;
        r.discarded += 1;
    }

    /// The `i`-th oldest token's payload (`i` < the ring's length).
    pub fn token(&self, ch: usize, i: usize) -> &[f32] {
        let r = &self.rings[ch];
        assert!(i < r.len, "token {i} of a ring holding {}", r.len);
        let local = (r.head + i) % r.slots;
        let at = r.value_offset + local * r.token_len;
        let slot = &self.values[at..at + r.token_len];
        // SAFETY: the `i`-th token (i < len) sits in a slot that was written (slots
        // `head..head + len` are written ones, all below `init`), so every element of `slot`
        // is initialised, and `MaybeUninit<f32>` has the layout of `f32`.
        unsafe { &*(std::ptr::from_ref::<[MaybeUninit<f32>]>(slot) as *const [f32]) }
    }

    /// The `i`-th oldest token's metadata.
    pub fn meta(&self, ch: usize, i: usize) -> TokenMeta {
        let r = &self.rings[ch];
        self.meta[r.offset + (r.head + i) % r.slots]
    }

    /// How many tokens, from the head, are visible at `now` (visibility is monotone in FIFO order).
    pub fn visible_count(&self, ch: usize, now: Instant) -> usize {
        let r = &self.rings[ch];
        let (mut lo, mut hi) = (0usize, r.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.meta(ch, mid).visible <= now {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// [`TokenArena::visible_count`] for the engine's look-ups, whose `now` never goes back:
    /// it goes on from the count the last look-up found.
    pub fn visible_now(&mut self, ch: usize, now: Instant) -> usize {
        let Some(r) = self.rings.get(ch) else {
            return 0;
        };
        if self.known_visible.len() <= ch {
            self.known_visible
                .resize(self.rings.len(), KnownVisible::default());
        }
        let known = self.known_visible[ch];
        if now < known.at {
            return self.visible_count(ch, now);
        }
        let mut k = known.count.min(r.len);
        if k < r.len && known.next.is_some_and(|v| v > now) {
            self.known_visible[ch].at = now;
            return k;
        }
        let meta = |i: usize| self.meta[r.offset + (r.head + i) % r.slots].visible;
        while k < r.len && meta(k) <= now {
            k += 1;
        }
        let next = (k < r.len).then(|| meta(k));
        self.known_visible[ch] = KnownVisible {
            count: k,
            at: now,
            next,
        };
        k
    }

    /// Consumes `n` tokens from the head, appending payloads and metadata. Their slots free at
    /// the end of the step.
    pub fn pop(&mut self, ch: usize, n: usize, values: &mut Vec<f32>, metas: &mut Vec<TokenMeta>) {
        let n = n.min(self.rings[ch].len);
        values.reserve(n * self.rings[ch].token_len);
        for i in 0..n {
            match self.token(ch, i) {
                [v] => values.push(*v), // one value: no library copy call
                t => values.extend_from_slice(t),
            }
            metas.push(self.meta(ch, i));
        }
        self.drop_front(ch, n, false);
    }

    /// Discards every token held (the consumer finished); returns how many.
    pub fn discard_all(&mut self, ch: usize) -> usize {
        let n = self.rings[ch].len;
        self.drop_front(ch, n, true);
        n
    }

    fn drop_front(&mut self, ch: usize, n: usize, discard: bool) {
        self.bump(ch);
        if n == 0 {
            return;
        }
        if let Some(k) = self.known_visible.get_mut(ch) {
            if n > k.count {
                k.next = None; // tokens not yet visible went too
            }
            k.count = k.count.saturating_sub(n);
        }
        let r = &mut self.rings[ch];
        r.head = (r.head + n) % r.slots;
        r.len -= n;
        r.freed_in_step = r.freed_in_step.saturating_add(n as u32);
        if discard {
            r.discarded += n as u64;
        } else {
            r.consumed += n as u64;
        }
        if r.capacity == 0 {
            self.rendezvous_taken.push((ch, n));
        }
        self.touched.push(ch as u32);
        self.mark(ch);
    }

    /// Drops `n` tokens by policy or watermark: the oldest (`from_back == false`) or the newest.
    /// Their slots free at the end of the step, like consumed ones.
    fn shed(&mut self, ch: usize, n: usize, from_back: bool) {
        self.bump(ch);
        let r = &mut self.rings[ch];
        let n = n.min(r.len);
        if n == 0 {
            return;
        }
        if !from_back {
            r.head = (r.head + n) % r.slots;
        }
        r.len -= n;
        if let Some(k) = self.known_visible.get_mut(ch) {
            k.count = if from_back {
                k.count.min(r.len)
            } else {
                k.count.saturating_sub(n)
            };
            k.next = None;
        }
        r.freed_in_step = r.freed_in_step.saturating_add(n as u32);
        r.shed += n as u64;
        self.touched.push(ch as u32);
    }

    /// Settles the step on channels with policies or watermarks ([`crate::overflow`]): a Drop
    /// channel holding more than its capacity pays for each arrival that found no room
    /// (`DropOldest`: its oldest tokens, `DropNewest`: the newest arrivals); a watermarked
    /// channel whose tokens plus reservations reach `high` crosses it, sheds its oldest tokens
    /// down to `low` if it is `Telemetry`, and ends the excursion once it is at `low` or below.
    /// Called at the end of every step (under an IPLS: after its last stage). Returns whether
    /// it shed a token or ended an excursion (room appeared for the producer).
    pub fn settle(&mut self) -> bool {
        let mut list = std::mem::take(&mut self.unsettled);
        let mut freed = false;
        for &c in &list {
            let ch = c as usize;
            self.bump(ch);
            let r = &mut self.rings[ch];
            r.unsettled = false;
            let arrived = std::mem::take(&mut r.arrived) as usize;
            let excess = arrived.min(r.len.saturating_sub(r.capacity as usize));
            let rules = r.rules;
            match rules.policy {
                Policy::DropOldest => self.shed(ch, excess, false),
                Policy::DropNewest => self.shed(ch, excess, true),
                Policy::Block => {}
            }
            freed |= excess > 0;
            let r = &mut self.rings[ch];
            if let Some(w) = rules.watermarks {
                let in_use = |r: &Ring| (r.len as u32).saturating_add(r.reserved);
                if !r.above && in_use(r) >= w.high {
                    r.above = true;
                    r.crossings += 1;
                }
                if r.above && rules.sheds_above() {
                    let over = in_use(r).saturating_sub(w.low) as usize;
                    freed |= over > 0 && r.len > 0;
                    self.shed(ch, over, false);
                }
                let r = &mut self.rings[ch];
                if r.above && in_use(r) <= w.low {
                    r.above = false;
                    freed = true;
                }
            }
            if rules.drops() {
                let r = &mut self.rings[ch];
                r.high_water = r.high_water.max((r.len as u32).saturating_add(r.reserved));
            }
        }
        list.clear();
        self.unsettled = list;
        freed
    }

    /// Ends a step: slots freed during it become room for producers.
    pub fn end_step(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for &ch in &touched {
            self.rings[ch as usize].freed_in_step = 0;
            self.bump(ch as usize);
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// Sets a channel's capacity, relocating its ring when it needs more slots. Content and FIFO
    /// order are preserved; the byte limit is checked first.
    pub fn set_capacity(&mut self, ch: usize, capacity: u32) -> Result<(), ArenaError> {
        self.bump(ch);
        if capacity as usize > self.rings[ch].slots {
            self.resize_ring(ch, capacity as usize)?;
        }
        self.rings[ch].capacity = capacity;
        Ok(())
    }

    fn resize_ring(&mut self, ch: usize, slots: usize) -> Result<(), ArenaError> {
        let tl = self.rings[ch].token_len;
        self.check_limit(slots, tl)?;
        let new_offset = self.meta.len();
        let new_value_offset = self.values_end;
        // Geometric growth of the whole allocation comes from Vec's amortised doubling.
        self.values_end += slots * tl;
        self.allocate();
        self.meta.resize(new_offset + slots, EMPTY_META);
        let old = self.rings[ch].clone();
        // The slots left behind keep what they held; those never written hold zeros.
        zero(&mut self.values[old.value_offset + old.init * tl..][..(old.slots - old.init) * tl]);
        for i in 0..old.len {
            let local = (old.head + i) % old.slots;
            let from = old.value_offset + local * tl;
            self.values
                .copy_within(from..from + tl, new_value_offset + i * tl);
            self.meta[new_offset + i] = self.meta[old.offset + local];
        }
        let r = &mut self.rings[ch];
        r.offset = new_offset;
        r.value_offset = new_value_offset;
        r.slots = slots;
        r.head = 0;
        r.init = old.len;
        self.dead_slots += old.slots;
        if self.dead_slots * 2 > self.meta.len() {
            self.compact();
        }
        Ok(())
    }

    /// Packs every ring contiguously (each unwrapped to head 0), dropping dead slots.
    fn compact(&mut self) {
        let total: usize = self.rings.iter().map(|r| r.slots).sum();
        let total_values: usize = self.rings.iter().map(|r| r.slots * r.token_len).sum();
        let mut values = Vec::with_capacity(total_values);
        let mut meta = Vec::with_capacity(total);
        for r in self.rings.iter_mut() {
            let offset = meta.len();
            let value_offset = values.len();
            for i in 0..r.slots {
                let local = (r.head + i) % r.slots;
                let from = r.value_offset + local * r.token_len;
                if local < r.init {
                    values.extend_from_slice(&self.values[from..from + r.token_len]);
                } else {
                    values.resize(values.len() + r.token_len, MaybeUninit::new(0.0));
                }
                meta.push(self.meta[r.offset + local]);
            }
            r.offset = offset;
            r.value_offset = value_offset;
            r.head = 0;
            // Unwrapping the ring rotates its slots: every one is written now.
            r.init = r.slots;
        }
        self.values_end = values.len();
        self.values = values;
        self.meta = meta;
        self.dead_slots = 0;
    }
}

impl TokenArena {
    /// Makes the payload allocation cover every ring (one allocation when all channels were
    /// added before the first write). The new elements are left uninitialised.
    fn allocate(&mut self) {
        if self.values.len() < self.values_end {
            self.values.resize(self.values_end, MaybeUninit::uninit());
        }
    }

    /// The payload with every slot stored: zeros in the slots never written.
    fn materialized(&self) -> Vec<f32> {
        let mut values = vec![0f32; self.values_end];
        // The unwritten slots of each ring, in storage order (rings never overlap): the
        // stretches between them are initialised.
        let mut holes: Vec<(usize, usize)> = self
            .rings
            .iter()
            .map(|r| {
                let at = |slot: usize| r.value_offset + slot * r.token_len;
                (at(r.init), at(r.slots))
            })
            .collect();
        holes.sort_unstable();
        let stored = self.values.len();
        let mut at = 0;
        for (start, end) in holes.into_iter().chain([(stored, stored)]) {
            let start = start.min(stored);
            if at < start {
                for (d, s) in values[at..start].iter_mut().zip(&self.values[at..start]) {
                    // SAFETY: outside the unwritten slots of the rings every stored element is
                    // initialised (the invariant of `TokenArena::values`).
                    *d = unsafe { s.assume_init() };
                }
            }
            at = at.max(end);
        }
        values
    }
}

/// Stores zeros.
fn zero(values: &mut [MaybeUninit<f32>]) {
    values.fill(MaybeUninit::new(0.0));
}

/// [`TokenArena`] as serialized: the payload with every slot stored.
#[derive(Serialize, Deserialize)]
struct ArenaData {
    values: Vec<f32>,
    meta: Vec<TokenMeta>,
    rings: Vec<Ring>,
    dead_slots: usize,
    limit_bytes: usize,
    touched: Vec<u32>,
    #[serde(default)]
    unsettled: Vec<u32>,
    #[serde(default)]
    rendezvous_taken: Vec<(usize, usize)>,
    #[serde(default)]
    stamp: u64,
    #[serde(default)]
    changed_now: Vec<u32>,
    #[serde(default)]
    changed_before: Vec<u32>,
}

impl From<TokenArena> for ArenaData {
    fn from(a: TokenArena) -> Self {
        ArenaData {
            values: a.materialized(),
            meta: a.meta,
            rings: a.rings,
            dead_slots: a.dead_slots,
            limit_bytes: a.limit_bytes,
            touched: a.touched,
            unsettled: a.unsettled,
            rendezvous_taken: a.rendezvous_taken,
            stamp: a.stamp,
            changed_now: a.changed_now,
            changed_before: a.changed_before,
        }
    }
}

impl From<ArenaData> for TokenArena {
    fn from(d: ArenaData) -> Self {
        let mut rings = d.rings;
        for r in &mut rings {
            r.init = r.slots; // every slot is stored
        }
        TokenArena {
            values_end: d.values.len(),
            values: d.values.into_iter().map(MaybeUninit::new).collect(),
            meta: d.meta,
            rings,
            dead_slots: d.dead_slots,
            limit_bytes: d.limit_bytes,
            touched: d.touched,
            unsettled: d.unsettled,
            rendezvous_taken: d.rendezvous_taken,
            stamp: d.stamp,
            changed_now: d.changed_now,
            changed_before: d.changed_before,
            known_visible: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_every_ring() {
        let mut a = TokenArena::new(usize::MAX);
        let x = a.add_channel(1, 1).unwrap();
        let y = a.add_channel(2, 3).unwrap();
        a.reserve(y, 2);
        a.write(y, &[1.0, 2.0, 3.0], Instant::ZERO).unwrap();
        a.write(y, &[4.0, 5.0, 6.0], Instant::ZERO).unwrap();
        for cap in [2, 4, 8, 16, 32] {
            a.reserve(x, 1);
            a.write(x, &[cap as f32], Instant::ZERO).unwrap();
            a.set_capacity(x, cap).unwrap();
        }
        assert_eq!(a.ring(x).len(), 5);
        assert_eq!(a.token(x, 0), &[2.0]);
        assert_eq!(a.token(x, 4), &[32.0]);
        assert_eq!(a.token(y, 1), &[4.0, 5.0, 6.0]);
        assert_eq!(a.meta(x, 3).seq, 3);
    }

    #[test]
    fn unwritten_slots_read_as_zeros_and_serialize_as_stored() {
        let mut a = TokenArena::new(usize::MAX);
        let x = a.add_channel(2, 4).unwrap();
        let y = a.add_channel(2, 2).unwrap();
        a.reserve(x, 1);
        a.write(x, &[1.0, 2.0], Instant::ZERO).unwrap(); // a short token: its tail is zero
        assert_eq!(a.token(x, 0), &[1.0, 2.0, 0.0, 0.0]);
        a.pop(x, 1, &mut Vec::new(), &mut Vec::new());
        a.end_step();
        a.reserve(x, 2);
        a.write(x, &[5.0, 6.0, 7.0, 8.0], Instant::ZERO).unwrap(); // slot 1
        a.write(x, &[9.0], Instant::ZERO).unwrap(); // slot 0 again: keeps what it held
        assert_eq!(a.token(x, 1), &[9.0, 2.0, 0.0, 0.0]);
        let json = serde_json::to_value(&a).unwrap();
        let values: Vec<f32> = serde_json::from_value(json["values"].clone()).unwrap();
        assert_eq!(
            values,
            [9.0, 2.0, 0.0, 0.0, 5.0, 6.0, 7.0, 8.0, 0.0, 0.0, 0.0, 0.0]
        );
        let mut back: TokenArena = serde_json::from_value(json).unwrap();
        assert_eq!(back.token(x, 1), a.token(x, 1));
        back.reserve(y, 1);
        back.write(y, &[3.0], Instant::ZERO).unwrap();
        assert_eq!(back.token(y, 0), &[3.0, 0.0]);
        // Relocation and compaction keep the payloads and the zeros of unwritten slots.
        a.set_capacity(y, 4).unwrap();
        a.set_capacity(x, 8).unwrap();
        a.reserve(y, 1);
        a.write(y, &[4.0], Instant::ZERO).unwrap();
        assert_eq!(a.token(y, 0), &[4.0, 0.0]);
        assert_eq!(a.token(x, 0), &[5.0, 6.0, 7.0, 8.0]);
        let back: TokenArena = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back.bytes(), a.bytes());
        assert_eq!(back.token(x, 1), &[9.0, 2.0, 0.0, 0.0]);
        assert_eq!(back.token(y, 0), &[4.0, 0.0]);
    }
}
