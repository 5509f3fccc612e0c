//! The step schedule: the stages run in exactly the §2/§4 order, and no two systems touch the
//! same data without an order between them (ambiguity detection set to error).

use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings};
use bevy_ecs::world::World;

#[test]
fn stages_run_in_spec_order_without_ambiguity() {
    let mut schedule = tapwheel::systems::build_schedule();
    schedule.set_build_settings(ScheduleBuildSettings {
        ambiguity_detection: LogLevel::Error,
        ..Default::default()
    });
    let mut world = World::new();
    schedule
        .initialize(&mut world)
        .expect("the step schedule has no ambiguities");
    assert_eq!(
        system_names(&schedule),
        vec![
            "delay_expiry",
            "readiness",
            "gate_sync",
            "dispatch",
            "kernel_execute",
            "thermal_integrate"
        ]
    );
}

#[test]
fn a_scene_without_gates_or_thermal_nodes_runs_four_stages() {
    let mut schedule = tapwheel::systems::build_schedule_for(false, false);
    let mut world = World::new();
    schedule.initialize(&mut world).expect("initialises");
    assert_eq!(
        system_names(&schedule),
        vec!["delay_expiry", "readiness", "dispatch", "kernel_execute"]
    );
}

/// The short names of an initialised schedule's systems, in run order.
fn system_names(schedule: &bevy_ecs::schedule::Schedule) -> Vec<String> {
    schedule
        .systems()
        .expect("initialised")
        .map(|(_, s)| {
            let name = s.name().to_string();
            name.rsplit("::").next().unwrap_or(&name).to_string()
        })
        .collect()
}
