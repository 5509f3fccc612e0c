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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadlockReport {
    /// `artificial`, `gate` or `strict`.
    pub kind: &'static str,
    /// How the deadlock was detected.
    pub basis: String,
    pub blocked: Vec<BlockedNode>,
    pub channels: Vec<ChannelState>,
    /// Task-window utilisation (no window is configured in this build: `null`).
    pub window: Option<()>,
    pub mitigations: Vec<String>,
}

impl DeadlockReport {
    /// Human-readable rendering for the CLI.
    pub fn to_text(&self) -> String {
        let mut s = format!("deadlock ({}): {}\n", self.kind, self.basis);
        for b in &self.blocked {
            s += &format!(
                "  blocked: {} — {} on {}\n",
                b.node,
                b.reason,
                b.channels.join(", ")
            );
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
            format!(
                "no instant has work; producers wait only for room and every such channel is at max_capacity {max_capacity} (Parks)"
            )
        }
    };
    DeadlockReport {
        kind: "artificial",
        basis,
        channels: channel_states(world, plan, &involved),
        blocked,
        window: None,
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
        window: None,
        mitigations,
    }
}
