//! Channel overflow policies and watermarks (SPEC §3 channel fields, §4 condition 3, §9 lanes).
//!
//! A channel's [`ChannelRules`] are its overflow `policy`, its `lane` and optional
//! `watermarks (high, low)`. The [`TokenArena`](crate::arena::TokenArena) applies them; this
//! module states the rules, validates them at plan time and is their runnable specification.
//!
//! **Block** (the default) holds the producer back: a firing needs room for its maximum
//! production (capacity − tokens − reservations), reserved when it starts (§4 condition 3).
//!
//! **Drop policies never block their producer and reserve nothing.** A write to a `DropOldest`
//! or `DropNewest` channel is always accepted; at the end of the step (under an IPLS: after its
//! last stage) the channel *settles*: if it holds more than `capacity` tokens, each token that
//! arrived in the step and found no room is paid for — `DropOldest` discards the oldest tokens
//! held (visible or not), `DropNewest` the newest arrivals. Judging once, at the end of the step,
//! makes the outcome independent of node order and of how an IPLS stages the step (a consumer
//! taking a token in the same step frees its slot for the arrival either way). Initial tokens
//! above capacity are never dropped, only arrivals pay. Dropped tokens keep their sequence
//! numbers, so a probe downstream shows the gaps, and every drop is counted in the channel's
//! `shed`:
//!
//! ```
//! use tapwheel::arena::TokenArena;
//! use tapwheel::overflow::ChannelRules;
//! use tapwheel::scene::Policy;
//! use tapwheel::time::Instant;
//! let mut arena = TokenArena::new(1 << 20);
//! let oldest = arena.add_channel(2, 1).unwrap();
//! let newest = arena.add_channel(2, 1).unwrap();
//! arena.set_rules(oldest, ChannelRules::policy(Policy::DropOldest));
//! arena.set_rules(newest, ChannelRules::policy(Policy::DropNewest));
//! for ch in [oldest, newest] {
//!     for v in [0.0, 1.0, 2.0] {
//!         arena.reserve(ch, 1); // a Drop channel reserves nothing, so never lacks room
//!         arena.write(ch, &[v], Instant::ZERO).unwrap();
//!     }
//! }
//! arena.settle(); // the end of the step: three tokens on two slots
//! assert_eq!((arena.token(oldest, 0), arena.meta(oldest, 0).seq), (&[1.0][..], 1));
//! assert_eq!((arena.token(newest, 1), arena.meta(newest, 1).seq), (&[1.0][..], 1));
//! assert_eq!((arena.ring(oldest).shed, arena.ring(newest).shed), (1, 1));
//! arena.reserve(newest, 1);
//! assert_eq!(arena.write(newest, &[3.0], Instant::ZERO).unwrap(), 3); // seq 2 was dropped
//! ```
//!
//! **Watermarks** `(high, low)` with `0 < low < high ≤ capacity` are judged when the step
//! settles, on the channel's occupancy then: tokens plus reservations (slots freed by
//! consumption in the step are free by then). When it has reached `high`, the channel *crosses*
//! (counted in `watermark_crossings`) and stays *above* until a later settle finds it at `low`
//! or below (hysteresis). While above, the lane decides:
//! - `Telemetry` sheds its oldest tokens (visible or not) down to `low` (counted in `shed`),
//!   which normally ends the excursion at once;
//! - `Data` blocks the producer: §4 condition 3 fails for the channel (a `CHANNEL_FULL_WAIT`
//!   stall on it, also counted as its `blocked_by_watermark`) from the next step until the
//!   consumer has drained it to `low`;
//! - `Control` never drops and never blocks beyond capacity: the crossing is only counted.
//!
//! ```
//! use tapwheel::arena::TokenArena;
//! use tapwheel::overflow::{Admission, ChannelRules, Watermarks};
//! use tapwheel::scene::{Lane, Policy};
//! use tapwheel::time::Instant;
//! let marks = Some(Watermarks { high: 3, low: 1 });
//! let mut arena = TokenArena::new(1 << 20);
//! let tele = arena.add_channel(4, 1).unwrap();
//! let data = arena.add_channel(4, 1).unwrap();
//! arena.set_rules(tele, ChannelRules { policy: Policy::Block, lane: Lane::Telemetry, watermarks: marks });
//! arena.set_rules(data, ChannelRules { policy: Policy::Block, lane: Lane::Data, watermarks: marks });
//! for ch in [tele, data] {
//!     for v in [0.0, 1.0, 2.0] {
//!         assert_eq!(arena.admits(ch, 1), Admission::Room);
//!         arena.reserve(ch, 1);
//!         arena.write(ch, &[v], Instant::ZERO).unwrap();
//!     }
//! }
//! arena.settle(); // the end of the step: both reached high = 3, one crossing each
//! assert_eq!((arena.ring(tele).crossings, arena.ring(data).crossings), (1, 1));
//! // The Data channel blocks its producer although it has room for a fourth token.
//! assert_eq!(arena.admits(data, 1), Admission::Watermark);
//! // A Telemetry channel at its high watermark sheds its oldest tokens down to low.
//! assert_eq!((arena.ring(tele).len(), arena.token(tele, 0)), (1, &[2.0][..]));
//! assert_eq!(arena.ring(tele).shed, 2);
//! assert_eq!(arena.admits(tele, 1), Admission::Room);
//! // The Data channel keeps blocking until its consumer drains it to low = 1 (hysteresis).
//! let (mut v, mut m) = (Vec::new(), Vec::new());
//! arena.pop(data, 1, &mut v, &mut m);
//! arena.settle();
//! arena.end_step();
//! assert_eq!(arena.admits(data, 1), Admission::Watermark); // 2 tokens: still above low
//! arena.pop(data, 1, &mut v, &mut m);
//! arena.settle();
//! arena.end_step();
//! assert_eq!(arena.admits(data, 1), Admission::Room); // 1 token: back at low
//! assert_eq!((arena.ring(data).shed, arena.ring(data).crossings), (0, 1));
//! ```
//!
//! Plan-time rules ([`ChannelRules::check`]): a Drop policy needs a channel that can hold a
//! token (`capacity ≥ 1`, E241); watermarks need `0 < low < high ≤ capacity` and a channel
//! with capacity (E242); a `Data` watermark, which blocks, cannot sit on a Drop channel, which
//! never blocks (E243: choose `Telemetry` or `Control`, or `Block`).

use crate::scene::{Lane, Policy};
use serde::{Deserialize, Serialize};

/// A channel's watermarks: `high` starts an excursion, `low` ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    pub high: u32,
    pub low: u32,
}

/// How a channel treats overflow: its policy, lane and watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelRules {
    pub policy: Policy,
    pub lane: Lane,
    pub watermarks: Option<Watermarks>,
}

/// What §4 condition 3 says about one output channel of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The firing may go ahead (room for its maximum production, or a Drop channel).
    Room,
    /// A Block channel lacks room (capacity − tokens − reservations).
    Full,
    /// A `Data` channel above its high watermark holds its producer back (hysteresis).
    Watermark,
}

/// A located plan error in a channel's rules: `(code, field under edges[i], message)`.
pub type RuleError = (&'static str, &'static str, String);

impl ChannelRules {
    /// Block, Data lane, no watermarks: what every channel was before policies existed.
    pub fn policy(policy: Policy) -> ChannelRules {
        ChannelRules {
            policy,
            ..ChannelRules::default()
        }
    }

    /// A Drop policy: never blocks, never reserves.
    pub fn drops(&self) -> bool {
        self.policy != Policy::Block
    }

    /// Block without watermarks: nothing for the arena to settle.
    pub fn plain(&self) -> bool {
        !self.drops() && self.watermarks.is_none()
    }

    /// Whether a crossing blocks the producer (a `Data` watermark).
    pub fn blocks_above(&self) -> bool {
        self.watermarks.is_some() && self.lane == Lane::Data
    }

    /// Whether a crossing sheds the oldest tokens (a `Telemetry` watermark).
    pub fn sheds_above(&self) -> bool {
        self.watermarks.is_some() && self.lane == Lane::Telemetry
    }

    /// Validates a channel's policy, lane and watermarks against its capacity.
    ///
    /// ```
    /// use tapwheel::overflow::ChannelRules;
    /// use tapwheel::scene::{Lane, Policy};
    /// let errs = |p, l, w, c| ChannelRules::check(p, l, w, c).iter().map(|e| e.0).collect::<Vec<_>>();
    /// assert!(errs(Policy::DropOldest, Lane::Data, None, 2).is_empty());
    /// assert_eq!(errs(Policy::DropNewest, Lane::Data, None, 0), ["E241"]);
    /// assert!(errs(Policy::Block, Lane::Data, Some((4, 1)), 4).is_empty());
    /// assert_eq!(errs(Policy::Block, Lane::Data, Some((5, 1)), 4), ["E242"]); // high > capacity
    /// assert_eq!(errs(Policy::Block, Lane::Data, Some((2, 2)), 4), ["E242"]); // low = high
    /// assert_eq!(errs(Policy::Block, Lane::Data, Some((2, 0)), 4), ["E242"]); // low = 0
    /// assert_eq!(errs(Policy::Block, Lane::Telemetry, Some((2, 1)), 0), ["E242"]);
    /// assert_eq!(errs(Policy::DropOldest, Lane::Data, Some((2, 1)), 4), ["E243"]);
    /// assert!(errs(Policy::DropOldest, Lane::Telemetry, Some((2, 1)), 4).is_empty());
    /// ```
    pub fn check(
        policy: Policy,
        lane: Lane,
        watermarks: Option<(u32, u32)>,
        capacity: u32,
    ) -> Vec<RuleError> {
        let mut out = Vec::new();
        if policy != Policy::Block && capacity == 0 {
            out.push((
                "E241",
                "policy",
                format!(
                    "policy {policy:?} on a capacity-0 (rendezvous) channel: it never holds a token to drop (use Block, or a capacity of at least 1)"
                ),
            ));
        }
        if let Some((high, low)) = watermarks {
            if capacity == 0 {
                out.push((
                    "E242",
                    "watermarks",
                    "watermarks on a capacity-0 (rendezvous) channel: it never holds a token"
                        .into(),
                ));
            } else if !(0 < low && low < high && high <= capacity) {
                out.push((
                    "E242",
                    "watermarks",
                    format!(
                        "watermarks (high: {high}, low: {low}) must satisfy 0 < low < high ≤ capacity ({capacity})"
                    ),
                ));
            } else if lane == Lane::Data && policy != Policy::Block {
                out.push((
                    "E243",
                    "watermarks",
                    format!(
                        "a Data-lane watermark blocks its producer, which a {policy:?} channel never does: set `lane: Telemetry` (shed oldest) or `lane: Control` (count only), or `policy: Block`"
                    ),
                ));
            }
        }
        out
    }

    /// The rules of a planned channel (its watermarks are valid).
    pub fn of(policy: Policy, lane: Lane, watermarks: Option<(u32, u32)>) -> ChannelRules {
        ChannelRules {
            policy,
            lane,
            watermarks: watermarks.map(|(high, low)| Watermarks { high, low }),
        }
    }
}
