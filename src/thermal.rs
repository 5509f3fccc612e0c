//! Thermal side channel (SPEC §14): per-node temperature driven by input energy and work power,
//! coupled by conductances, integrated exactly between events.
//!
//! A node with `thermal: (capacity C, resistance R, ambient T_amb, input_coeff k, work_power W)`
//! obeys `C·dT/dt = P(t) − (T − T_amb)/R − Σ_j G_ij·(T − T_j)`, where `P` is `W` times the
//! number of its firings busy at `t` (a firing issued while throttled by `factor` draws
//! `W / factor`: the same work energy spread over its longer run), each firing adds `k·Σx²` joules over its input tokens at
//! its fire instant, and `G_ij` are the `thermal_links` conductances. Power is piecewise
//! constant, so between events the solution is closed-form:
//!
//! - an uncoupled node: `T(t+Δ) = T_amb + P·R + (T − T_amb − P·R)·e^{−Δ/(R·C)}`;
//! - a coupled group: the exponential of its symmetric mode matrix (below), exact for any `Δ`,
//!   so the method is unconditionally stable (every mode decays).
//!
//! Integration is lazy: a group is advanced only when one of its nodes has an event (a deposit,
//! a power change) or someone reads its temperature, so the cost follows the active nodes, not
//! the number of nodes times steps. Temperature never touches token values; it changes timing
//! only through `throttle`.
//!
//! ```
//! use tapwheel::thermal::{ThermalNet, ThermalNode};
//! use tapwheel::scene::ThermalSpec;
//! // C = 0.5 J/K, R = 20 K/W (τ = 10 s), 2 W of work for 10 s starting at t = 0 (tick_hz 1).
//! let spec = ThermalSpec { capacity: 0.5, resistance: 20.0, ambient: 300.0, input_coeff: 0.0, work_power: 2.0 };
//! let mut net = ThermalNet::new(1.0, 1, &[ThermalNode { node: 0, spec, throttle: None }], &[]).unwrap();
//! net.record(0, 0, 0.0, Some((0.0, 10.0))); // no input energy, busy [0, 10)
//! net.integrate();
//! let t = net.temperature(0, 10).unwrap();
//! assert!((t - (300.0 + 2.0 * 20.0 * (1.0 - (-1.0f64).exp()))).abs() < 1e-12);
//! // After the work ends the excess decays with τ = R·C: e^{-1} of it is left 10 s later.
//! let later = net.temperature(0, 20).unwrap();
//! assert!(((later - 300.0) - (t - 300.0) * (-1.0f64).exp()).abs() < 1e-12);
//! ```

use crate::scene::{ThermalSpec, ThrottleSpec};
use bevy_ecs::prelude::Resource;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::Arc;

/// The largest coupled group tapwheel integrates: its modes cost O(n³) once and O(n²) per event.
pub const MAX_COUPLED_GROUP: usize = 256;

/// Sub-intervals per integration interval on which a node of a coupled group of three or more is
/// searched for an interior temperature maximum. A pair needs none: its `u_i'` is a sum of two
/// exponentials with at most one root, which the interval's ends bracket.
const PEAK_GRID: usize = 16;

/// A latency under throttle: `⌈latency · factor⌉` ticks (a throttled firing never ends early).
///
/// ```
/// use tapwheel::thermal::throttled_latency;
/// assert_eq!(throttled_latency(10, 1.0), 10);
/// assert_eq!(throttled_latency(10, 2.0), 20);
/// assert_eq!(throttled_latency(5, 1.5), 8); // 7.5 rounds up
/// assert_eq!(throttled_latency(0, 4.0), 0);
/// ```
pub fn throttled_latency(latency: u64, factor: f64) -> u64 {
    if factor == 1.0 {
        return latency;
    }
    let l = (latency as f64 * factor).ceil();
    if l >= u64::MAX as f64 {
        u64::MAX
    } else {
        l as u64
    }
}

/// One thermal node as planned: its canonical index, its parameters and its throttle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalNode {
    pub node: u32,
    pub spec: ThermalSpec,
    pub throttle: Option<ThrottleSpec>,
}

/// A firing's thermal effect, recorded by `kernel_execute` and applied by `thermal_integrate`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Deposit {
    node: u32,
    tick: u64,
    joules: f64,
    /// The busy interval `[start, end)` in (fractional) ticks.
    busy: Option<(f64, f64)>,
    /// Issued while throttled: draws `work_power / factor`.
    throttled: bool,
}

/// The state of one thermal node.
#[derive(Debug, Clone)]
struct NodeState {
    node: u32,
    spec: ThermalSpec,
    throttle: Option<ThrottleSpec>,
    temperature: f64,
    peak: f64,
    /// Joules from input energy and work.
    heat_in: f64,
    /// Joules lost to ambient through `R`.
    dissipated: f64,
    /// Net joules received through `thermal_links`.
    coupled_in: f64,
    /// Firings of the node busy at the group's time, at full power and throttled.
    busy: u32,
    busy_throttled: u32,
    /// Pending busy-count changes `(tick, ±1, throttled)`, in time order (ties keep insertion
    /// order).
    changes: VecDeque<(f64, i32, bool)>,
}

impl NodeState {
    fn power(&self) -> f64 {
        let throttled = match self.throttle {
            Some(th) if self.busy_throttled > 0 => f64::from(self.busy_throttled) / th.factor,
            _ => 0.0,
        };
        (f64::from(self.busy) + throttled) * self.spec.work_power
    }

    fn schedule(&mut self, at: f64, delta: i32, throttled: bool) {
        let pos = self.changes.partition_point(|&(t, _, _)| t <= at);
        self.changes.insert(pos, (at, delta, throttled));
    }

    /// A copy without the pending changes.
    fn scalars(&self) -> NodeState {
        NodeState {
            changes: VecDeque::new(),
            ..*self
        }
    }

    /// Applies one busy-count change.
    fn apply(&mut self, delta: i32, throttled: bool) {
        let count = if throttled {
            &mut self.busy_throttled
        } else {
            &mut self.busy
        };
        *count = count.saturating_add_signed(delta);
    }

    fn deposit(&mut self, joules: f64) {
        self.heat_in += joules;
        self.temperature += joules / self.spec.capacity;
        self.peak = self.peak.max(self.temperature);
    }
}

/// The modes of a coupled group: `M = C^{-1/2}·(D + K)·C^{-1/2} = V·Λ·Vᵀ`, with `D = diag(1/R)`
/// and `K` the Laplacian of the links' conductances.
#[derive(Debug)]
struct Modes {
    lambda: Vec<f64>,
    /// Row-major `n×n`: `v[i·n + k]` is component `i` of mode `k`.
    v: Vec<f64>,
    inv_sqrt_c: Vec<f64>,
    /// The Laplacian `K`, row-major.
    laplacian: Vec<f64>,
    /// `K·T_amb`: with unequal ambients the links carry heat even at rest.
    k_ambient: Vec<f64>,
}

/// Nodes integrated together: one uncoupled node, or a connected component of `thermal_links`.
#[derive(Debug, Clone)]
struct Group {
    /// The tick the members' states hold for.
    time: f64,
    members: Vec<NodeState>,
    modes: Option<Arc<Modes>>,
}

/// Why a thermal network cannot be built (the plan reports these as located errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThermalError {
    /// A coupled group larger than [`MAX_COUPLED_GROUP`] (its first node, its size).
    GroupTooLarge { first: u32, size: usize },
}

/// Every thermal node of a run and the deposits of the current step (a resource).
#[derive(Resource, Debug, Clone, Default)]
pub struct ThermalNet {
    tick_hz: f64,
    groups: Vec<Group>,
    /// Canonical node index → (group, member).
    locate: Vec<Option<(u32, u32)>>,
    inbox: Vec<Deposit>,
    /// Closed-form steps taken on the run's state (reads on copies are not counted).
    steps: u64,
}

impl ThermalNet {
    /// Builds the network of `nodes` (canonical order) out of `node_count` nodes, coupled by
    /// `links` `(a, b, conductance)`; nodes start at their ambient temperature.
    pub fn new(
        tick_hz: f64,
        node_count: usize,
        nodes: &[ThermalNode],
        links: &[(u32, u32, f64)],
    ) -> Result<ThermalNet, ThermalError> {
        let mut locate = vec![None; node_count];
        let mut slot_of = vec![usize::MAX; node_count];
        for (s, n) in nodes.iter().enumerate() {
            if let Some(x) = slot_of.get_mut(n.node as usize) {
                *x = s;
            }
        }
        // Connected components by union–find over the links, in canonical order.
        let mut parent: Vec<usize> = (0..nodes.len()).collect();
        fn root(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let slot = |n: u32| {
            slot_of
                .get(n as usize)
                .copied()
                .filter(|&s| s != usize::MAX)
        };
        for &(a, b, _) in links {
            if let (Some(a), Some(b)) = (slot(a), slot(b)) {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                let (lo, hi) = (ra.min(rb), ra.max(rb));
                parent[hi] = lo;
            }
        }
        let mut group_of_root = vec![usize::MAX; nodes.len()];
        let mut members: Vec<Vec<usize>> = Vec::new();
        for s in 0..nodes.len() {
            let r = root(&mut parent, s);
            if group_of_root[r] == usize::MAX {
                group_of_root[r] = members.len();
                members.push(Vec::new());
            }
            members[group_of_root[r]].push(s);
        }
        let mut groups = Vec::with_capacity(members.len());
        for (g, ms) in members.iter().enumerate() {
            if ms.len() > MAX_COUPLED_GROUP {
                return Err(ThermalError::GroupTooLarge {
                    first: nodes[ms[0]].node,
                    size: ms.len(),
                });
            }
            let states: Vec<NodeState> = ms
                .iter()
                .enumerate()
                .map(|(m, &s)| {
                    let n = nodes[s];
                    if let Some(l) = locate.get_mut(n.node as usize) {
                        *l = Some((g as u32, m as u32));
                    }
                    NodeState {
                        node: n.node,
                        spec: n.spec,
                        throttle: n.throttle,
                        temperature: n.spec.ambient,
                        peak: n.spec.ambient,
                        heat_in: 0.0,
                        dissipated: 0.0,
                        coupled_in: 0.0,
                        busy: 0,
                        busy_throttled: 0,
                        changes: VecDeque::new(),
                    }
                })
                .collect();
            let modes = (ms.len() > 1).then(|| {
                let member_of = |n: u32| states.iter().position(|s| s.node == n);
                let len = ms.len();
                let mut lap = vec![0.0; len * len];
                for &(a, b, g) in links {
                    if let (Some(i), Some(j)) = (member_of(a), member_of(b)) {
                        lap[i * len + j] -= g;
                        lap[j * len + i] -= g;
                        lap[i * len + i] += g;
                        lap[j * len + j] += g;
                    }
                }
                Arc::new(Modes::new(&states, lap))
            });
            groups.push(Group {
                time: 0.0,
                members: states,
                modes,
            });
        }
        Ok(ThermalNet {
            tick_hz,
            groups,
            locate,
            inbox: Vec::new(),
            steps: 0,
        })
    }

    /// No node has thermal state.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether node `node` (canonical index) has thermal state.
    pub fn has(&self, node: usize) -> bool {
        self.locate.get(node).is_some_and(Option::is_some)
    }

    fn member(&self, node: usize) -> Option<(usize, usize)> {
        self.locate
            .get(node)
            .copied()
            .flatten()
            .map(|(g, m)| (g as usize, m as usize))
    }

    /// Records a firing of `node` at `tick` whose inputs carry `sum_sq = Σx²`: it deposits
    /// `input_coeff · sum_sq` joules at `tick`, and `work_power` flows during its busy interval
    /// `[start, end)` (ticks) — divided by the throttle factor if the node was throttled when
    /// issued at `tick` (the judgement dispatch made). Applied by [`ThermalNet::integrate`].
    pub fn record(&mut self, node: usize, tick: u64, sum_sq: f64, busy: Option<(f64, f64)>) {
        if let Some((g, m)) = self.member(node) {
            let joules = self.groups[g].members[m].spec.input_coeff * sum_sq;
            let throttled = self.throttle_factor(node, tick) != 1.0;
            self.inbox.push(Deposit {
                node: node as u32,
                tick,
                joules,
                busy,
                throttled,
            });
        }
    }

    /// Applies the recorded firings in order: each group is advanced to the firing's tick, the
    /// input energy is deposited and the busy interval scheduled.
    pub fn integrate(&mut self) {
        let inbox = std::mem::take(&mut self.inbox);
        for d in &inbox {
            let Some((g, m)) = self.member(d.node as usize) else {
                continue;
            };
            let hz = self.tick_hz;
            let group = &mut self.groups[g];
            self.steps += group.advance_to(d.tick as f64, hz);
            let state = &mut group.members[m];
            if d.joules != 0.0 {
                state.deposit(d.joules);
            }
            if let Some((s, e)) = d.busy
                && e > s
                && state.spec.work_power != 0.0
            {
                state.schedule(s, 1, d.throttled);
                state.schedule(e, -1, d.throttled);
            }
        }
        let mut inbox = inbox;
        inbox.clear();
        self.inbox = inbox;
    }

    /// The temperature of `node` at `tick` (kelvin), with every firing applied so far; reads
    /// without changing the network.
    pub fn temperature(&self, node: usize, tick: u64) -> Option<f64> {
        let (g, m) = self.member(node)?;
        let group = &self.groups[g];
        let t = tick as f64;
        if group.time == t && group.pending_before(t).is_none() {
            return Some(group.members[m].temperature);
        }
        if group.modes.is_none() {
            // One node: walk its pending changes on a copy of its scalars (no allocation).
            let src = &group.members[m];
            let mut s = src.scalars();
            let mut time = group.time;
            for &(at, d, throttled) in src.changes.iter().take_while(|c| c.0 <= t) {
                if at > time {
                    evolve_single(&mut s, (at - time) / self.tick_hz);
                    time = at;
                }
                s.apply(d, throttled);
            }
            if t > time {
                evolve_single(&mut s, (t - time) / self.tick_hz);
            }
            return Some(s.temperature);
        }
        let mut copy = group.clone();
        let _ = copy.advance_to(t, self.tick_hz);
        Some(copy.members[m].temperature)
    }

    /// Integrates the group of `node` up to `tick` now, so that reads at `tick` are free. Valid
    /// because nothing is ever recorded before the current tick.
    pub fn advance(&mut self, node: usize, tick: u64) {
        if let Some((g, _)) = self.member(node) {
            let hz = self.tick_hz;
            self.steps += self.groups[g].advance_to(tick as f64, hz);
        }
    }

    /// Closed-form integration steps taken on the run's state so far: one per interval between
    /// a group's events, whatever the number of idle nodes.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The temperature a firing of `node` at `tick` with inputs `sum_sq = Σx²` publishes on its
    /// `temp` tap: after its own input energy and that of the node's firings recorded earlier
    /// in this step.
    pub fn temperature_at_fire(&self, node: usize, tick: u64, sum_sq: f64) -> Option<f64> {
        let (g, m) = self.member(node)?;
        let spec = self.groups[g].members[m].spec;
        let before = self.temperature(node, tick)?;
        let queued: f64 = self
            .inbox
            .iter()
            .filter(|d| d.node as usize == node)
            .map(|d| d.joules)
            .sum();
        Some(before + (queued + spec.input_coeff * sum_sq) / spec.capacity)
    }

    /// The latency multiplier of `node` at `tick`: its throttle `factor` while its temperature
    /// exceeds `t_max`, else 1.
    pub fn throttle_factor(&self, node: usize, tick: u64) -> f64 {
        let Some((g, m)) = self.member(node) else {
            return 1.0;
        };
        let Some(th) = self.groups[g].members[m].throttle else {
            return 1.0;
        };
        match self.temperature(node, tick) {
            Some(t) if t > th.t_max => th.factor,
            _ => 1.0,
        }
    }

    /// Every thermal node's state integrated to `tick` (read-only), in canonical order.
    pub fn states_at(&self, tick: u64) -> Vec<ThermalReport> {
        let mut out = Vec::new();
        for group in &self.groups {
            let mut copy = group.clone();
            let _ = copy.advance_to(tick as f64, self.tick_hz);
            for s in &copy.members {
                out.push(ThermalReport {
                    node: s.node,
                    final_k: s.temperature,
                    peak_k: s.peak,
                    heat_in_j: s.heat_in,
                    dissipated_j: s.dissipated,
                    coupled_in_j: s.coupled_in,
                    stored_j: s.spec.capacity * (s.temperature - s.spec.ambient),
                });
            }
        }
        out.sort_by_key(|r| r.node);
        out
    }

    /// The report's `thermal` object: per node (by name) `final` and `peak` (kelvin) and its
    /// energy account (joules), and the network's totals.
    pub fn report_json(&self, tick: u64, name_of: impl Fn(u32) -> String) -> Value {
        let states = self.states_at(tick);
        let mut nodes = Map::new();
        let (mut heat, mut stored, mut lost) = (0.0, 0.0, 0.0);
        for s in &states {
            heat += s.heat_in_j;
            stored += s.stored_j;
            lost += s.dissipated_j;
            nodes.insert(
                name_of(s.node),
                json!({
                    "final": s.final_k,
                    "peak": s.peak_k,
                    "heat_in_j": s.heat_in_j,
                    "stored_j": s.stored_j,
                    "dissipated_j": s.dissipated_j,
                    "coupled_in_j": s.coupled_in_j,
                }),
            );
        }
        json!({
            "nodes": nodes,
            "energy": {"heat_in_j": heat, "stored_j": stored, "dissipated_j": lost},
        })
    }
}

/// One node's thermal state at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalReport {
    pub node: u32,
    /// Temperature at `end_tick` (kelvin).
    pub final_k: f64,
    /// Highest temperature reached up to `end_tick`.
    pub peak_k: f64,
    /// Joules in: input energy plus work.
    pub heat_in_j: f64,
    /// Joules lost to ambient through `R`.
    pub dissipated_j: f64,
    /// Net joules received through `thermal_links` (they sum to zero over a group).
    pub coupled_in_j: f64,
    /// `C·(T − T_amb)`: heat in + coupled in = stored + dissipated.
    pub stored_j: f64,
}

impl Group {
    /// The earliest pending power change at or before `t`.
    fn pending_before(&self, t: f64) -> Option<f64> {
        self.members
            .iter()
            .filter_map(|m| m.changes.front().map(|c| c.0))
            .filter(|&c| c <= t)
            .min_by(f64::total_cmp)
    }

    /// Integrates the group from its time to `t` (ticks), through its pending power changes.
    /// Returns the number of closed-form steps taken.
    fn advance_to(&mut self, t: f64, tick_hz: f64) -> u64 {
        let mut steps = 0;
        while let Some(c) = self.pending_before(t) {
            if c > self.time {
                self.evolve((c - self.time) / tick_hz);
                self.time = c;
                steps += 1;
            }
            for m in &mut self.members {
                while m.changes.front().is_some_and(|&(at, _, _)| at <= c) {
                    if let Some((_, d, throttled)) = m.changes.pop_front() {
                        m.apply(d, throttled);
                    }
                }
            }
        }
        if t > self.time {
            self.evolve((t - self.time) / tick_hz);
            self.time = t;
            steps += 1;
        }
        steps
    }

    /// Advances every member by `dt` seconds at constant power.
    fn evolve(&mut self, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        match self.modes.clone() {
            None => {
                for s in &mut self.members {
                    evolve_single(s, dt);
                }
            }
            Some(modes) => evolve_coupled(&mut self.members, &modes, dt),
        }
    }
}

/// `T(t+Δ) = T_amb + P·R + (T − T_amb − P·R)·e^{−Δ/τ}`; the heat lost is its exact integral.
fn evolve_single(s: &mut NodeState, dt: f64) {
    let (c, r) = (s.spec.capacity, s.spec.resistance);
    let p = s.power();
    let tau = r * c;
    let u0 = s.temperature - s.spec.ambient;
    let u_inf = p * r;
    // 1 − e^{−Δ/τ}, accurate for small Δ.
    let gone = -(-dt / tau).exp_m1();
    let u1 = u0 + (u_inf - u0) * gone;
    s.heat_in += p * dt;
    s.dissipated += (u_inf * dt + (u0 - u_inf) * tau * gone) / r;
    s.temperature = s.spec.ambient + u1;
    // Between events the temperature moves monotonically: the peak is at an end.
    s.peak = s.peak.max(s.temperature);
}

/// Exact step of a coupled group in its modes: with `u = T − T_amb`, `w = C^{1/2}·u`,
/// `z = Vᵀ·w` and forcing `g = Vᵀ·C^{-1/2}·(P − K·T_amb)`, each mode obeys `ż = g − λ·z`.
fn evolve_coupled(ms: &mut [NodeState], modes: &Modes, dt: f64) {
    let n = ms.len();
    let v = &modes.v;
    let mut z0 = vec![0.0; n];
    let mut target = vec![0.0; n];
    let w: Vec<f64> = ms
        .iter()
        .map(|s| s.spec.capacity.sqrt() * (s.temperature - s.spec.ambient))
        .collect();
    let f: Vec<f64> = ms
        .iter()
        .enumerate()
        .map(|(i, s)| modes.inv_sqrt_c[i] * (s.power() - modes.k_ambient[i]))
        .collect();
    for i in 0..n {
        let row = &v[i * n..(i + 1) * n];
        for k in 0..n {
            z0[k] += row[k] * w[i];
            target[k] += row[k] * f[i];
        }
    }
    for (t, l) in target.iter_mut().zip(&modes.lambda) {
        *t /= l;
    }
    // z(τ) = s + (z0 − s)·e^{−λτ}; ∫₀^Δ z = s·Δ + (z0 − s)·(1 − e^{−λΔ})/λ.
    let mut z1 = vec![0.0; n];
    let mut z_int = vec![0.0; n];
    for k in 0..n {
        let l = modes.lambda[k];
        let gone = -(-l * dt).exp_m1();
        z1[k] = z0[k] + (target[k] - z0[k]) * gone;
        z_int[k] = target[k] * dt + (z0[k] - target[k]) * gone / l;
    }
    let back = |i: usize, z: &[f64]| -> f64 {
        modes.inv_sqrt_c[i] * (0..n).map(|k| v[i * n + k] * z[k]).sum::<f64>()
    };
    let u_int: Vec<f64> = (0..n).map(|i| back(i, &z_int)).collect();
    // Interior maxima: u_i(τ) = C_i^{-1/2}·Σ_k v_ik·(s_k + a_k·e^{−λ_k τ}) with a = z0 − s, so
    // u_i' has the sign of −Σ_k v_ik·a_k·λ_k·e^{−λ_k τ}. Where it turns from + to − between
    // grid points, bisection finds the maximum (exact for pairs: their u_i' has one root).
    let slope: Vec<f64> = (0..n * n)
        .map(|ik| {
            let k = ik % n;
            -v[ik] * (z0[k] - target[k]) * modes.lambda[k]
        })
        .collect();
    let du = |i: usize, tau: f64| -> f64 {
        (0..n)
            .map(|k| slope[i * n + k] * (-modes.lambda[k] * tau).exp())
            .sum()
    };
    let u_at = |i: usize, tau: f64| -> f64 {
        let u: f64 = (0..n)
            .map(|k| {
                v[i * n + k] * (target[k] + (z0[k] - target[k]) * (-modes.lambda[k] * tau).exp())
            })
            .sum();
        u * modes.inv_sqrt_c[i]
    };
    let mut d_prev: Vec<f64> = (0..n)
        .map(|i| slope[i * n..(i + 1) * n].iter().sum())
        .collect();
    let mut decay = vec![0.0; n];
    let grid = if n <= 2 { 1 } else { PEAK_GRID };
    for step in 1..=grid {
        let hi = dt * step as f64 / grid as f64;
        let lo = dt * (step - 1) as f64 / grid as f64;
        for (k, e) in decay.iter_mut().enumerate() {
            *e = (-modes.lambda[k] * hi).exp();
        }
        for (i, s) in ms.iter_mut().enumerate() {
            let d_hi: f64 = (0..n).map(|k| slope[i * n + k] * decay[k]).sum();
            if d_prev[i] > 0.0 && d_hi <= 0.0 {
                let (mut a, mut b) = (lo, hi);
                for _ in 0..200 {
                    let mid = 0.5 * (a + b);
                    if mid <= a || mid >= b {
                        break;
                    }
                    if du(i, mid) > 0.0 {
                        a = mid;
                    } else {
                        b = mid;
                    }
                }
                let top = u_at(i, a).max(u_at(i, b));
                s.peak = s.peak.max(s.spec.ambient + top);
            }
            d_prev[i] = d_hi;
        }
    }
    for (i, s) in ms.iter_mut().enumerate() {
        s.heat_in += s.power() * dt;
        s.dissipated += u_int[i] / s.spec.resistance;
        s.temperature = s.spec.ambient + back(i, &z1);
        s.peak = s.peak.max(s.temperature);
    }
    // Heat through the links: −(K·∫T)_i.
    let ambients: Vec<f64> = ms.iter().map(|s| s.spec.ambient).collect();
    for (i, s) in ms.iter_mut().enumerate() {
        let flow: f64 = (0..n)
            .map(|j| modes.laplacian[i * n + j] * (u_int[j] + ambients[j] * dt))
            .sum();
        s.coupled_in -= flow;
    }
}

impl Modes {
    fn new(states: &[NodeState], laplacian: Vec<f64>) -> Modes {
        let n = states.len();
        let inv_sqrt_c: Vec<f64> = states
            .iter()
            .map(|s| 1.0 / s.spec.capacity.sqrt())
            .collect();
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let d = if i == j {
                    1.0 / states[i].spec.resistance
                } else {
                    0.0
                };
                m[i * n + j] = (laplacian[i * n + j] + d) * inv_sqrt_c[i] * inv_sqrt_c[j];
            }
        }
        let (lambda, v) = symmetric_eigen(&m, n);
        let k_ambient = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| laplacian[i * n + j] * states[j].spec.ambient)
                    .sum()
            })
            .collect();
        Modes {
            lambda,
            v,
            inv_sqrt_c,
            laplacian,
            k_ambient,
        }
    }
}

/// Eigenvalues and eigenvectors of the symmetric `n×n` matrix `a` (row-major) by cyclic Jacobi
/// rotations: returns `(λ, V)` with `A = V·diag(λ)·Vᵀ`, `V` row-major with the eigenvectors as
/// columns. Accurate to rounding for the small, well-conditioned matrices of thermal groups.
///
/// ```
/// use tapwheel::thermal::symmetric_eigen;
/// // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with eigenvectors (1, −1)/√2 and (1, 1)/√2.
/// let (l, v) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
/// let mut sorted = l.clone();
/// sorted.sort_by(f64::total_cmp);
/// assert!((sorted[0] - 1.0).abs() < 1e-14 && (sorted[1] - 3.0).abs() < 1e-14);
/// // A·v_k = λ_k·v_k for every column k.
/// for k in 0..2 {
///     let av0 = 2.0 * v[k] + v[2 + k];
///     assert!((av0 - l[k] * v[k]).abs() < 1e-14);
/// }
/// ```
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    // Rows of `vt` are the eigenvectors (contiguous rotations); transposed on return.
    let mut vt = vec![0.0; n * n];
    for i in 0..n {
        vt[i * n + i] = 1.0;
    }
    for _sweep in 0..64 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                // Below rounding of the diagonal: the element is zero for every purpose.
                if apq.abs() <= 1e-3 * f64::EPSILON * (app.abs() + aqq.abs()) {
                    a[p * n + q] = 0.0;
                    a[q * n + p] = 0.0;
                    continue;
                }
                rotated = true;
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A' = Jᵀ·A·J touches rows (and, by symmetry, columns) p and q only.
                for k in 0..n {
                    if k == p || k == q {
                        continue;
                    }
                    let (akp, akq) = (a[p * n + k], a[q * n + k]);
                    let (np, nq) = (c * akp - s * akq, s * akp + c * akq);
                    a[p * n + k] = np;
                    a[q * n + k] = nq;
                    a[k * n + p] = np;
                    a[k * n + q] = nq;
                }
                a[p * n + p] = app - t * apq;
                a[q * n + q] = aqq + t * apq;
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                // p < q: row p lies before row q.
                let (lo, hi) = vt.split_at_mut(q * n);
                let (rp, rq) = (&mut lo[p * n..(p + 1) * n], &mut hi[..n]);
                for (x, y) in rp.iter_mut().zip(rq.iter_mut()) {
                    let (vp, vq) = (*x, *y);
                    *x = c * vp - s * vq;
                    *y = s * vp + c * vq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            v[i * n + k] = vt[k * n + i];
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}
