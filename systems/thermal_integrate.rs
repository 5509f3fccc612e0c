//! Stage 6 — thermal integrate (§14). The firings of this stage deposited their input energy and
//! scheduled their work power; each touched group of thermal nodes is advanced, exactly, to the
//! firing's tick and takes the deposit. Untouched nodes are not visited: their temperature is a
//! closed form of the time since their last event, evaluated when someone reads it (throttle,
//! the `temp` tap, the report).

use crate::thermal::ThermalNet;
use bevy_ecs::prelude::*;

pub fn thermal_integrate(mut thermal: ResMut<ThermalNet>) {
    crate::profile::profile_span!("thermal_integrate");
    thermal.integrate();
}
