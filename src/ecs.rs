//! The ECS vocabulary every system shares: node, tap and channel components, and the resources
//! (clock, event queue, token arena, stats, probes). Helper methods here hold the §4 rules the
//! systems apply, so each system file reads like the paragraph it implements.

use crate::arena::{TokenArena, TokenMeta};
use crate::kernels::{InputView, Kernel, OutputBlock};
use crate::plan::Plan;
use crate::scene::{Adapter, Lane, Shape};
use crate::time::{Event, EventQueue, Instant};
use bevy_ecs::prelude::*;
use fixedbitset::FixedBitSet;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

/// Dense index of a node in plan (canonical) order.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIx(pub u32);

/// The node's kernel instance.
#[derive(Component)]
pub struct NodeKernel(pub Box<dyn Kernel>);

/// One input tap of a node as the hot path sees it.
#[derive(Debug, Clone)]
pub struct InputPort {
    /// The first (usually only) channel.
    pub channel: Option<usize>,
    /// Every channel into the tap (several under a gather adapter), with their token shapes.
    pub channels: Vec<usize>,
    pub channel_shapes: Vec<Shape>,
    pub adapter: Option<Adapter>,
    pub shape: Shape,
    pub optional: bool,
    pub hold_last: bool,
    pub default: f32,
    pub token_len: usize,
}

impl InputPort {
    /// Tokens need reshaping between the channels and the tap (§8).
    pub fn gathers(&self) -> bool {
        self.channels.len() > 1
            || self
                .channel_shapes
                .first()
                .is_some_and(|s| *s != self.shape)
    }
}

/// One output channel of an output tap.
#[derive(Debug, Clone, Copy)]
pub struct OutChannel {
    pub channel: usize,
    pub delay: u64,
    /// Which part of a split token this channel carries.
    pub part: usize,
}

/// One output tap: its channels (fan-out) and its maximum production per firing.
#[derive(Debug, Clone)]
pub struct OutputPort {
    pub channels: Vec<OutChannel>,
    pub max_production: u32,
    pub token_len: usize,
    pub shape: Shape,
    /// A scatter adapter (`SplitChannels` / `SplitBatch`).
    pub split: Option<Adapter>,
}

/// The static wiring of a node (from the plan).
#[derive(Component, Debug, Clone)]
pub struct NodeWiring {
    pub inputs: Vec<InputPort>,
    pub outputs: Vec<OutputPort>,
    pub is_source: bool,
    pub is_probe: bool,
    pub concurrency: Option<u32>,
    pub period: Option<u64>,
    pub latency: u64,
    pub lane: Lane,
    /// `timing: Measure` (wall-clock per firing into the report).
    pub timed: bool,
    /// `latency: Measured`: the measured wall-clock time becomes the latency.
    pub measured_latency: bool,
    pub tick_hz: f64,
}

/// A firing issued and not yet written out (a *task*, §9).
#[derive(Debug, Clone)]
pub struct Firing {
    pub index: u64,
    pub started: u64,
    pub complete_at: u64,
    pub done: bool,
    pub outputs: Vec<OutputBlock>,
}

/// Why a node that is not finished did not fire at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum StallReason {
    #[serde(rename = "CHANNEL_EMPTY_WAIT")]
    ChannelEmptyWait,
    #[serde(rename = "CHANNEL_FULL_WAIT")]
    ChannelFullWait,
}

impl StallReason {
    pub fn code(self) -> &'static str {
        match self {
            StallReason::ChannelEmptyWait => "CHANNEL_EMPTY_WAIT",
            StallReason::ChannelFullWait => "CHANNEL_FULL_WAIT",
        }
    }
}

/// The outcome of checking §4 conditions 1–4 for a node at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Free concurrency slots (condition 1).
    pub free_slots: u32,
    /// A source that is not due (condition 4 fails): waiting for time, not stalled.
    pub not_due: bool,
    /// Mandatory inputs lacking demanded tokens (condition 2).
    pub lacking_inputs: Vec<usize>,
    /// Block channels lacking room for the maximum production (condition 3).
    pub lacking_outputs: Vec<usize>,
}

impl Readiness {
    /// The stall this evaluation shows, with the channel waited on.
    pub fn stall(&self) -> Option<(StallReason, usize)> {
        if self.ready || self.free_slots == 0 || self.not_due {
            return None;
        }
        if let Some(&c) = self.lacking_inputs.first() {
            return Some((StallReason::ChannelEmptyWait, c));
        }
        self.lacking_outputs
            .first()
            .map(|&c| (StallReason::ChannelFullWait, c))
    }
    /// §4 artificial deadlock: conditions 1, 2 and 4 hold but 3 does not.
    pub fn blocked_only_by_room(&self) -> bool {
        !self.ready
            && self.free_slots > 0
            && !self.not_due
            && self.lacking_inputs.is_empty()
            && !self.lacking_outputs.is_empty()
    }
}

/// Dynamic per-node state.
#[derive(Component, Debug, Clone, Default)]
pub struct NodeRuntime {
    pub in_flight: VecDeque<Firing>,
    pub firings_started: u64,
    pub finished_at: Option<Instant>,
    /// Sources: the tick of the next due firing and the firings left (`None` = unbounded).
    pub next_due: u64,
    pub remaining: Option<u64>,
    /// Last consumed token per optional input (for `hold_last`).
    pub held: Vec<Vec<f32>>,
    pub views: Vec<InputView>,
    pub demand: Vec<u32>,
    pub readiness: Readiness,
    pub discarded_inputs: u64,
    /// Output buffers of completed firings, reused.
    pub spare: Vec<Vec<OutputBlock>>,
    /// Scratch for split output tokens.
    pub part_scratch: Vec<f32>,
}

impl NodeRuntime {
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// Builds the kernel's view of each input channel at `now`.
    pub fn refresh_views(&mut self, wiring: &NodeWiring, arena: &TokenArena, now: Instant) {
        self.views.clear();
        for port in &wiring.inputs {
            let v = match port.channel {
                Some(_) if port.channels.len() > 1 => {
                    // A gather sees as many tokens as its emptiest channel holds; it ends when
                    // any channel ends.
                    let mut v = InputView {
                        visible: usize::MAX,
                        held: usize::MAX,
                        closed: false,
                        drained: true,
                        optional: port.optional,
                    };
                    for &ch in &port.channels {
                        let r = arena.ring(ch);
                        v.visible = v.visible.min(arena.visible_count(ch, now));
                        v.held = v.held.min(r.len());
                        v.closed |= r.closed_before(now);
                        v.drained &= r.drained();
                    }
                    v
                }
                Some(ch) => {
                    let r = arena.ring(ch);
                    InputView {
                        visible: arena.visible_count(ch, now),
                        held: r.len(),
                        closed: r.closed_before(now),
                        drained: r.drained(),
                        optional: port.optional,
                    }
                }
                None => InputView {
                    closed: true,
                    drained: true,
                    optional: port.optional,
                    ..InputView::default()
                },
            };
            self.views.push(v);
        }
        self.demand.clear();
        self.demand.resize(wiring.inputs.len(), 0);
    }

    /// §4 conditions 1–4 (views and demand must be fresh).
    pub fn evaluate(&self, wiring: &NodeWiring, arena: &TokenArena, now: Instant) -> Readiness {
        let in_flight = self.in_flight.len() as u32;
        let free_slots = match wiring.concurrency {
            Some(c) => c.saturating_sub(in_flight),
            None => u32::MAX,
        };
        let not_due = wiring.is_source && (self.remaining == Some(0) || self.next_due > now.tick);
        let lacking_inputs: Vec<usize> = wiring
            .inputs
            .iter()
            .zip(self.views.iter().zip(&self.demand))
            .filter(|(p, (v, d))| !p.optional && v.visible < **d as usize)
            .filter_map(|(p, (_, d))| {
                p.channels
                    .iter()
                    .copied()
                    .find(|&c| arena.visible_count(c, now) < *d as usize)
                    .or(p.channel)
            })
            .collect();
        let mut lacking_outputs = Vec::new();
        for port in &wiring.outputs {
            for oc in &port.channels {
                let r = arena.ring(oc.channel);
                if r.consumer_finished_before(now) {
                    continue; // never blocks its producer
                }
                if arena.room(oc.channel) < port.max_production {
                    lacking_outputs.push(oc.channel);
                }
            }
        }
        Readiness {
            ready: free_slots > 0
                && !not_due
                && lacking_inputs.is_empty()
                && lacking_outputs.is_empty(),
            free_slots,
            not_due,
            lacking_inputs,
            lacking_outputs,
        }
    }
}

/// Marks a node finished at `now`: outputs close, tokens left on inputs are discarded.
pub fn finish_node(
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    now: Instant,
) {
    rt.finished_at = Some(now);
    for port in &wiring.outputs {
        for oc in &port.channels {
            arena.ring_mut(oc.channel).closed_at.get_or_insert(now);
        }
    }
    for port in &wiring.inputs {
        for &ch in &port.channels {
            rt.discarded_inputs += arena.discard_all(ch) as u64;
            arena.ring_mut(ch).consumer_finished_at.get_or_insert(now);
        }
    }
}

/// Writes the outputs of the leading completed firings of a node, in firing order, at `now`.
/// Returns how many firings were written out.
pub fn flush_completed(
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    events: &mut EventQueue,
    now: Instant,
) -> Result<usize, crate::arena::ArenaError> {
    let mut flushed = 0;
    while rt.in_flight.front().is_some_and(|f| f.done) {
        let Some(mut firing) = rt.in_flight.pop_front() else {
            break;
        };
        for (port, block) in wiring.outputs.iter().zip(firing.outputs.iter_mut()) {
            let produced = block.tokens().min(port.max_production as usize);
            for oc in &port.channels {
                arena.release(oc.channel, port.max_production - produced as u32);
                let visible = now.after_delay(oc.delay);
                let discard = arena.ring(oc.channel).consumer_finished_at.is_some();
                for t in 0..produced {
                    if discard {
                        arena.discard_on_arrival(oc.channel);
                    } else {
                        let tl = port.token_len;
                        let token = &block.values[t * tl..(t + 1) * tl];
                        if port.split.is_some() {
                            let mut part = std::mem::take(&mut rt.part_scratch);
                            part.clear();
                            crate::adapters::scatter(
                                port.split, port.shape, oc.part, token, &mut part,
                            );
                            let r = arena.write(oc.channel, &part, visible);
                            rt.part_scratch = part;
                            r?;
                        } else {
                            arena.write(oc.channel, token, visible)?;
                        }
                    }
                }
                if produced > 0 && !discard && oc.delay > 0 {
                    events.push_wake(visible.tick);
                }
            }
            block.values.clear();
        }
        rt.spare.push(firing.outputs);
        flushed += 1;
    }
    Ok(flushed)
}

/// Writes out a node's completed firings at `now` (see [`flush_completed`]), counts them, and
/// finishes a source whose last firing has been written (§4 end of stream). An arena failure
/// comes back as the diagnostic that ends the run.
pub fn write_out_completed(
    n: usize,
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    events: &mut EventQueue,
    stats: &mut Stats,
    now: Instant,
) -> Option<crate::error::Diagnostic> {
    let failure = match flush_completed(rt, wiring, arena, events, now) {
        Ok(c) => {
            stats.completed[n] += c as u64;
            None
        }
        Err(e) => Some(crate::error::Diagnostic::nowhere("R330", e.to_string())),
    };
    if wiring.is_source && rt.remaining == Some(0) && rt.in_flight.is_empty() && !rt.finished() {
        finish_node(rt, wiring, arena, now);
    }
    failure
}

/// Marks the oldest in-flight firing due at `tick` as completed.
pub fn complete_due(rt: &mut NodeRuntime, tick: u64) -> bool {
    if let Some(f) = rt
        .in_flight
        .iter_mut()
        .find(|f| !f.done && f.complete_at <= tick)
    {
        f.done = true;
        return true;
    }
    false
}

/// Canonical node order (plan order): systems iterate this, never archetype order.
#[derive(Resource, Debug, Clone, Default)]
pub struct NodeOrder(pub Vec<Entity>);

/// The current instant.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct Clock {
    pub now: Instant,
}

/// The future events (completions, wake-ups).
#[derive(Resource, Debug, Clone, Default)]
pub struct Events(pub EventQueue);

/// The frozen plan the world was spawned from.
#[derive(Resource, Debug, Clone)]
pub struct PlanRes(pub Arc<Plan>);

/// Per-step scratch shared by the stages of one step.
#[derive(Resource, Debug, Default)]
pub struct StepState {
    /// Anything changed in this step: the next step is `(t, δ+1)`.
    pub changed: bool,
    /// Nodes meeting §4 conditions 1–4, by dense index.
    pub ready: FixedBitSet,
    /// Tasks admitted by dispatch: `(node, latency, firings allowed this step)`.
    pub enabled: Vec<(u32, u64, u32)>,
    /// Completions popped from the event queue for this instant.
    pub completions: Vec<Event>,
    /// A failure inside a system (arena limit); the driver ends the run with it.
    pub failure: Option<crate::error::Diagnostic>,
}

/// Accumulated stall accounting for one subject and reason.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StallCount {
    /// Processed instants at which the subject was stalled.
    pub instants: u64,
    /// Total stalled ticks (a stall lasting only deltas adds 0).
    pub ticks: u64,
    /// The longest single stall, in ticks.
    pub longest_ticks: u64,
}

/// An ongoing stall of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStall {
    pub reason: StallReason,
    pub channel: usize,
    pub since: u64,
}

/// Run statistics.
#[derive(Resource, Debug, Clone, Default)]
pub struct Stats {
    pub firings: Vec<u64>,
    pub completed: Vec<u64>,
    /// Latest completion tick of any task (probe firings excluded).
    pub makespan: u64,
    pub open_stalls: Vec<Option<OpenStall>>,
    /// `(node, reason)` → counts.
    pub node_stalls: std::collections::BTreeMap<(usize, StallReason), StallCount>,
    /// `(channel, reason)` → counts.
    pub channel_stalls: std::collections::BTreeMap<(usize, StallReason), StallCount>,
    /// Wall-clock time of the firings of timed nodes (`timing: Measure`), by node.
    pub timing: std::collections::BTreeMap<usize, FiringTimes>,
}

/// Wall-clock statistics of one node's firings (never part of simulated time unless the node
/// asked for `latency: Measured`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FiringTimes {
    pub firings: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
}

impl FiringTimes {
    pub fn record(&mut self, ns: u64) {
        self.min_ns = if self.firings == 0 {
            ns
        } else {
            self.min_ns.min(ns)
        };
        self.max_ns = self.max_ns.max(ns);
        self.total_ns = self.total_ns.saturating_add(ns);
        self.firings += 1;
    }
}

impl Stats {
    pub fn new(nodes: usize) -> Self {
        Stats {
            firings: vec![0; nodes],
            completed: vec![0; nodes],
            open_stalls: vec![None; nodes],
            ..Default::default()
        }
    }

    /// Records node `n`'s stall state at instant `now` (called once per processed instant).
    pub fn observe_stall(&mut self, n: usize, stall: Option<(StallReason, usize)>, now: Instant) {
        let open = self.open_stalls[n];
        let same =
            matches!((open, stall), (Some(o), Some((r, c))) if o.reason == r && o.channel == c);
        if !same {
            self.close_stall(n, now.tick);
            if let Some((reason, channel)) = stall {
                self.open_stalls[n] = Some(OpenStall {
                    reason,
                    channel,
                    since: now.tick,
                });
            }
        }
        if let Some((reason, channel)) = stall {
            self.node_stalls.entry((n, reason)).or_default().instants += 1;
            self.channel_stalls
                .entry((channel, reason))
                .or_default()
                .instants += 1;
        }
    }

    /// Ends node `n`'s open stall at `tick`.
    pub fn close_stall(&mut self, n: usize, tick: u64) {
        if let Some(o) = self.open_stalls[n].take() {
            let d = tick.saturating_sub(o.since);
            let e = self.node_stalls.entry((n, o.reason)).or_default();
            e.ticks += d;
            e.longest_ticks = e.longest_ticks.max(d);
            let c = self
                .channel_stalls
                .entry((o.channel, o.reason))
                .or_default();
            c.ticks += d;
            c.longest_ticks = c.longest_ticks.max(d);
        }
    }
}

/// One probe's recorded stream: every consumed token with its `seq` and visible tick.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeStream {
    pub name: String,
    pub node: usize,
    pub token_len: usize,
    pub batch: u32,
    pub channels: u32,
    pub frames: u32,
    pub seqs: Vec<u64>,
    pub ticks: Vec<u64>,
    pub values: Vec<f32>,
}

impl ProbeStream {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
    /// Token `i`'s values.
    pub fn token(&self, i: usize) -> &[f32] {
        &self.values[i * self.token_len..(i + 1) * self.token_len]
    }
    /// Records consumed tokens.
    pub fn record(&mut self, values: &[f32], metas: &[TokenMeta]) {
        for m in metas {
            self.seqs.push(m.seq);
            self.ticks.push(m.visible.tick);
        }
        self.values.extend_from_slice(values);
    }
}

/// All probe streams, in plan order; `by_node[n]` indexes `streams` for probe nodes.
#[derive(Resource, Debug, Clone, Default)]
pub struct Probes {
    pub streams: Vec<ProbeStream>,
    pub by_node: Vec<Option<usize>>,
}

/// Scratch buffers for consumed inputs, reused across firings.
#[derive(Resource, Debug, Default)]
pub struct Scratch {
    pub values: Vec<Vec<f32>>,
    pub metas: Vec<TokenMeta>,
    /// Tokens popped per channel of a gathering tap.
    pub parts: Vec<Vec<f32>>,
}

/// A tap entity: bookkeeping for queries and reports.
#[derive(Component, Debug, Clone)]
pub struct Tap {
    pub node: Entity,
    pub name: String,
    pub input: bool,
    pub rate: u32,
}

/// A channel entity: its FIFO contract. The ring itself lives in the [`TokenArena`].
#[derive(Component, Debug, Clone)]
pub struct ChannelContract {
    pub index: usize,
    pub name: String,
    pub from: Entity,
    pub to: Entity,
    pub delay: u64,
    pub initial_capacity: u32,
    pub lane: Lane,
}
