//! Stage 4 — dispatch (§4 condition 5, §9, §12). Every ready node of the current stage is
//! admitted as a task; the device assigns each firing its latency `L` (on the Reference device:
//! the node's `latency`). A gate's members are admitted for one firing each (one unit, §6).
//! With no task window, domains or workers configured every ready task is admitted at once;
//! those resources arrive with the runtime-semantics issue and are refused until then.

use crate::device::Device;
use crate::ecs::*;
use bevy_ecs::prelude::*;

pub fn dispatch(
    order: Res<NodeOrder>,
    device: Res<Device>,
    staging: Res<Staging>,
    mut step: ResMut<StepState>,
    nodes: Query<(&NodeRuntime, &NodeWiring)>,
) {
    let step = &mut *step;
    step.enabled.clear();
    step.admitted.clear();
    step.admitted.grow(order.0.len());
    step.grants.resize(order.0.len(), (0, 0));
    for i in step.ready.ones() {
        let Some(&entity) = order.0.get(i) else {
            continue;
        };
        let Ok((rt, wiring)) = nodes.get(entity) else {
            continue;
        };
        let latency = device.latency(wiring);
        let allowed = if staging.gate_of[i].is_some() {
            1
        } else {
            rt.readiness.free_slots
        };
        step.enabled.push((i as u32, latency, allowed));
        step.admitted.insert(i);
        step.grants[i] = (latency, allowed);
    }
}
