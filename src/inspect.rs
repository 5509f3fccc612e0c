//! The planned graph for people and tools (`tapwheel inspect`): Graphviz DOT, a short text
//! summary, and the same summary as JSON. Output depends on the plan only, so it is identical
//! on every run and machine.
//!
//! In DOT, each node is labelled with its name and kernel kind and shaped by its role — a source
//! is a `cds` (an arrow), a probe a `note`, any other node a `box`. Each channel is an edge
//! labelled, line by line, with its taps (when not the default `out -> in`), `delay D` (when
//! `D > 0`; `delay $NAME` for a `Symbol` delay), `capacity C` (`rendezvous` for 0), `initial K`
//! (when `K > 0`), its policy (when not `Block`) and lane (when not `Data`); `Telemetry`
//! channels are dashed, `Control` ones bold. A gate is a dashed cluster around its members.
//!
//! ```
//! use tapwheel::{Plan, Scene};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "d",
//!     nodes: [Node(name: "src", kernel: Const(value: 1.0), count: Some(1)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "out.in", delay: 2, capacity: 4, initial: [0.5])])"#,
//!     "d.ron", ".".into()).unwrap();
//! let dot = Plan::compile(&scene).unwrap().to_dot();
//! assert!(dot.starts_with("digraph \"d\" {\n"));
//! assert!(dot.contains("  \"src\" [label=\"src\\nConst\", shape=cds"));
//! assert!(dot.contains("  \"out\" [label=\"out\\nProbe\", shape=note"));
//! assert!(dot.contains("  \"src\" -> \"out\" [label=\"delay 2\\ncapacity 4\\ninitial 1\"];\n"));
//! ```

use crate::plan::{Plan, PlanNode};
use crate::scene::{Lane, Policy};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// What a node is for, as `inspect` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Probe,
    Other,
}

impl Role {
    pub fn of(node: &PlanNode) -> Role {
        if node.is_source {
            Role::Source
        } else if node.is_probe {
            Role::Probe
        } else {
            Role::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Probe => "probe",
            Role::Other => "node",
        }
    }

    /// The Graphviz shape and fill.
    fn style(self) -> &'static str {
        match self {
            Role::Source => "shape=cds, style=filled, fillcolor=\"#dbeafe\"",
            Role::Probe => "shape=note, style=filled, fillcolor=\"#dcfce7\"",
            Role::Other => "shape=box",
        }
    }
}

/// A DOT double-quoted string's contents.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn lane_str(l: Lane) -> &'static str {
    match l {
        Lane::Control => "Control",
        Lane::Data => "Data",
        Lane::Telemetry => "Telemetry",
    }
}

fn policy_str(p: Policy) -> &'static str {
    match p {
        Policy::Block => "Block",
        Policy::DropOldest => "DropOldest",
        Policy::DropNewest => "DropNewest",
    }
}

impl Plan {
    /// The graph in Graphviz DOT (`tapwheel inspect --dot`); see the [module](crate::inspect)
    /// for the conventions.
    pub fn to_dot(&self) -> String {
        to_dot(self)
    }
}

/// The graph in Graphviz DOT: nodes in plan order (gate members inside their gate's cluster),
/// then one edge per channel in channel order.
pub fn to_dot(plan: &Plan) -> String {
    let mut s = String::new();
    let name = esc(&plan.name);
    let _ = writeln!(s, "digraph \"{name}\" {{");
    let _ = writeln!(
        s,
        "  graph [rankdir=LR, label=\"{name}\", labelloc=t, fontname=\"Helvetica\"];"
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let node_line = |n: &PlanNode, indent: &str| {
        format!(
            "{indent}\"{}\" [label=\"{}\\n{}\", {}];\n",
            esc(&n.name),
            esc(&n.name),
            esc(n.kernel.kind()),
            Role::of(n).style()
        )
    };
    let gated: Vec<bool> = (0..plan.nodes.len())
        .map(|i| plan.gates.iter().any(|g| g.members.contains(&i)))
        .collect();
    for (n, g) in plan.nodes.iter().zip(&gated) {
        if !g {
            s += &node_line(n, "  ");
        }
    }
    for g in &plan.gates {
        let _ = writeln!(s, "  subgraph \"cluster_gate_{}\" {{", esc(&g.name));
        let _ = writeln!(s, "    label=\"gate {}\";", esc(&g.name));
        s.push_str("    style=dashed;\n");
        for &m in &g.members {
            if let Some(n) = plan.nodes.get(m) {
                s += &node_line(n, "    ");
            }
        }
        s.push_str("  }\n");
    }
    for c in &plan.channels {
        let (Some(from), Some(to)) = (plan.nodes.get(c.from_node), plan.nodes.get(c.to_node))
        else {
            continue;
        };
        let from_tap = from
            .outputs
            .get(c.from_tap)
            .map_or("?", |t| t.name.as_str());
        let to_tap = to.inputs.get(c.to_tap).map_or("?", |t| t.name.as_str());
        let mut lines = Vec::new();
        if from_tap != "out" || to_tap != "in" {
            lines.push(format!("{from_tap} -> {to_tap}"));
        }
        match &c.delay_symbol {
            Some(sym) => lines.push(format!("delay ${sym}")),
            None if c.delay > 0 => lines.push(format!("delay {}", c.delay)),
            None => {}
        }
        lines.push(if c.capacity == 0 {
            "rendezvous".to_string()
        } else {
            format!("capacity {}", c.capacity)
        });
        if !c.initial.is_empty() {
            lines.push(format!("initial {}", c.initial.len()));
        }
        if c.policy != Policy::Block {
            lines.push(policy_str(c.policy).to_string());
        }
        if c.lane != Lane::Data {
            lines.push(lane_str(c.lane).to_string());
        }
        let label: Vec<String> = lines.iter().map(|l| esc(l)).collect();
        let style = match c.lane {
            Lane::Telemetry => ", style=dashed",
            Lane::Control => ", style=bold",
            Lane::Data => "",
        };
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{}\"{style}];",
            esc(&from.name),
            esc(&to.name),
            label.join("\\n")
        );
    }
    s.push_str("}\n");
    s
}

/// `inspect`'s short text summary: counts, then one line per node and per channel.
///
/// ```
/// use tapwheel::{Plan, Scene};
/// let scene = Scene::parse(r#"Scene(version: 1, name: "t",
///     nodes: [Node(name: "src", kernel: Const(value: 1.0), count: Some(1)),
///             Node(name: "out", kernel: Probe)],
///     edges: [Edge(from: "src.out", to: "out.in", delay: 2)])"#, "t.ron", ".".into()).unwrap();
/// let text = tapwheel::inspect::summary_text(&Plan::compile(&scene).unwrap());
/// assert!(text.starts_with("t: 2 nodes (1 source, 1 probe), 1 channel, 0 gates\n"));
/// assert!(text.contains("\n    src  Const  source\n"));
/// assert!(text.contains("\n    src.out->out.in  capacity 2  delay 2\n"));
/// ```
pub fn summary_text(plan: &Plan) -> String {
    let count = |r: Role| plan.nodes.iter().filter(|n| Role::of(n) == r).count();
    let plural = |n: usize, what: &str| {
        if n == 1 {
            format!("{n} {what}")
        } else {
            format!("{n} {what}s")
        }
    };
    let mut s = format!(
        "{}: {} ({}, {}), {}, {}\n",
        plan.name,
        plural(plan.nodes.len(), "node"),
        plural(count(Role::Source), "source"),
        plural(count(Role::Probe), "probe"),
        plural(plan.channels.len(), "channel"),
        plural(plan.gates.len(), "gate"),
    );
    let _ = writeln!(s, "  plan_digest {}", plan.digest);
    s.push_str("  nodes:\n");
    let wn = plan.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let wk = plan
        .nodes
        .iter()
        .map(|n| n.kernel.kind().len())
        .max()
        .unwrap_or(0);
    for (i, n) in plan.nodes.iter().enumerate() {
        let mut line = format!("    {:wn$}  {:wk$}", n.name, n.kernel.kind());
        let role = Role::of(n);
        if role != Role::Other {
            line += &format!("  {}", role.as_str());
        }
        if let Some(g) = plan.gates.iter().find(|g| g.members.contains(&i)) {
            line += &format!("  gate {}", g.name);
        }
        if n.thermal.is_some() {
            line += "  thermal";
        }
        s += line.trim_end();
        s.push('\n');
    }
    if !plan.channels.is_empty() {
        s.push_str("  channels:\n");
    }
    let wc = plan
        .channels
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &plan.channels {
        let mut line = format!("    {:wc$}  capacity {}", c.name, c.capacity);
        match &c.delay_symbol {
            Some(sym) => line += &format!("  delay ${sym}"),
            None if c.delay > 0 => line += &format!("  delay {}", c.delay),
            None => {}
        }
        if !c.initial.is_empty() {
            line += &format!("  initial {}", c.initial.len());
        }
        if c.policy != Policy::Block {
            line += &format!("  {}", policy_str(c.policy));
        }
        if c.lane != Lane::Data {
            line += &format!("  {}", lane_str(c.lane));
        }
        s += &line;
        s.push('\n');
    }
    s
}

/// `inspect --format json`: `scene`, `plan_digest`, `tick_hz`, `nodes` (`name`, `kernel`,
/// `role`, `inputs`, `outputs`, `gate`, `thermal`), `channels` (`name`, `from`, `to`, `delay`,
/// `delay_symbol`, `capacity`, `initial`, `policy`, `lane`) and `gates` (`name`, `members`).
pub fn summary_json(plan: &Plan) -> Value {
    let tap = |node: usize, out: bool, tap: usize| {
        plan.nodes.get(node).map_or_else(String::new, |n| {
            let t = if out {
                n.outputs.get(tap).map(|t| t.name.as_str())
            } else {
                n.inputs.get(tap).map(|t| t.name.as_str())
            };
            format!("{}.{}", n.name, t.unwrap_or("?"))
        })
    };
    json!({
        "scene": plan.name,
        "plan_digest": plan.digest,
        "tick_hz": plan.tick_hz,
        "nodes": plan.nodes.iter().enumerate().map(|(i, n)| json!({
            "name": n.name,
            "kernel": n.kernel.kind(),
            "role": Role::of(n).as_str(),
            "inputs": n.inputs.iter().map(|t| &t.name).collect::<Vec<_>>(),
            "outputs": n.outputs.iter().map(|t| &t.name).collect::<Vec<_>>(),
            "gate": plan.gates.iter().find(|g| g.members.contains(&i)).map(|g| &g.name),
            "thermal": n.thermal.is_some(),
        })).collect::<Vec<_>>(),
        "channels": plan.channels.iter().map(|c| json!({
            "name": c.name,
            "from": tap(c.from_node, true, c.from_tap),
            "to": tap(c.to_node, false, c.to_tap),
            "delay": c.delay,
            "delay_symbol": c.delay_symbol,
            "capacity": c.capacity,
            "initial": c.initial.len(),
            "policy": policy_str(c.policy),
            "lane": lane_str(c.lane),
        })).collect::<Vec<_>>(),
        "gates": plan.gates.iter().map(|g| json!({
            "name": g.name,
            "members": g.members.iter().filter_map(|&m| plan.nodes.get(m)).map(|n| &n.name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
