//! Stage 4 — dispatch (§4 condition 5, §9, §12). Every ready node of the current stage is
//! admitted as a task; the device assigns each firing its latency `L` (on the Reference device:
//! the node's `latency`). Probe firings are bookkeeping and bypass dispatch.
//!
//! Without `dispatch` or `task_window` every ready task is admitted at once, for as many firings
//! as it has free concurrency slots. With them, tasks compete: in lane order (Control, Data,
//! Telemetry), then canonical order, each ready node issues one task per step on the domain its
//! policy picks, if the window has a slot and the domain a free worker; it starts at
//! `s = max(t, free) + dispatch_cost` on the domain's issue timeline and completes at `s + L`.
//! A node left out is stalled `WINDOW_FULL` or `DEVICE_BUSY`. A gate's members are one unit:
//! all of them are issued, or none (§6).

use crate::device::{ActiveDevice, DeviceStall, Timeline};
use crate::dispatch::{Admit, Dispatcher};
use crate::ecs::*;
use crate::error::Diagnostic;
use crate::scene::Lane;
use crate::thermal::{ThermalNet, throttled_latency};
use bevy_ecs::prelude::*;

fn lane_rank(l: Lane) -> u8 {
    match l {
        Lane::Control => 0,
        Lane::Data => 1,
        Lane::Telemetry => 2,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    mut device: ResMut<ActiveDevice>,
    mut timeline: ResMut<Timeline>,
    staging: Res<Staging>,
    plan: Res<PlanRes>,
    dispatcher: Option<ResMut<Dispatcher>>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    thermal: Res<ThermalNet>,
    nodes: Query<(&NodeRuntime, &NodeWiring)>,
) {
    crate::profile::profile_span!("dispatch");
    let now = clock.now;
    let step = &mut *step;
    step.enabled.clear();
    step.admitted.clear();
    step.admitted.grow(order.0.len());
    step.grants.resize(order.0.len(), (0, 0));
    step.tickets.resize(order.0.len(), None);
    step.busy.resize(order.0.len(), None);
    // §14 throttle: a node hotter than its `t_max` at issue runs `factor` times slower.
    let slowdown = |i: usize| thermal.throttle_factor(i, now.tick);
    let latency = |i: usize| throttled_latency(device.0.latency(i), slowdown(i));
    let get = |i: usize| order.0.get(i).and_then(|&e| nodes.get(e).ok());
    let Some(mut disp) = dispatcher else {
        let ready = std::mem::take(&mut step.ready);
        for i in ready.ones() {
            let Some((rt, _)) = get(i) else {
                continue;
            };
            // A gate's members fire once per opening; others up to their free slots.
            let allowed = if staging.gate_of[i].is_some() {
                1
            } else {
                rt.readiness.free_slots
            };
            admit(step, i, latency(i), allowed, None);
        }
        step.ready = ready;
        return;
    };
    let disp = &mut *disp;
    // Tasks retired since the last dispatch give their device resources back first.
    for token in disp.take_released() {
        device.0.retire(token);
    }
    let owns_workers = device.0.owns_workers();
    let mut candidates: Vec<(u8, usize)> = step
        .ready
        .ones()
        .filter_map(|i| get(i).map(|(_, w)| (lane_rank(w.lane), i)))
        .collect();
    candidates.sort_unstable();
    let mut gates_done = fixedbitset::FixedBitSet::with_capacity(staging.gates.len());
    for (_, i) in candidates {
        let Some((rt, wiring)) = get(i) else {
            continue;
        };
        if wiring.is_probe && staging.gate_of[i].is_none() {
            // Bookkeeping: no task, no window slot, no worker.
            let l = throttled_latency(device.0.latency(i), slowdown(i));
            admit(step, i, l, rt.readiness.free_slots, None);
            stats.observe_stall(i, None, now);
            continue;
        }
        let unit: Vec<usize> = match staging.gate_of[i] {
            Some(g) => {
                let g = g as usize;
                if gates_done.contains(g) {
                    continue;
                }
                gates_done.insert(g);
                staging.gates[g].members.clone()
            }
            None => vec![i],
        };
        // All members of a gate's unit are issued, or none (dispatch state restored). A single
        // task refused keeps what its policy chose (RoundRobin: its domain, §9).
        let before = (unit.len() > 1).then(|| (disp.clone(), device.0.box_clone()));
        let mut issued = Vec::with_capacity(unit.len());
        let mut refused = None;
        for &m in &unit {
            let Some((mrt, mwiring)) = get(m) else {
                continue;
            };
            if mwiring.is_probe {
                let l = throttled_latency(device.0.latency(m), slowdown(m));
                issued.push((m, l, None));
                continue;
            }
            let name = plan.0.nodes.get(m).map_or("", |n| n.name.as_str());
            // A device that owns the workers places every task; otherwise the device's
            // latency is added to the issue timeline's start.
            let factor = slowdown(m);
            let placer = owns_workers.then_some(&mut *device.0);
            match disp.try_issue_on(m, name, mrt.firings_started, now.tick, placer, factor) {
                Admit::Issued(t) => {
                    let l = match t.placed {
                        Some(p) => p.finish_tick.saturating_sub(now.tick),
                        None => t
                            .start
                            .saturating_sub(now.tick)
                            .saturating_add(throttled_latency(device.0.latency(m), factor)),
                    };
                    issued.push((m, l, Some(t)));
                }
                Admit::Device(d, stall) => {
                    refused = Some(match stall {
                        DeviceStall::TaskRingFull => (StallReason::TaskRingFull, StallOn::TaskRing),
                        DeviceStall::HeapArenaFull => {
                            (StallReason::HeapArenaFull, StallOn::HeapRing)
                        }
                        DeviceStall::ReadyQueueFull { .. } => {
                            (StallReason::ReadyQueueFull, StallOn::ReadyQueue(d))
                        }
                    });
                    break;
                }
                Admit::WindowFull => {
                    refused = Some((StallReason::WindowFull, StallOn::Window));
                    break;
                }
                Admit::DeviceBusy(d) => {
                    refused = Some((StallReason::DeviceBusy, StallOn::Domain(d)));
                    break;
                }
                Admit::BadHook(d) => {
                    step.failure = Some(Diagnostic::nowhere(
                        "E401",
                        format!(
                            "dispatch hook returned domain {d} for `{name}`, but there are {} domains",
                            disp.loads().len()
                        ),
                    ));
                    return;
                }
            }
        }
        match refused {
            None => {
                for (m, l, t) in issued {
                    let span = t.and_then(|t| t.placed).and_then(|p| p.span);
                    if let Some(span) = span {
                        timeline.record(span);
                    }
                    // The task's busy time (§14 work heat): its core run, else issue to end.
                    step.busy[m] = t.map(|t| match span {
                        Some(sp) => (device.0.cycle_ticks(sp.start), device.0.cycle_ticks(sp.end)),
                        None => (t.start as f64, now.tick.saturating_add(l) as f64),
                    });
                    admit(step, m, l, 1, t);
                    stats.observe_stall(m, None, now);
                }
            }
            Some(stall) => {
                if let Some((b, dev)) = before {
                    *disp = b;
                    device.0 = dev;
                }
                for &m in &unit {
                    stats.observe_stall(m, Some(stall), now);
                }
            }
        }
    }
}

/// Admits node `i` for `allowed` firings of latency `latency`, with its dispatch ticket.
fn admit(
    step: &mut StepState,
    i: usize,
    latency: u64,
    allowed: u32,
    ticket: Option<crate::dispatch::Ticket>,
) {
    step.enabled.push((i as u32, latency, allowed));
    step.admitted.insert(i);
    step.grants[i] = (latency, allowed);
    if ticket.is_none() {
        step.busy[i] = None;
    }
    step.tickets[i] = ticket;
}
