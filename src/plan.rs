//! Compiles a [`SceneSpec`] into a frozen [`Plan`]: name resolution, tap and shape checks,
//! fan-out, initial tokens, zero-time cycle detection, and a stable `plan_digest`.
//!
//! Every semantic problem is collected (not just the first) and located by its scene path:
//!
//! ```
//! use tapwheel::scene::Scene;
//! use tapwheel::plan::Plan;
//! let scene = Scene::parse(r#"Scene(version: 1, name: "x",
//!     nodes: [Node(name: "a", kernel: Gain(gain: 2.0)), Node(name: "p", kernel: Probe)],
//!     edges: [Edge(from: "a.out", to: "p.in"), Edge(from: "nope.out", to: "p.in")])"#,
//!     "x.ron", ".".into()).unwrap();
//! let err = Plan::compile(&scene).unwrap_err();
//! let text = err.to_string();
//! assert!(text.contains("edges[1].from"));           // unknown node
//! assert!(text.contains("nodes[0].taps.in"));        // unconnected mandatory input
//! ```
//!
//! A directed cycle must carry time (a delay, a latency or an initial token):
//!
//! ```
//! use tapwheel::scene::Scene;
//! use tapwheel::plan::Plan;
//! let scene = Scene::parse(r#"Scene(version: 1, name: "loop",
//!     nodes: [Node(name: "a", kernel: Add), Node(name: "b", kernel: Gain(gain: 1.0)),
//!             Node(name: "src", kernel: Const(value: 1.0), count: Some(1))],
//!     edges: [Edge(from: "src.out", to: "a.a"), Edge(from: "b.out", to: "a.b"),
//!             Edge(from: "a.out", to: "b.in")])"#, "loop.ron", ".".into()).unwrap();
//! let err = Plan::compile(&scene).unwrap_err().to_string();
//! assert!(err.contains("E240") && err.contains("a → b → a"));
//! ```

use crate::error::{Diagnostic, Error, Result};
use crate::kernels::{self, RateRule, Signature, TapSig};
use crate::scene::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Largest token the engine accepts (elements); larger shapes are located errors.
pub const MAX_TOKEN_ELEMENTS: u64 = 1 << 26;

/// An input tap as planned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInput {
    pub name: String,
    pub rate: u32,
    pub optional: bool,
    pub hold_last: bool,
    pub default: f64,
    pub shape: Shape,
    pub channel: Option<usize>,
}

/// An output tap as planned; several channels = fan-out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOutput {
    pub name: String,
    pub rate: u32,
    pub shape: Shape,
    pub channels: Vec<usize>,
}

/// A node as planned, in canonical (scene) order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanNode {
    pub name: String,
    pub kernel: KernelSpec,
    pub shape: Shape,
    pub inputs: Vec<PlanInput>,
    pub outputs: Vec<PlanOutput>,
    /// No mandatory input: fires on its own schedule (§4 condition 4).
    pub is_source: bool,
    pub is_probe: bool,
    pub period: Option<u64>,
    pub offset: u64,
    pub count: Option<u64>,
    /// Reference-device latency in ticks.
    pub latency: u64,
    /// Firings in flight at once; `None` = unlimited.
    pub concurrency: Option<u32>,
    pub lane: Lane,
    pub core: Option<CoreType>,
}

impl PlanNode {
    pub fn signature(&self) -> Signature {
        let tap = |name: &str, rate: u32, shape: Shape| TapSig {
            name: name.to_string(),
            rate,
            token_len: shape.elements() as usize,
        };
        Signature {
            inputs: self
                .inputs
                .iter()
                .map(|t| tap(&t.name, t.rate, t.shape))
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|t| tap(&t.name, t.rate, t.shape))
                .collect(),
        }
    }
}

/// A channel as planned; its index is the edge's index in the scene.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanChannel {
    /// `from.tap->to.tap`.
    pub name: String,
    pub from_node: usize,
    pub from_tap: usize,
    pub to_node: usize,
    pub to_tap: usize,
    pub capacity: u32,
    pub delay: u64,
    pub lane: Lane,
    pub policy: Policy,
    pub shape: Shape,
    /// Initial tokens, each expanded to `shape.elements()` values.
    pub initial: Vec<Vec<f32>>,
}

/// The frozen, validated plan. Immutable once built; identified by [`Plan::digest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub name: String,
    pub tick_hz: f64,
    pub nodes: Vec<PlanNode>,
    pub channels: Vec<PlanChannel>,
    pub memory: MemorySpec,
    pub strict: bool,
    /// Run settings (`until`, `max_steps`, `seed`) are not part of the plan digest.
    #[serde(skip)]
    pub run: RunSpec,
    #[serde(skip)]
    pub digest: String,
}

struct Ctx {
    errors: Vec<Diagnostic>,
}

impl Ctx {
    fn err(&mut self, code: &'static str, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::at(code, path, msg));
    }
}

/// Parameters are rounded to f32 by kernels, so they must be finite as f32 too.
fn finite(ctx: &mut Ctx, path: String, name: &str, v: f64) {
    if !v.is_finite() {
        ctx.err(
            "E220",
            path,
            format!("parameter `{name}` must be finite, got {v}"),
        );
    } else if !(v as f32).is_finite() {
        ctx.err(
            "E220",
            path,
            format!("parameter `{name}` = {v} overflows f32 (kernels compute in f32)"),
        );
    }
}

fn check_kernel_params(ctx: &mut Ctx, path: &str, k: &KernelSpec) {
    let p = |f: &str| format!("{path}.kernel.{f}");
    match k {
        KernelSpec::Const { value } => finite(ctx, p("value"), "value", *value),
        KernelSpec::Ramp { start, step } => {
            finite(ctx, p("start"), "start", *start);
            finite(ctx, p("step"), "step", *step);
        }
        KernelSpec::Gain { gain } => finite(ctx, p("gain"), "gain", *gain),
        KernelSpec::Offset { value }
        | KernelSpec::AddScalar { value }
        | KernelSpec::MulScalar { value } => finite(ctx, p("value"), "value", *value),
        KernelSpec::Filter { pred } => {
            let (Pred::Lt(x)
            | Pred::Le(x)
            | Pred::Gt(x)
            | Pred::Ge(x)
            | Pred::Eq(x)
            | Pred::Ne(x)
            | Pred::NotMultipleOf(x)) = *pred;
            finite(ctx, p("pred"), "pred", x);
            if matches!(pred, Pred::NotMultipleOf(_)) && x == 0.0 {
                ctx.err(
                    "E220",
                    p("pred"),
                    "NotMultipleOf(0) is undefined: every value would be a remainder of a division by zero",
                );
            }
        }
        KernelSpec::Mix { inputs, gains } => {
            if *inputs == 0 || *inputs > kernels::MAX_GENERATED_TAPS {
                ctx.err(
                    "E220",
                    p("inputs"),
                    format!(
                        "Mix needs 1 to {} inputs, got {inputs}",
                        kernels::MAX_GENERATED_TAPS
                    ),
                );
            } else if *inputs as usize != gains.len() {
                ctx.err(
                    "E220",
                    p("gains"),
                    format!("Mix has {inputs} inputs but {} gains", gains.len()),
                );
            }
            for (k, g) in gains.iter().enumerate() {
                finite(ctx, p(&format!("gains[{k}]")), "gains", *g);
            }
        }
        KernelSpec::BandSplit { bands } | KernelSpec::BandMerge { bands }
            if *bands == 0 || *bands > kernels::MAX_GENERATED_TAPS =>
        {
            ctx.err(
                "E220",
                p("bands"),
                format!(
                    "{} needs 1 to {} bands, got {bands}",
                    k.kind(),
                    kernels::MAX_GENERATED_TAPS
                ),
            )
        }
        _ => {}
    }
}

fn check_shape(ctx: &mut Ctx, path: String, s: &Shape) {
    if s.batch == 0 || s.channels == 0 || s.frames == 0 {
        ctx.err(
            "E111",
            path,
            format!("shape {s} has a zero dimension; every axis must be at least 1"),
        );
    } else if s.elements() > MAX_TOKEN_ELEMENTS {
        ctx.err(
            "E111",
            path,
            format!(
                "shape {s} has {} elements per token, above the limit of {MAX_TOKEN_ELEMENTS}",
                s.elements()
            ),
        );
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Plan {
    /// Validates and freezes a scene. Returns every semantic error found (exit 2).
    pub fn compile(scene: &Scene) -> Result<Plan> {
        let s = &scene.spec;
        let mut ctx = Ctx { errors: Vec::new() };
        if !(s.tick_hz.is_finite() && s.tick_hz > 0.0) {
            ctx.err(
                "E110",
                "tick_hz",
                format!(
                    "tick_hz must be a positive finite number, got {}",
                    s.tick_hz
                ),
            );
        }
        check_shape(&mut ctx, "defaults.shape".into(), &s.defaults.shape);
        if let MemorySpec::Parks { max_capacity } = s.memory
            && max_capacity == 0
        {
            ctx.err(
                "E112",
                "memory.max_capacity",
                "max_capacity must be at least 1",
            );
        }
        if s.nodes.is_empty() {
            ctx.err("E200", "nodes", "a scene needs at least one node");
        }

        // Nodes and their taps.
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut nodes: Vec<PlanNode> = Vec::with_capacity(s.nodes.len());
        for (i, n) in s.nodes.iter().enumerate() {
            let path = format!("nodes[{i}]");
            if !valid_name(&n.name) {
                ctx.err(
                    "E201",
                    format!("{path}.name"),
                    format!("node name `{}` must match [A-Za-z0-9_]+", n.name),
                );
            }
            if let Some(&first) = by_name.get(n.name.as_str()) {
                ctx.err(
                    "E202",
                    format!("{path}.name"),
                    format!("node name `{}` is already used by nodes[{first}]", n.name),
                );
            } else {
                by_name.insert(n.name.as_str(), i);
            }
            nodes.push(plan_node(&mut ctx, &path, n, &s.defaults.shape));
        }

        // Channels.
        let mut channels = Vec::with_capacity(s.edges.len());
        let mut input_owner: HashMap<(usize, usize), usize> = HashMap::new();
        for (e, edge) in s.edges.iter().enumerate() {
            let path = format!("edges[{e}]");
            let from = resolve(
                &mut ctx,
                &format!("{path}.from"),
                &edge.from,
                &by_name,
                &nodes,
                true,
            );
            let to = resolve(
                &mut ctx,
                &format!("{path}.to"),
                &edge.to,
                &by_name,
                &nodes,
                false,
            );
            let capacity = edge.capacity.unwrap_or(s.defaults.capacity);
            let delay = match &edge.delay {
                DelaySpec::Ticks(d) => *d,
                DelaySpec::Named(_) => 0,
            };
            let (Some((fnode, ftap)), Some((tnode, ttap))) = (from, to) else {
                continue;
            };
            if let Some(prev) = input_owner.insert((tnode, ttap), e) {
                ctx.err(
                    "E234",
                    format!("{path}.to"),
                    format!(
                        "input tap `{}` already has a channel (edges[{prev}]); an input tap takes one channel",
                        edge.to
                    ),
                );
                continue;
            }
            let fshape = nodes[fnode].outputs[ftap].shape;
            let tshape = nodes[tnode].inputs[ttap].shape;
            if fshape != tshape {
                ctx.err(
                    "E235",
                    path.clone(),
                    format!(
                        "shape mismatch: `{}` writes {fshape} but `{}` reads {tshape} (declare an adapter or make them equal)",
                        edge.from, edge.to
                    ),
                );
            }
            let len = tshape.elements() as usize;
            let mut initial = Vec::with_capacity(edge.initial.len());
            for (k, tok) in edge.initial.iter().enumerate() {
                let tpath = format!("{path}.initial[{k}]");
                let values: Vec<f32> = match tok {
                    TokenSpec::Scalar(v) => vec![*v as f32; len],
                    TokenSpec::Block(vs) => {
                        if vs.len() != len {
                            ctx.err(
                                "E236",
                                tpath.clone(),
                                format!(
                                    "initial token has {} values; the tap's shape {tshape} needs 1 or {len}",
                                    vs.len()
                                ),
                            );
                        }
                        vs.iter().map(|&v| v as f32).collect()
                    }
                };
                if values.iter().any(|v| !v.is_finite()) {
                    ctx.err("E236", tpath, "initial token values must be finite");
                }
                initial.push(values);
            }
            nodes[fnode].outputs[ftap].channels.push(e);
            nodes[tnode].inputs[ttap].channel = Some(e);
            channels.push(PlanChannel {
                name: format!("{}->{}", edge.from, edge.to),
                from_node: fnode,
                from_tap: ftap,
                to_node: tnode,
                to_tap: ttap,
                capacity,
                delay,
                lane: edge.lane,
                policy: edge.policy,
                shape: tshape,
                initial,
            });
        }

        for (i, n) in nodes.iter().enumerate() {
            for t in &n.inputs {
                if t.channel.is_none() && !t.optional {
                    ctx.err(
                        "E237",
                        format!("nodes[{i}].taps.{}", t.name),
                        format!(
                            "mandatory input tap `{}.{}` is not connected (connect it or declare it `optional: true`)",
                            n.name, t.name
                        ),
                    );
                }
            }
        }
        if ctx.errors.is_empty() {
            detect_zero_time_cycles(&mut ctx, &nodes, &channels, s);
        }
        if !ctx.errors.is_empty() {
            return Err(Error::Invalid(ctx.errors));
        }
        // Channel indices are edge indices only when every edge resolved; that holds here.
        let mut plan = Plan {
            name: s.name.clone(),
            tick_hz: s.tick_hz,
            nodes,
            channels,
            memory: s.memory,
            strict: s.strict,
            run: s.run.clone(),
            digest: String::new(),
        };
        let bytes = serde_json::to_vec(&plan)
            .map_err(|e| Error::Internal(format!("plan serialisation failed: {e}")))?;
        let mut h = blake3::Hasher::new();
        h.update(b"tapwheel-plan/1\0");
        h.update(&bytes);
        plan.digest = h.finalize().to_hex().to_string();
        Ok(plan)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

fn plan_node(ctx: &mut Ctx, path: &str, n: &NodeSpec, default_shape: &Shape) -> PlanNode {
    let shape = n.shape.unwrap_or(*default_shape);
    if n.shape.is_some() {
        check_shape(ctx, format!("{path}.shape"), &shape);
    }
    check_kernel_params(ctx, path, &n.kernel);
    let (in_names, out_names, rule) = match kernels::builtin_taps(&n.kernel) {
        Some(t) => t,
        None => {
            // Actor: taps declared in the scene.
            let mut ins = Vec::new();
            let mut outs = Vec::new();
            for (name, o) in &n.taps {
                match o.dir {
                    Some(TapDir::In) => ins.push(name.clone()),
                    Some(TapDir::Out) => outs.push(name.clone()),
                    None => ctx.err(
                        "E216",
                        format!("{path}.taps.{name}.dir"),
                        format!("Actor tap `{name}` needs `dir: In` or `dir: Out`"),
                    ),
                }
            }
            (ins, outs, RateRule::Free)
        }
    };
    let is_actor = matches!(n.kernel, KernelSpec::Actor);
    for (name, o) in &n.taps {
        let tpath = format!("{path}.taps.{name}");
        let is_in = in_names.contains(name);
        let is_out = out_names.contains(name);
        if !is_in && !is_out {
            if !is_actor {
                ctx.err(
                    "E214",
                    tpath.clone(),
                    format!(
                        "kernel `{}` has no tap `{name}` (its taps: {})",
                        n.kernel.kind(),
                        in_names
                            .iter()
                            .chain(&out_names)
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            continue;
        }
        if !is_actor
            && let Some(d) = o.dir
            && (d == TapDir::In) != is_in
        {
            ctx.err(
                "E216",
                format!("{tpath}.dir"),
                format!(
                    "tap `{name}` of `{}` has the other direction",
                    n.kernel.kind()
                ),
            );
        }
        if o.rate == 0 {
            ctx.err(
                "E215",
                format!("{tpath}.rate"),
                "a tap rate must be at least 1",
            );
        }
        if is_out && (o.optional || o.hold_last) {
            ctx.err(
                "E217",
                tpath.clone(),
                "`optional` and `hold_last` apply to input taps only",
            );
        }
        if o.hold_last && !o.optional {
            ctx.err(
                "E217",
                format!("{tpath}.hold_last"),
                "`hold_last` needs `optional: true`",
            );
        }
        if !o.default.is_finite() {
            ctx.err(
                "E217",
                format!("{tpath}.default"),
                "`default` must be finite",
            );
        }
        if let Some(sh) = o.shape {
            check_shape(ctx, format!("{tpath}.shape"), &sh);
        }
    }
    let ov = |name: &str| n.taps.get(name);
    let inputs: Vec<PlanInput> = in_names
        .iter()
        .map(|name| {
            let o = ov(name);
            PlanInput {
                name: name.clone(),
                rate: o.map_or(1, |o| o.rate.max(1)),
                optional: o.is_some_and(|o| o.optional),
                hold_last: o.is_some_and(|o| o.hold_last),
                default: o.map_or(0.0, |o| o.default),
                shape: o.and_then(|o| o.shape).unwrap_or(shape),
                channel: None,
            }
        })
        .collect();
    let outputs: Vec<PlanOutput> = out_names
        .iter()
        .map(|name| {
            let o = ov(name);
            PlanOutput {
                name: name.clone(),
                rate: o.map_or(1, |o| o.rate.max(1)),
                shape: o.and_then(|o| o.shape).unwrap_or(shape),
                channels: Vec::new(),
            }
        })
        .collect();
    let rates: Vec<u32> = inputs
        .iter()
        .map(|t| t.rate)
        .chain(outputs.iter().map(|t| t.rate))
        .collect();
    match rule {
        RateRule::Uniform if rates.windows(2).any(|w| w[0] != w[1]) => ctx.err(
            "E218",
            format!("{path}.taps"),
            format!(
                "`{}` applies elementwise: every tap needs the same rate (got {rates:?})",
                n.kernel.kind()
            ),
        ),
        RateRule::One if rates.iter().any(|&r| r != 1) => ctx.err(
            "E218",
            format!("{path}.taps"),
            format!(
                "`{}` has data-dependent demand; its taps take rate 1",
                n.kernel.kind()
            ),
        ),
        _ => {}
    }
    if !is_actor && !matches!(n.kernel, KernelSpec::Probe) {
        // Shape-preserving kernels: every tap has one shape.
        let shapes: Vec<Shape> = inputs
            .iter()
            .map(|t| t.shape)
            .chain(outputs.iter().map(|t| t.shape))
            .collect();
        if shapes.windows(2).any(|w| w[0] != w[1]) && kernels_preserve_shape(&n.kernel) {
            ctx.err(
                "E207",
                format!("{path}.taps"),
                format!(
                    "`{}` keeps the token shape: all its taps need the same shape",
                    n.kernel.kind()
                ),
            );
        }
    }
    // A kernel whose tap count is itself invalid (reported above) is not judged as a source.
    let bad_tap_count = match &n.kernel {
        KernelSpec::Mix { inputs: k, .. }
        | KernelSpec::BandSplit { bands: k }
        | KernelSpec::BandMerge { bands: k } => *k == 0 || *k > kernels::MAX_GENERATED_TAPS,
        _ => false,
    };
    let is_source = !bad_tap_count && inputs.iter().all(|t| t.optional);
    if is_source {
        if n.period == Some(0) {
            ctx.err(
                "E211",
                format!("{path}.period"),
                "period must be at least 1 tick",
            );
        }
        if n.period.is_none() && n.count.is_none_or(|c| c > 1) {
            ctx.err(
                "E210",
                format!("{path}.period"),
                format!(
                    "source `{}` fires more than once (count {}) and needs a `period`",
                    n.name,
                    n.count.map_or("unbounded".to_string(), |c| c.to_string())
                ),
            );
        }
    } else {
        for (field, set) in [
            ("period", n.period.is_some()),
            ("offset", n.offset != 0),
            ("count", n.count.is_some()),
        ] {
            if set {
                ctx.err(
                    "E212",
                    format!("{path}.{field}"),
                    format!(
                        "`{field}` applies to sources only; `{}` has mandatory inputs",
                        n.name
                    ),
                );
            }
        }
    }
    if n.concurrency == Some(0) {
        ctx.err(
            "E213",
            format!("{path}.concurrency"),
            "concurrency must be at least 1 (None = unlimited)",
        );
    }
    let latency = match n.latency {
        LatencySpec::Ticks(t) => t,
        LatencySpec::Word(_) => 0,
    };
    PlanNode {
        name: n.name.clone(),
        kernel: n.kernel.clone(),
        shape,
        inputs,
        outputs,
        is_source,
        is_probe: matches!(n.kernel, KernelSpec::Probe),
        period: n.period,
        offset: n.offset,
        count: n.count,
        latency,
        concurrency: n.concurrency,
        lane: n.lane,
        core: n.core,
    }
}

fn kernels_preserve_shape(k: &KernelSpec) -> bool {
    !matches!(
        k,
        KernelSpec::MatMul
            | KernelSpec::Transpose
            | KernelSpec::RowSum
            | KernelSpec::RowMax
            | KernelSpec::Decimate { .. }
            | KernelSpec::Interpolate { .. }
            | KernelSpec::SlotLoad { .. }
    )
}

/// Resolves `"node.tap"`; `output` says which side the tap must be on.
fn resolve(
    ctx: &mut Ctx,
    path: &str,
    endpoint: &str,
    by_name: &HashMap<&str, usize>,
    nodes: &[PlanNode],
    output: bool,
) -> Option<(usize, usize)> {
    let Some((node, tap)) = endpoint.split_once('.') else {
        ctx.err(
            "E230",
            path,
            format!("endpoint `{endpoint}` must be written \"node.tap\""),
        );
        return None;
    };
    let Some(&ni) = by_name.get(node) else {
        ctx.err("E231", path, format!("unknown node `{node}`"));
        return None;
    };
    let n = &nodes[ni];
    let outs = n.outputs.iter().position(|t| t.name == tap);
    let ins = n.inputs.iter().position(|t| t.name == tap);
    match (output, outs, ins) {
        (true, Some(t), _) | (false, _, Some(t)) => Some((ni, t)),
        (true, None, Some(_)) => {
            ctx.err(
                "E233",
                path,
                format!("`{endpoint}` is an input tap; `from` needs an output tap"),
            );
            None
        }
        (false, Some(_), None) => {
            ctx.err(
                "E233",
                path,
                format!("`{endpoint}` is an output tap; `to` needs an input tap"),
            );
            None
        }
        _ => {
            let all: Vec<&str> = n
                .inputs
                .iter()
                .map(|t| t.name.as_str())
                .chain(n.outputs.iter().map(|t| t.name.as_str()))
                .collect();
            ctx.err(
                "E232",
                path,
                format!(
                    "node `{node}` ({}) has no tap `{tap}` (its taps: {})",
                    n.kernel.kind(),
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                ),
            );
            None
        }
    }
}

/// §3 feedback rule: a cycle whose channels carry no delay, no producer latency and no initial
/// token is a plan error naming its nodes (Symbol delays count as 0).
fn detect_zero_time_cycles(
    ctx: &mut Ctx,
    nodes: &[PlanNode],
    channels: &[PlanChannel],
    s: &SceneSpec,
) {
    let n = nodes.len();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for c in channels {
        if c.delay == 0 && c.initial.is_empty() && nodes[c.from_node].latency == 0 {
            adj[c.from_node].push(c.to_node);
        }
    }
    for a in &mut adj {
        a.sort_unstable();
        a.dedup();
    }
    for scc in tarjan(&adj) {
        let cyclic = scc.len() > 1 || adj[scc[0]].contains(&scc[0]);
        if !cyclic {
            continue;
        }
        let start = *scc.iter().min().unwrap_or(&scc[0]);
        let members: std::collections::BTreeSet<usize> = scc.iter().copied().collect();
        // Walk inside the component until a node repeats: that closes a cycle.
        let mut path = vec![start];
        let mut pos: BTreeMap<usize, usize> = BTreeMap::new();
        pos.insert(start, 0);
        let mut cur = start;
        let cycle = loop {
            let Some(&next) = adj[cur].iter().find(|v| members.contains(v)) else {
                break path.clone();
            };
            if let Some(&p) = pos.get(&next) {
                let mut c = path[p..].to_vec();
                c.push(next);
                break c;
            }
            pos.insert(next, path.len());
            path.push(next);
            cur = next;
        };
        let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
        let first = cycle[0];
        let _ = s;
        ctx.err(
            "E240",
            format!("nodes[{first}]"),
            format!(
                "zero-time cycle {}: add a delay, a latency or an initial token on one of its channels",
                names.join(" → ")
            ),
        );
    }
}

/// Strongly connected components (iterative Tarjan), each listed once.
fn tarjan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if *i < adj[v].len() {
                let w = adj[v][*i];
                *i += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(comp);
            }
        }
    }
    out
}
