//! CycleSim: an event-driven, cycle-level model of one Ascend A2/A3 die (SPEC §12).
//!
//! **Structure.** `clusters` clusters of `aic_per_cluster` cube (AIC) and `aiv_per_cluster`
//! vector (AIV) cores. The scheduler domains are AICPU scheduler threads; clusters are split
//! into contiguous blocks, one per domain (earlier domains get the remainder). One orchestrator
//! thread submits every task. Nothing runs per cycle: a task's whole life is computed when it
//! is issued, because every cost is known then.
//!
//! **A task's life** (cycles; the domain issues it at tick `t`, `c = t · cycles_per_tick`):
//! 1. The orchestrator submits it: `sub = max(c, orchestrator_free) + orchestrator_submit`.
//!    It takes a task-ring slot and `bytes_out` of the heap ring; either ring full → the task
//!    waits (`TASK_RING_FULL`, `HEAP_ARENA_FULL`). Rings are reclaimed in order and never grow.
//! 2. It enters its domain's ready queue for its core type and goes to the core of that pool
//!    that frees first (ties: lowest core id). A queue already holding `ready_queue_depth`
//!    waiting tasks refuses it (`READY_QUEUE_FULL`).
//! 3. The scheduler starts the core by a register write: `start = max(sub, core_free) +
//!    dispatch_write`; the core runs `exec` cycles: `end = start + exec`.
//! 4. The scheduler sees the completion at its next poll: `seen = ⌈end / poll⌉ · poll +
//!    completion_read`; the core is free again from `seen`, and the task completes at tick
//!    `⌈seen / cycles_per_tick⌉`.
//!
//! **Costs** (`exec`): vector tasks `GM→UB(bytes_in) + head + slope·⌈4·elements/256⌉ +
//! UB→GM(bytes_out)`; cube matrix products `GM→L1(A+B) + L1→L0A(A) + L1→L0B(B) +
//! batch·cube(m, k, n) + L0C→GM(C)`. `AiCpu` work (sources, DSP, stream and control kernels
//! by default) keeps the node's reference latency exactly and takes no core, ring or
//! handshake: CycleSim models the AI cores. A transfer costs `setup + ⌈bytes / bytes_per_cycle⌉`.
//!
//! ```
//! use tapwheel::device::cyclesim::{CycleSim, Profile, TaskCycles, BUILTIN_A2A3};
//! use tapwheel::device::{Device, TaskRequest};
//! use tapwheel::scene::CoreType;
//! let mut p = Profile::parse(BUILTIN_A2A3, "device.profile").unwrap();
//! p.freq_hz = 1.0; // one tick per cycle
//! let tasks = vec![TaskCycles { core: CoreType::Vector, exec: 1000, heap_bytes: 64 }];
//! let mut sim = CycleSim::new(p, 1.0, 1, tasks).unwrap();
//! let placed = sim.place(&TaskRequest { node: 0, domain: 0, start_tick: 0, slowdown: 1.0 }).unwrap();
//! // submit 200, register write 50, run 1000 → end 1250; next poll at 1300, read 50.
//! assert_eq!(placed.finish_tick, 1350);
//! assert_eq!(placed.span.unwrap().start, 250);
//! ```

mod profile;

pub use profile::*;

use super::{CoreSpan, Device, DeviceStall, Placement, TaskRequest};
use crate::error::Diagnostic;
use crate::kernels::Cost;
use crate::scene::CoreType;
use std::collections::VecDeque;
use std::sync::Arc;

/// What one firing of a node costs on the die, computed once at run start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCycles {
    pub core: CoreType,
    /// Cycles the core is busy; for `AiCpu` work, the node's reference latency in ticks.
    pub exec: u64,
    /// Heap-ring bytes the task's outputs take.
    pub heap_bytes: u64,
}

/// Index of a core type's pool (`AiCpu` has none: it runs on the scheduler thread).
fn pool_of(core: CoreType) -> Option<usize> {
    match core {
        CoreType::Cube => Some(0),
        CoreType::Vector => Some(1),
        CoreType::AiCpu => None,
    }
}

/// The cycles of one firing of a node with kernel cost `cost` on core type `core`, or why its
/// working set does not fit the core's buffers (the scene must tile it).
///
/// ```
/// use tapwheel::device::cyclesim::{task_cycles, Profile, BUILTIN_A2A3};
/// use tapwheel::kernels::Cost;
/// use tapwheel::scene::CoreType;
/// let p = Profile::parse(BUILTIN_A2A3, "device.profile").unwrap();
/// // A 64×64 f32 add: in 32 KiB, out 16 KiB.
/// let add = Cost { elements: 4096, bytes_in: 32768, bytes_out: 16384, core: CoreType::Vector,
///                  matmul: None };
/// // GM→UB (200 + 512) + vector (6 + 64) + UB→GM (200 + 256)
/// assert_eq!(task_cycles(&p, &add, CoreType::Vector, 0).unwrap().exec, 712 + 70 + 456);
/// // One 64×64 @ 64×64 f32 tile on the cube: GM→L1 of A and B (200 + 512), L1→L0A and
/// // L1→L0B (8 + 64 each), cube (6 + 4·8·4)·2 = 268, L0C→GM (200 + 256).
/// let mm = Cost { elements: 4096, bytes_in: 32768, bytes_out: 16384, core: CoreType::Cube,
///                 matmul: Some([1, 64, 64, 64]) };
/// assert_eq!(task_cycles(&p, &mm, CoreType::Cube, 0).unwrap().exec, 712 + 72 + 72 + 268 + 456);
/// ```
pub fn task_cycles(
    p: &Profile,
    cost: &Cost,
    core: CoreType,
    aicpu_ticks: u64,
) -> Result<TaskCycles, String> {
    let t = &p.transfers;
    let exec = match core {
        CoreType::AiCpu => aicpu_ticks,
        CoreType::Cube => match cost.matmul {
            Some([batch, m, k, n]) => {
                let (a, b, c) = (4 * m * k, 4 * k * n, 4 * m * n);
                if a > p.memory.l0a || b > p.memory.l0b || c > p.memory.l0c {
                    return Err(format!(
                        "a {m}×{k} @ {k}×{n} f32 tile needs L0A {a} B, L0B {b} B, L0C {c} B; the \
                         profile has {}, {}, {}",
                        p.memory.l0a, p.memory.l0b, p.memory.l0c
                    ));
                }
                if a + b > p.memory.l1 {
                    return Err(format!(
                        "a {m}×{k} @ {k}×{n} f32 tile needs {} B of L1; the profile has {}",
                        a + b,
                        p.memory.l1
                    ));
                }
                let (a_all, b_all, c_all) = (batch * a, batch * b, batch * c);
                t.gm_to_l1
                    .cycles(a_all + b_all)
                    .saturating_add(t.l1_to_l0a.cycles(a_all))
                    .saturating_add(t.l1_to_l0b.cycles(b_all))
                    .saturating_add(batch.saturating_mul(p.cube_cycles(m, k, n)))
                    .saturating_add(t.l0c_to_gm.cycles(c_all))
            }
            // Other work placed on a cube core streams through L1 and L0C.
            None => {
                if cost.bytes_in > p.memory.l1 {
                    return Err(format!(
                        "its inputs need {} B of L1; the profile has {}",
                        cost.bytes_in, p.memory.l1
                    ));
                }
                t.gm_to_l1
                    .cycles(cost.bytes_in)
                    .saturating_add(p.vector_cycles(cost.elements.saturating_mul(4)))
                    .saturating_add(t.l0c_to_gm.cycles(cost.bytes_out))
            }
        },
        CoreType::Vector => {
            let working = cost.bytes_in.saturating_add(cost.bytes_out);
            if working > p.memory.ub {
                return Err(format!(
                    "its inputs and outputs need {working} B of UB; the profile has {}",
                    p.memory.ub
                ));
            }
            t.gm_to_ub
                .cycles(cost.bytes_in)
                .saturating_add(p.vector_cycles(cost.elements.saturating_mul(4)))
                .saturating_add(t.ub_to_gm.cycles(cost.bytes_out))
        }
    };
    Ok(TaskCycles {
        core,
        exec,
        heap_bytes: cost.bytes_out,
    })
}

#[derive(Debug, Clone, Copy)]
struct Core {
    core: CoreType,
    cluster: u32,
    domain: u32,
    /// The cycle its scheduler can start it again (after seeing its last completion).
    free_at: u64,
    busy: u64,
    tasks: u64,
}

#[derive(Debug, Clone, Copy)]
struct RingEntry {
    id: u64,
    bytes: u64,
    retired: bool,
}

/// Ticks ↔ cycles: exact integer arithmetic when a tick is a whole number of cycles.
#[derive(Debug, Clone, Copy)]
struct Clocking {
    cycles_per_tick: f64,
    whole: Option<u64>,
}

impl Clocking {
    fn new(freq_hz: f64, tick_hz: f64) -> Clocking {
        let cpt = freq_hz / tick_hz;
        let whole =
            (cpt >= 1.0 && cpt.fract() == 0.0 && cpt < u64::MAX as f64).then_some(cpt as u64);
        Clocking {
            cycles_per_tick: cpt,
            whole,
        }
    }
    fn cycles(&self, tick: u64) -> u64 {
        match self.whole {
            Some(w) => tick.saturating_mul(w),
            None => (tick as f64 * self.cycles_per_tick) as u64,
        }
    }
    /// The first tick at or after `cycle`.
    fn tick_ceil(&self, cycle: u64) -> u64 {
        match self.whole {
            Some(w) => cycle.div_ceil(w),
            None => (cycle as f64 / self.cycles_per_tick).ceil() as u64,
        }
    }
}

/// Counters of a CycleSim run.
#[derive(Debug, Clone, Default)]
struct SimStats {
    tasks: [u64; 3],
    last_seen: u64,
    ring_high_water: u32,
    heap_high_water: u64,
    queue_high_water: u32,
}

/// The model's state (see the module docs).
#[derive(Debug, Clone)]
pub struct CycleSim {
    profile: Arc<Profile>,
    clock: Clocking,
    tasks: Vec<TaskCycles>,
    cores: Vec<Core>,
    /// `pools[domain][pool]`: the cores a domain's scheduler drives, by type.
    pools: Vec<[Vec<u32>; 2]>,
    /// `queues[domain][pool]`: start cycles of tasks waiting for a core (non-decreasing).
    queues: Vec<[VecDeque<u64>; 2]>,
    orchestrator_free: u64,
    ring: VecDeque<RingEntry>,
    next_id: u64,
    heap_used: u64,
    stats: SimStats,
}

impl CycleSim {
    /// A die of `profile` for a run at `tick_hz` with `domains` scheduler domains, and the
    /// per-node task costs. Fails when some domain would drive no cores.
    pub fn new(
        profile: Profile,
        tick_hz: f64,
        domains: u32,
        tasks: Vec<TaskCycles>,
    ) -> Result<CycleSim, String> {
        let domains = domains.max(1);
        if domains > profile.clusters {
            return Err(format!(
                "{domains} scheduler domains but the profile has {} clusters: every domain drives \
                 at least one cluster",
                profile.clusters
            ));
        }
        let mut cores = Vec::new();
        let mut pools = vec![[Vec::new(), Vec::new()]; domains as usize];
        let (c, d) = (u64::from(profile.clusters), u64::from(domains));
        for cluster in 0..profile.clusters {
            // Contiguous blocks: domain k drives clusters [⌈k·C/D⌉ … ) (even split).
            let domain = ((u64::from(cluster) * d) / c) as u32;
            for (kind, count) in [
                (CoreType::Cube, profile.aic_per_cluster),
                (CoreType::Vector, profile.aiv_per_cluster),
            ] {
                for _ in 0..count {
                    let id = cores.len() as u32;
                    if let Some(p) = pool_of(kind) {
                        pools[domain as usize][p].push(id);
                    }
                    cores.push(Core {
                        core: kind,
                        cluster,
                        domain,
                        free_at: 0,
                        busy: 0,
                        tasks: 0,
                    });
                }
            }
        }
        Ok(CycleSim {
            clock: Clocking::new(profile.freq_hz, tick_hz),
            profile: Arc::new(profile),
            tasks,
            cores,
            queues: vec![[VecDeque::new(), VecDeque::new()]; domains as usize],
            pools,
            orchestrator_free: 0,
            ring: VecDeque::new(),
            next_id: 0,
            heap_used: 0,
            stats: SimStats::default(),
        })
    }

    /// The die for a planned run: costs from the kernels, refusals for tiles that do not fit
    /// and core types a domain lacks. `aicpu_latency[i]` is node `i`'s reference latency.
    pub fn for_plan(
        profile: Profile,
        tick_hz: f64,
        domains: u32,
        nodes: &[(String, Option<CoreType>, Cost, u64, bool)],
    ) -> Result<CycleSim, Vec<Diagnostic>> {
        let mut errs = Vec::new();
        let mut tasks = Vec::with_capacity(nodes.len());
        for (i, (name, core, cost, latency, probe)) in nodes.iter().enumerate() {
            let kind = super::core_type(*core, cost);
            let kind = if *probe { CoreType::AiCpu } else { kind };
            match task_cycles(&profile, cost, kind, *latency) {
                Ok(t) => tasks.push(t),
                Err(why) => {
                    errs.push(Diagnostic::at(
                        "R306",
                        format!("nodes[{i}]"),
                        format!("CycleSim cannot run `{name}` on a {kind:?} core: {why}"),
                    ));
                    tasks.push(TaskCycles {
                        core: kind,
                        exec: 0,
                        heap_bytes: 0,
                    });
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        CycleSim::new(profile, tick_hz, domains, tasks)
            .map_err(|why| vec![Diagnostic::at("E383", "dispatch.domains", why)])
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The cycles of one firing of node `node`.
    pub fn task(&self, node: usize) -> Option<TaskCycles> {
        self.tasks.get(node).copied()
    }

    fn poll_seen(&self, end: u64) -> u64 {
        let h = &self.profile.handshake;
        let polled = if h.poll_interval == 0 {
            end
        } else {
            end.div_ceil(h.poll_interval)
                .saturating_mul(h.poll_interval)
        };
        polled.saturating_add(h.completion_read)
    }

    fn utilisation(&self, kind: CoreType) -> f64 {
        let (busy, n) = self
            .cores
            .iter()
            .filter(|c| c.core == kind)
            .fold((0u64, 0u64), |(b, n), c| (b + c.busy, n + 1));
        let span = self.stats.last_seen;
        if n == 0 || span == 0 {
            0.0
        } else {
            busy as f64 / (n as f64 * span as f64)
        }
    }
}

impl Device for CycleSim {
    fn name(&self) -> &str {
        "CycleSim"
    }

    fn capabilities(&self) -> serde_json::Value {
        serde_json::json!({
            "kernels": "all (values from the reference kernels); MatMul on Cube, others on Vector unless `core:` says otherwise",
            "core_types": ["Cube", "Vector", "AiCpu"],
            "dtypes": ["f32"],
            "schedules": ["Kpn", "IplsAuto", "Ipls"],
            "workers": "the profile's cores (dispatch.workers is refused)",
            "backward": false,
            "stalls": ["TASK_RING_FULL", "HEAP_ARENA_FULL", "READY_QUEUE_FULL"],
        })
    }

    fn owns_workers(&self) -> bool {
        true
    }

    fn cycle_ticks(&self, cycle: u64) -> f64 {
        cycle as f64 / self.clock.cycles_per_tick
    }

    fn latency(&self, node: usize) -> u64 {
        // Probes (bookkeeping, AiCpu) only: every task goes through `place`.
        self.tasks.get(node).map_or(0, |t| match t.core {
            CoreType::AiCpu => t.exec,
            _ => self.clock.tick_ceil(t.exec),
        })
    }

    fn place(&mut self, task: &TaskRequest) -> Result<Placement, DeviceStall> {
        let Some(&(mut t)) = self.tasks.get(task.node) else {
            return Ok(Placement {
                finish_tick: task.start_tick,
                token: u64::MAX,
                span: None,
            });
        };
        // §14 throttle: a hot node's execution stretches by its factor, in whole cycles.
        t.exec = crate::thermal::throttled_latency(t.exec, task.slowdown);
        if t.core == CoreType::AiCpu {
            // AICPU work keeps its reference timing: no AI core, no ring, no handshake.
            self.stats.tasks[2] += 1;
            return Ok(Placement {
                finish_tick: task.start_tick.saturating_add(t.exec),
                token: u64::MAX,
                span: None,
            });
        }
        let p = Arc::clone(&self.profile);
        if self.ring.len() >= p.task_ring as usize {
            return Err(DeviceStall::TaskRingFull);
        }
        if self.heap_used.saturating_add(t.heap_bytes) > p.heap_ring_bytes {
            return Err(DeviceStall::HeapArenaFull);
        }
        let d = (task.domain as usize).min(self.pools.len() - 1);
        let issue = self.clock.cycles(task.start_tick);
        let submitted = issue
            .max(self.orchestrator_free)
            .saturating_add(p.handshake.orchestrator_submit);
        let (core, start, end, seen) = match pool_of(t.core) {
            None => return Err(DeviceStall::TaskRingFull), // AiCpu returned above
            Some(pool) => {
                let queue = &mut self.queues[d][pool];
                while queue.front().is_some_and(|&s| s <= submitted) {
                    queue.pop_front();
                }
                let Some(&core) = self.pools[d][pool]
                    .iter()
                    .min_by_key(|&&c| (self.cores[c as usize].free_at, c))
                else {
                    // No core of this type in the domain: refused at plan time; never waits.
                    return Err(DeviceStall::ReadyQueueFull {
                        domain: d as u32,
                        core: t.core,
                    });
                };
                let free_at = self.cores[core as usize].free_at;
                let waits = free_at > submitted;
                if waits && queue.len() >= p.ready_queue_depth as usize {
                    return Err(DeviceStall::ReadyQueueFull {
                        domain: d as u32,
                        core: t.core,
                    });
                }
                let start = submitted
                    .max(free_at)
                    .saturating_add(p.handshake.dispatch_write);
                if waits {
                    queue.push_back(start);
                    self.stats.queue_high_water =
                        self.stats.queue_high_water.max(queue.len() as u32);
                }
                let end = start.saturating_add(t.exec);
                let seen = self.poll_seen(end);
                let c = &mut self.cores[core as usize];
                c.free_at = seen;
                c.busy = c.busy.saturating_add(t.exec);
                c.tasks += 1;
                (Some(core), start, end, seen)
            }
        };
        self.orchestrator_free = submitted;
        let id = self.next_id;
        self.next_id += 1;
        self.ring.push_back(RingEntry {
            id,
            bytes: t.heap_bytes,
            retired: false,
        });
        self.heap_used = self.heap_used.saturating_add(t.heap_bytes);
        let s = &mut self.stats;
        s.ring_high_water = s.ring_high_water.max(self.ring.len() as u32);
        s.heap_high_water = s.heap_high_water.max(self.heap_used);
        s.tasks[match t.core {
            CoreType::Cube => 0,
            CoreType::Vector => 1,
            CoreType::AiCpu => 2,
        }] += 1;
        s.last_seen = s.last_seen.max(seen);
        Ok(Placement {
            finish_tick: self.clock.tick_ceil(seen).max(task.start_tick),
            token: id,
            span: core.map(|core| CoreSpan {
                core,
                node: task.node as u32,
                start,
                end,
            }),
        })
    }

    fn retire(&mut self, token: u64) {
        let Some(front) = self.ring.front().map(|e| e.id) else {
            return;
        };
        let Some(i) = token.checked_sub(front) else {
            return;
        };
        if let Some(e) = self.ring.get_mut(i as usize) {
            e.retired = true;
        }
        // In-order reclamation: the ring's tail passes only retired tasks.
        while self.ring.front().is_some_and(|e| e.retired) {
            if let Some(e) = self.ring.pop_front() {
                self.heap_used = self.heap_used.saturating_sub(e.bytes);
            }
        }
    }

    fn report(&self) -> serde_json::Value {
        let p = &self.profile;
        let count = |k: CoreType| self.cores.iter().filter(|c| c.core == k).count();
        serde_json::json!({
            "name": "CycleSim",
            "profile": p.name,
            "freq_hz": p.freq_hz,
            "cycles_per_tick": self.clock.cycles_per_tick,
            "cycles": self.stats.last_seen,
            "domains": self.pools.len(),
            "cores": {"cube": count(CoreType::Cube), "vector": count(CoreType::Vector)},
            "tasks": {"cube": self.stats.tasks[0], "vector": self.stats.tasks[1], "aicpu": self.stats.tasks[2]},
            "utilisation": {"cube": self.utilisation(CoreType::Cube), "vector": self.utilisation(CoreType::Vector)},
            "task_ring": {"size": p.task_ring, "in_use": self.ring.len(), "high_water": self.stats.ring_high_water},
            "heap_ring": {"bytes": p.heap_ring_bytes, "in_use": self.heap_used, "high_water": self.stats.heap_high_water},
            "ready_queue": {"depth": p.ready_queue_depth, "high_water": self.stats.queue_high_water},
            "per_core": self.cores.iter().enumerate().filter(|(_, c)| c.tasks > 0).map(|(i, c)| serde_json::json!({
                "core": i, "type": format!("{:?}", c.core), "cluster": c.cluster, "domain": c.domain,
                "tasks": c.tasks, "busy_cycles": c.busy,
            })).collect::<Vec<_>>(),
        })
    }

    fn core_label(&self, core: u32) -> Option<String> {
        self.cores.get(core as usize).map(|c| {
            format!(
                "core {core} {:?} (cluster {}, domain {})",
                c.core, c.cluster, c.domain
            )
        })
    }

    fn task_bytes(&self, node: usize) -> u64 {
        self.tasks.get(node).map_or(0, |t| t.heap_bytes)
    }

    fn box_clone(&self) -> Box<dyn Device> {
        Box::new(self.clone())
    }
}
