//! Dispatch (SPEC §9): scheduler domains that issue tasks one after another, each costing
//! `dispatch_cost` of the domain's issue timeline; domain choice by a static `domain: k` or a
//! policy; workers per domain; the task window. A *task* is one firing of a non-probe node.
//!
//! **Issue timeline.** A task issued at tick `t` on domain `d` starts at
//! `s = max(t, free[d]) + dispatch_cost` (then `free[d] := s`) and completes at `s + L`:
//!
//! ```
//! use tapwheel::dispatch::{Admit, Dispatcher, DispatchConfig, Policy};
//! let cfg = DispatchConfig { domains: 1, policy: Policy::RoundRobin, dispatch_cost: 2, workers: None,
//!                            window: None };
//! let mut d = Dispatcher::new(cfg, vec![None; 3]);
//! let starts: Vec<u64> = (0..3).map(|n| match d.try_issue(n, 0, 10) {
//!     Admit::Issued(t) => t.start, other => panic!("{other:?}"),
//! }).collect();
//! assert_eq!(starts, vec![12, 14, 16]); // serial issue: each costs 2 ticks of the timeline
//! ```
//!
//! **Workers and the window.** A task holds one worker of its domain and one window slot from
//! issue to completion; when none is free, the task is not issued (`DEVICE_BUSY`,
//! `WINDOW_FULL`). `RoundRobin` hands each task the pointer's domain and advances the pointer;
//! a task that could not be issued keeps its domain until it is:
//!
//! ```
//! use tapwheel::dispatch::{Admit, Dispatcher, DispatchConfig, Policy};
//! let cfg = DispatchConfig { domains: 2, policy: Policy::RoundRobin, dispatch_cost: 0,
//!                            workers: Some(1), window: None };
//! let mut d = Dispatcher::new(cfg, vec![None; 4]);
//! let a = d.try_issue(0, 0, 0);
//! let b = d.try_issue(1, 0, 0);
//! assert!(matches!((a, b), (Admit::Issued(x), Admit::Issued(y)) if x.domain == 0 && y.domain == 1));
//! assert_eq!(d.try_issue(2, 0, 0), Admit::DeviceBusy(0)); // domain 0 has no free worker
//! assert_eq!(d.try_issue(3, 0, 0), Admit::DeviceBusy(1)); // nor domain 1
//! d.begin_step(); // a later step: t0's task completes at tick 5
//! if let Admit::Issued(t) = a { d.retire(t, 5); }
//! // Node 2 kept domain 0 and gets its worker back; node 3 keeps domain 1 and still waits.
//! assert!(matches!(d.try_issue(2, 0, 5), Admit::Issued(t) if t.domain == 0));
//! assert_eq!(d.try_issue(3, 0, 5), Admit::DeviceBusy(1));
//! ```

use crate::scene::{DispatchPolicy, WindowScope};
use bevy_ecs::prelude::Resource;
use serde::Serialize;
use std::sync::Arc;

/// What an embedder's dispatch hook sees of a task (`Hook(name)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInfo<'a> {
    /// The node's index in canonical order and its name.
    pub node: usize,
    pub name: &'a str,
    /// The node's firing index.
    pub firing: u64,
    pub tick: u64,
}

/// One domain's load as a hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DomainLoad {
    /// Tasks issued and not completed.
    pub in_flight: u32,
    /// Workers busy (equal to `in_flight` on the Reference device).
    pub busy_workers: u32,
    /// The tick the domain's issue timeline is free from.
    pub issue_free: u64,
}

/// A dispatch hook registered by the embedder: returns the domain for a task (`< domains`).
pub trait DispatchHook: Send + Sync + 'static {
    fn choose(&self, task: &TaskInfo<'_>, loads: &[DomainLoad]) -> u32;
}

impl<F> DispatchHook for F
where
    F: Fn(&TaskInfo<'_>, &[DomainLoad]) -> u32 + Send + Sync + 'static,
{
    fn choose(&self, task: &TaskInfo<'_>, loads: &[DomainLoad]) -> u32 {
        self(task, loads)
    }
}

/// The runtime form of a dispatch policy.
#[derive(Clone)]
pub enum Policy {
    RoundRobin,
    /// `Hash("node")`: FNV-1a-64 of the node name, mod domains (static per node).
    HashNode,
    /// `Hash("firing")`: FNV-1a-64 of the node name and firing index, mod domains.
    HashFiring,
    /// A node's first task goes to the least-loaded domain; all its later tasks follow it.
    Affinity,
    /// The domain with the fewest tasks in flight (ties: lowest id).
    LeastLoaded,
    Hook(String, Arc<dyn DispatchHook>),
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::RoundRobin => write!(f, "RoundRobin"),
            Policy::HashNode => write!(f, "Hash(node)"),
            Policy::HashFiring => write!(f, "Hash(firing)"),
            Policy::Affinity => write!(f, "Affinity"),
            Policy::LeastLoaded => write!(f, "LeastLoaded"),
            Policy::Hook(n, _) => write!(f, "Hook({n})"),
        }
    }
}

/// The most scheduler domains a scene may declare.
pub const MAX_DOMAINS: u32 = 4096;

/// The `Hash` keys a scene may name.
pub const HASH_KEYS: &[&str] = &["node", "firing"];

/// How each policy resolves a task's domain: the capability report of §9.
pub fn capabilities() -> serde_json::Value {
    serde_json::json!({
        "static_only": ["domain: k (node field, resolved at plan time)"],
        "dynamic": ["RoundRobin", "LeastLoaded", "Hash(\"firing\")"],
        "both": ["Affinity (first task by load, then fixed)", "Hash(\"node\") (fixed per node, computed at run start)"],
        "hook": ["Hook(name) (an embedder function, called per task with the domain loads)"],
        "window_modes": ["Stall"],
        "window_scopes": ["Global", "PerDomain"],
    })
}

/// FNV-1a-64 (the hash of `Hash(key)` policies and of symbol ids).
///
/// ```
/// assert_eq!(tapwheel::dispatch::fnv1a64(b""), 0xcbf29ce484222325);
/// assert_eq!(tapwheel::dispatch::fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The task window of §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowConfig {
    pub size: u32,
    pub scope: WindowScope,
}

/// Everything dispatch needs from the plan.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub domains: u32,
    pub policy: Policy,
    pub dispatch_cost: u64,
    /// Workers per domain (`None`: unlimited).
    pub workers: Option<u32>,
    pub window: Option<WindowConfig>,
}

impl DispatchConfig {
    /// The dispatch configuration of a plan, or `None` when the scene declares neither
    /// `dispatch` nor `task_window` (every ready task is admitted at once). A window alone runs
    /// on one domain with unlimited workers.
    pub fn from_plan(
        plan: &crate::plan::Plan,
        registry: &crate::kernels::KernelRegistry,
    ) -> Option<DispatchConfig> {
        if plan.dispatch.is_none() && plan.task_window.is_none() {
            return None;
        }
        let window = plan.task_window.as_ref().map(|w| WindowConfig {
            size: w.size.max(1),
            scope: w.scope,
        });
        let Some(d) = &plan.dispatch else {
            return Some(DispatchConfig {
                domains: 1,
                policy: Policy::RoundRobin,
                dispatch_cost: 0,
                workers: None,
                window,
            });
        };
        let policy = match &d.policy {
            DispatchPolicy::RoundRobin => Policy::RoundRobin,
            DispatchPolicy::Hash(k) if k == "firing" => Policy::HashFiring,
            DispatchPolicy::Hash(_) => Policy::HashNode,
            DispatchPolicy::Affinity => Policy::Affinity,
            DispatchPolicy::LeastLoaded => Policy::LeastLoaded,
            // The planner rejects unknown hooks (E272); an unregistered one falls back to no
            // choice at all only if a plan was built against another registry: refuse then.
            DispatchPolicy::Hook(name) => Policy::Hook(name.clone(), registry.hook(name)?.clone()),
        };
        Some(DispatchConfig {
            domains: d.domains.clamp(1, MAX_DOMAINS),
            policy,
            dispatch_cost: d.dispatch_cost,
            workers: d.workers,
            window,
        })
    }
}

/// An issued task: its domain and start tick (completion is `start + L`, or the device's
/// `finish` when a device placed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub domain: u32,
    pub start: u64,
    /// The device's placement (completion tick, ring token, core span), when one was asked.
    pub placed: Option<crate::device::Placement>,
    /// The tick it was issued at.
    pub issued: u64,
    /// The step (dispatch's step counter) it was issued in.
    pub step: u64,
}

/// The outcome of asking dispatch to issue a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Issued(Ticket),
    /// The task window is full (`WINDOW_FULL`).
    WindowFull,
    /// No free worker in the task's domain (`DEVICE_BUSY`).
    DeviceBusy(u32),
    /// A hook returned a domain out of range: the run fails (E401).
    BadHook(u32),
    /// The device cannot take the task now (a ring or ready queue is full).
    Device(u32, crate::device::DeviceStall),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DomainStats {
    pub tasks: u64,
    pub in_flight_high_water: u32,
    /// Ticks the issue timeline spent issuing (`dispatch_cost` per task).
    pub issue_ticks: u64,
}

/// Dispatch state of a run: per-domain timelines, loads and workers, the window, and the
/// policy's memory (RoundRobin pointer, kept domains, affinities).
#[derive(Resource, Debug, Clone)]
pub struct Dispatcher {
    pub config: DispatchConfig,
    loads: Vec<DomainLoad>,
    pub stats: Vec<DomainStats>,
    static_domain: Vec<Option<u32>>,
    pointer: u32,
    kept: Vec<Option<u32>>,
    affinity: Vec<Option<u32>>,
    window_used: Vec<u32>,
    pub window_high_water: u32,
    /// Tasks retired in the step that issued them: their resources free at the next step.
    deferred: Vec<Ticket>,
    /// FNV-1a-64 of each node's name (for `Hash`).
    pub name_hash: Vec<u64>,
    /// Steps begun so far: a task retired in the step that issued it frees its resources at the
    /// next step.
    step: u64,
    /// Device tokens of released tasks, handed to the device by [`Dispatcher::take_released`].
    released: Vec<u64>,
}

impl Dispatcher {
    /// `static_domain[n]` is node `n`'s `domain: k`, if any.
    pub fn new(config: DispatchConfig, static_domain: Vec<Option<u32>>) -> Dispatcher {
        let d = config.domains.max(1) as usize;
        let n = static_domain.len();
        let scopes = match config.window.map(|w| w.scope) {
            Some(WindowScope::PerDomain) => d,
            _ => 1,
        };
        Dispatcher {
            loads: vec![DomainLoad::default(); d],
            stats: vec![DomainStats::default(); d],
            static_domain,
            pointer: 0,
            kept: vec![None; n],
            affinity: vec![None; n],
            window_used: vec![0; scopes],
            window_high_water: 0,
            deferred: Vec::new(),
            name_hash: vec![0; n],
            step: 0,
            released: Vec::new(),
            config,
        }
    }

    pub fn loads(&self) -> &[DomainLoad] {
        &self.loads
    }

    /// Tasks in flight in the window (all scopes).
    pub fn window_used(&self) -> u32 {
        self.window_used.iter().sum()
    }

    fn least_loaded(&self) -> u32 {
        let mut best = 0;
        for (i, l) in self.loads.iter().enumerate() {
            if l.in_flight < self.loads[best].in_flight {
                best = i;
            }
        }
        best as u32
    }

    /// The domain the node's next task goes to, without committing RoundRobin's pointer.
    fn choose(&mut self, node: usize, firing: u64, tick: u64, name: &str) -> Result<u32, u32> {
        let domains = self.loads.len() as u32;
        if let Some(d) = self.static_domain.get(node).copied().flatten() {
            return Ok(d.min(domains - 1));
        }
        if let Some(d) = self.kept.get(node).copied().flatten() {
            return Ok(d);
        }
        let d = match &self.config.policy {
            Policy::RoundRobin => {
                let d = self.pointer % domains;
                self.pointer = (self.pointer + 1) % domains;
                if let Some(k) = self.kept.get_mut(node) {
                    *k = Some(d);
                }
                d
            }
            Policy::HashNode => {
                (self.name_hash.get(node).copied().unwrap_or(0) % u64::from(domains)) as u32
            }
            Policy::HashFiring => {
                let mut bytes = self
                    .name_hash
                    .get(node)
                    .copied()
                    .unwrap_or(0)
                    .to_le_bytes()
                    .to_vec();
                bytes.extend_from_slice(&firing.to_le_bytes());
                (fnv1a64(&bytes) % u64::from(domains)) as u32
            }
            Policy::Affinity => match self.affinity.get(node).copied().flatten() {
                Some(d) => d,
                None => {
                    let d = self.least_loaded();
                    if let Some(a) = self.affinity.get_mut(node) {
                        *a = Some(d);
                    }
                    d
                }
            },
            Policy::LeastLoaded => self.least_loaded(),
            Policy::Hook(_, hook) => {
                let info = TaskInfo {
                    node,
                    name,
                    firing,
                    tick,
                };
                let d = hook.choose(&info, &self.loads);
                if d >= domains {
                    return Err(d);
                }
                d
            }
        };
        Ok(d)
    }

    /// Tries to issue node `node`'s next task (firing `firing`) at `tick`.
    pub fn try_issue(&mut self, node: usize, firing: u64, tick: u64) -> Admit {
        self.try_issue_named(node, "", firing, tick)
    }

    /// [`Dispatcher::try_issue`] with the node's name (for hooks).
    pub fn try_issue_named(&mut self, node: usize, name: &str, firing: u64, tick: u64) -> Admit {
        self.try_issue_on(node, name, firing, tick, None, 1.0)
    }

    /// Tries to issue a task and, when `device` is given, has the device place it: a device
    /// that cannot take it leaves dispatch untouched (`Admit::Device`). `slowdown` is the node's
    /// §14 throttle factor.
    pub fn try_issue_on(
        &mut self,
        node: usize,
        name: &str,
        firing: u64,
        tick: u64,
        device: Option<&mut dyn crate::device::Device>,
        slowdown: f64,
    ) -> Admit {
        let d = match self.choose(node, firing, tick, name) {
            Ok(d) => d,
            Err(bad) => return Admit::BadHook(bad),
        };
        let di = d as usize;
        if let Some(w) = self.config.window {
            let scope = if self.window_used.len() > 1 { di } else { 0 };
            if self.window_used[scope] >= w.size {
                return Admit::WindowFull;
            }
        }
        if let Some(workers) = self.config.workers
            && self.loads[di].busy_workers >= workers
        {
            return Admit::DeviceBusy(d);
        }
        let start = tick
            .max(self.loads[di].issue_free)
            .saturating_add(self.config.dispatch_cost);
        let placed = match device {
            Some(dev) => match dev.place(&crate::device::TaskRequest {
                node,
                domain: d,
                start_tick: start,
                slowdown,
            }) {
                Ok(p) => Some(p),
                Err(stall) => return Admit::Device(d, stall),
            },
            None => None,
        };
        // Issued: commit.
        if let Some(k) = self.kept.get_mut(node) {
            *k = None;
        }
        if self.config.window.is_some() {
            let scope = if self.window_used.len() > 1 { di } else { 0 };
            self.window_used[scope] += 1;
            self.window_high_water = self.window_high_water.max(self.window_used());
        }
        let load = &mut self.loads[di];
        load.issue_free = start;
        load.in_flight += 1;
        load.busy_workers += 1;
        let st = &mut self.stats[di];
        st.tasks += 1;
        st.issue_ticks += self.config.dispatch_cost;
        st.in_flight_high_water = st.in_flight_high_water.max(load.in_flight);
        Admit::Issued(Ticket {
            domain: d,
            start,
            placed,
            issued: tick,
            step: self.step,
        })
    }

    /// A task completed: its worker and window slot free now, or — when it completes in the
    /// step that issued it (`L = 0`) — at the next step.
    pub fn retire(&mut self, ticket: Ticket, _tick: u64) {
        if ticket.step == self.step {
            self.deferred.push(ticket);
        } else {
            self.release(ticket);
        }
    }

    /// Resources freed at the next step: the step must be followed by another at `δ+1`.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Frees the resources of tasks retired in the previous step and starts a new step.
    pub fn begin_step(&mut self) {
        self.step += 1;
        let deferred = std::mem::take(&mut self.deferred);
        for t in &deferred {
            self.release(*t);
        }
        self.deferred = deferred;
        self.deferred.clear();
    }

    /// Device tokens of tasks released since the last call (the device reclaims them).
    pub fn take_released(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.released)
    }

    fn release(&mut self, t: Ticket) {
        if let Some(p) = t.placed {
            self.released.push(p.token);
        }
        let di = (t.domain as usize).min(self.loads.len() - 1);
        let load = &mut self.loads[di];
        load.in_flight = load.in_flight.saturating_sub(1);
        load.busy_workers = load.busy_workers.saturating_sub(1);
        if self.config.window.is_some() {
            let scope = if self.window_used.len() > 1 { di } else { 0 };
            self.window_used[scope] = self.window_used[scope].saturating_sub(1);
        }
    }
}
