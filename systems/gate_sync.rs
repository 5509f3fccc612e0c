//! Stage 3 — gate sync (§6). A synchrony gate *opens* at its stage when every member is ready
//! (§4 conditions 1–4); its members then go to dispatch together and fire once, as one unit.
//! Otherwise no member fires: each ready member is stalled with `GATE_WAIT` on the gate, and
//! the others keep the stall their own readiness shows. A gate that can never open (a member
//! finished, or members waiting on one another) ends the run at termination (§4, kind `gate`).

use crate::ecs::*;
use bevy_ecs::prelude::*;

pub fn gate_sync(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    staging: Res<Staging>,
    dispatcher: Option<Res<crate::dispatch::Dispatcher>>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    nodes: Query<&NodeRuntime>,
) {
    crate::profile::profile_span!("gate_sync");
    let now = clock.now;
    let step = &mut *step;
    step.gates_open.clear();
    step.gates_open.grow(staging.gates.len());
    for &g in &staging.stage().gates {
        let gate = &staging.gates[g];
        let runtime = |i: usize| order.0.get(i).and_then(|&e| nodes.get(e).ok());
        let opens = gate
            .members
            .iter()
            .all(|&m| runtime(m).is_some_and(|rt| !rt.finished() && rt.readiness.ready));
        if opens {
            step.gates_open.insert(g);
            if let Some(c) = stats.gate_openings.get_mut(g) {
                *c += 1;
            }
        }
        for &m in &gate.members {
            let Some(rt) = runtime(m) else {
                continue;
            };
            if rt.finished() {
                continue;
            }
            let stall = if opens {
                if dispatcher.is_some() {
                    continue; // dispatch decides whether the unit fits
                }
                None
            } else if rt.readiness.ready {
                step.ready.set(m, false);
                Some((StallReason::GateWait, StallOn::Gate(g)))
            } else {
                rt.readiness.stall()
            };
            stats.observe_stall(m, stall, now);
        }
    }
}
