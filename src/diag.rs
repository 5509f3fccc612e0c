//! Deadlock analysis and its report (SPEC §4 termination, §13).

use crate::arena::TokenArena;
use crate::ecs::{NodeOrder, NodeRuntime, NodeWiring, StallReason};
use crate::plan::Plan;
use crate::scene::MemorySpec;
use bevy_ecs::prelude::*;
use serde::Serialize;
use std::collections::BTreeSet;

/// One node that cannot proceed, and what it waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedNode {
    pub node: String,
    pub reason: &'static str,
    /// The channels it waits on (`from.tap->to.tap`).
    pub channels: Vec<String>,
    /// The gate it waits on (`GATE_WAIT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// The dispatch resource it waits on (`WINDOW_FULL`: "task window"; `DEVICE_BUSY`: "domain d").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// The task window at the end of the run (§13: utilisation and high-water mark).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowState {
    pub size: u32,
    pub scope: &'static str,
    /// Tasks in flight (issued, not completed) at the end.
    pub in_flight: u32,
    /// `in_flight / capacity`, capacity = size (Global) or size × domains (PerDomain).
    pub utilisation: f64,
    pub high_water: u32,
}

/// The window state of a run with a task window.
pub fn window_state(world: &World) -> Option<WindowState> {
    let d = world.get_resource::<crate::dispatch::Dispatcher>()?;
    let w = d.config.window?;
    let per_domain = w.scope == crate::scene::WindowScope::PerDomain;
    let capacity = if per_domain {
        w.size.saturating_mul(d.loads().len() as u32)
    } else {
        w.size
    };
    Some(WindowState {
        size: w.size,
        scope: if per_domain { "PerDomain" } else { "Global" },
        in_flight: d.window_used(),
        utilisation: f64::from(d.window_used()) / f64::from(capacity.max(1)),
        high_water: d.window_high_water,
    })
}

/// A gate that can never open (§6): its ready members and why the others are not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateState {
    pub gate: String,
    pub ready: Vec<String>,
    pub not_ready: Vec<NotReady>,
}

/// A gate member that is not ready, and why: `finished at tick T`, or the stall it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReady {
    pub node: String,
    pub why: String,
}

/// A channel involved in a deadlock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelState {
    pub channel: String,
    pub tokens: usize,
    pub reserved: u32,
    pub occupancy: u32,
    pub capacity: u32,
    pub closed: bool,
}

/// The §13 deadlock report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadlockReport {
    /// `artificial`, `gate` or `strict`.
    pub kind: &'static str,
    /// How the deadlock was detected.
    pub basis: String,
    pub blocked: Vec<BlockedNode>,
    pub channels: Vec<ChannelState>,
    /// Task-window utilisation when the scene has a `task_window` (else `null`).
    pub window: Option<WindowState>,
    /// Gates that can never open (kind `gate`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateState>,
    pub mitigations: Vec<String>,
}

impl DeadlockReport {
    /// Human-readable rendering for the CLI.
    pub fn to_text(&self) -> String {
        let mut s = format!("deadlock ({}): {}\n", self.kind, self.basis);
        for g in &self.gates {
            let why: Vec<String> = g
                .not_ready
                .iter()
                .map(|m| format!("{} ({})", m.node, m.why))
                .collect();
            s += &format!(
                "  gate {}: ready {}; not ready {}\n",
                g.gate,
                g.ready.join(", "),
                why.join(", ")
            );
        }
        for b in &self.blocked {
            let on = match (&b.gate, &b.resource) {
                (Some(g), _) => format!("gate {g}"),
                (None, Some(r)) => r.clone(),
                (None, None) => b.channels.join(", "),
            };
            s += &format!("  blocked: {} — {} on {on}\n", b.node, b.reason);
        }
        for c in &self.channels {
            s += &format!(
                "  channel {}: {} tokens + {} reserved / capacity {}{}\n",
                c.channel,
                c.tokens,
                c.reserved,
                c.capacity,
                if c.closed { " (closed)" } else { "" }
            );
        }
        if let Some(w) = &self.window {
            s += &format!(
                "  window: {} of {} in flight ({}, utilisation {:.0}%, high water {})\n",
                w.in_flight,
                w.size,
                w.scope,
                w.utilisation * 100.0,
                w.high_water
            );
        }
        for m in &self.mitigations {
            s += &format!("  mitigation: {m}\n");
        }
        s
    }
}

fn blocked_nodes(world: &World, plan: &Plan) -> (Vec<BlockedNode>, BTreeSet<usize>) {
    let order = &world.resource::<NodeOrder>().0;
    let mut blocked = Vec::new();
    let mut involved = BTreeSet::new();
    for (i, &e) in order.iter().enumerate() {
        let Some(rt) = world.get::<NodeRuntime>(e) else {
            continue;
        };
        if rt.finished() {
            continue;
        }
        let r = &rt.readiness;
        let (reason, chans) = if !r.lacking_inputs.is_empty() {
            (StallReason::ChannelEmptyWait, &r.lacking_inputs)
        } else if !r.lacking_outputs.is_empty() {
            (StallReason::ChannelFullWait, &r.lacking_outputs)
        } else {
            continue;
        };
        involved.extend(chans.iter().copied());
        blocked.push(BlockedNode {
            node: plan.nodes[i].name.clone(),
            reason: reason.code(),
            channels: chans
                .iter()
                .map(|&c| plan.channels[c].name.clone())
                .collect(),
            gate: None,
            resource: None,
        });
    }
    (blocked, involved)
}

fn channel_states(world: &World, plan: &Plan, involved: &BTreeSet<usize>) -> Vec<ChannelState> {
    let arena = world.resource::<TokenArena>();
    involved
        .iter()
        .map(|&c| {
            let r = arena.ring(c);
            ChannelState {
                channel: plan.channels[c].name.clone(),
                tokens: r.len(),
                reserved: r.reserved,
                occupancy: r.occupancy(),
                capacity: r.capacity,
                closed: r.closed_at.is_some(),
            }
        })
        .collect()
}

/// Producers blocked only by full channels, which no growth may relieve.
pub fn artificial(world: &World, plan: &Plan, full: &[usize]) -> DeadlockReport {
    let (blocked, involved) = blocked_nodes(world, plan);
    let arena = world.resource::<TokenArena>();
    let order = &world.resource::<NodeOrder>().0;
    let mut mitigations = Vec::new();
    for &c in full {
        let ch = &plan.channels[c];
        let need = world
            .get::<NodeWiring>(order[ch.from_node])
            .and_then(|w| w.outputs.get(ch.from_tap))
            .map_or(1, |p| p.max_production);
        let r = arena.ring(c);
        if let (true, Some(w)) = (r.watermark_blocks(), r.rules.watermarks) {
            // Growth cannot help: the producer waits for the consumer to drain to `low`.
            mitigations.push(format!(
                "{} holds its producer at its Data watermark (high {}, low {}) until the consumer drains it to {}: raise `high` above what the consumer needs to fire, or give it lane Telemetry or Control",
                ch.name, w.high, w.low, w.low
            ));
            continue;
        }
        let at_least = (r.len() as u32)
            .saturating_add(r.reserved)
            .saturating_add(need);
        mitigations.push(format!(
            "raise capacity of {} to at least {at_least}",
            ch.name
        ));
    }
    let basis = match plan.memory {
        MemorySpec::Fixed => format!(
            "no instant has work; {} producer(s) can fire but for room on full Block channels, and memory is Fixed",
            blocked
                .iter()
                .filter(|b| b.reason == "CHANNEL_FULL_WAIT")
                .count()
        ),
        MemorySpec::Parks { max_capacity } => {
            mitigations.push(format!(
                "raise memory: Parks(max_capacity) above {max_capacity}"
            ));
            let held = full.iter().any(|&c| arena.ring(c).watermark_blocks());
            format!(
                "no instant has work; producers wait only for room and every such channel is at max_capacity {max_capacity} (Parks){}",
                if held {
                    " or held by a Data watermark, which growth cannot relieve"
                } else {
                    ""
                }
            )
        }
    };
    DeadlockReport {
        kind: "artificial",
        basis,
        channels: channel_states(world, plan, &involved),
        blocked,
        window: window_state(world),
        gates: Vec::new(),
        mitigations,
    }
}

/// A quiescent end under `strict: true`.
pub fn strict(world: &World, plan: &Plan) -> DeadlockReport {
    let (blocked, involved) = blocked_nodes(world, plan);
    let mut mitigations: Vec<String> = blocked
        .iter()
        .flat_map(|b| {
            b.channels
                .iter()
                .map(move |c| format!("provide input on {c} (waited on by {})", b.node))
        })
        .collect();
    mitigations.push("set `strict: false` to accept a quiescent end".into());
    DeadlockReport {
        kind: "strict",
        basis: format!(
            "quiescent end under strict: true — no instant has work and {} node(s) wait for input that is never produced",
            blocked.len()
        ),
        channels: channel_states(world, plan, &involved),
        blocked,
        window: window_state(world),
        gates: Vec::new(),
        mitigations,
    }
}

/// §4 termination rule 2: with no instant left to process, a gate with a ready member can never
/// open (a member finished, or its members wait on one another). Names the gate, its ready
/// members and why the others are not ready.
pub fn gate(world: &World, plan: &Plan) -> Option<DeadlockReport> {
    let order = &world.resource::<NodeOrder>().0;
    let rt = |i: usize| order.get(i).and_then(|&e| world.get::<NodeRuntime>(e));
    let mut gates = Vec::new();
    let mut blocked = Vec::new();
    let mut involved = BTreeSet::new();
    let mut mitigations = Vec::new();
    for g in &plan.gates {
        let ready: Vec<usize> = g
            .members
            .iter()
            .copied()
            .filter(|&m| rt(m).is_some_and(|r| !r.finished() && r.readiness.ready))
            .collect();
        if ready.is_empty() {
            continue;
        }
        let mut not_ready = Vec::new();
        for &m in &g.members {
            let Some(r) = rt(m) else {
                continue;
            };
            let name = plan.nodes[m].name.clone();
            if let Some(at) = r.finished_at {
                mitigations.push(format!(
                    "gate {}: member {name} finished at tick {}; remove it from the gate or keep it running as long as the others",
                    g.name, at.tick
                ));
                not_ready.push(NotReady {
                    node: name,
                    why: format!("finished at tick {}", at.tick),
                });
            } else if !r.readiness.ready {
                let why = match r.readiness.stall() {
                    Some((
                        reason,
                        crate::ecs::StallOn::Channel(c) | crate::ecs::StallOn::Watermark(c),
                    )) => {
                        involved.insert(c);
                        mitigations.push(format!(
                            "gate {}: member {name} waits ({}) on {}",
                            g.name,
                            reason.code(),
                            plan.channels[c].name
                        ));
                        format!("{} on {}", reason.code(), plan.channels[c].name)
                    }
                    _ => "not ready".to_string(),
                };
                not_ready.push(NotReady { node: name, why });
            }
        }
        for &m in &ready {
            blocked.push(BlockedNode {
                node: plan.nodes[m].name.clone(),
                reason: StallReason::GateWait.code(),
                channels: Vec::new(),
                gate: Some(g.name.clone()),
                resource: None,
            });
        }
        gates.push(GateState {
            gate: g.name.clone(),
            ready: ready.iter().map(|&m| plan.nodes[m].name.clone()).collect(),
            not_ready,
        });
    }
    if gates.is_empty() {
        return None;
    }
    let names: Vec<&str> = gates.iter().map(|g| g.gate.as_str()).collect();
    Some(DeadlockReport {
        kind: "gate",
        basis: format!(
            "no instant has work and gate(s) {} have ready members waiting for members that will never be ready",
            names.join(", ")
        ),
        channels: channel_states(world, plan, &involved),
        blocked,
        window: window_state(world),
        gates,
        mitigations,
    })
}

/// `(bytes node i's task needs, bytes held, ring size)` of the device's heap ring.
fn heap_state(world: &World, i: usize) -> (u64, u64, u64) {
    let Some(d) = world.get_resource::<crate::device::ActiveDevice>() else {
        return (0, 0, 0);
    };
    let ring = d.0.report();
    let get = |k: &str| ring["heap_ring"][k].as_u64().unwrap_or(0);
    (d.0.task_bytes(i), get("in_use"), get("bytes"))
}

/// No instant has work, yet ready tasks wait for a window slot or a worker that no task in
/// flight will ever free (every holder waits too, e.g. on a rendezvous). Kind `resource`.
pub fn resource(world: &World, plan: &Plan) -> Option<DeadlockReport> {
    let stats = world.resource::<crate::ecs::Stats>();
    let order = &world.resource::<NodeOrder>().0;
    let mut blocked = Vec::new();
    let mut mitigations = Vec::new();
    let mut involved = BTreeSet::new();
    for (i, open) in stats.open_stalls.iter().enumerate() {
        let Some(o) = open else {
            continue;
        };
        if !matches!(
            o.reason,
            StallReason::WindowFull
                | StallReason::DeviceBusy
                | StallReason::TaskRingFull
                | StallReason::HeapArenaFull
                | StallReason::ReadyQueueFull
        ) {
            continue;
        }
        if order
            .get(i)
            .and_then(|&e| world.get::<NodeRuntime>(e))
            .is_none_or(|r| r.finished())
        {
            continue;
        }
        let on = match o.on {
            crate::ecs::StallOn::Domain(d) => format!("domain {d}"),
            crate::ecs::StallOn::TaskRing => "task ring".to_string(),
            crate::ecs::StallOn::HeapRing => "heap ring".to_string(),
            crate::ecs::StallOn::ReadyQueue(d) => format!("ready queue of domain {d}"),
            _ => "task window".to_string(),
        };
        blocked.push(BlockedNode {
            node: plan.nodes[i].name.clone(),
            reason: o.reason.code(),
            channels: Vec::new(),
            gate: None,
            resource: Some(on.clone()),
        });
        mitigations.push(match o.reason {
            StallReason::WindowFull => {
                let size = plan.task_window.as_ref().map_or(0, |w| w.size);
                format!(
                    "raise task_window size above {size} (to at least {}) so {} can be issued",
                    size + 1,
                    plan.nodes[i].name
                )
            }
            StallReason::TaskRingFull => format!(
                "raise the device profile's task_ring so {} can be submitted (the ring is reclaimed in order)",
                plan.nodes[i].name
            ),
            StallReason::HeapArenaFull => {
                let (need, held, size) = heap_state(world, i);
                format!(
                    "raise the device profile's heap_ring_bytes ({size}) to at least {} so {} can be submitted (its outputs take {need} bytes; {held} are held by tasks in flight)",
                    need.saturating_add(held),
                    plan.nodes[i].name
                )
            }
            StallReason::ReadyQueueFull => format!(
                "raise the device profile's ready_queue_depth so {} can be queued",
                plan.nodes[i].name
            ),
            _ => format!(
                "raise dispatch workers so {} gets a worker ({on} is busy)",
                plan.nodes[i].name
            ),
        });
    }
    if blocked.is_empty() {
        return None;
    }
    // The tasks holding the resources: busy nodes, and what their rendezvous wait on.
    for (i, &e) in order.iter().enumerate() {
        let Some(rt) = world.get::<NodeRuntime>(e) else {
            continue;
        };
        for h in &rt.rendezvous {
            involved.extend(h.waiting.iter().copied());
            blocked.push(BlockedNode {
                node: plan.nodes[i].name.clone(),
                reason: "RENDEZVOUS_WAIT",
                channels: h
                    .waiting
                    .iter()
                    .map(|&c| plan.channels[c].name.clone())
                    .collect(),
                gate: None,
                resource: None,
            });
        }
    }
    mitigations.sort();
    mitigations.dedup();
    Some(DeadlockReport {
        kind: "resource",
        basis: "no instant has work; ready tasks wait for dispatch resources (window slots or workers) held by tasks that cannot complete".into(),
        channels: channel_states(world, plan, &involved),
        blocked,
        window: window_state(world),
        gates: Vec::new(),
        mitigations,
    })
}
