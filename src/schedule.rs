//! Schedule planning (SPEC §5, §6): the IPLS stage list (validated, or derived by `IplsAuto`),
//! synchrony gates, and the *effective stage* at which every node is evaluated in a step.
//!
//! **Stages are barriers.** Within a step, stages run in order and cohorts in order; zero-time
//! outputs of a stage are visible to later stages of the same step, never to its own stage.
//! An order that sends zero-time tokens backwards (or within a stage) is legal but costs an
//! extra delta, so the planner warns (W260):
//!
//! ```
//! use tapwheel::{Plan, Scene};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "s",
//!     nodes: [Node(name: "src", kernel: Const(value: 1.0), count: Some(1)),
//!             Node(name: "g", kernel: Gain(gain: 2.0)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")],
//!     schedule: Ipls(stages: [
//!         Stage(cohorts: [Cohort(kind: "Const", nodes: ["src"])]),
//!         Stage(cohorts: [Cohort(kind: "Probe", nodes: ["out"]), Cohort(kind: "Gain", nodes: ["g"])]),
//!     ]))"#, "s.ron", ".".into()).unwrap();
//! let plan = Plan::compile(&scene).unwrap();
//! assert_eq!(plan.schedule.stages.len(), 2);
//! // g and out share stage 1: g's zero-time output reaches out only in the next delta.
//! assert_eq!(plan.warnings.len(), 1);
//! assert_eq!(plan.warnings[0].code, "W260");
//! assert!(plan.warnings[0].message.contains("g.out->out.in"));
//! ```
//!
//! **IplsAuto** puts every node on its topological level over zero-time channels (delay 0 from a
//! node with latency 0) and groups each level into cohorts by kernel kind, in canonical order:
//!
//! ```
//! use tapwheel::schedule::auto_levels;
//! // 0 → 1 → 2 and 0 → 2: node 2 sits one level below node 1.
//! assert_eq!(auto_levels(3, &[(0, 1, false), (1, 2, false), (0, 2, false)]), vec![0, 1, 2]);
//! // A feedback channel with initial tokens closes a cycle: it is the edge the levels ignore.
//! assert_eq!(auto_levels(2, &[(0, 1, false), (1, 0, true)]), vec![0, 1]);
//! // An initial-token channel outside any cycle still orders its ends.
//! assert_eq!(auto_levels(2, &[(1, 0, true)]), vec![1, 0]);
//! ```
//!
//! **Gates** open at the stage of their first member (in stage order); every member is evaluated
//! and fired there, so all members of a gate share one effective stage:
//!
//! ```
//! use tapwheel::schedule::effective_stages;
//! // Nodes 0, 1, 2 in stages 0, 1, 2; a gate over nodes 1 and 2 moves node 2 to stage 1.
//! let (stage_of, gate_stage) = effective_stages(&[0, 1, 2], &[vec![1, 2]]);
//! assert_eq!(stage_of, vec![0, 1, 1]);
//! assert_eq!(gate_stage, vec![1]);
//! ```

use crate::error::Diagnostic;
use crate::plan::{PlanChannel, PlanNode};
use crate::scene::{GateSpec, NodeSpec, ScheduleSpec};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How a step orders its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum ScheduleMode {
    /// Every enabled node fires in each step, one by one in canonical order (§5 `Kpn`).
    #[default]
    Kpn,
    /// Stages from topological levels over zero-time channels, cohorts by kernel kind.
    IplsAuto,
    /// The scene's own stage list.
    Ipls,
}

impl ScheduleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleMode::Kpn => "kpn",
            ScheduleMode::IplsAuto => "ipls-auto",
            ScheduleMode::Ipls => "ipls",
        }
    }
}

/// Nodes of one kernel kind that fire as one batched call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanCohort {
    pub kind: String,
    pub nodes: Vec<usize>,
}

/// One stage: its cohorts, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStage {
    pub cohorts: Vec<PlanCohort>,
}

/// The planned schedule. Under `Kpn` there are no stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PlanSchedule {
    pub mode: ScheduleMode,
    pub stages: Vec<PlanStage>,
}

impl PlanSchedule {
    pub fn is_kpn(&self) -> bool {
        self.mode == ScheduleMode::Kpn
    }

    /// The declared stage of every node (0 for all under `Kpn`).
    pub fn stage_of(&self, nodes: usize) -> Vec<u32> {
        let mut out = vec![0; nodes];
        for (s, st) in self.stages.iter().enumerate() {
            for c in &st.cohorts {
                for &n in &c.nodes {
                    if let Some(x) = out.get_mut(n) {
                        *x = s as u32;
                    }
                }
            }
        }
        out
    }
}

/// A synchrony gate (§6): its members fire together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanGate {
    pub name: String,
    /// Member nodes, in canonical order.
    pub members: Vec<usize>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Resolves `gates` and the nodes' `gate:` fields into gates with their members (E255–E258).
pub(crate) fn plan_gates(
    errors: &mut Vec<Diagnostic>,
    gates: &[GateSpec],
    nodes: &[NodeSpec],
    by_name: &crate::plan::NameIndex<'_>,
) -> Vec<PlanGate> {
    let mut out: Vec<PlanGate> = Vec::with_capacity(gates.len());
    let mut gate_index: HashMap<&str, usize> = HashMap::new();
    // The gate (and the path that put it there) each node belongs to.
    let mut member_of: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    for (gi, g) in gates.iter().enumerate() {
        let path = format!("gates[{gi}]");
        if !valid_name(&g.name) {
            errors.push(Diagnostic::at(
                "E255",
                format!("{path}.name"),
                format!("gate name `{}` must match [A-Za-z0-9_]+", g.name),
            ));
        }
        if let Some(&first) = gate_index.get(g.name.as_str()) {
            errors.push(Diagnostic::at(
                "E255",
                format!("{path}.name"),
                format!("gate name `{}` is already used by gates[{first}]", g.name),
            ));
        } else {
            gate_index.insert(g.name.as_str(), gi);
        }
        out.push(PlanGate {
            name: g.name.clone(),
            members: Vec::new(),
        });
        for (j, m) in g.members.iter().enumerate() {
            let mpath = format!("{path}.members[{j}]");
            let Some(&n) = by_name.get(m.as_str()) else {
                errors.push(Diagnostic::at(
                    "E256",
                    mpath,
                    format!("gate `{}` names unknown node `{m}`", g.name),
                ));
                continue;
            };
            if let Some((other, first)) = member_of.get(&n) {
                let msg = if *other == gi {
                    format!("node `{m}` is listed twice in gate `{}` ({first})", g.name)
                } else {
                    format!(
                        "node `{m}` is already a member of gate `{}` ({first}); a node belongs to at most one gate",
                        gates[*other].name
                    )
                };
                errors.push(Diagnostic::at("E257", mpath, msg));
                continue;
            }
            member_of.insert(n, (gi, mpath));
            out[gi].members.push(n);
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let Some(g) = &n.gate else {
            continue;
        };
        let path = format!("nodes[{i}].gate");
        let Some(&gi) = gate_index.get(g.as_str()) else {
            errors.push(Diagnostic::at(
                "E256",
                path,
                format!(
                    "node `{}` names gate `{g}`, which `gates` does not declare",
                    n.name
                ),
            ));
            continue;
        };
        match member_of.get(&i) {
            Some((other, first)) if *other != gi => errors.push(Diagnostic::at(
                "E257",
                path,
                format!(
                    "node `{}` names gate `{g}` but is a member of gate `{}` ({first})",
                    n.name, gates[*other].name
                ),
            )),
            Some(_) => {}
            None => {
                member_of.insert(i, (gi, path));
                out[gi].members.push(i);
            }
        }
    }
    for (gi, g) in out.iter_mut().enumerate() {
        g.members.sort_unstable();
        if g.members.is_empty() && gates[gi].members.is_empty() {
            errors.push(Diagnostic::at(
                "E258",
                format!("gates[{gi}].members"),
                format!("gate `{}` has no members", g.name),
            ));
        }
    }
    out
}

/// The zero-time channels as `(from, to, has_initial_tokens)`: delay 0 from a node whose
/// latency is 0 (a token written there can be consumed in the same tick).
pub fn zero_time_edges(nodes: &[PlanNode], channels: &[PlanChannel]) -> Vec<(usize, usize, bool)> {
    channels
        .iter()
        .filter(|c| c.delay == 0 && nodes[c.from_node].latency == 0)
        .map(|c| (c.from_node, c.to_node, !c.initial.is_empty()))
        .collect()
}

/// Topological levels over zero-time edges `(from, to, has_initial_tokens)`: a node's level is
/// one more than the deepest producer feeding it. Initial-token edges inside a cycle are ignored
/// (they are what makes the cycle legal, §3); every other edge orders its ends.
pub fn auto_levels(nodes: usize, edges: &[(usize, usize, bool)]) -> Vec<u32> {
    let mut adj = vec![Vec::new(); nodes];
    for &(a, b, _) in edges {
        if a < nodes && b < nodes {
            adj[a].push(b);
        }
    }
    let mut comp = vec![usize::MAX; nodes];
    for (k, scc) in crate::plan::tarjan(&adj).into_iter().enumerate() {
        for v in scc {
            comp[v] = k;
        }
    }
    let kept: Vec<(usize, usize)> = edges
        .iter()
        .filter(|&&(a, b, init)| a < nodes && b < nodes && !(init && comp[a] == comp[b]))
        .map(|&(a, b, _)| (a, b))
        .collect();
    let mut succ = vec![Vec::new(); nodes];
    let mut indeg = vec![0usize; nodes];
    for &(a, b) in &kept {
        if a != b {
            succ[a].push(b);
            indeg[b] += 1;
        }
    }
    let mut level = vec![0u32; nodes];
    let mut queue: std::collections::VecDeque<usize> =
        (0..nodes).filter(|&v| indeg[v] == 0).collect();
    let mut done = 0;
    while let Some(v) = queue.pop_front() {
        done += 1;
        for &w in &succ[v] {
            level[w] = level[w].max(level[v] + 1);
            indeg[w] -= 1;
            if indeg[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    if done < nodes {
        // A zero-time cycle without initial tokens is a plan error (E240) reported before
        // schedules are planned; should one slip through, its nodes go last rather than panic.
        let last = level.iter().copied().max().unwrap_or(0) + 1;
        for v in 0..nodes {
            if indeg[v] > 0 {
                level[v] = last;
            }
        }
    }
    level
}

/// Plans the schedule: validates an explicit IPLS (E250–E254, W260) or derives `IplsAuto`.
pub(crate) fn plan_schedule(
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
    spec: &crate::scene::ScheduleSpec,
    nodes: &[PlanNode],
    channels: &[PlanChannel],
    by_name: &crate::plan::NameIndex<'_>,
) -> PlanSchedule {
    match spec {
        ScheduleSpec::Kpn => PlanSchedule::default(),
        ScheduleSpec::IplsAuto => {
            let edges = zero_time_edges(nodes, channels);
            let level = auto_levels(nodes.len(), &edges);
            let depth = level.iter().copied().max().map_or(0, |m| m as usize + 1);
            let mut stages: Vec<PlanStage> = (0..depth)
                .map(|_| PlanStage {
                    cohorts: Vec::new(),
                })
                .collect();
            for (i, n) in nodes.iter().enumerate() {
                let st = &mut stages[level[i] as usize];
                let kind = n.kernel.kind();
                match st.cohorts.iter_mut().find(|c| c.kind == kind) {
                    Some(c) => c.nodes.push(i),
                    None => st.cohorts.push(PlanCohort {
                        kind: kind.to_string(),
                        nodes: vec![i],
                    }),
                }
            }
            PlanSchedule {
                mode: ScheduleMode::IplsAuto,
                stages,
            }
        }
        ScheduleSpec::Ipls { stages } => {
            let mut seen: Vec<Option<String>> = vec![None; nodes.len()];
            let mut out = Vec::with_capacity(stages.len());
            for (si, st) in stages.iter().enumerate() {
                let spath = format!("schedule.stages[{si}]");
                if st.cohorts.is_empty() {
                    errors.push(Diagnostic::at(
                        "E254",
                        spath.clone(),
                        "a stage needs at least one cohort",
                    ));
                }
                let mut cohorts = Vec::with_capacity(st.cohorts.len());
                for (ci, co) in st.cohorts.iter().enumerate() {
                    let cpath = format!("{spath}.cohorts[{ci}]");
                    if co.nodes.is_empty() {
                        errors.push(Diagnostic::at(
                            "E254",
                            format!("{cpath}.nodes"),
                            format!("cohort `{}` lists no nodes", co.kind),
                        ));
                    }
                    let mut members = Vec::with_capacity(co.nodes.len());
                    for (k, name) in co.nodes.iter().enumerate() {
                        let npath = format!("{cpath}.nodes[{k}]");
                        let Some(&i) = by_name.get(name.as_str()) else {
                            errors.push(Diagnostic::at(
                                "E250",
                                npath,
                                format!("the schedule names unknown node `{name}`"),
                            ));
                            continue;
                        };
                        if let Some(first) = &seen[i] {
                            errors.push(Diagnostic::at(
                                "E251",
                                npath,
                                format!(
                                    "node `{name}` is already listed at {first}; an IPLS lists every node exactly once"
                                ),
                            ));
                            continue;
                        }
                        seen[i] = Some(npath.clone());
                        let kind = nodes[i].kernel.kind();
                        if kind != co.kind {
                            errors.push(Diagnostic::at(
                                "E253",
                                npath,
                                format!(
                                    "node `{name}` runs kernel `{kind}`, but its cohort's kind is `{}` (a cohort holds nodes of one kind)",
                                    co.kind
                                ),
                            ));
                        }
                        members.push(i);
                    }
                    cohorts.push(PlanCohort {
                        kind: co.kind.clone(),
                        nodes: members,
                    });
                }
                out.push(PlanStage { cohorts });
            }
            let missing: Vec<&str> = seen
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| nodes[i].name.as_str())
                .collect();
            if !missing.is_empty() {
                let shown: Vec<&str> = missing.iter().take(12).copied().collect();
                errors.push(Diagnostic::at(
                    "E252",
                    "schedule",
                    format!(
                        "{} node(s) are not listed in any stage: {}{} (an IPLS lists every node exactly once)",
                        missing.len(),
                        shown.join(", "),
                        if missing.len() > shown.len() { ", …" } else { "" }
                    ),
                ));
            }
            let schedule = PlanSchedule {
                mode: ScheduleMode::Ipls,
                stages: out,
            };
            if errors.is_empty() {
                let edges = zero_time_edges(nodes, channels);
                warn_extra_deltas(warnings, &schedule, nodes, channels, &edges);
            }
            schedule
        }
    }
}

/// W260: zero-time channels the stage order sends backwards or within a stage, where a
/// forward order exists (feedback through initial tokens is inherent and not reported).
fn warn_extra_deltas(
    warnings: &mut Vec<Diagnostic>,
    schedule: &PlanSchedule,
    nodes: &[PlanNode],
    channels: &[PlanChannel],
    edges: &[(usize, usize, bool)],
) {
    let stage_of = schedule.stage_of(nodes.len());
    let mut adj = vec![Vec::new(); nodes.len()];
    for &(a, b, _) in edges {
        adj[a].push(b);
    }
    let mut comp = vec![usize::MAX; nodes.len()];
    for (k, scc) in crate::plan::tarjan(&adj).into_iter().enumerate() {
        for v in scc {
            comp[v] = k;
        }
    }
    for (ci, c) in channels.iter().enumerate() {
        if c.delay != 0 || nodes[c.from_node].latency != 0 {
            continue;
        }
        if !c.initial.is_empty() && comp[c.from_node] == comp[c.to_node] {
            continue;
        }
        let (a, b) = (stage_of[c.from_node], stage_of[c.to_node]);
        if a >= b {
            let how = if a == b {
                format!("within stage {a}")
            } else {
                format!("from stage {a} back to stage {b}")
            };
            warnings.push(Diagnostic::at(
                "W260",
                format!("edges[{ci}]"),
                format!(
                    "the stage order forces extra deltas: zero-time channel {} runs {how}, so its tokens reach `{}` only in the next delta (put `{}` in a later stage than `{}`)",
                    c.name, nodes[c.to_node].name, nodes[c.to_node].name, nodes[c.from_node].name
                ),
            ));
        }
    }
}

/// The stage at which every node is evaluated and fired: its declared stage, or for a gate's
/// members the stage of the gate's first member. Returns `(stage_of, gate_stage)`.
pub fn effective_stages(declared: &[u32], gates: &[Vec<usize>]) -> (Vec<u32>, Vec<u32>) {
    let mut stage_of = declared.to_vec();
    let mut gate_stage = Vec::with_capacity(gates.len());
    for members in gates {
        let s = members
            .iter()
            .filter_map(|&m| declared.get(m).copied())
            .min()
            .unwrap_or(0);
        for &m in members {
            if let Some(x) = stage_of.get_mut(m) {
                *x = s;
            }
        }
        gate_stage.push(s);
    }
    (stage_of, gate_stage)
}
