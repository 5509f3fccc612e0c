//! A CycleSim device profile (`assets/devices/*.ron`): the figures of one Ascend A2/A3 die.
//! Every field is required, so a profile states its whole model; `sources` cites where the
//! figures come from.

use crate::error::Diagnostic;
use serde::{Deserialize, Serialize};

/// The profile that ships with tapwheel (`assets/devices/a2a3.ron`), also reachable as
/// `profile: "builtin:a2a3"` and through `--device cyclesim`.
pub const BUILTIN_A2A3: &str = include_str!("../../../assets/devices/a2a3.ron");

/// A transfer path: `setup + ⌈bytes / bytes_per_cycle⌉` cycles for one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferPath {
    pub setup: u64,
    pub bytes_per_cycle: u64,
}

impl TransferPath {
    /// Cycles to move `bytes` (0 bytes cost nothing, not even the setup).
    ///
    /// ```
    /// use tapwheel::device::cyclesim::TransferPath;
    /// let p = TransferPath { setup: 100, bytes_per_cycle: 64 };
    /// assert_eq!(p.cycles(0), 0);
    /// assert_eq!(p.cycles(1), 101);
    /// assert_eq!(p.cycles(4096), 164);
    /// assert_eq!(p.cycles(4097), 165);
    /// ```
    pub fn cycles(&self, bytes: u64) -> u64 {
        if bytes == 0 {
            return 0;
        }
        self.setup
            .saturating_add(bytes.div_ceil(self.bytes_per_cycle.max(1)))
    }
}

/// The transfer paths of one AI core.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfers {
    /// Vector core: global memory → unified buffer (MTE2) and back (MTE3).
    pub gm_to_ub: TransferPath,
    pub ub_to_gm: TransferPath,
    /// Cube core: global memory → L1 (MTE2), L1 → L0A / L0B (MTE1), L0C → global memory (FixPipe).
    pub gm_to_l1: TransferPath,
    pub l1_to_l0a: TransferPath,
    pub l1_to_l0b: TransferPath,
    pub l0c_to_gm: TransferPath,
}

/// Cube cost: `(head + ⌈m/m_block⌉·⌈k/(k_block_bytes/sizeof)⌉·⌈n/n_block⌉) · factor` cycles per
/// matrix, `factor = fp32_factor` for f32 (tapwheel's token type).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CubeCost {
    pub head: u64,
    pub m_block: u64,
    pub k_block_bytes: u64,
    pub n_block: u64,
    pub fp32_factor: u64,
}

/// Vector cost: `head + slope · ⌈bytes / repeat_bytes⌉` cycles per firing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorCost {
    pub head: u64,
    pub slope: u64,
    pub repeat_bytes: u64,
}

/// AICPU ↔ AI core handshake, in cycles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    /// The orchestrator's cost to submit one task into the task ring (one orchestrator per die).
    pub orchestrator_submit: u64,
    /// A scheduler thread starts a task on a core by a register write.
    pub dispatch_write: u64,
    /// Scheduler threads poll core status registers every `poll_interval` cycles (0: at once).
    pub poll_interval: u64,
    /// Reading a completion once the poll sees it.
    pub completion_read: u64,
}

/// On-chip buffer sizes, in bytes. A task whose working set exceeds its core's buffers is
/// refused at plan time (it must be tiled by the scene).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memories {
    pub ub: u64,
    pub l1: u64,
    pub l0a: u64,
    pub l0b: u64,
    pub l0c: u64,
    pub l2: u64,
}

/// One die of an Ascend A2/A3 as CycleSim models it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "DeviceProfile", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// AI core clock.
    pub freq_hz: f64,
    /// Clusters of `aic_per_cluster` cube cores and `aiv_per_cluster` vector cores.
    pub clusters: u32,
    pub aic_per_cluster: u32,
    pub aiv_per_cluster: u32,
    /// AICPU scheduler threads (the scheduler domains when the scene declares no `dispatch`).
    pub schedulers: u32,
    /// Tasks a scheduler's per-core-type ready queue holds while waiting for a core.
    pub ready_queue_depth: u32,
    /// Task-ring slots (tasks submitted and not yet retired, reclaimed in order).
    pub task_ring: u32,
    /// Heap-ring bytes for task outputs (reclaimed in order).
    pub heap_ring_bytes: u64,
    pub handshake: Handshake,
    pub cube: CubeCost,
    pub vector: VectorCost,
    pub transfers: Transfers,
    pub memory: Memories,
    /// Die-wide HBM bandwidth (documentation of the figure the paths were derived from).
    pub hbm_bytes_per_second: f64,
    /// Where the figures come from.
    pub sources: Vec<String>,
}

/// The largest counts a profile may declare (keeps the model's tables small and finite).
pub const MAX_CLUSTERS: u32 = 4096;
pub const MAX_CORES_PER_CLUSTER: u32 = 64;
pub const MAX_RING: u32 = 1 << 24;

impl Profile {
    /// Parses and validates a profile; errors are located at `at` (the scene's `device.profile`).
    pub fn parse(text: &str, at: &str) -> Result<Profile, Vec<Diagnostic>> {
        let p: Profile = ron::from_str(text).map_err(|e| {
            vec![Diagnostic::at(
                "E381",
                at.to_string(),
                format!("device profile does not parse: {e}"),
            )]
        })?;
        let mut errs = Vec::new();
        let mut bad = |field: &str, why: String| {
            errs.push(Diagnostic::at(
                "E382",
                at.to_string(),
                format!("device profile field `{field}` {why}"),
            ))
        };
        if !(p.freq_hz.is_finite() && p.freq_hz > 0.0) {
            bad(
                "freq_hz",
                format!("must be positive and finite, got {}", p.freq_hz),
            );
        }
        if p.clusters == 0 || p.clusters > MAX_CLUSTERS {
            bad(
                "clusters",
                format!("must be 1..={MAX_CLUSTERS}, got {}", p.clusters),
            );
        }
        for (f, v) in [
            ("aic_per_cluster", p.aic_per_cluster),
            ("aiv_per_cluster", p.aiv_per_cluster),
        ] {
            if v > MAX_CORES_PER_CLUSTER {
                bad(
                    f,
                    format!("must be at most {MAX_CORES_PER_CLUSTER}, got {v}"),
                );
            }
        }
        if p.schedulers == 0 || p.schedulers > crate::dispatch::MAX_DOMAINS {
            bad(
                "schedulers",
                format!(
                    "must be 1..={}, got {}",
                    crate::dispatch::MAX_DOMAINS,
                    p.schedulers
                ),
            );
        }
        if p.task_ring == 0 || p.task_ring > MAX_RING {
            bad(
                "task_ring",
                format!("must be 1..={MAX_RING}, got {}", p.task_ring),
            );
        }
        if p.ready_queue_depth > MAX_RING {
            bad(
                "ready_queue_depth",
                format!("must be at most {MAX_RING}, got {}", p.ready_queue_depth),
            );
        }
        if p.heap_ring_bytes == 0 {
            bad("heap_ring_bytes", "must be at least 1".into());
        }
        for (f, v) in [
            ("cube.m_block", p.cube.m_block),
            ("cube.k_block_bytes", p.cube.k_block_bytes),
            ("cube.n_block", p.cube.n_block),
            ("cube.fp32_factor", p.cube.fp32_factor),
            ("vector.repeat_bytes", p.vector.repeat_bytes),
        ] {
            if v == 0 {
                bad(f, "must be at least 1".into());
            }
        }
        if !p.cube.k_block_bytes.is_multiple_of(4) {
            bad(
                "cube.k_block_bytes",
                format!(
                    "must be a multiple of sizeof(f32) = 4, got {}",
                    p.cube.k_block_bytes
                ),
            );
        }
        let t = &p.transfers;
        for (f, path) in [
            ("gm_to_ub", t.gm_to_ub),
            ("ub_to_gm", t.ub_to_gm),
            ("gm_to_l1", t.gm_to_l1),
            ("l1_to_l0a", t.l1_to_l0a),
            ("l1_to_l0b", t.l1_to_l0b),
            ("l0c_to_gm", t.l0c_to_gm),
        ] {
            if path.bytes_per_cycle == 0 {
                bad(
                    &format!("transfers.{f}.bytes_per_cycle"),
                    "must be at least 1".into(),
                );
            }
        }
        if errs.is_empty() { Ok(p) } else { Err(errs) }
    }

    /// Cube cycles for one `m×k @ k×n` f32 product.
    ///
    /// ```
    /// use tapwheel::device::cyclesim::{Profile, BUILTIN_A2A3};
    /// let p = Profile::parse(BUILTIN_A2A3, "device.profile").unwrap();
    /// // 64×64 @ 64×64 f32: (6 + 4·8·4)·2 = 268 cycles.
    /// assert_eq!(p.cube_cycles(64, 64, 64), 268);
    /// // 16×16 @ 16×16: (6 + 1·2·1)·2 = 16.
    /// assert_eq!(p.cube_cycles(16, 16, 16), 16);
    /// ```
    pub fn cube_cycles(&self, m: u64, k: u64, n: u64) -> u64 {
        let c = &self.cube;
        let k_block = (c.k_block_bytes / 4).max(1);
        let blocks = m
            .div_ceil(c.m_block)
            .saturating_mul(k.div_ceil(k_block))
            .saturating_mul(n.div_ceil(c.n_block));
        c.head.saturating_add(blocks).saturating_mul(c.fp32_factor)
    }

    /// Vector cycles for a job over `bytes` bytes: `head + slope·⌈bytes/repeat_bytes⌉`, or 0
    /// for a job that computes nothing (a pure copy).
    ///
    /// ```
    /// use tapwheel::device::cyclesim::{Profile, BUILTIN_A2A3};
    /// let p = Profile::parse(BUILTIN_A2A3, "device.profile").unwrap();
    /// assert_eq!(p.vector_cycles(0), 0);
    /// assert_eq!(p.vector_cycles(256), 6 + 1);
    /// assert_eq!(p.vector_cycles(257), 6 + 2);
    /// assert_eq!(p.vector_cycles(64 * 64 * 4), 6 + 64);
    /// ```
    pub fn vector_cycles(&self, bytes: u64) -> u64 {
        if bytes == 0 {
            return 0;
        }
        let v = &self.vector;
        v.head.saturating_add(
            v.slope
                .saturating_mul(bytes.div_ceil(v.repeat_bytes.max(1))),
        )
    }
}
