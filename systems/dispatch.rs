//! Stage 3 — dispatch (§4 condition 5, §9, §12). Every ready node is admitted as a task; the
//! device assigns each firing its latency `L` (on the Reference device: the node's `latency`).
//! With no task window, domains or workers configured every ready task is admitted at once;
//! those resources arrive with the runtime-semantics issue and are refused until then.

use crate::device::Device;
use crate::ecs::*;
use bevy_ecs::prelude::*;

pub fn dispatch(
    order: Res<NodeOrder>,
    device: Res<Device>,
    mut step: ResMut<StepState>,
    nodes: Query<(&NodeRuntime, &NodeWiring)>,
) {
    let step = &mut *step;
    step.enabled.clear();
    for i in step.ready.ones() {
        let Some(&entity) = order.0.get(i) else {
            continue;
        };
        let Ok((rt, wiring)) = nodes.get(entity) else {
            continue;
        };
        let latency = device.latency(wiring);
        step.enabled
            .push((i as u32, latency, rt.readiness.free_slots));
    }
}
