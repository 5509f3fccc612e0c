//! The backward schedule (§17): after a forward run with gradients, one pass walks the tape in
//! reverse — each firing's adjoint turns its output and state gradients into input and
//! parameter gradients, and input gradients flow to the firings (or initial tokens) that
//! produced the consumed tokens, across delays and feedback (`crate::tape::walk`).

use crate::ecs::{NodeIx, NodeKernel, PlanRes, Probes};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::tape::{RawGradients, Tape};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};

/// The backward schedule.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backward;

/// `dL/d(value)` per probe stream, per recorded element (the loss's gradient).
#[derive(Resource, Debug, Clone, Default)]
pub struct LossGradient(pub Vec<Vec<f64>>);

/// What the walk produced.
#[derive(Resource)]
pub struct BackwardResult(pub Result<RawGradients>);

pub fn backward(
    tape: Res<Tape>,
    plan: Res<PlanRes>,
    probes: Res<Probes>,
    loss: Res<LossGradient>,
    kernels: Query<(&NodeIx, &NodeKernel)>,
    mut commands: Commands,
) {
    crate::profile::profile_span!("backward");
    let mut by_node: Vec<Option<&dyn Kernel>> = vec![None; plan.0.nodes.len()];
    for (ix, k) in &kernels {
        if let Some(slot) = by_node.get_mut(ix.0 as usize) {
            *slot = Some(k.0.as_ref());
        }
    }
    let result = match by_node.into_iter().collect::<Option<Vec<&dyn Kernel>>>() {
        Some(ks) => {
            let lens: Vec<usize> = probes.streams.iter().map(|p| p.token_len).collect();
            crate::tape::walk(&tape, &plan.0, &ks, &loss.0, &lens)
        }
        None => Err(crate::error::Error::Internal(
            "a node has no kernel entity".into(),
        )),
    };
    commands.insert_resource(BackwardResult(result));
}

/// Builds the backward schedule (one system, single-threaded).
pub fn build_schedule() -> Schedule {
    let mut schedule = Schedule::new(Backward);
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.add_systems(backward);
    schedule
}
