//! Devices give firings their timing (SPEC §12). Values always come from the reference kernels,
//! so every device yields the same token values (`values_digest`); a device decides only *when*
//! a firing completes, and may refuse what it cannot run.
//!
//! A device sees a task as a node index plus the tick its scheduler domain issued it at; what
//! the node costs (kernel, shapes, bytes, core type) it learned once at run start from
//! [`crate::kernels::Kernel::cost`]. It knows nothing of scenes.
//!
//! - [`Reference`]: `L` = the node's `latency` (or `cost: Linear(base, per_element)`, folded into
//!   the plan's latency), unlimited parallelism.
//! - [`cyclesim::CycleSim`]: a cycle-level model of one Ascend A2/A3 die, whose cores are the
//!   workers of the scheduler domains.

pub mod ascend;
pub mod cyclesim;
pub mod package;

use crate::kernels::Cost;
use crate::scene::CoreType;
use bevy_ecs::prelude::Resource;
use serde::Serialize;

/// A task a scheduler domain asks the device to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRequest {
    /// The node (canonical index) whose next firing this is.
    pub node: usize,
    /// The scheduler domain that issues it.
    pub domain: u32,
    /// The tick the domain's issue timeline reaches the task (after `dispatch_cost`).
    pub start_tick: u64,
    /// The §14 throttle factor (1 when cool): the task's execution takes this many times as
    /// long, rounded up to whole cycles.
    pub slowdown: f64,
}

/// Where and when the device runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The tick the task completes (its outputs are written then); never before `start_tick`.
    pub finish_tick: u64,
    /// The device's handle for the task, returned through [`Device::retire`].
    pub token: u64,
    /// The core run and its cycles (CycleSim), for the timeline.
    pub span: Option<CoreSpan>,
}

/// One task on one core, in device cycles (the per-core timeline of a CycleSim run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoreSpan {
    pub core: u32,
    pub node: u32,
    /// The cycle the core was started (after the register write) and the cycle it finished.
    pub start: u64,
    pub end: u64,
}

/// Why a device cannot take a task now. The task waits (a counted stall, §10); nothing grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStall {
    /// Every task-ring slot holds a task not yet retired (`TASK_RING_FULL`).
    TaskRingFull,
    /// The heap ring has no room for the task's outputs (`HEAP_ARENA_FULL`).
    HeapArenaFull,
    /// The domain's ready queue for the core type is full (`READY_QUEUE_FULL`).
    ReadyQueueFull { domain: u32, core: CoreType },
}

/// The device contract.
pub trait Device: Send + Sync + 'static {
    /// `Reference`, `CycleSim`, …
    fn name(&self) -> &str;
    /// Which kernels, dtypes, schedule features and backward the device supports (§12).
    fn capabilities(&self) -> serde_json::Value;
    /// Whether every task must go through dispatch because the device owns the workers.
    fn owns_workers(&self) -> bool;
    /// The latency of a firing that bypasses dispatch (no `dispatch`/`task_window` on a device
    /// that does not own workers, and probes).
    fn latency(&self, node: usize) -> u64;
    /// Runs a task, or says why it must wait.
    fn place(&mut self, task: &TaskRequest) -> Result<Placement, DeviceStall>;
    /// A placed task completed and was retired by its scheduler.
    fn retire(&mut self, token: u64);
    /// The device's part of `report.json` (`device`).
    fn report(&self) -> serde_json::Value;
    /// The (fractional) tick at which device cycle `cycle` falls, for core spans.
    fn cycle_ticks(&self, cycle: u64) -> f64 {
        cycle as f64
    }
    /// A display name of core `core` for traces (CycleSim: its type, cluster and domain).
    fn core_label(&self, core: u32) -> Option<String> {
        let _ = core;
        None
    }
    /// Heap-ring bytes one task of the node takes (0 on devices without a heap ring).
    fn task_bytes(&self, node: usize) -> u64 {
        let _ = node;
        0
    }
    /// A copy of the device state (dispatch restores it when a gate's unit cannot be issued).
    fn box_clone(&self) -> Box<dyn Device>;
}

/// The device of a run (a `bevy_ecs` resource).
#[derive(Resource)]
pub struct ActiveDevice(pub Box<dyn Device>);

impl ActiveDevice {
    pub fn name(&self) -> &str {
        self.0.name()
    }
}

/// The CPU reference device: `L` = the plan's latency of the node.
///
/// ```
/// use tapwheel::device::{Device, Reference, TaskRequest};
/// let mut d = Reference::new(vec![0, 5]);
/// let p = d.place(&TaskRequest { node: 1, domain: 0, start_tick: 10, slowdown: 1.0 }).unwrap();
/// assert_eq!(p.finish_tick, 15);
/// assert_eq!(d.latency(0), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Reference {
    latencies: Vec<u64>,
}

impl Reference {
    pub fn new(latencies: Vec<u64>) -> Reference {
        Reference { latencies }
    }
}

impl Device for Reference {
    fn name(&self) -> &str {
        "Reference"
    }
    fn capabilities(&self) -> serde_json::Value {
        serde_json::json!({
            "kernels": "all",
            "dtypes": ["f32"],
            "schedules": ["Kpn", "IplsAuto", "Ipls"],
            "workers": "dispatch.workers (None = unlimited)",
            "backward": true,
        })
    }
    fn owns_workers(&self) -> bool {
        false
    }
    fn latency(&self, node: usize) -> u64 {
        self.latencies.get(node).copied().unwrap_or(0)
    }
    fn place(&mut self, task: &TaskRequest) -> Result<Placement, DeviceStall> {
        Ok(Placement {
            finish_tick: task
                .start_tick
                .saturating_add(crate::thermal::throttled_latency(
                    self.latency(task.node),
                    task.slowdown,
                )),
            token: 0,
            span: None,
        })
    }
    fn retire(&mut self, _token: u64) {}
    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "name": "Reference" })
    }
    fn box_clone(&self) -> Box<dyn Device> {
        Box::new(self.clone())
    }
}

/// The core type a node runs on: its `core:` field, else its kernel's default (§12).
pub fn core_type(node_core: Option<CoreType>, cost: &Cost) -> CoreType {
    node_core.unwrap_or(cost.core)
}

/// Every core span of a run, in issue order, for the trace exporter (bounded).
#[derive(Resource, Debug, Clone, Default)]
pub struct Timeline {
    pub spans: Vec<CoreSpan>,
    /// Spans not kept once `MAX_TIMELINE_SPANS` were recorded.
    pub dropped: u64,
}

/// The most core spans a run keeps (about 24 MiB).
pub const MAX_TIMELINE_SPANS: usize = 1 << 20;

impl Timeline {
    pub fn record(&mut self, span: CoreSpan) {
        if self.spans.len() < MAX_TIMELINE_SPANS {
            self.spans.push(span);
        } else {
            self.dropped += 1;
        }
    }
}
