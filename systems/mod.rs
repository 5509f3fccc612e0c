//! The ordered stages of one simulation step (SPEC §2, §4) and the schedule that runs them.
//!
//! `delay_expiry → readiness → gate_sync → dispatch → kernel_execute → thermal_integrate`, chained, on the
//! single-threaded executor (parallelism belongs inside systems). Under an IPLS the engine runs
//! the schedule once per stage of a step (`Staging::current`). The `backward` schedule
//! (`backward.rs`) runs once after a forward run with gradients. Nothing else lives here.

pub mod backward;
pub mod delay_expiry;
pub mod dispatch;
pub mod gate_sync;
pub mod kernel_execute;
pub mod readiness;
pub mod thermal_integrate;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};

/// The forward step schedule.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step;

/// The stages of a step, in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    DelayExpiry,
    Readiness,
    GateSync,
    Dispatch,
    KernelExecute,
    ThermalIntegrate,
}

/// Builds the step schedule: every stage in its set, the sets chained.
pub fn build_schedule() -> Schedule {
    build_schedule_for(true, true)
}

/// The step schedule of a scene: `gate_sync` only when it has gates and `thermal_integrate`
/// only when it has thermal nodes — without them both stages have nothing to do, and every
/// system costs its parameter fetch at every step.
pub fn build_schedule_for(gates: bool, thermal: bool) -> Schedule {
    let mut schedule = Schedule::new(Step);
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.configure_sets(
        (
            Stage::DelayExpiry,
            Stage::Readiness,
            Stage::GateSync,
            Stage::Dispatch,
            Stage::KernelExecute,
            Stage::ThermalIntegrate,
        )
            .chain(),
    );
    schedule.add_systems((
        delay_expiry::delay_expiry.in_set(Stage::DelayExpiry),
        readiness::readiness.in_set(Stage::Readiness),
        dispatch::dispatch.in_set(Stage::Dispatch),
        kernel_execute::kernel_execute.in_set(Stage::KernelExecute),
    ));
    if gates {
        schedule.add_systems(gate_sync::gate_sync.in_set(Stage::GateSync));
    }
    if thermal {
        schedule.add_systems(thermal_integrate::thermal_integrate.in_set(Stage::ThermalIntegrate));
    }
    schedule
}
