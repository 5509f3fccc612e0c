//! Stage 5 — kernel execute (§4 "Firing", §5 cohorts). Each admitted node fires up to its
//! allowed firings, re-checking its conditions before every further firing: inputs are consumed
//! in FIFO order (their slots free at this instant, seen by producers from the next stage or
//! delta), output slots are reserved for the maximum production, the kernel computes the values,
//! and the firing completes at `t + L`.
//!
//! Under `Kpn` nodes fire one by one in canonical order and a zero-latency firing writes its
//! outputs at once, visible at `(t, δ+1)`. Under an IPLS the stage's cohorts fire in order,
//! each as one batched call of its kind (in parallel chunks when the work is large), and the
//! stage ends with its barrier: zero-latency outputs are written, visible to the later stages,
//! and freed room becomes visible too. Work left for earlier stages marks the step `pending`.
//!
//! Firings read the slot table as it stood at the start of the tick (§11) and queue their slot
//! writes, tagged with their completion tick and canonical position; the table applies them
//! when time passes that tick, so no read ever sees a write of its own tick.
//!
//! Every step ends (under an IPLS: at the barrier of its last stage) by settling the channels
//! with overflow policies or watermarks: Drop channels pay for the arrivals that found no room,
//! watermarks are judged — Telemetry sheds, excursions start and end (`crate::overflow`).
//!
//! With a run log (`--trace`, `--vcd`), every booked firing is recorded, and the step's end
//! records stall transitions and occupancy changes (`crate::trace`); without one nothing is.

use crate::arena::TokenArena;
use crate::dispatch::Dispatcher;
use crate::ecs::*;
use crate::kernels::{CohortMember, FireIo, InputBlock, Kernel, OutputBlock, fire_cohort};
use crate::slots::{SlotIo, SlotTable, SlotWrite};
use crate::tape::Tape;
use crate::thermal::ThermalNet;
use crate::time::Instant;
use crate::trace::{FiringRecord, RunLog};
use bevy_ecs::prelude::*;

/// Below this many elements moved by a cohort call, rayon's fork/join costs more than it saves.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 14;

#[allow(clippy::too_many_arguments)]
pub fn kernel_execute(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    staging: Res<Staging>,
    registry: Res<Registry>,
    mut dispatcher: Option<ResMut<Dispatcher>>,
    mut arena: ResMut<TokenArena>,
    mut events: ResMut<Events>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    mut probes: ResMut<Probes>,
    mut scratch: ResMut<Scratch>,
    mut slots: ResMut<Slots>,
    mut thermal: ResMut<ThermalNet>,
    mut tape: Option<ResMut<Tape>>,
    mut run_log: Option<ResMut<RunLog>>,
    mut nodes: NodeQuery,
) {
    crate::profile::profile_span!("kernel_execute");
    // Reads at this tick see every slot write made before it (§11).
    slots.table.advance_to(clock.now.tick);
    let mut cx = Cx {
        now: clock.now,
        staging: &staging,
        arena: &mut arena,
        events: &mut events.0,
        step: &mut step,
        stats: &mut stats,
        probes: &mut probes,
        scratch: &mut scratch,
        slots: &mut slots.table,
        dispatcher: dispatcher.as_deref_mut(),
        thermal: &mut thermal,
        tape: tape.as_deref_mut(),
        log: run_log.as_deref_mut(),
        fire_temp: None,
        probe_at: None,
    };
    if !staging.ipls() {
        fire_one_by_one(&mut cx, &order.0, &mut nodes);
        // The step settles on channels with policies or watermarks (crate::overflow); room it
        // frees is a change (the producer may fire in the next delta).
        if cx.arena.settle() {
            cx.step.changed = true;
        }
    } else {
        for group in &staging.stage().groups {
            fire_group(&mut cx, &registry.0, group, &mut nodes);
        }
        barrier(&mut cx, &order.0, &mut nodes);
    }
    // The step's end (its last stage): stall transitions and occupancy changes.
    if let Some(log) = run_log.as_deref_mut()
        && staging.current + 1 >= staging.stages.len()
    {
        let occupancy = crate::trace::occupancy_of(&arena);
        log.end_step(clock.now.tick, &stats.open_stalls, occupancy);
    }
}

/// What the firing helpers share.
struct Cx<'a> {
    now: Instant,
    staging: &'a Staging,
    arena: &'a mut TokenArena,
    events: &'a mut crate::time::EventQueue,
    step: &'a mut StepState,
    stats: &'a mut Stats,
    probes: &'a mut Probes,
    scratch: &'a mut Scratch,
    slots: &'a mut SlotTable,
    dispatcher: Option<&'a mut Dispatcher>,
    thermal: &'a mut ThermalNet,
    /// The gradient tape (§17), only when gradients are requested.
    tape: Option<&'a mut Tape>,
    /// The run log, only when recording is requested.
    log: Option<&'a mut RunLog>,
    /// The temperature of the firing being booked (thermal nodes, with a run log).
    fire_temp: Option<f64>,
    /// The probe stream and first token index of the probe firing being recorded.
    probe_at: Option<(u32, u64, u32)>,
}

/// Every node's index, runtime, wiring and kernel.
pub type NodeQuery<'w, 's> = Query<
    'w,
    's,
    (
        &'static NodeIx,
        &'static mut NodeRuntime,
        &'static NodeWiring,
        &'static mut NodeKernel,
    ),
>;

impl Cx<'_> {
    /// Queues the slot writes of node `n`'s firing `firing`, made when it completes (§11).
    fn queue_slot_writes(&mut self, n: usize, firing: u64, latency: u64, writes: Vec<(u32, u64)>) {
        let tick = self.now.tick.saturating_add(latency);
        for (order, (slot, value)) in writes.into_iter().enumerate() {
            self.slots.queue(SlotWrite {
                tick,
                node: n as u32,
                firing,
                order: order as u32,
                slot,
                value,
            });
        }
    }

    /// Consumes a firing's inputs into `bufs` and reserves its outputs. Under an IPLS, room
    /// freed for a producer that already found its outputs full in this step is work for the
    /// next delta.
    fn take_inputs(
        &mut self,
        n: usize,
        rt: &mut NodeRuntime,
        wiring: &NodeWiring,
        bufs: &mut Vec<Vec<f32>>,
    ) -> Vec<OutputBlock> {
        let index = if wiring.is_probe {
            self.probes.by_node.get(n).copied().flatten()
        } else {
            None
        };
        let probe = index.and_then(|p| self.probes.streams.get_mut(p));
        // With a tape, a probe firing notes where its tokens start in the stream (the loss's
        // arguments).
        let start = match (&self.tape, index, &probe) {
            (Some(_), Some(i), Some(p)) => Some((i, p.len())),
            _ => None,
        };
        let sources = self.tape.as_deref_mut().map(|t| &mut t.scratch);
        let bytes_before = probe.as_ref().map_or(0, |p| p.bytes());
        consume_inputs(rt, wiring, self.arena, probe, self.scratch, bufs, sources);
        if let Some(p) = index.and_then(|i| self.probes.streams.get(i)) {
            let added = p.bytes().saturating_sub(bytes_before);
            self.probes.bytes = self.probes.bytes.saturating_add(added);
        }
        // How many tokens it recorded (an optional tap's fallbacks are not recorded).
        self.probe_at = start.and_then(|(i, at)| {
            let now = self.probes.streams.get(i)?.len();
            Some((i as u32, at as u64, now.saturating_sub(at) as u32))
        });
        if self.staging.ipls() && !self.arena.rendezvous_taken.is_empty() {
            // The producer's held firing completes in the next delta (§10).
            self.step.pending = true;
        }
        if self.staging.ipls() {
            let here = self.staging.current as u32;
            for port in &wiring.inputs {
                for &ch in &port.channels {
                    let p = self.staging.producer_of[ch] as usize;
                    if self.step.room_blocked.contains(p) && self.staging.stage_of[p] <= here {
                        self.step.pending = true;
                    }
                }
            }
        }
        reserve_outputs(rt, wiring, self.arena)
    }

    /// Books a computed firing; a zero-latency one is written out now (`Kpn`) or at the stage
    /// barrier (IPLS).
    fn book(
        &mut self,
        n: usize,
        rt: &mut NodeRuntime,
        wiring: &NodeWiring,
        outputs: Vec<OutputBlock>,
        latency: u64,
    ) {
        self.step.changed = true;
        self.step.fired = true;
        let ticket = self.step.tickets.get_mut(n).and_then(Option::take);
        let temperature = self.fire_temp.take();
        if let Some(log) = self.log.as_deref_mut() {
            let busy = self.step.busy.get(n).copied().flatten();
            let mut record = FiringRecord::issued(
                n,
                rt.firings_started,
                self.now.tick,
                latency,
                ticket.as_ref(),
                busy,
            );
            record.temperature = temperature;
            log.firing(record);
        }
        let booked = book_firing(
            n,
            rt,
            wiring,
            outputs,
            latency,
            ticket,
            self.now,
            self.events,
            self.stats,
            !self.staging.ipls(),
        );
        if wiring.host_fed && rt.next_due <= self.now.tick {
            // Another injected token is due at this tick: it fires in the next delta.
            self.step.pending = true;
        }
        if self.staging.ipls()
            && self.dispatcher.is_some()
            && wiring.concurrency.is_none_or(|c| rt.busy() < c as usize)
        {
            // With dispatch resources a node issues one task per step; a free slot left means
            // it may issue another in the next delta.
            self.step.pending = true;
        }
        let direct = match booked {
            Booked::Later => return,
            Booked::Done => None,
            Booked::Direct(firing) => Some(firing),
        };
        if self.staging.ipls() {
            if !self.step.flush_marked.contains(n) {
                self.step.flush_marked.grow(n + 1);
                self.step.flush_marked.insert(n);
                self.step.barrier_flush.push(n as u32);
            }
        } else {
            if let Some(f) = write_out_completed(
                n,
                rt,
                wiring,
                self.arena,
                self.events,
                self.stats,
                self.now,
                ZeroDelay::NextDelta,
                self.tape.as_deref_mut(),
                direct,
            ) {
                self.step.failure = Some(f);
            }
            self.retire(rt);
        }
    }

    /// Hands the tickets of the node's retired tasks back to dispatch.
    fn retire(&mut self, rt: &mut NodeRuntime) {
        retire_tickets(rt, self.dispatcher.as_deref_mut(), self.now.tick);
    }

    /// §17: with a tape, records the firing just computed (the state was saved before it).
    fn record(
        &mut self,
        n: usize,
        rt: &mut NodeRuntime,
        inputs: &[Vec<f32>],
        outputs: &[OutputBlock],
    ) {
        let probe = self.probe_at.take();
        if let Some(t) = self.tape.as_deref_mut() {
            let e = t.record(n, rt.firings_started, self.now.tick, inputs, outputs, probe);
            rt.tape_entry = Some(e);
        }
    }

    /// §14: a firing of a node with thermal state records its input energy (`Σx²` of what it
    /// consumed) and its busy time for `thermal_integrate`, and publishes its temperature on its
    /// `temp` tap. Token values never depend on it.
    fn thermal_fire(
        &mut self,
        n: usize,
        wiring: &NodeWiring,
        sum_sq: f64,
        latency: u64,
        outputs: &mut [OutputBlock],
    ) {
        let now = self.now.tick;
        // Reads at `now` (the `temp` value, the throttle judgement) then cost nothing.
        self.thermal.advance(n, now);
        let busy = self
            .step
            .busy
            .get(n)
            .copied()
            .flatten()
            .unwrap_or((now as f64, now.saturating_add(latency) as f64));
        let block = wiring.temp_port.and_then(|p| outputs.get_mut(p));
        // The run log records the temperature the `temp` tap publishes.
        let t = if block.is_some() || self.log.is_some() {
            self.thermal.temperature_at_fire(n, now, sum_sq)
        } else {
            None
        };
        if let (Some(block), Some(t)) = (block, t) {
            block.push(&[t as f32]);
        }
        self.fire_temp = t;
        self.thermal.record(n, now, sum_sq, Some(busy));
    }

    /// Re-checks §4 conditions 1–4 before a further firing in the same step.
    fn still_ready(
        &mut self,
        n: usize,
        rt: &mut NodeRuntime,
        wiring: &NodeWiring,
        kernel: &dyn Kernel,
    ) -> bool {
        rt.refresh_views(wiring, self.arena, self.now);
        kernel.demand(&rt.views, &mut rt.demand);
        let r = rt.evaluate(wiring, self.arena, self.now);
        if !r.lacking_outputs.is_empty() {
            self.step.room_blocked.insert(n);
        }
        r.ready
    }

    /// Whether a node has work at this instant: ready again, or able to finish (§4).
    fn could_act(
        &mut self,
        n: usize,
        rt: &mut NodeRuntime,
        wiring: &NodeWiring,
        kernel: &dyn Kernel,
    ) -> bool {
        if rt.finished() {
            return false;
        }
        if self.still_ready(n, rt, wiring, kernel) {
            return true;
        }
        rt.idle()
            && if wiring.is_source {
                rt.remaining == Some(0)
            } else {
                kernel.finished(&rt.views, &rt.demand)
            }
    }
}

/// Fires a kernel once, through the timing wrapper when the node asked for it (§7). Returns
/// the latency, which `latency: Measured` replaces by the measured wall-clock time.
fn fire_timed(
    n: usize,
    kernel: &mut dyn Kernel,
    io: &mut FireIo<'_>,
    wiring: &NodeWiring,
    latency: u64,
    stats: &mut Stats,
) -> u64 {
    if !wiring.timed {
        kernel.fire(io);
        return latency;
    }
    // Wall-clock timing never changes simulated time, except under `latency: Measured`, which
    // makes the run non-deterministic (§7).
    let started = std::time::Instant::now();
    kernel.fire(io);
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    stats.timing.entry(n).or_default().record(ns);
    if wiring.measured_latency {
        (ns as f64 * 1e-9 * wiring.tick_hz).ceil() as u64
    } else {
        latency
    }
}

/// A firing's input blocks (inline for up to four taps: no allocation per firing).
type Blocks<'a> = smallvec::SmallVec<[InputBlock<'a>; 4]>;

fn blocks<'a>(wiring: &NodeWiring, bufs: &'a [Vec<f32>]) -> Blocks<'a> {
    let mut out = Blocks::new();
    for (p, v) in wiring.inputs.iter().zip(bufs) {
        out.push(InputBlock {
            values: v,
            token_len: p.token_len,
        });
    }
    out
}

/// `Kpn`: every admitted node, in canonical order, fires its allowed firings one by one.
fn fire_one_by_one(cx: &mut Cx<'_>, order: &[Entity], nodes: &mut NodeQuery<'_, '_>) {
    let enabled = std::mem::take(&mut cx.step.enabled);
    let mut bufs = std::mem::take(&mut cx.scratch.values);
    for &(i, latency, allowed) in &enabled {
        let n = i as usize;
        let Some(&entity) = order.get(n) else {
            continue;
        };
        let Ok((_, mut rt, wiring, mut kernel)) = nodes.get_mut(entity) else {
            continue;
        };
        let rt = &mut *rt;
        for k in 0..allowed {
            if k > 0 && !cx.still_ready(n, rt, wiring, kernel.0.as_ref()) {
                break;
            }
            let mut outputs = cx.take_inputs(n, rt, wiring, &mut bufs);
            if let Some(t) = cx.tape.as_deref_mut() {
                kernel.0.save_state(&mut t.saved);
            }
            let inputs = blocks(wiring, &bufs);
            let mut io = FireIo {
                firing: rt.firings_started,
                tick: cx.now.tick,
                inputs: &inputs,
                outputs: &mut outputs[..wiring.kernel_outputs],
                slots: SlotIo::new(cx.slots.view()),
            };
            let latency = fire_timed(n, kernel.0.as_mut(), &mut io, wiring, latency, cx.stats);
            let writes = io.slots.take_writes();
            if cx.thermal.has(n) {
                let sum_sq = kernel.0.heat(&inputs);
                cx.thermal_fire(n, wiring, sum_sq, latency, &mut outputs);
            }
            drop(inputs);
            cx.record(n, rt, &bufs, &outputs);
            cx.queue_slot_writes(n, rt.firings_started, latency, writes);
            cx.book(n, rt, wiring, outputs, latency);
        }
    }
    cx.scratch.values = bufs;
    cx.step.enabled = enabled;
}

/// A cohort member's sources, saved state and probe position, kept apart until its firing is
/// recorded on the tape.
type Taped = (
    crate::tape::SourceScratch,
    Vec<f32>,
    Option<(u32, u64, u32)>,
);

/// One admitted member of a cohort, with its buffers for the round being fired.
struct Member<'w> {
    n: usize,
    latency: u64,
    allowed: u32,
    rt: Mut<'w, NodeRuntime>,
    wiring: &'w NodeWiring,
    kernel: Mut<'w, NodeKernel>,
}

/// IPLS: a cohort fires as one batched call of its kind per round; a node with more allowed
/// firings re-checks its conditions and joins the next round.
fn fire_group(
    cx: &mut Cx<'_>,
    registry: &crate::kernels::KernelRegistry,
    group: &FireGroup,
    nodes: &mut NodeQuery<'_, '_>,
) {
    let mut members: Vec<Member<'_>> = Vec::new();
    for (ix, rt, wiring, kernel) in nodes.iter_many_unique_mut(&group.entities).flatten() {
        let n = ix.0 as usize;
        if !cx.step.admitted.contains(n) {
            continue;
        }
        let (latency, allowed) = cx.step.grants[n];
        members.push(Member {
            n,
            latency,
            allowed,
            rt,
            wiring,
            kernel,
        });
    }
    let mut round = 0u32;
    let mut active: Vec<usize> = (0..members.len()).collect();
    while !active.is_empty() {
        if round > 0 {
            active.retain(|&m| {
                let mb = &mut members[m];
                mb.allowed > round && {
                    let (n, wiring) = (mb.n, mb.wiring);
                    cx.still_ready(n, &mut mb.rt, wiring, mb.kernel.0.as_ref())
                }
            });
            if active.is_empty() {
                break;
            }
        }
        // Consume inputs and reserve outputs, one member at a time (the arena is shared).
        let mut ins: Vec<Vec<Vec<f32>>> = Vec::with_capacity(active.len());
        let mut outs: Vec<Vec<OutputBlock>> = Vec::with_capacity(active.len());
        let mut work = 0usize;
        // With a tape: each member's sources, saved state and probe position, kept apart until
        // its firing is recorded.
        let mut taped: Vec<Taped> = Vec::new();
        for &m in &active {
            let mb = &mut members[m];
            let mut bufs = std::mem::take(&mut mb.rt.input_bufs);
            let wiring = mb.wiring;
            let outputs = cx.take_inputs(mb.n, &mut mb.rt, wiring, &mut bufs);
            let probe_at = cx.probe_at.take();
            if let Some(t) = cx.tape.as_deref_mut() {
                let mut saved = Vec::new();
                mb.kernel.0.save_state(&mut saved);
                taped.push((std::mem::take(&mut t.scratch), saved, probe_at));
            }
            work += bufs.iter().map(Vec::len).sum::<usize>()
                + wiring
                    .outputs
                    .iter()
                    .map(|p| p.token_len * p.max_production as usize)
                    .sum::<usize>();
            ins.push(bufs);
            outs.push(outputs);
        }
        // Compute: timed nodes one by one (their wall-clock time is per node), the rest batched.
        let mut latencies: Vec<u64> = Vec::with_capacity(active.len());
        // Each member queues its own slot writes; they are taken out per member and booked in
        // cohort (canonical) order below, whatever chunks fired in parallel.
        let mut writes: Vec<Vec<(u32, u64)>> = vec![Vec::new(); active.len()];
        {
            let mut picked: Vec<&mut Member<'_>> = Vec::with_capacity(active.len());
            let mut rest = members.iter_mut().enumerate();
            for &m in &active {
                for (k, mb) in rest.by_ref() {
                    if k == m {
                        picked.push(mb);
                        break;
                    }
                }
            }
            let input_blocks: Vec<Blocks<'_>> = picked
                .iter()
                .zip(&ins)
                .map(|(mb, bufs)| blocks(mb.wiring, bufs))
                .collect();
            let mut batch: Vec<CohortMember<'_, '_>> = Vec::with_capacity(picked.len());
            let mut batch_ix: Vec<usize> = Vec::with_capacity(picked.len());
            let table = cx.slots.view();
            for (k, ((mb, inputs), outputs)) in picked
                .iter_mut()
                .zip(&input_blocks)
                .zip(outs.iter_mut())
                .enumerate()
            {
                let firing = mb.rt.firings_started;
                let kernel_outputs = mb.wiring.kernel_outputs;
                let mut io = FireIo {
                    firing,
                    tick: cx.now.tick,
                    inputs,
                    outputs: &mut outputs[..kernel_outputs],
                    slots: SlotIo::new(table),
                };
                if mb.wiring.timed {
                    let l = fire_timed(
                        mb.n,
                        mb.kernel.0.as_mut(),
                        &mut io,
                        mb.wiring,
                        mb.latency,
                        cx.stats,
                    );
                    latencies.push(l);
                    writes[k] = io.slots.take_writes();
                } else {
                    latencies.push(mb.latency);
                    batch_ix.push(k);
                    batch.push(CohortMember {
                        kernel: mb.kernel.0.as_mut(),
                        io,
                    });
                }
            }
            if !batch.is_empty() {
                cx.stats.cohort_calls += 1;
                if run_cohort(registry, &mut batch, work) {
                    cx.stats.parallel_cohort_calls += 1;
                }
            }
            for (member, &k) in batch.iter_mut().zip(&batch_ix) {
                writes[k] = member.io.slots.take_writes();
            }
        }
        // Book every firing of the round, in cohort order.
        for (k, (((&m, bufs), (outputs, latency)), slot_writes)) in active
            .iter()
            .zip(ins)
            .zip(outs.into_iter().zip(latencies))
            .zip(writes)
            .enumerate()
        {
            let mb = &mut members[m];
            let (n, wiring) = (mb.n, mb.wiring);
            let mut outputs = outputs;
            if cx.thermal.has(n) {
                let sum_sq = mb.kernel.0.heat(&blocks(wiring, &bufs));
                cx.thermal_fire(n, wiring, sum_sq, latency, &mut outputs);
            }
            if let Some(t) = cx.tape.as_deref_mut()
                && let Some(slot) = taped.get_mut(k)
            {
                let (src, saved, probe_at) = std::mem::take(slot);
                t.scratch = src;
                t.saved = saved;
                cx.probe_at = probe_at;
            }
            cx.record(n, &mut mb.rt, &bufs, &outputs);
            mb.rt.input_bufs = bufs;
            cx.queue_slot_writes(n, mb.rt.firings_started, latency, slot_writes);
            cx.book(n, &mut mb.rt, wiring, outputs, latency);
        }
        round += 1;
    }
}

/// One batched call of a cohort's kind, split into parallel chunks when the work is large
/// enough and the pool has more than one thread. Chunks are disjoint nodes, so the result is
/// bit-identical to one call (and to one-by-one firing). Returns whether it ran in parallel.
fn run_cohort(
    registry: &crate::kernels::KernelRegistry,
    batch: &mut [CohortMember<'_, '_>],
    work: usize,
) -> bool {
    use rayon::prelude::*;
    crate::profile::profile_span!(batch.first().map_or("cohort", |m| m.kernel.kind()));
    let threads = rayon::current_num_threads();
    if batch.len() >= 2 && threads > 1 && work >= PARALLEL_MIN_ELEMENTS {
        let chunk = batch.len().div_ceil(threads);
        batch
            .par_chunks_mut(chunk)
            .for_each(|c| fire_cohort(registry, c));
        true
    } else {
        fire_cohort(registry, batch);
        false
    }
}

/// The stage barrier (§5): zero-latency outputs of this stage are written, visible to the
/// later stages; room freed in it becomes room for them. Whatever this leaves for a node at this
/// or an earlier stage (a token sent back, the node itself ready again, a closure) makes the
/// step repeat at `δ+1`.
fn barrier(cx: &mut Cx<'_>, order: &[Entity], nodes: &mut NodeQuery<'_, '_>) {
    let flush = std::mem::take(&mut cx.step.barrier_flush);
    for &i in &flush {
        let n = i as usize;
        cx.step.flush_marked.set(n, false);
        let Some(&entity) = order.get(n) else {
            continue;
        };
        let Ok((_, mut rt, wiring, _)) = nodes.get_mut(entity) else {
            continue;
        };
        let was_finished = rt.finished();
        if let Some(f) = write_out_completed(
            n,
            &mut rt,
            wiring,
            cx.arena,
            cx.events,
            cx.stats,
            cx.now,
            ZeroDelay::LaterStages,
            cx.tape.as_deref_mut(),
            None,
        ) {
            cx.step.failure = Some(f);
        }
        cx.retire(&mut rt);
        if cx.staging.feeds_back.contains(n) || (rt.finished() && !was_finished) {
            cx.step.pending = true;
        }
    }
    // After the last stage the step settles (crate::overflow), as under `Kpn`: room it frees
    // is work for the next delta.
    if cx.staging.current + 1 >= cx.staging.stages.len() && cx.arena.settle() {
        cx.step.changed = true;
        cx.step.pending = true;
    }
    cx.arena.end_step();
    // A node whose zero-latency firings just completed may be ready again.
    for &i in &flush {
        let n = i as usize;
        if cx.step.pending {
            break;
        }
        let Some(&entity) = order.get(n) else {
            continue;
        };
        let Ok((_, mut rt, wiring, kernel)) = nodes.get_mut(entity) else {
            continue;
        };
        if cx.could_act(n, &mut rt, wiring, kernel.0.as_ref()) {
            cx.step.pending = true;
        }
    }
    if cx.step.gates_open.ones().next().is_some() {
        // Members fire once per opening; the gate may open again next delta.
        cx.step.pending = true;
    }
    let mut flush = flush;
    flush.clear();
    cx.step.barrier_flush = flush;
}
