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

/// The most firings one node may have in flight, even with `concurrency: None` (no queue in the
/// engine is unbounded, §9); a node at the bound waits as if its concurrency were full.
pub const MAX_IN_FLIGHT: u32 = 1 << 16;

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
    /// Some output channel is a rendezvous (capacity 0, §10).
    pub rendezvous_out: bool,
    /// The output taps the kernel writes (`outputs[..kernel_outputs]`); the rest are the
    /// engine's.
    pub kernel_outputs: usize,
    /// The `temp` output tap of a node with thermal state (§14), written by the engine.
    pub temp_port: Option<usize>,
    /// An `Inject` node (an open input, §20): due at the ticks the host queued.
    pub host_fed: bool,
}

/// A firing issued and not yet written out (a *task*, §9).
#[derive(Debug, Clone)]
pub struct Firing {
    pub index: u64,
    pub started: u64,
    pub complete_at: u64,
    pub done: bool,
    pub outputs: Vec<OutputBlock>,
    /// The dispatch ticket (domain, start) of the task; `None` without dispatch resources and
    /// for probe firings.
    pub ticket: Option<crate::dispatch::Ticket>,
    /// Its tape entry, when gradients are recorded (§17).
    pub tape: Option<u32>,
}

/// A firing whose outputs are written but which stays in flight until the consumers of its
/// rendezvous (capacity-0) channels have taken its tokens (§10).
#[derive(Debug, Clone)]
pub struct HeldFiring {
    pub ticket: Option<crate::dispatch::Ticket>,
    /// One entry per token still waiting on a rendezvous channel.
    pub waiting: Vec<usize>,
}

/// Why a node that is not finished did not fire at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum StallReason {
    #[serde(rename = "CHANNEL_EMPTY_WAIT")]
    ChannelEmptyWait,
    #[serde(rename = "CHANNEL_FULL_WAIT")]
    ChannelFullWait,
    /// Ready (§4 conditions 1–4) but its synchrony gate did not open (§6).
    #[serde(rename = "GATE_WAIT")]
    GateWait,
    /// Ready, but the task window is full (§9).
    #[serde(rename = "WINDOW_FULL")]
    WindowFull,
    /// Ready, but no worker of its domain is free (§9).
    #[serde(rename = "DEVICE_BUSY")]
    DeviceBusy,
    /// A device's per-core-type ready queue is full (CycleSim, §12; never on Reference).
    #[serde(rename = "READY_QUEUE_FULL")]
    ReadyQueueFull,
    /// A device's task ring is exhausted (CycleSim, §12; never on Reference).
    #[serde(rename = "TASK_RING_FULL")]
    TaskRingFull,
    /// A device's heap ring has no room for the task's outputs (CycleSim, §12).
    #[serde(rename = "HEAP_ARENA_FULL")]
    HeapArenaFull,
}

impl StallReason {
    pub fn code(self) -> &'static str {
        match self {
            StallReason::ChannelEmptyWait => "CHANNEL_EMPTY_WAIT",
            StallReason::ChannelFullWait => "CHANNEL_FULL_WAIT",
            StallReason::GateWait => "GATE_WAIT",
            StallReason::WindowFull => "WINDOW_FULL",
            StallReason::DeviceBusy => "DEVICE_BUSY",
            StallReason::ReadyQueueFull => "READY_QUEUE_FULL",
            StallReason::TaskRingFull => "TASK_RING_FULL",
            StallReason::HeapArenaFull => "HEAP_ARENA_FULL",
        }
    }
}

/// What a stalled node waits on: a channel, or a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StallOn {
    Channel(usize),
    Gate(usize),
    /// The task window (its scope: the global window, or one domain's).
    Window,
    /// A scheduler domain's workers.
    Domain(u32),
    /// A device resource: the task ring, the heap ring, or a domain's ready queue (CycleSim).
    TaskRing,
    HeapRing,
    ReadyQueue(u32),
    /// A channel whose `Data` watermark holds the producer back (a `CHANNEL_FULL_WAIT` on
    /// the channel, also counted as the channel's `blocked_by_watermark`).
    Watermark(usize),
}

/// Channel indices a readiness check names. Inline up to two: every waiting node is evaluated
/// every step, and a heap allocation per evaluation was a tenth of the run time.
pub type ChannelList = smallvec::SmallVec<[usize; 2]>;

/// The outcome of checking §4 conditions 1–4 for a node at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Free concurrency slots (condition 1).
    pub free_slots: u32,
    /// A source that is not due (condition 4 fails): waiting for time, not stalled.
    pub not_due: bool,
    /// Mandatory inputs lacking demanded tokens (condition 2).
    pub lacking_inputs: ChannelList,
    /// Block channels lacking room for the maximum production (condition 3).
    pub lacking_outputs: ChannelList,
    /// Those of `lacking_outputs` held by a `Data` watermark rather than by capacity.
    pub watermark_outputs: ChannelList,
}

impl Readiness {
    /// The stall this evaluation shows, with the channel waited on.
    pub fn stall(&self) -> Option<(StallReason, StallOn)> {
        if self.ready || self.free_slots == 0 || self.not_due {
            return None;
        }
        if let Some(&c) = self.lacking_inputs.first() {
            return Some((StallReason::ChannelEmptyWait, StallOn::Channel(c)));
        }
        self.lacking_outputs.first().map(|&c| {
            let on = if self.watermark_outputs.contains(&c) {
                StallOn::Watermark(c)
            } else {
                StallOn::Channel(c)
            };
            (StallReason::ChannelFullWait, on)
        })
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
    /// Consumed input values of the firing being computed (one buffer per input tap), reused.
    pub input_bufs: Vec<Vec<f32>>,
    /// Firings written out but held by rendezvous channels (§10); they count as in flight.
    pub rendezvous: Vec<HeldFiring>,
    /// Tickets of tasks retired by the last write-out, for dispatch to release.
    pub retired: Vec<crate::dispatch::Ticket>,
    /// Cancelled (a cancelled source): outputs of firings completing from now on are fenced
    /// off — discarded on arrival and counted, never delivered.
    pub fenced: bool,
    /// With a tape: where each optional input's held token came from (`hold_last`).
    pub held_src: Vec<crate::tape::Source>,
    /// With a tape: the parts `(channel, seq)` of a held gathered token (a `Gathered` source
    /// indexes the firing's own part list, so a repeat in a later firing lists them again).
    pub held_parts: Vec<Vec<(u32, u64)>>,
    /// With a tape: the entry of the firing being booked.
    pub tape_entry: Option<u32>,
    /// An open input (§20): the ticks of the tokens the host queued, oldest first.
    pub host_due: VecDeque<u64>,
    /// An open input the host has closed: once its queue drains, it finishes.
    pub host_closed: bool,
    /// The tick, step and [`ReadinessKey`] of the last full readiness check
    /// (`systems/readiness.rs`).
    pub memo: Option<(u64, u64, ReadinessKey)>,
}

/// A node's own firing state, which its readiness depends on beside its channels. Within one
/// tick (under `Kpn`), a node whose key is unchanged and whose channels all changed before the
/// step of its last check is judged the same: a change in step `s` (a zero-delay write, a
/// closure, a freed slot) shows from step `s + 1` at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadinessKey {
    firings: u64,
    busy: usize,
    remaining: Option<u64>,
    next_due: u64,
    host_due: usize,
    host_closed: bool,
}

impl NodeRuntime {
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// Firings in flight: issued and not completed, including those held by rendezvous.
    pub fn busy(&self) -> usize {
        self.in_flight.len() + self.rendezvous.len()
    }

    /// No firing in flight.
    pub fn idle(&self) -> bool {
        self.busy() == 0
    }

    /// Builds the kernel's view of each input channel at `now`.
    pub fn refresh_views(&mut self, wiring: &NodeWiring, arena: &mut TokenArena, now: Instant) {
        self.views.clear();
        for port in &wiring.inputs {
            let v = match port.channel {
                Some(_) if port.channels.len() > 1 => {
                    // A gather sees as many tokens as its emptiest channel holds; it ends when
                    // any channel ends (is closed and holds fewer tokens than demanded). So once
                    // a channel is closed, `held` is the fewest tokens a *closed* channel holds:
                    // the most gathered tokens the tap can still deliver. (The fewest over all
                    // channels would let a closed channel end the tap while an open one, on a
                    // longer path, still has its last tokens on the way.)
                    let mut v = InputView {
                        visible: usize::MAX,
                        held: usize::MAX,
                        closed: false,
                        drained: true,
                        optional: port.optional,
                    };
                    let mut held_closed = usize::MAX;
                    for &ch in &port.channels {
                        v.visible = v.visible.min(arena.visible_now(ch, now));
                        let r = arena.ring(ch);
                        v.held = v.held.min(r.len());
                        if r.closed_before(now) {
                            v.closed = true;
                            held_closed = held_closed.min(r.len());
                        }
                        v.drained &= r.drained();
                    }
                    if v.closed {
                        v.held = held_closed;
                    }
                    v
                }
                Some(ch) => {
                    let visible = arena.visible_now(ch, now);
                    let r = arena.ring(ch);
                    InputView {
                        visible,
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

    /// The step of the latest change to any of the node's channels.
    pub fn channels_changed_at(wiring: &NodeWiring, arena: &TokenArena) -> u64 {
        let inputs = wiring
            .inputs
            .iter()
            .flat_map(|p| p.channels.iter().copied());
        let outputs = wiring
            .outputs
            .iter()
            .flat_map(|p| p.channels.iter().map(|oc| oc.channel));
        inputs
            .chain(outputs)
            .map(|c| arena.changed_at(c))
            .max()
            .unwrap_or(0)
    }

    /// The node's [`ReadinessKey`] now.
    pub fn readiness_key(&self) -> ReadinessKey {
        ReadinessKey {
            firings: self.firings_started,
            busy: self.busy(),
            remaining: self.remaining,
            next_due: self.next_due,
            host_due: self.host_due.len(),
            host_closed: self.host_closed,
        }
    }

    /// §4 conditions 1–4 (views and demand must be fresh).
    pub fn evaluate(&self, wiring: &NodeWiring, arena: &TokenArena, now: Instant) -> Readiness {
        let in_flight = self.busy() as u32;
        let free_slots = match wiring.concurrency {
            Some(c) => c.saturating_sub(in_flight),
            // Unlimited auto-concurrency still keeps the in-flight queue bounded (§9).
            None => MAX_IN_FLIGHT.saturating_sub(in_flight),
        };
        let not_due = wiring.is_source && (self.remaining == Some(0) || self.next_due > now.tick);
        let mut lacking_inputs = ChannelList::new();
        for (p, (v, &d)) in wiring
            .inputs
            .iter()
            .zip(self.views.iter().zip(&self.demand))
        {
            if p.optional || v.visible >= d as usize {
                continue;
            }
            let short = p
                .channels
                .iter()
                .copied()
                .find(|&c| arena.visible_count(c, now) < d as usize)
                .or(p.channel);
            if let Some(c) = short {
                lacking_inputs.push(c);
            }
        }
        let mut lacking_outputs = ChannelList::new();
        let mut watermark_outputs = ChannelList::new();
        for port in &wiring.outputs {
            for oc in &port.channels {
                let r = arena.ring(oc.channel);
                if r.consumer_finished_before(now) {
                    continue; // never blocks its producer
                }
                // A rendezvous channel (capacity 0, §10) needs no token and no reservation.
                if r.capacity == 0 {
                    if r.occupancy() > 0 {
                        lacking_outputs.push(oc.channel);
                    }
                    continue;
                }
                // Drop channels never block; a Data watermark may (crate::overflow).
                match arena.admits(oc.channel, port.max_production) {
                    crate::overflow::Admission::Room => {}
                    crate::overflow::Admission::Full => lacking_outputs.push(oc.channel),
                    crate::overflow::Admission::Watermark => {
                        lacking_outputs.push(oc.channel);
                        watermark_outputs.push(oc.channel);
                    }
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
            watermark_outputs,
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

/// When a zero-delay write made now becomes visible (§3): at `(t, δ+1)` under `Kpn`; under an
/// IPLS, to the later stages of this very step (the stage barrier), i.e. from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDelay {
    NextDelta,
    LaterStages,
}

impl ZeroDelay {
    pub fn visible(self, now: Instant, delay: u64) -> Instant {
        match self {
            ZeroDelay::LaterStages if delay == 0 => now,
            _ => now.after_delay(delay),
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
    zero: ZeroDelay,
    tape: Option<&mut crate::tape::Tape>,
) -> Result<usize, crate::arena::ArenaError> {
    let mut tape = tape;
    let mut flushed = 0;
    while rt.in_flight.front().is_some_and(|f| f.done) {
        let Some(firing) = rt.in_flight.pop_front() else {
            break;
        };
        flush_firing(
            rt,
            wiring,
            arena,
            events,
            now,
            zero,
            tape.as_deref_mut(),
            firing,
        )?;
        flushed += 1;
    }
    Ok(flushed)
}

/// Writes out one completed firing, the oldest of its node (no earlier firing is in flight).
#[allow(clippy::too_many_arguments)]
fn flush_firing(
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    events: &mut EventQueue,
    now: Instant,
    zero: ZeroDelay,
    tape: Option<&mut crate::tape::Tape>,
    firing: Firing,
) -> Result<(), crate::arena::ArenaError> {
    let mut tape = tape;
    let mut firing = firing;
    let mut waiting = Vec::new();
    for (pi, (port, block)) in wiring
        .outputs
        .iter()
        .zip(firing.outputs.iter_mut())
        .enumerate()
    {
        let produced = block.tokens().min(port.max_production as usize);
        for oc in &port.channels {
            arena.release(oc.channel, port.max_production - produced as u32);
            let visible = zero.visible(now, oc.delay);
            let discard = arena.ring(oc.channel).consumer_finished_at.is_some() || rt.fenced;
            for t in 0..produced {
                if discard {
                    arena.discard_on_arrival(oc.channel);
                } else {
                    let tl = port.token_len;
                    let token = &block.values[t * tl..(t + 1) * tl];
                    if port.split.is_some() {
                        let mut part = std::mem::take(&mut rt.part_scratch);
                        part.clear();
                        crate::adapters::scatter(port.split, port.shape, oc.part, token, &mut part);
                        let r = arena.write(oc.channel, &part, visible);
                        rt.part_scratch = part;
                        let seq = r?;
                        if let Some(tp) = tape.as_deref_mut() {
                            let at = firing
                                .tape
                                .map(|e| (e, pi as u16, oc.part as u16, t as u32));
                            tp.produced(oc.channel, seq, at);
                        }
                    } else {
                        let seq = arena.write(oc.channel, token, visible)?;
                        if let Some(tp) = tape.as_deref_mut() {
                            let at = firing.tape.map(|e| (e, pi as u16, 0, t as u32));
                            tp.produced(oc.channel, seq, at);
                        }
                    }
                    if arena.ring(oc.channel).capacity == 0 {
                        waiting.push(oc.channel);
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
    if waiting.is_empty() {
        rt.retired.extend(firing.ticket);
    } else {
        rt.rendezvous.push(HeldFiring {
            ticket: firing.ticket,
            waiting,
        });
    }
    Ok(())
}

/// Writes out a node's completed firings at `now` (see [`flush_completed`]), after `direct`, a
/// firing [`book_firing`] handed back instead of queueing, counts them, and finishes a source
/// whose last firing has been written (§4 end of stream). An arena failure comes back as the
/// diagnostic that ends the run.
#[allow(clippy::too_many_arguments)]
pub fn write_out_completed(
    n: usize,
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    events: &mut EventQueue,
    stats: &mut Stats,
    now: Instant,
    zero: ZeroDelay,
    tape: Option<&mut crate::tape::Tape>,
    direct: Option<Firing>,
) -> Option<crate::error::Diagnostic> {
    let mut tape = tape;
    // A firing booked straight to write-out (`Booked::Direct`) is the node's oldest.
    let first = match direct {
        Some(f) => {
            flush_firing(rt, wiring, arena, events, now, zero, tape.as_deref_mut(), f).map(|()| 1)
        }
        None => Ok(0),
    };
    let flushed = first
        .and_then(|k| flush_completed(rt, wiring, arena, events, now, zero, tape).map(|c| k + c));
    let failure = match flushed {
        Ok(c) => {
            stats.completed[n] += c as u64;
            None
        }
        Err(e) => Some(crate::error::Diagnostic::nowhere("R330", e.to_string())),
    };
    if wiring.is_source && rt.remaining == Some(0) && rt.idle() && !rt.finished() {
        finish_node(rt, wiring, arena, now);
    }
    failure
}

/// Marks the oldest in-flight firing due at `tick` as completed. Its dispatch ticket is retired
/// at once (a task holds its resources until its own completion, even when earlier firings of
/// the node are still running, §9) — unless the node writes rendezvous channels, whose firings
/// stay in flight until their tokens are taken (§10).
pub fn complete_due(rt: &mut NodeRuntime, wiring: &NodeWiring, tick: u64) -> bool {
    if let Some(f) = rt
        .in_flight
        .iter_mut()
        .find(|f| !f.done && f.complete_at <= tick)
    {
        f.done = true;
        if !wiring.rendezvous_out
            && let Some(t) = f.ticket.take()
        {
            rt.retired.push(t);
        }
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
    /// Nodes admitted by dispatch in the current stage, with their `(latency, allowed)` in
    /// `grants` (dense by node; valid where `admitted` is set).
    pub admitted: FixedBitSet,
    pub grants: Vec<(u64, u32)>,
    /// The dispatch ticket of each admitted node's task (with dispatch resources).
    pub tickets: Vec<Option<crate::dispatch::Ticket>>,
    /// The busy interval `[start, end)` in ticks of each admitted task with a ticket (§14
    /// work heat); without one a firing is busy from its tick for its latency.
    pub busy: Vec<Option<(f64, f64)>>,
    /// Gates that opened at the current stage (§6): their members fire once, together.
    pub gates_open: FixedBitSet,
    /// IPLS: zero-time work remains after the last stage, so the step repeats at `δ+1` (§5).
    pub pending: bool,
    /// Some node fired in this step.
    pub fired: bool,
    /// Nodes whose last evaluation in this step lacked room on an output channel.
    pub room_blocked: FixedBitSet,
    /// Nodes whose last readiness check found them ready, and whose last check found them
    /// short of room (kept across steps, for the nodes readiness does not visit).
    pub was_ready: FixedBitSet,
    pub was_room_blocked: FixedBitSet,
    /// The nodes the current readiness pass visits (scratch, kept for its allocation).
    pub visit: FixedBitSet,
    pub kept: FixedBitSet,
    /// The next readiness pass checks every node (set by host actions).
    pub full_scan: bool,
    /// IPLS: nodes whose zero-latency firings are written out at the stage barrier.
    pub barrier_flush: Vec<u32>,
    pub flush_marked: FixedBitSet,
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
    pub on: StallOn,
    pub since: u64,
}

/// Stall counts of one node or channel by reason: dense and short (a node waits for few
/// reasons), so closing a stall — which happens every tick for a node in a busy pipeline — is a
/// vector index and a short scan instead of map look-ups.
pub type StallCounts = smallvec::SmallVec<[(StallReason, StallCount); 2]>;

fn stall_count(lists: &mut Vec<StallCounts>, i: usize, reason: StallReason) -> &mut StallCount {
    if lists.len() <= i {
        lists.resize_with(i + 1, StallCounts::new);
    }
    let list = &mut lists[i];
    let k = match list.iter().position(|(r, _)| *r == reason) {
        Some(k) => k,
        None => {
            list.push((reason, StallCount::default()));
            list.len() - 1
        }
    };
    &mut list[k].1
}

fn sorted_counts(
    lists: &[StallCounts],
) -> impl Iterator<Item = (usize, StallReason, StallCount)> + '_ {
    lists.iter().enumerate().flat_map(|(i, list)| {
        let mut v: Vec<(StallReason, StallCount)> = list.to_vec();
        v.sort_by_key(|(r, _)| *r);
        v.into_iter().map(move |(r, c)| (i, r, c))
    })
}

/// Run statistics.
#[derive(Resource, Debug, Clone, Default)]
pub struct Stats {
    pub firings: Vec<u64>,
    pub completed: Vec<u64>,
    /// Latest completion tick of any task (probe firings excluded).
    pub makespan: u64,
    pub open_stalls: Vec<Option<OpenStall>>,
    /// Instants each node's open stall has lasted so far; added to the counts when it closes
    /// (one array increment per stalled node and instant instead of three map look-ups).
    pub open_instants: Vec<u64>,
    /// `Kpn` readiness passes so far: the index of the instant being processed.
    pub instant: u64,
    /// The instant up to which each node's `open_instants` is counted. Under `Kpn` a node that
    /// readiness does not visit keeps its stall; the instants it missed are added when it is
    /// next observed, or when the run ends ([`Stats::settle_instants`]), instead of one
    /// increment per skipped node and instant.
    pub counted_to: Vec<u64>,
    /// By node: `reason` → counts (a short list; [`Stats::node_stall_counts`] sorts it).
    pub node_stalls: Vec<StallCounts>,
    /// By channel: `reason` → counts ([`Stats::channel_stall_counts`]).
    pub channel_stalls: Vec<StallCounts>,
    /// Gate → `GATE_WAIT` counts of its members.
    pub gate_stalls: std::collections::BTreeMap<usize, StallCount>,
    /// Channel → `CHANNEL_FULL_WAIT` counts of its producer held by a `Data` watermark.
    pub watermark_stalls: std::collections::BTreeMap<usize, StallCount>,
    /// Gate → how many times it opened.
    pub gate_openings: Vec<u64>,
    /// Dispatch resources (window, domains) → stall counts of the tasks waiting for them.
    pub resource_stalls: std::collections::BTreeMap<(StallOn, StallReason), StallCount>,
    /// IPLS: batched cohort calls, and how many of them ran in parallel chunks.
    pub cohort_calls: u64,
    pub parallel_cohort_calls: u64,
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
            open_instants: vec![0; nodes],
            counted_to: vec![0; nodes],
            ..Default::default()
        }
    }

    /// A `Kpn` readiness pass begins: a new instant. A node it does not visit keeps its stall
    /// for this instant without being touched.
    pub fn begin_instant(&mut self) {
        self.instant += 1;
    }

    /// Counts node `n`'s open stall as lasting through instant `upto` (the instants since it
    /// was last counted, in which it was not visited and so kept its stall).
    fn count_to(&mut self, n: usize, upto: u64) {
        let Some(c) = self.counted_to.get_mut(n) else {
            return;
        };
        if upto > *c {
            if self.open_stalls.get(n).is_some_and(Option::is_some)
                && let Some(k) = self.open_instants.get_mut(n)
            {
                *k += upto - *c;
            }
            *c = upto;
        }
    }

    /// Counts every open stall through the current instant (before the run's end closes
    /// them, or before they are read mid-run).
    pub fn settle_instants(&mut self) {
        let now = self.instant;
        for n in 0..self.counted_to.len() {
            self.count_to(n, now);
        }
    }

    /// Every node's stall counts, by node index then reason.
    pub fn node_stall_counts(&self) -> impl Iterator<Item = (usize, StallReason, StallCount)> + '_ {
        sorted_counts(&self.node_stalls)
    }

    /// Every channel's stall counts, by channel index then reason.
    pub fn channel_stall_counts(
        &self,
    ) -> impl Iterator<Item = (usize, StallReason, StallCount)> + '_ {
        sorted_counts(&self.channel_stalls)
    }

    /// Records node `n`'s stall state at instant `now` (called once per processed instant).
    pub fn observe_stall(&mut self, n: usize, stall: Option<(StallReason, StallOn)>, now: Instant) {
        self.count_to(n, self.instant.saturating_sub(1));
        if let Some(c) = self.counted_to.get_mut(n) {
            *c = (*c).max(self.instant);
        }
        let open = self.open_stalls[n];
        let same = matches!((open, stall), (Some(o), Some((r, on))) if o.reason == r && o.on == on);
        if !same {
            self.close_open(n, now.tick);
            if let Some((reason, on)) = stall {
                self.open_stalls[n] = Some(OpenStall {
                    reason,
                    on,
                    since: now.tick,
                });
            }
        }
        if stall.is_some()
            && let Some(k) = self.open_instants.get_mut(n)
        {
            *k += 1;
        }
    }

    fn subject_stall(&mut self, on: StallOn, reason: StallReason) -> &mut StallCount {
        match on {
            StallOn::Channel(c) | StallOn::Watermark(c) => {
                stall_count(&mut self.channel_stalls, c, reason)
            }
            StallOn::Gate(g) => self.gate_stalls.entry(g).or_default(),
            other => self.resource_stalls.entry((other, reason)).or_default(),
        }
    }

    /// Ends node `n`'s open stall at `tick`, a node checked at the current instant (which its
    /// stall does not last through).
    pub fn close_stall(&mut self, n: usize, tick: u64) {
        self.count_to(n, self.instant.saturating_sub(1));
        self.close_open(n, tick);
    }

    fn close_open(&mut self, n: usize, tick: u64) {
        if let Some(o) = self.open_stalls[n].take() {
            let d = tick.saturating_sub(o.since);
            let k = self.open_instants.get_mut(n).map_or(0, std::mem::take);
            let e = stall_count(&mut self.node_stalls, n, o.reason);
            e.ticks += d;
            e.instants += k;
            e.longest_ticks = e.longest_ticks.max(d);
            let c = self.subject_stall(o.on, o.reason);
            c.ticks += d;
            c.instants += k;
            c.longest_ticks = c.longest_ticks.max(d);
            if let StallOn::Watermark(ch) = o.on {
                let w = self.watermark_stalls.entry(ch).or_default();
                w.ticks += d;
                w.instants += k;
                w.longest_ticks = w.longest_ticks.max(d);
            }
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
    /// The memory the stream counts against `max_probe_bytes`: 4 bytes per value, 16 per
    /// token (its seq and tick).
    pub fn bytes(&self) -> usize {
        self.values
            .len()
            .saturating_mul(4)
            .saturating_add(self.seqs.len().saturating_mul(16))
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
    /// What the streams hold, counted as [`ProbeStream::bytes`] sums it, kept up to date as
    /// tokens are recorded (the engine checks its limit after every step).
    pub bytes: usize,
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

/// One batch of a stage: nodes of one kernel kind fired by one call of the kind's batched form.
#[derive(Debug, Clone)]
pub struct FireGroup {
    pub kind: String,
    pub nodes: Vec<usize>,
    pub entities: bevy_ecs::entity::UniqueEntityVec,
}

/// The work of one stage of a step.
#[derive(Debug, Clone, Default)]
pub struct StageWork {
    /// Nodes evaluated (and fired) at this stage, in canonical order.
    pub eval: Vec<usize>,
    /// Batches in firing order (IPLS only; `Kpn` fires one by one in canonical order).
    pub groups: Vec<FireGroup>,
    /// Gates that open or wait at this stage.
    pub gates: Vec<usize>,
}

/// A synchrony gate at run time.
#[derive(Debug, Clone)]
pub struct GateWork {
    pub name: String,
    pub members: Vec<usize>,
    pub stage: u32,
}

/// How a step is staged (§5, §6), resolved from the plan at spawn; `current` is the stage the
/// running pass of the step schedule processes.
#[derive(Resource, Debug, Clone)]
pub struct Staging {
    pub mode: crate::schedule::ScheduleMode,
    pub stages: Vec<StageWork>,
    /// The effective stage of every node (gate members move to their gate's stage).
    pub stage_of: Vec<u32>,
    pub gate_of: Vec<Option<u32>>,
    pub gates: Vec<GateWork>,
    /// Per node: a zero-delay output channel leads to a node evaluated at the same or an
    /// earlier stage, so its zero-latency outputs leave work for the next delta.
    pub feeds_back: FixedBitSet,
    /// The producing node of every channel.
    pub producer_of: Vec<u32>,
    /// The consumer of every channel, by channel index (dense, for the readiness visit list).
    pub consumer_of: Vec<u32>,
    pub current: usize,
}

impl Staging {
    pub fn ipls(&self) -> bool {
        self.mode != crate::schedule::ScheduleMode::Kpn
    }

    pub fn zero_delay(&self) -> ZeroDelay {
        if self.ipls() {
            ZeroDelay::LaterStages
        } else {
            ZeroDelay::NextDelta
        }
    }

    /// Builds the staging of a plan; `order` maps nodes to their entities.
    pub fn new(plan: &Plan, order: &[Entity]) -> Staging {
        use crate::schedule::effective_stages;
        let n = plan.nodes.len();
        let declared = plan.schedule.stage_of(n);
        let members: Vec<Vec<usize>> = plan.gates.iter().map(|g| g.members.clone()).collect();
        let (stage_of, gate_stage) = effective_stages(&declared, &members);
        let mut gate_of = vec![None; n];
        for (g, m) in members.iter().enumerate() {
            for &i in m {
                gate_of[i] = Some(g as u32);
            }
        }
        let stage_count = plan.schedule.stages.len().max(1);
        let mut stages: Vec<StageWork> = (0..stage_count).map(|_| StageWork::default()).collect();
        for (i, &s) in stage_of.iter().enumerate() {
            stages[(s as usize).min(stage_count - 1)].eval.push(i);
        }
        for (g, &s) in gate_stage.iter().enumerate() {
            stages[(s as usize).min(stage_count - 1)].gates.push(g);
        }
        let group = |kind: &str, nodes: Vec<usize>| FireGroup {
            kind: kind.to_string(),
            entities: nodes.iter().map(|&i| order[i]).collect(),
            nodes,
        };
        for (s, st) in plan.schedule.stages.iter().enumerate() {
            for c in &st.cohorts {
                let here: Vec<usize> = c
                    .nodes
                    .iter()
                    .copied()
                    .filter(|&i| stage_of[i] as usize == s)
                    .collect();
                if !here.is_empty() {
                    stages[s].groups.push(group(&c.kind, here));
                }
            }
        }
        // Gate members moved to an earlier stage fire there, one by one after its cohorts.
        if !plan.schedule.is_kpn() {
            for i in 0..n {
                if stage_of[i] != declared[i] {
                    let s = stage_of[i] as usize;
                    stages[s]
                        .groups
                        .push(group(plan.nodes[i].kernel.kind(), vec![i]));
                }
            }
        }
        let mut feeds_back = FixedBitSet::with_capacity(n);
        for c in &plan.channels {
            if c.delay == 0 && stage_of[c.to_node] <= stage_of[c.from_node] {
                feeds_back.insert(c.from_node);
            }
        }
        Staging {
            mode: plan.schedule.mode,
            stages,
            stage_of,
            gate_of,
            gates: plan
                .gates
                .iter()
                .zip(&gate_stage)
                .map(|(g, &s)| GateWork {
                    name: g.name.clone(),
                    members: g.members.clone(),
                    stage: s,
                })
                .collect(),
            feeds_back,
            producer_of: plan.channels.iter().map(|c| c.from_node as u32).collect(),
            consumer_of: plan.channels.iter().map(|c| c.to_node as u32).collect(),
            current: 0,
        }
    }

    pub fn stage(&self) -> &StageWork {
        let last = self.stages.len().saturating_sub(1);
        &self.stages[self.current.min(last)]
    }
}

/// The run's slot table and the symbol table it started with (§11; rules in `crate::slots`).
#[derive(Resource, Debug, Clone, Default)]
pub struct Slots {
    pub table: crate::slots::SlotTable,
    pub symbols: std::collections::BTreeMap<String, u64>,
}

/// The kernel registry (custom kinds' batched forms) as a resource.
#[derive(Resource, Clone, Default)]
pub struct Registry(pub crate::kernels::KernelRegistry);

/// Consumes one firing's inputs (§4 "Firing"): the demanded tokens of every tap in FIFO order
/// (gathered across channels under an adapter, §8), optional taps falling back to `hold_last` /
/// `default`. Tap `j`'s values land in `bufs[j]`; a probe records what it consumed.
pub fn consume_inputs(
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
    probe: Option<&mut ProbeStream>,
    scratch: &mut Scratch,
    bufs: &mut Vec<Vec<f32>>,
    sources: Option<&mut crate::tape::SourceScratch>,
) {
    use crate::adapters::gather;
    use crate::tape::Source;
    bufs.resize_with(wiring.inputs.len(), Vec::new);
    let mut probe = probe;
    let mut sources = sources;
    if sources.is_some() {
        rt.held_src.resize(wiring.inputs.len(), Source::Constant);
        rt.held_parts.resize_with(wiring.inputs.len(), Vec::new);
    }
    for (j, port) in wiring.inputs.iter().enumerate() {
        let buf = &mut bufs[j];
        buf.clear();
        scratch.metas.clear();
        let want = rt.demand[j] as usize;
        let take = if port.optional {
            want.min(rt.views[j].visible)
        } else {
            want
        };
        if port.gathers() {
            // §8 gather: one token from every channel makes one tap token.
            scratch.parts.resize_with(port.channels.len(), Vec::new);
            for (k, &ch) in port.channels.iter().enumerate() {
                scratch.parts[k].clear();
                arena.pop(ch, take, &mut scratch.parts[k], &mut scratch.metas);
            }
            if let Some(src) = sources.as_deref_mut() {
                // Part k of token t is meta k·take + t.
                for t in 0..take {
                    let start = src.parts.len() as u32;
                    for (k, &ch) in port.channels.iter().enumerate() {
                        let seq = scratch.metas.get(k * take + t).map_or(0, |m| m.seq);
                        src.parts.push((ch as u32, seq));
                    }
                    src.sources.push(Source::Gathered {
                        start,
                        count: port.channels.len() as u32,
                    });
                }
            }
            // A gathered token is the first channel's (its seq) and visible when its last
            // part became visible.
            for t in 0..take {
                let latest = (0..port.channels.len())
                    .filter_map(|k| scratch.metas.get(k * take + t))
                    .map(|m| m.visible)
                    .max();
                if let (Some(v), Some(m)) = (latest, scratch.metas.get_mut(t)) {
                    m.visible = v;
                }
            }
            scratch.metas.truncate(take);
            let mut slices: Vec<&[f32]> = Vec::with_capacity(port.channels.len());
            for t in 0..take {
                slices.clear();
                for (k, s) in port.channel_shapes.iter().enumerate() {
                    let len = s.elements() as usize;
                    slices.push(&scratch.parts[k][t * len..(t + 1) * len]);
                }
                gather(port.adapter, port.shape, &port.channel_shapes, &slices, buf);
            }
        } else if let Some(ch) = port.channel {
            arena.pop(ch, take, buf, &mut scratch.metas);
            if let Some(src) = sources.as_deref_mut() {
                src.sources
                    .extend(scratch.metas.iter().map(|m| Source::Token {
                        ch: ch as u32,
                        seq: m.seq,
                    }));
            }
        }
        // A probe records the tokens it consumed, never the fallbacks of an optional tap.
        if let Some(p) = probe.as_deref_mut() {
            p.record(buf, &scratch.metas);
        }
        if port.optional {
            rt.held.resize_with(wiring.inputs.len(), Vec::new);
            if take > 0 && port.hold_last {
                let last = &buf[(take - 1) * port.token_len..take * port.token_len];
                rt.held[j] = last.to_vec();
                if let Some(src) = sources.as_deref()
                    && let Some(&s) = src.sources.last()
                {
                    rt.held_src[j] = s;
                    if let Source::Gathered { start, count } = s {
                        let parts = src.parts.get(start as usize..(start + count) as usize);
                        rt.held_parts[j].clear();
                        rt.held_parts[j].extend_from_slice(parts.unwrap_or_default());
                    }
                }
            }
            for _ in take..want {
                let held = port.hold_last && rt.held[j].len() == port.token_len;
                if held {
                    buf.extend_from_slice(&rt.held[j]);
                } else {
                    buf.resize(buf.len() + port.token_len, port.default);
                }
                if let Some(src) = sources.as_deref_mut() {
                    // A held token passes its gradient on to the token it repeats; a gathered
                    // one to its parts, listed again for this firing (a `Gathered` source
                    // indexes the part list of the firing that consumed it).
                    let s = match (held, rt.held_src[j]) {
                        (false, _) => Source::Constant,
                        (true, Source::Gathered { count, .. }) => {
                            let start = src.parts.len() as u32;
                            src.parts.extend_from_slice(&rt.held_parts[j]);
                            Source::Gathered { start, count }
                        }
                        (true, s) => s,
                    };
                    src.sources.push(s);
                }
            }
        }
    }
}

/// Reserves the output slots of a firing (its maximum production on every channel) and hands
/// out the blocks its kernel writes into.
pub fn reserve_outputs(
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    arena: &mut TokenArena,
) -> Vec<OutputBlock> {
    for port in &wiring.outputs {
        for oc in &port.channels {
            arena.reserve(oc.channel, port.max_production);
        }
    }
    let mut outputs = rt.spare.pop().unwrap_or_default();
    outputs.resize_with(wiring.outputs.len(), Default::default);
    for (block, port) in outputs.iter_mut().zip(&wiring.outputs) {
        block.values.clear();
        block.token_len = port.token_len;
    }
    outputs
}

/// Books a firing that has computed its outputs (§4): counts it, moves a source's next due
/// tick, and puts the task in flight, completing at `now + latency`; a firing with `L = 0`
/// completes in this step, and with `direct` and no earlier firing in flight it is handed back
/// for immediate write-out instead of being queued. Otherwise its completion event is queued.
#[allow(clippy::too_many_arguments)]
pub fn book_firing(
    n: usize,
    rt: &mut NodeRuntime,
    wiring: &NodeWiring,
    outputs: Vec<OutputBlock>,
    latency: u64,
    ticket: Option<crate::dispatch::Ticket>,
    now: Instant,
    events: &mut EventQueue,
    stats: &mut Stats,
    direct: bool,
) -> Booked {
    let index = rt.firings_started;
    rt.firings_started += 1;
    stats.firings[n] += 1;
    if wiring.is_source {
        rt.remaining = rt.remaining.map(|r| r.saturating_sub(1));
        if wiring.host_fed {
            rt.host_due.pop_front();
            match rt.host_due.front() {
                Some(&due) => {
                    rt.next_due = due;
                    if due > now.tick {
                        events.push_wake(due);
                    }
                }
                None => {
                    rt.next_due = u64::MAX;
                    if rt.host_closed {
                        rt.remaining = Some(0);
                    }
                }
            }
        } else if let Some(period) = wiring.period {
            match now.tick.checked_add(period) {
                Some(due) => {
                    rt.next_due = due;
                    if rt.remaining != Some(0) {
                        events.push_wake(due);
                    }
                }
                // The next firing would lie beyond the last representable tick: none is left.
                None => rt.remaining = Some(0),
            }
        }
    }
    let complete_at = now.tick.saturating_add(latency);
    let firing = Firing {
        index,
        started: now.tick,
        complete_at,
        done: latency == 0,
        outputs,
        ticket,
        tape: rt.tape_entry.take(),
    };
    if latency > 0 {
        rt.in_flight.push_back(firing);
        events.push_completion(complete_at, n as u32);
        return Booked::Later;
    }
    if !wiring.is_probe {
        stats.makespan = stats.makespan.max(now.tick);
    }
    if direct && rt.in_flight.is_empty() {
        // Nothing earlier is in flight: it is written out at once, without a queue round trip.
        return Booked::Direct(firing);
    }
    rt.in_flight.push_back(firing);
    Booked::Done
}

/// What [`book_firing`] did with a firing.
#[derive(Debug)]
pub enum Booked {
    /// In flight, completing at `t + L` (`L > 0`).
    Later,
    /// Completed (`L = 0`), queued behind the node's earlier firings.
    Done,
    /// Completed (`L = 0`) with nothing earlier in flight, handed back to be written out now.
    Direct(Firing),
}

/// §10: the consumer of rendezvous channel `ch` took (or discarded) `n` tokens: the producer's
/// oldest held firings waiting on `ch` are released, and a firing with nothing left to wait for
/// completes now (its ticket retired, counted in the makespan). Returns whether any completed.
pub fn release_rendezvous(rt: &mut NodeRuntime, ch: usize, n: usize) -> bool {
    let mut left = n;
    for h in rt.rendezvous.iter_mut() {
        while left > 0 {
            match h.waiting.iter().position(|&c| c == ch) {
                Some(p) => {
                    h.waiting.remove(p);
                    left -= 1;
                }
                None => break,
            }
        }
        if left == 0 {
            break;
        }
    }
    let before = rt.rendezvous.len();
    let mut retired = Vec::new();
    rt.rendezvous.retain(|h| {
        if h.waiting.is_empty() {
            retired.extend(h.ticket);
            false
        } else {
            true
        }
    });
    rt.retired.extend(retired);
    rt.rendezvous.len() != before
}

/// Hands the tickets of a node's retired tasks back to dispatch (dropped when there is none).
pub fn retire_tickets(
    rt: &mut NodeRuntime,
    dispatcher: Option<&mut crate::dispatch::Dispatcher>,
    tick: u64,
) {
    match dispatcher {
        Some(d) => rt.retired.drain(..).for_each(|t| d.retire(t, tick)),
        None => rt.retired.clear(),
    }
}
