//! The run recorder and its exports (SPEC §19 `--trace`, `--vcd`): Chrome trace event JSON
//! (Perfetto, `chrome://tracing`), IEEE 1364 value change dumps (GTKWave, Surfer) and a channel
//! occupancy CSV.
//!
//! **Off by default, free when off.** Recording exists only when a run asks for it
//! (`RunOptions { record: Some(RecordOptions::default()), .. }`, `tapwheel run --trace/--vcd`):
//! the engine then holds a [`RunLog`] resource, and the systems' recording branches test for it
//! like the gradient tape's. Recording only reads engine state, so a recorded run's probes and
//! digests equal an unrecorded run's.
//!
//! **What is recorded**, in simulated time:
//! - every firing ([`FiringRecord`]): node, firing index, issue tick (inputs consumed), start
//!   tick (the issue timeline's start after `dispatch_cost`, else the issue tick), completion
//!   tick (outputs written: issue + `L`), the scheduler domain of a dispatched task, the CycleSim
//!   core run (core, start and end cycle) and, for a node with `thermal`, its temperature at the
//!   firing (the value its `temp` tap publishes);
//! - stall intervals per node ([`StallRecord`]), from the engine's stall accounting: a stall
//!   closes when the node's stall reason or the resource it waits on changes; stalls lasting
//!   only deltas (0 ticks) are not kept;
//! - channel occupancy ([`OccupancySample`]: tokens + reservations, the slots in use, §3) at
//!   tick 0 for every channel, then at the end of every step for each channel whose occupancy
//!   changed in it — a channel may change at several deltas of one tick.
//!
//! **Bounded.** A log keeps at most [`RecordOptions::max_events`] records (firings, stalls and
//! occupancy samples together; default [`DEFAULT_MAX_EVENTS`]: at most 112 MiB, a firing record being 112 bytes). The first record
//! past the cap *truncates* the log: nothing later is recorded, the exports are complete up to
//! that tick and say so (`otherData.truncated_at` and a `trace truncated` instant in the trace,
//! a `$comment` in the VCD), and [`TraceView::warning`] gives `warning[W340]`.
//!
//! ```
//! use tapwheel::trace::{RecordOptions, RunLog};
//! let mut log = RunLog::new(1, [0], RecordOptions { max_events: 3 });
//! assert_eq!(log.events(), 1); // the tick-0 occupancy sample of the one channel
//! log.end_step(2, &[None], [1]); // the channel changed: one sample
//! log.end_step(3, &[None], [1]); // no change: nothing recorded
//! log.end_step(4, &[None], [0]);
//! assert_eq!(log.events(), 3);
//! log.end_step(5, &[None], [1]); // past the cap: truncated at tick 5
//! assert_eq!(log.truncated_at(), Some(5));
//! assert_eq!(log.occupancy.iter().map(|s| (s.tick, s.occupancy)).collect::<Vec<_>>(),
//!            vec![(0, 0), (2, 1), (4, 0)]);
//! ```

use crate::dispatch::Ticket;
use crate::ecs::{OpenStall, ProbeStream, StallOn, StallReason};
use crate::error::Diagnostic;
use bevy_ecs::prelude::Resource;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The default cap of a run log: 2²⁰ records (firings, stalls and occupancy samples), at most
/// 112 MiB (a firing record is 112 bytes, a stall 40, an occupancy sample 16).
pub const DEFAULT_MAX_EVENTS: usize = 1 << 20;

/// How a run records (`RunOptions::record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOptions {
    /// The most records the log keeps; the first one past it truncates the log.
    pub max_events: usize,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

/// A CycleSim core run of a task: the core, its start and end cycle, and the same instants in
/// (fractional) ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreRun {
    pub core: u32,
    pub start_cycle: u64,
    pub end_cycle: u64,
    pub start: f64,
    pub end: f64,
}

/// One firing (task) as it was issued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FiringRecord {
    pub node: u32,
    /// The node's firing index (0, 1, 2, …).
    pub index: u64,
    /// The tick the firing consumed its inputs (it was issued).
    pub issue: u64,
    /// The tick it started: the issue timeline's start (after `dispatch_cost`) of a dispatched
    /// task, else the issue tick.
    pub start: u64,
    /// The tick its outputs are written (issue + `L`).
    pub complete: u64,
    /// The scheduler domain of a dispatched task.
    pub domain: Option<u32>,
    /// The CycleSim core run, when a core ran it.
    pub core: Option<CoreRun>,
    /// The node's temperature at the firing (kelvin), for a node with `thermal` (§14).
    pub temperature: Option<f64>,
}

impl FiringRecord {
    /// The record of a firing of `node` issued at `tick` with latency `latency`; `busy` is the
    /// task's busy interval in ticks (dispatch's `StepState::busy`), taken as the core run's
    /// when the ticket carries a CycleSim core span.
    ///
    /// ```
    /// use tapwheel::trace::FiringRecord;
    /// let f = FiringRecord::issued(2, 7, 10, 3, None, None);
    /// assert_eq!((f.issue, f.start, f.complete, f.domain), (10, 10, 13, None));
    /// assert_eq!(f.interval(), (10.0, 13.0));
    /// ```
    pub fn issued(
        node: usize,
        index: u64,
        tick: u64,
        latency: u64,
        ticket: Option<&Ticket>,
        busy: Option<(f64, f64)>,
    ) -> FiringRecord {
        let span = ticket.and_then(|t| t.placed).and_then(|p| p.span);
        let core = span.map(|sp| {
            let (s, e) = busy.unwrap_or((sp.start as f64, sp.end as f64));
            CoreRun {
                core: sp.core,
                start_cycle: sp.start,
                end_cycle: sp.end,
                start: s,
                end: e.max(s),
            }
        });
        FiringRecord {
            node: node as u32,
            index,
            issue: tick,
            start: ticket.map_or(tick, |t| t.start.max(tick)),
            complete: tick.saturating_add(latency),
            domain: ticket.map(|t| t.domain),
            core,
            temperature: None,
        }
    }

    /// The interval the trace draws, in ticks: the core run, else start to completion.
    pub fn interval(&self) -> (f64, f64) {
        match self.core {
            Some(c) => (c.start, c.end),
            None => (self.start as f64, (self.complete.max(self.start)) as f64),
        }
    }
}

/// One stall of one node: `[from, to)` in ticks, with its reason and what it waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallRecord {
    pub node: u32,
    pub reason: StallReason,
    pub on: StallOn,
    pub from: u64,
    pub to: u64,
}

/// A channel's occupancy (tokens + reservations) from `tick` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccupancySample {
    pub tick: u64,
    pub channel: u32,
    pub occupancy: u32,
}

/// What a run recorded (a `bevy_ecs` resource that exists only when recording was asked for).
#[derive(Resource, Debug, Clone)]
pub struct RunLog {
    max_events: usize,
    events: usize,
    truncated_at: Option<u64>,
    dropped: u64,
    pub firings: Vec<FiringRecord>,
    pub stalls: Vec<StallRecord>,
    pub occupancy: Vec<OccupancySample>,
    /// The open stall of every node as last seen.
    open: Vec<Option<OpenStall>>,
    last_occupancy: Vec<u32>,
}

impl RunLog {
    /// A log for `nodes` nodes whose channels start with `occupancy` (one per channel,
    /// recorded at tick 0).
    pub fn new(
        nodes: usize,
        occupancy: impl IntoIterator<Item = u32>,
        opts: RecordOptions,
    ) -> RunLog {
        let mut log = RunLog {
            max_events: opts.max_events,
            events: 0,
            truncated_at: None,
            dropped: 0,
            firings: Vec::new(),
            stalls: Vec::new(),
            occupancy: Vec::new(),
            open: vec![None; nodes],
            last_occupancy: Vec::new(),
        };
        for (c, occ) in occupancy.into_iter().enumerate() {
            log.last_occupancy.push(occ);
            if log.admit(0) {
                log.occupancy.push(OccupancySample {
                    tick: 0,
                    channel: c as u32,
                    occupancy: occ,
                });
            }
        }
        log
    }

    /// Records kept so far.
    pub fn events(&self) -> usize {
        self.events
    }

    /// The cap the log was built with.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// The tick of the first record the cap refused; nothing at or after it is complete.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    /// Records refused by the cap (counted until the run ends).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Counts one record at `tick` against the cap; false once the log is truncated.
    fn admit(&mut self, tick: u64) -> bool {
        if self.truncated_at.is_some() || self.events >= self.max_events {
            self.truncated_at.get_or_insert(tick);
            self.dropped += 1;
            return false;
        }
        self.events += 1;
        true
    }

    /// Records a firing.
    pub fn firing(&mut self, record: FiringRecord) {
        if self.admit(record.issue) {
            self.firings.push(record);
        }
    }

    /// The end of the step at `tick`: a node whose open stall differs from the one last seen
    /// closes that one at `tick` (kept when it lasted at least one tick); a channel whose
    /// occupancy differs from its last sample gets a new sample.
    ///
    /// ```
    /// use tapwheel::ecs::{OpenStall, StallOn, StallReason};
    /// use tapwheel::trace::{RecordOptions, RunLog};
    /// let full = OpenStall { reason: StallReason::ChannelFullWait, on: StallOn::Channel(0), since: 1 };
    /// let mut log = RunLog::new(1, [1], RecordOptions::default());
    /// log.end_step(1, &[Some(full)], [1]);
    /// log.end_step(2, &[Some(full)], [1]); // still the same stall
    /// log.end_step(3, &[None], [0]);       // closed at 3
    /// let s = log.stalls[0];
    /// assert_eq!((s.from, s.to, s.reason), (1, 3, StallReason::ChannelFullWait));
    /// // A stall that lasts only deltas of one tick is not kept.
    /// log.end_step(4, &[Some(OpenStall { since: 4, ..full })], [0]);
    /// log.end_step(4, &[None], [0]);
    /// assert_eq!(log.stalls.len(), 1);
    /// ```
    pub fn end_step(
        &mut self,
        tick: u64,
        open_stalls: &[Option<OpenStall>],
        occupancy: impl IntoIterator<Item = u32>,
    ) {
        if self.truncated_at.is_some() {
            return;
        }
        for (n, now) in open_stalls.iter().enumerate() {
            let Some(seen) = self.open.get_mut(n) else {
                break;
            };
            if *seen == *now {
                continue;
            }
            let closed = std::mem::replace(seen, *now);
            if let Some(o) = closed
                && tick > o.since
                && self.admit(tick)
            {
                self.stalls.push(StallRecord {
                    node: n as u32,
                    reason: o.reason,
                    on: o.on,
                    from: o.since,
                    to: tick,
                });
            }
        }
        for (c, occ) in occupancy.into_iter().enumerate() {
            match self.last_occupancy.get_mut(c) {
                Some(last) if *last == occ => {}
                Some(last) => {
                    *last = occ;
                    if self.admit(tick) {
                        self.occupancy.push(OccupancySample {
                            tick,
                            channel: c as u32,
                            occupancy: occ,
                        });
                    }
                }
                None => break,
            }
        }
    }

    /// The stalls still open when the log ended (at the end of the run or its truncation).
    pub fn open_stalls(&self) -> impl Iterator<Item = (u32, OpenStall)> + '_ {
        self.open
            .iter()
            .enumerate()
            .filter_map(|(n, o)| o.map(|o| (n as u32, o)))
    }
}

/// The occupancy (tokens + reservations) of every channel of an arena, in channel order.
pub fn occupancy_of(arena: &crate::arena::TokenArena) -> impl Iterator<Item = u32> + '_ {
    (0..arena.channels()).map(|c| {
        let r = arena.ring(c);
        (r.len() as u32).saturating_add(r.reserved)
    })
}

/// Trace time: `tick` in microseconds of simulated time, `tick · 10⁶ / tick_hz` (exact for
/// whole results while `tick · 10⁶` fits 2⁵³).
///
/// ```
/// assert_eq!(tapwheel::trace::micros(3.0, 1000.0), 3000.0);
/// assert_eq!(tapwheel::trace::micros(7.0, 1.0), 7_000_000.0);
/// assert_eq!(tapwheel::trace::micros(9.0, 1.8e9), 0.005);
/// ```
pub fn micros(tick: f64, tick_hz: f64) -> f64 {
    tick * 1e6 / tick_hz
}

/// Assigns intervals `(start, end)` to lanes so that no two intervals of one lane overlap
/// (a Chrome trace track must nest its slices): in order of `(start, end)`, each interval goes
/// to the lowest lane free at its start, else to a new lane — as few lanes as the deepest
/// overlap. An interval may start where the previous one of its lane ended.
///
/// ```
/// use tapwheel::trace::assign_lanes;
/// assert_eq!(assign_lanes(&[(0.0, 3.0), (1.0, 2.0), (3.0, 4.0), (2.0, 2.0)]), vec![0, 1, 0, 1]);
/// assert_eq!(assign_lanes(&[(5.0, 5.0), (5.0, 5.0)]), vec![0, 0]);
/// ```
pub fn assign_lanes(intervals: &[(f64, f64)]) -> Vec<u32> {
    use std::cmp::Reverse;
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (intervals[a], intervals[b]);
        x.0.total_cmp(&y.0)
            .then(x.1.total_cmp(&y.1))
            .then(a.cmp(&b))
    });
    // Busy lanes by end (ends are non-negative, so their bits order like them); free lanes.
    let mut busy: std::collections::BinaryHeap<Reverse<(u64, u32)>> = Default::default();
    let mut free: std::collections::BTreeSet<u32> = Default::default();
    let mut lanes = vec![0u32; intervals.len()];
    let mut count = 0u32;
    for i in order {
        let (s, e) = intervals[i];
        let s = s.max(0.0);
        let e = e.max(s);
        while let Some(&Reverse((end, lane))) = busy.peek() {
            if f64::from_bits(end) > s {
                break;
            }
            busy.pop();
            free.insert(lane);
        }
        let lane = match free.pop_first() {
            Some(l) => l,
            None => {
                count += 1;
                count - 1
            }
        };
        lanes[i] = lane;
        busy.push(Reverse((e.to_bits(), lane)));
    }
    lanes
}

/// A VCD timescale for a tick rate (see [`timescale`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timescale {
    /// The `$timescale` text, e.g. `1 ms`.
    pub unit: &'static str,
    /// Time units per tick when a tick is a whole number of them.
    pub per_tick: Option<u64>,
    /// Femtoseconds per tick (the fallback's exact rate).
    pub fs_per_tick: f64,
}

const UNITS: [(&str, f64); 18] = [
    ("100 s", 1e17),
    ("10 s", 1e16),
    ("1 s", 1e15),
    ("100 ms", 1e14),
    ("10 ms", 1e13),
    ("1 ms", 1e12),
    ("100 us", 1e11),
    ("10 us", 1e10),
    ("1 us", 1e9),
    ("100 ns", 1e8),
    ("10 ns", 1e7),
    ("1 ns", 1e6),
    ("100 ps", 1e5),
    ("10 ps", 1e4),
    ("1 ps", 1e3),
    ("100 fs", 1e2),
    ("10 fs", 1e1),
    ("1 fs", 1.0),
];

/// The VCD timescale of a run at `tick_hz`: the largest of `1`, `10`, `100` × {s, ms, us, ns,
/// ps, fs} that divides the tick period `1/tick_hz` a whole number of times (to 1e-9 relative);
/// VCD times are then `tick × per_tick`, exact integers. When none does (48 kHz, 1.8 GHz), the
/// timescale is `1 fs` and times are `tick / tick_hz` rounded to the femtosecond (monotone;
/// distinct ticks stay distinct while a tick lasts at least 1 fs).
///
/// ```
/// use tapwheel::trace::timescale;
/// let ms = timescale(1000.0);
/// assert_eq!((ms.unit, ms.per_tick, ms.time(15)), ("1 ms", Some(1), 15));
/// assert_eq!(timescale(1.0).unit, "1 s");
/// assert_eq!((timescale(1e5).unit, timescale(1e5).time(3)), ("10 us", 3));
/// assert_eq!((timescale(4e6).unit, timescale(4e6).time(2)), ("10 ns", 50));
/// let ghz = timescale(1.8e9);
/// assert_eq!((ghz.unit, ghz.per_tick, ghz.time(9)), ("1 fs", None, 5_000_000));
/// ```
pub fn timescale(tick_hz: f64) -> Timescale {
    let period_fs = 1e15 / tick_hz;
    for (unit, fs) in UNITS {
        let r = period_fs / fs;
        if (1.0 - 1e-9..9.0e18).contains(&r) && (r - r.round()).abs() <= 1e-9 * r {
            return Timescale {
                unit,
                per_tick: Some(r.round() as u64),
                fs_per_tick: period_fs,
            };
        }
    }
    Timescale {
        unit: "1 fs",
        per_tick: None,
        fs_per_tick: period_fs,
    }
}

impl Timescale {
    /// The VCD time of `tick`.
    pub fn time(&self, tick: u64) -> u128 {
        match self.per_tick {
            Some(k) => tick as u128 * k as u128,
            None => (tick as f64 * self.fs_per_tick).round() as u128,
        }
    }
}

/// The `i`-th VCD identifier code: printable ASCII 33–126 (`!` … `~`), then two characters
/// (`!!`, `"!`, …) and so on — a bijective base-94 numbering.
///
/// ```
/// use tapwheel::trace::vcd_id;
/// assert_eq!(vcd_id(0), "!");
/// assert_eq!(vcd_id(93), "~");
/// assert_eq!(vcd_id(94), "!!");
/// assert_eq!(vcd_id(95), "\"!");
/// assert!((0..20000).map(vcd_id).all(|s| s.bytes().all(|b| (33..=126).contains(&b))));
/// ```
pub fn vcd_id(i: usize) -> String {
    let mut s = String::new();
    let mut k = i + 1;
    while k > 0 {
        k -= 1;
        s.push((33 + (k % 94) as u8) as char);
        k /= 94;
    }
    s
}

/// A VCD reference name for a channel or node name: `.` becomes `_`, `->` becomes `_to_`,
/// anything else outside `[A-Za-z0-9_]` becomes `_` (viewers read `.` as hierarchy).
///
/// ```
/// assert_eq!(tapwheel::trace::vcd_name("src.out->gain.in"), "src_out_to_gain_in");
/// ```
pub fn vcd_name(name: &str) -> String {
    name.replace("->", "_to_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A thermal node's trace data beside its firings: its ambient (the temperature at tick 0)
/// and its temperature at the end tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalTrack {
    pub node: u32,
    pub ambient: f64,
    pub final_kelvin: Option<f64>,
}

/// What the exports need besides the log: names, time base, the run's identity.
#[derive(Debug, Clone, Default)]
pub struct TraceMeta {
    pub scene: String,
    pub tick_hz: f64,
    pub device: String,
    pub outcome: Option<String>,
    pub end_tick: u64,
    pub plan_digest: String,
    pub output_digest: String,
    pub nodes: Vec<String>,
    pub channels: Vec<String>,
    pub gates: Vec<String>,
    /// Track names of the CycleSim cores that ran a recorded task.
    pub core_labels: BTreeMap<u32, String>,
    pub thermal: Vec<ThermalTrack>,
}

/// A recorded run ready to export ([`crate::Engine::trace`]).
pub struct TraceView<'a> {
    pub log: &'a RunLog,
    pub meta: TraceMeta,
    /// Every probe stream (plan order): the VCD's probe waveforms.
    pub probes: &'a [ProbeStream],
}

/// A track of the Chrome trace: a CycleSim core, a scheduler domain, a node's firings or a
/// node's stalls (in this order, which is also the display order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TrackKey {
    Core(u32),
    Domain(u32),
    /// A node's firings (`false`) or stalls (`true`), next to each other.
    Node(u32, bool),
}

impl TraceView<'_> {
    /// The tick the exported data is complete up to: the end tick, or the truncation tick.
    pub fn horizon(&self) -> u64 {
        match self.log.truncated_at() {
            Some(t) => t.min(self.meta.end_tick),
            None => self.meta.end_tick,
        }
    }

    /// `warning[W340]` when the log was truncated by its cap.
    pub fn warning(&self) -> Option<Diagnostic> {
        self.log.truncated_at().map(|t| {
            Diagnostic::nowhere(
                "W340",
                format!(
                    "the run log reached its cap of {} events at tick {t}: the trace, VCD and occupancy.csv end there ({} later records dropped; raise --trace-max-events)",
                    self.log.max_events(),
                    self.log.dropped()
                ),
            )
        })
    }

    fn node(&self, n: u32) -> &str {
        self.meta.nodes.get(n as usize).map_or("?", String::as_str)
    }

    fn channel(&self, c: u32) -> &str {
        self.meta
            .channels
            .get(c as usize)
            .map_or("?", String::as_str)
    }

    fn stall_on(&self, on: StallOn) -> String {
        match on {
            StallOn::Channel(c) => format!("channel {}", self.channel(c as u32)),
            StallOn::Watermark(c) => format!("watermark of channel {}", self.channel(c as u32)),
            StallOn::Gate(g) => format!(
                "gate {}",
                self.meta.gates.get(g).map_or("?", String::as_str)
            ),
            StallOn::Window => "task window".into(),
            StallOn::Domain(d) => format!("domain {d}"),
            StallOn::TaskRing => "task ring".into(),
            StallOn::HeapRing => "heap ring".into(),
            StallOn::ReadyQueue(d) => format!("ready queue of domain {d}"),
        }
    }

    /// Every stall, those still open closed at the horizon.
    fn all_stalls(&self) -> Vec<StallRecord> {
        let end = self.horizon();
        let mut v = self.log.stalls.clone();
        for (n, o) in self.log.open_stalls() {
            if end > o.since {
                v.push(StallRecord {
                    node: n,
                    reason: o.reason,
                    on: o.on,
                    from: o.since,
                    to: end,
                });
            }
        }
        v
    }

    /// Writes the Chrome trace event JSON (`{"traceEvents": [...], "displayTimeUnit": "ns",
    /// "otherData": {...}}`). Layout (docs/semantics.md "Traces and waveforms"): one process;
    /// a firing is an `X` event (category `firing`, name = node) on its CycleSim core's track,
    /// else its scheduler domain's, else its node's; overlapping firings of one track spread
    /// over extra lanes (`domain 0 #2`); stalls are `X` events (category `stall`, name = the
    /// reason) on a `NODE stalls` track; channel occupancy (`occupancy CHANNEL`) and
    /// temperatures (`temperature NODE`) are counters. `ts`/`dur` are microseconds of
    /// simulated time ([`micros`]). Producer → consumer flow events are not written.
    pub fn write_chrome_trace(&self, w: &mut dyn Write) -> io::Result<()> {
        let hz = self.meta.tick_hz;
        let us = |t: f64| micros(t, hz);
        let end = self.meta.end_tick as f64;
        // Tracks and lanes.
        let key_of = |f: &FiringRecord| match (f.core, f.domain) {
            (Some(c), _) => TrackKey::Core(c.core),
            (None, Some(d)) => TrackKey::Domain(d),
            (None, None) => TrackKey::Node(f.node, false),
        };
        let mut per_track: BTreeMap<TrackKey, Vec<usize>> = BTreeMap::new();
        for (i, f) in self.log.firings.iter().enumerate() {
            per_track.entry(key_of(f)).or_default().push(i);
        }
        let stalls = self.all_stalls();
        for s in &stalls {
            per_track.entry(TrackKey::Node(s.node, true)).or_default();
        }
        let mut lane_of = vec![0u32; self.log.firings.len()];
        let mut tid_base: BTreeMap<TrackKey, (u32, u32)> = BTreeMap::new();
        let mut next_tid = 1u32;
        for (key, firings) in &per_track {
            let iv: Vec<(f64, f64)> = firings
                .iter()
                .map(|&i| self.log.firings[i].interval())
                .collect();
            let lanes = assign_lanes(&iv);
            let count = lanes.iter().max().map_or(1, |m| m + 1);
            for (&i, &l) in firings.iter().zip(&lanes) {
                lane_of[i] = l;
            }
            tid_base.insert(*key, (next_tid, count));
            next_tid += count;
        }
        let mut first = true;
        let mut emit = |w: &mut dyn Write, v: Value| -> io::Result<()> {
            if !first {
                w.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer(&mut *w, &v).map_err(io::Error::other)
        };
        w.write_all(b"{\"traceEvents\":[\n")?;
        emit(
            w,
            json!({"ph": "M", "pid": 1, "tid": 0, "name": "process_name",
                   "args": {"name": format!("tapwheel {}", self.meta.scene)}}),
        )?;
        for (key, &(base, count)) in &tid_base {
            let name = match *key {
                TrackKey::Core(c) => self
                    .meta
                    .core_labels
                    .get(&c)
                    .cloned()
                    .unwrap_or_else(|| format!("core {c}")),
                TrackKey::Domain(d) => format!("domain {d}"),
                TrackKey::Node(n, false) => format!("node {}", self.node(n)),
                TrackKey::Node(n, true) => format!("{} stalls", self.node(n)),
            };
            for lane in 0..count {
                let tid = base + lane;
                let label = if lane == 0 {
                    name.clone()
                } else {
                    format!("{name} #{}", lane + 1)
                };
                emit(
                    w,
                    json!({"ph": "M", "pid": 1, "tid": tid, "name": "thread_name",
                           "args": {"name": label}}),
                )?;
                emit(
                    w,
                    json!({"ph": "M", "pid": 1, "tid": tid, "name": "thread_sort_index",
                           "args": {"sort_index": tid}}),
                )?;
            }
        }
        for (i, f) in self.log.firings.iter().enumerate() {
            let (base, _) = tid_base.get(&key_of(f)).copied().unwrap_or((0, 1));
            let (s, e) = f.interval();
            // A firing still in flight when the run ended is drawn up to the end tick.
            let in_flight = f.complete > self.meta.end_tick;
            let e = if in_flight { e.min(end).max(s) } else { e };
            let mut args = json!({
                "firing": f.index,
                "issue_tick": f.issue,
                "start_tick": f.start,
                "complete_tick": f.complete,
            });
            if let Some(a) = args.as_object_mut() {
                if let Some(d) = f.domain {
                    a.insert("domain".into(), json!(d));
                }
                if let Some(c) = f.core {
                    a.insert("core".into(), json!(c.core));
                    a.insert("start_cycle".into(), json!(c.start_cycle));
                    a.insert("end_cycle".into(), json!(c.end_cycle));
                }
                if let Some(t) = f.temperature {
                    a.insert("temperature_k".into(), json!(t));
                }
                if in_flight {
                    a.insert("in_flight_at_end".into(), json!(true));
                }
            }
            emit(
                w,
                json!({"ph": "X", "cat": "firing", "name": self.node(f.node), "pid": 1,
                       "tid": base + lane_of[i], "ts": us(s), "dur": us(e) - us(s),
                       "args": args}),
            )?;
        }
        for s in &stalls {
            let (tid, _) = tid_base
                .get(&TrackKey::Node(s.node, true))
                .copied()
                .unwrap_or((0, 1));
            emit(
                w,
                json!({"ph": "X", "cat": "stall", "name": s.reason.code(), "pid": 1,
                       "tid": tid, "ts": us(s.from as f64),
                       "dur": us(s.to as f64) - us(s.from as f64),
                       "args": {"node": self.node(s.node), "on": self.stall_on(s.on),
                                "from_tick": s.from, "to_tick": s.to}}),
            )?;
        }
        for o in &self.log.occupancy {
            emit(
                w,
                json!({"ph": "C", "cat": "occupancy", "pid": 1, "tid": 0,
                       "name": format!("occupancy {}", self.channel(o.channel)),
                       "ts": us(o.tick as f64), "args": {"tokens": o.occupancy}}),
            )?;
        }
        for (tick, node, kelvin) in self.temperature_samples() {
            emit(
                w,
                json!({"ph": "C", "cat": "thermal", "pid": 1, "tid": 0,
                       "name": format!("temperature {}", self.node(node)),
                       "ts": us(tick as f64), "args": {"kelvin": kelvin}}),
            )?;
        }
        if let Some(t) = self.log.truncated_at() {
            emit(
                w,
                json!({"ph": "i", "s": "g", "cat": "trace", "name": "trace truncated",
                       "pid": 1, "tid": 0, "ts": us(t as f64),
                       "args": {"max_events": self.log.max_events(),
                                "dropped": self.log.dropped()}}),
            )?;
        }
        let other = json!({
            "scene": self.meta.scene,
            "tick_hz": hz,
            "microseconds_per_tick": micros(1.0, hz),
            "device": self.meta.device,
            "outcome": self.meta.outcome,
            "end_tick": self.meta.end_tick,
            "plan_digest": self.meta.plan_digest,
            "output_digest": self.meta.output_digest,
            "events": self.log.events(),
            "max_events": self.log.max_events(),
            "truncated_at": self.log.truncated_at(),
            "dropped": self.log.dropped(),
            "complete_to_tick": self.horizon(),
            "flows": "not recorded",
        });
        w.write_all(b"\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":")?;
        serde_json::to_writer(&mut *w, &other).map_err(io::Error::other)?;
        w.write_all(b"}\n")
    }

    /// Temperature samples `(tick, node, kelvin)`: each thermal node's ambient at tick 0, its
    /// temperature at every recorded firing, and its temperature at the end tick (when the log
    /// is complete).
    fn temperature_samples(&self) -> Vec<(u64, u32, f64)> {
        let mut out = Vec::new();
        for t in &self.meta.thermal {
            out.push((0, t.node, t.ambient));
        }
        for f in &self.log.firings {
            if let Some(k) = f.temperature {
                out.push((f.issue, f.node, k));
            }
        }
        if self.log.truncated_at().is_none() {
            for t in &self.meta.thermal {
                if let Some(k) = t.final_kelvin {
                    out.push((self.meta.end_tick, t.node, k));
                }
            }
        }
        out
    }

    /// Writes `tick,channel,occupancy`: every recorded occupancy sample, in time order (several
    /// rows of one channel at one tick are its deltas; the last is its value at the end of
    /// that tick).
    pub fn write_occupancy_csv(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(b"tick,channel,occupancy\n")?;
        for o in &self.log.occupancy {
            writeln!(
                w,
                "{},{},{}",
                o.tick,
                csv_field(self.channel(o.channel)),
                o.occupancy
            )?;
        }
        Ok(())
    }

    /// Writes the value change dump: `$timescale` per [`timescale`], scope `tapwheel` with
    /// `probes` (one `real` per probe: the first element of each token, at its visible tick),
    /// `channels` (one `integer 32` per channel: its occupancy) and `thermal` (one `real` per
    /// node with `thermal`: kelvin at each firing, ambient at 0, the final value at the end
    /// tick). Changes within one VCD time keep the last value (deltas are not shown).
    pub fn write_vcd(&self, w: &mut dyn Write) -> io::Result<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum V {
            F32(f32),
            F64(f64),
            Int(u32),
        }
        let ts = timescale(self.meta.tick_hz);
        let np = self.probes.len();
        let nc = self.meta.channels.len();
        let mut changes: Vec<(u128, usize, V)> = Vec::new();
        for (p, s) in self.probes.iter().enumerate() {
            for (i, &tick) in s.ticks.iter().enumerate() {
                if let Some(&v) = s.values.get(i * s.token_len) {
                    changes.push((ts.time(tick), p, V::F32(v)));
                }
            }
        }
        for o in &self.log.occupancy {
            changes.push((
                ts.time(o.tick),
                np + o.channel as usize,
                V::Int(o.occupancy),
            ));
        }
        let thermal_var: BTreeMap<u32, usize> = self
            .meta
            .thermal
            .iter()
            .enumerate()
            .map(|(k, t)| (t.node, np + nc + k))
            .collect();
        for (tick, node, k) in self.temperature_samples() {
            if let Some(&var) = thermal_var.get(&node) {
                changes.push((ts.time(tick), var, V::F64(k)));
            }
        }
        // Stable: within one (time, variable) the recorded order is kept, and the last wins.
        changes.sort_by_key(|c| (c.0, c.1));
        let mut kept: Vec<(u128, usize, V)> = Vec::with_capacity(changes.len());
        let mut last: Vec<Option<V>> = vec![None; np + nc + thermal_var.len()];
        let mut i = 0;
        while i < changes.len() {
            let mut j = i;
            while j + 1 < changes.len()
                && changes[j + 1].0 == changes[i].0
                && changes[j + 1].1 == changes[i].1
            {
                j += 1;
            }
            let (t, var, v) = changes[j];
            if last[var] != Some(v) {
                last[var] = Some(v);
                kept.push((t, var, v));
            }
            i = j + 1;
        }
        writeln!(w, "$date")?;
        writeln!(
            w,
            "\tsimulated run of {} (no wall-clock date: the file is deterministic)",
            self.meta.scene
        )?;
        writeln!(w, "$end")?;
        writeln!(w, "$version")?;
        writeln!(w, "\ttapwheel {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(w, "$end")?;
        writeln!(w, "$comment")?;
        writeln!(
            w,
            "\tscene {} plan_digest {} tick_hz {} ({})",
            self.meta.scene,
            self.meta.plan_digest,
            self.meta.tick_hz,
            match ts.per_tick {
                Some(k) => format!("1 tick = {k} x {}", ts.unit),
                None => format!("1 tick = {} fs, rounded", ts.fs_per_tick),
            }
        )?;
        if let Some(t) = self.log.truncated_at() {
            writeln!(
                w,
                "\ttruncated: the run log reached its cap of {} events at tick {t}; channels and temperatures end there",
                self.log.max_events()
            )?;
        }
        writeln!(w, "$end")?;
        writeln!(w, "$timescale {} $end", ts.unit)?;
        writeln!(w, "$scope module tapwheel $end")?;
        let mut var = 0usize;
        let mut scope = |w: &mut dyn Write,
                         name: &str,
                         kind: &str,
                         names: &mut dyn Iterator<Item = String>|
         -> io::Result<()> {
            let names: Vec<String> = names.collect();
            if names.is_empty() {
                return Ok(());
            }
            writeln!(w, "$scope module {name} $end")?;
            let mut used = std::collections::BTreeSet::new();
            for n in names {
                let base = vcd_name(&n);
                let mut unique = base.clone();
                let mut k = 2;
                while !used.insert(unique.clone()) {
                    unique = format!("{base}_{k}");
                    k += 1;
                }
                writeln!(w, "$var {kind} {} {unique} $end", vcd_id(var))?;
                var += 1;
            }
            writeln!(w, "$upscope $end")
        };
        scope(
            w,
            "probes",
            "real 64",
            &mut self.probes.iter().map(|p| p.name.clone()),
        )?;
        scope(
            w,
            "channels",
            "integer 32",
            &mut self.meta.channels.iter().cloned(),
        )?;
        scope(
            w,
            "thermal",
            "real 64",
            &mut self
                .meta
                .thermal
                .iter()
                .map(|t| self.node(t.node).to_string()),
        )?;
        writeln!(w, "$upscope $end")?;
        writeln!(w, "$enddefinitions $end")?;
        let value = |v: V, id: &str| match v {
            V::F32(x) => format!("r{x} {id}"),
            V::F64(x) => format!("r{x} {id}"),
            V::Int(x) => format!("b{x:b} {id}"),
        };
        let mut k = 0;
        let at_zero = kept.iter().take_while(|c| c.0 == 0).count();
        writeln!(w, "#0")?;
        if at_zero > 0 {
            writeln!(w, "$dumpvars")?;
            for &(_, var, v) in &kept[..at_zero] {
                writeln!(w, "{}", value(v, &vcd_id(var)))?;
            }
            writeln!(w, "$end")?;
            k = at_zero;
        }
        let mut time = 0u128;
        for &(t, var, v) in &kept[k..] {
            if t != time {
                writeln!(w, "#{t}")?;
                time = t;
            }
            writeln!(w, "{}", value(v, &vcd_id(var)))?;
        }
        // The end of the run, so a viewer shows the last values up to it.
        let end = ts.time(self.meta.end_tick);
        if end > time {
            writeln!(w, "#{end}")?;
        }
        Ok(())
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
