//! Devices give firings their timing (SPEC §12). Values always come from the reference kernels,
//! so every device yields the same token values.

pub mod ascend;

use crate::ecs::NodeWiring;
use bevy_ecs::prelude::*;

/// The device a run uses. Only the CPU `Reference` exists in this build; scenes asking for
/// another device are refused (R305) before planning.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// `L` = the node's `latency` in ticks (default 0).
    #[default]
    Reference,
}

impl Device {
    /// The latency of the next firing of a node.
    pub fn latency(&self, node: &NodeWiring) -> u64 {
        match self {
            Device::Reference => node.latency,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Device::Reference => "Reference",
        }
    }
}
