//! Static analysis of a plan as a synchronous dataflow (SDF) graph (SPEC §19, `tapwheel analyze`):
//! consistency and the repetition vector, deadlock freedom of one iteration, and the maximal
//! throughput with unbounded buffers, all exact.
//!
//! # Rules
//!
//! - **Rates.** A channel's production per firing is its producer tap's `rate`, its consumption
//!   the consumer tap's `rate` (every channel into a gathering tap consumes `rate`). Every channel
//!   counts, self-loops included. Capacities are ignored: buffers are unbounded.
//! - **Fixed rates only.** Kernels with data-dependent rates (`OrderedMerge`, `Filter`, `Take`,
//!   `Select`, `SlotLoad`, `Custom`, `Inject`) and optional input taps are refused with `R350` (all of them
//!   listed); a `latency: Measured` node has no static execution time, so only the throughput is
//!   refused (`R351`, listed in `refusals`, `throughput` is `null`).
//! - **Consistency.** `q[from]·prod = q[to]·cons` for every channel, solved exactly; `q` is the
//!   smallest positive integer solution in every weakly connected component. No solution: the
//!   graph is inconsistent and `inconsistency` names a channel that breaks the equations.
//! - **Deadlock freedom.** Token counts only: starting from the initial tokens, nodes fire while
//!   they have their input tokens, each at most `q` times; the graph is deadlock-free iff every node
//!   completes its `q` firings.
//! - **Throughput.** A firing of a node takes its `latency` (Reference device); a token it produces
//!   becomes available `latency + delay` ticks after the firing starts. `concurrency: Some(k)` adds
//!   an implicit self-loop with `k` tokens returned at the firing's end (`None`: no constraint). A
//!   source with `period: Some(P)` adds an implicit self-loop with one token returned `P` ticks
//!   after the firing *starts*; its `count` and `offset` are ignored (steady state). One iteration
//!   is executed symbolically in max-plus algebra over the initial tokens (explicit and implicit):
//!   this gives the iteration matrix `M` (`x(k+1) = M ⊗ x(k)`), whose maximum cycle mean `λ`
//!   (Howard's policy iteration in exact arithmetic; Karp's algorithm as its fallback) is the
//!   iteration period in ticks. Throughput = `1/λ` graph
//!   iterations per tick; `λ = 0`, or no cycle at all, means unbounded throughput (`null`). A graph
//!   that deadlocks has throughput 0.
//!
//! Fractions print reduced, with the denominator left out when it is 1 (`"1/960"`, `"960"`).
//!
//! A source `a` (period 4, latency 1) produces 2 tokens per firing; `b` (latency 5) consumes 3.
//! The balance equation `q[a]·2 = q[b]·3` gives `q = (3, 2)`. Per iteration `a` needs `3·4 = 12`
//! ticks (its period), `b` needs `2·5 = 10` ticks (one firing at a time): the period bounds the
//! throughput at 1/12 iterations per tick.
//!
//! ```
//! use tapwheel::{Plan, Scene, sdf};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "two",
//!     nodes: [Node(name: "a", kernel: Actor, period: Some(4), latency: 1,
//!                  taps: { "out": (dir: Out, rate: 2) }),
//!             Node(name: "b", kernel: Actor, latency: 5, taps: { "in": (dir: In, rate: 3) })],
//!     edges: [Edge(from: "a.out", to: "b.in")])"#, "two.ron", ".".into()).unwrap();
//! let plan = Plan::compile(&scene).unwrap();
//! let a = sdf::analyze(&plan).unwrap();
//! let j = a.to_json();
//! assert_eq!(j["consistent"], true);
//! assert_eq!(j["repetition_vector"]["a"], 3);
//! assert_eq!(j["repetition_vector"]["b"], 2);
//! assert_eq!(j["deadlock_free"], true);
//! assert_eq!(j["iteration_period_ticks"], "12");
//! assert_eq!(j["throughput_exact"], "1/12");
//! assert_eq!(j["throughput"], 1.0 / 12.0);
//! ```
//!
//! With `b` twice as slow (latency 10) and allowed two firings in flight, `b` needs
//! `2·10/2 = 10` ticks per iteration, still below the period; with one firing in flight it needs
//! 20 and becomes the bottleneck:
//!
//! ```
//! use tapwheel::{Plan, Scene, sdf};
//! let period = |conc: &str| {
//!     let text = format!(r#"Scene(version: 1, name: "two",
//!         nodes: [Node(name: "a", kernel: Actor, period: Some(4), latency: 1,
//!                      taps: {{ "out": (dir: Out, rate: 2) }}),
//!                 Node(name: "b", kernel: Actor, latency: 10, concurrency: {conc},
//!                      taps: {{ "in": (dir: In, rate: 3) }})],
//!         edges: [Edge(from: "a.out", to: "b.in")])"#);
//!     let plan = Plan::compile(&Scene::parse(&text, "two.ron", ".".into()).unwrap()).unwrap();
//!     sdf::analyze(&plan).unwrap().to_json()["iteration_period_ticks"].clone()
//! };
//! assert_eq!(period("Some(2)"), "12");
//! assert_eq!(period("Some(1)"), "20");
//! ```
//!
//! An inconsistent graph names the channel:
//!
//! ```
//! use tapwheel::{Plan, Scene, sdf};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "bad",
//!     nodes: [Node(name: "a", kernel: Actor, period: Some(1), taps: { "x": (dir: Out), "y": (dir: Out) }),
//!             Node(name: "b", kernel: Actor, taps: { "x": (dir: In), "y": (dir: In, rate: 2) })],
//!     edges: [Edge(from: "a.x", to: "b.x"), Edge(from: "a.y", to: "b.y")])"#,
//!     "bad.ron", ".".into()).unwrap();
//! let a = sdf::analyze(&Plan::compile(&scene).unwrap()).unwrap();
//! assert!(!a.consistent);
//! assert!(a.inconsistency.as_deref().unwrap().contains("a.y->b.y"));
//! assert_eq!(a.to_json()["repetition_vector"], serde_json::Value::Null);
//! ```

use crate::error::{Diagnostic, Error};
use crate::plan::Plan;
use crate::scene::KernelSpec;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

/// Firings per iteration above which the deadlock check and the throughput are not computed
/// (`R352`, listed in `refusals`).
pub const MAX_ITERATION_FIRINGS: u64 = 50_000_000;

/// Initial tokens (explicit and implicit) above which the throughput is not computed (`R352`):
/// the iteration matrix is square in this number (32 MiB at the limit). Howard's iteration takes
/// about 80 ms in release on a dense 1000 × 1000 matrix; its fallback, Karp's algorithm, is cubic
/// on dense matrices.
pub const MAX_MATRIX_TOKENS: usize = 2048;

/// Budget of the symbolic execution, in time-stamp entries: per iteration, firings × initial
/// tokens (the memory it may hold, 8 bytes each) and tokens consumed × initial tokens (its
/// work). Above either, the throughput is not computed (`R352`).
pub const MAX_SYMBOLIC_ENTRIES: u64 = 20_000_000;
pub const MAX_SYMBOLIC_WORK: u64 = 400_000_000;

/// An exact non-negative fraction, reduced; prints `n/d`, or `n` when `d = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: u64,
    den: u64,
}

impl Ratio {
    /// `num/den` reduced; `None` for a zero denominator.
    pub fn new(num: u64, den: u64) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        let g = gcd(u128::from(num), u128::from(den)).max(1) as u64;
        Some(Ratio {
            num: num / g,
            den: den / g,
        })
    }
    pub fn numer(&self) -> u64 {
        self.num
    }
    pub fn denom(&self) -> u64 {
        self.den
    }
    pub fn to_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
    /// `den/num`, or `None` for zero.
    pub fn recip(&self) -> Option<Ratio> {
        Ratio::new(self.den, self.num)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Firings per graph iteration, one entry per node in canonical (plan) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepetitionVector(pub Vec<(String, u64)>);

impl RepetitionVector {
    /// The count of node `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, q)| q)
    }
}

impl Serialize for RepetitionVector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, q) in &self.0 {
            m.serialize_entry(n, q)?;
        }
        m.end()
    }
}

/// A part of the analysis that was refused (the rest stands): `R351`, `R352`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartialRefusal {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

impl PartialRefusal {
    fn from_diag(d: &Diagnostic) -> Self {
        PartialRefusal {
            code: d.code,
            path: d.location_text().unwrap_or_default(),
            message: d.message.clone(),
        }
    }
}

/// The result of [`analyze`]; see the module documentation for the rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SdfAnalysis {
    /// The plan's (scene's) name.
    pub graph: String,
    pub consistent: bool,
    /// `None` when inconsistent.
    pub repetition_vector: Option<RepetitionVector>,
    /// `None` when inconsistent (or refused, `R352`).
    pub deadlock_free: Option<bool>,
    /// Graph iterations per tick with unbounded buffers; `None` when unbounded, refused or
    /// inconsistent; `0.0` for a graph that deadlocks.
    pub throughput: Option<f64>,
    pub throughput_exact: Option<Ratio>,
    /// The maximum cycle mean `λ` of the iteration matrix, in ticks; `None` when there is no
    /// cycle, when the graph deadlocks (infinite), or when refused.
    pub iteration_period_ticks: Option<Ratio>,
    /// Which channel breaks the balance equations.
    pub inconsistency: Option<String>,
    /// Which nodes cannot complete an iteration, and what they wait for.
    pub deadlock: Option<String>,
    /// Always `"unbounded"`: capacities are not part of the analysis.
    pub buffers: &'static str,
    /// The initial tokens (explicit and implicit) the iteration matrix is built over.
    pub matrix_tokens: Option<usize>,
    /// How the figures were obtained.
    pub basis: String,
    /// Parts of the analysis refused (`R351` measured latency, `R352` limits).
    pub refusals: Vec<PartialRefusal>,
}

impl SdfAnalysis {
    /// The JSON form of SPEC §19 (`tapwheel analyze --format json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("serialising the analysis failed: {e}") }),
        )
    }

    /// A short human-readable report.
    pub fn to_text(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut s = format!("SDF analysis of `{}`\n", self.graph);
        s += &format!("  consistent: {}\n", yes(self.consistent));
        if let Some(m) = &self.inconsistency {
            s += &format!("  inconsistency: {m}\n");
        }
        if let Some(q) = &self.repetition_vector {
            let list: Vec<String> = q.0.iter().map(|(n, c)| format!("{n}={c}")).collect();
            s += &format!("  repetition vector: {}\n", list.join(" "));
        }
        if let Some(d) = self.deadlock_free {
            s += &format!("  deadlock free: {}\n", yes(d));
        }
        if let Some(m) = &self.deadlock {
            s += &format!("  deadlock: {m}\n");
        }
        if self.consistent {
            match (&self.iteration_period_ticks, &self.throughput_exact) {
                (Some(p), Some(t)) => {
                    s += &format!("  iteration period: {p} ticks\n");
                    s += &format!(
                        "  throughput: {t} iterations per tick ({:.6e})\n",
                        t.to_f64()
                    );
                }
                (Some(p), None) => {
                    s += &format!("  iteration period: {p} ticks\n  throughput: unbounded\n")
                }
                (None, Some(t)) => s += &format!("  throughput: {t}\n"),
                (None, None) if self.refusals.is_empty() => s += "  throughput: unbounded\n",
                (None, None) => s += "  throughput: not computed (refused)\n",
            }
        }
        s += &format!("  buffers: {}\n", self.buffers);
        for r in &self.refusals {
            s += &format!("  refused[{}]: {} --> {}\n", r.code, r.message, r.path);
        }
        s += &format!("  basis: {}\n", self.basis);
        s
    }
}

/// A channel reduced to what the analysis needs.
#[derive(Debug, Clone)]
struct SdfEdge {
    name: String,
    from: usize,
    to: usize,
    prod: u64,
    cons: u64,
    initial: u64,
    /// Ticks from the start of the producing firing until the token is available.
    offset: i64,
}

/// Analyses `plan` as an SDF graph. `Err(Refused)` (exit 4) lists every node with
/// data-dependent rates (`R350`) or a repetition vector that overflows `u64` (`R352`).
pub fn analyze(plan: &Plan) -> Result<SdfAnalysis, Error> {
    let mut refused = Vec::new();
    let mut partial = Vec::new();
    for (i, n) in plan.nodes.iter().enumerate() {
        if let Some(why) = data_dependent(&n.kernel) {
            refused.push(Diagnostic::at(
                "R350",
                format!("nodes[{i}].kernel"),
                format!(
                    "`{}` ({}) {why}: SDF analysis needs fixed rates",
                    n.name,
                    n.kernel.kind()
                ),
            ));
        }
        for t in n.inputs.iter().filter(|t| t.optional) {
            refused.push(Diagnostic::at(
                "R350",
                format!("nodes[{i}].taps.{}", t.name),
                format!(
                    "optional input `{}.{}` consumes a token only when one is visible (a data-dependent rate): SDF analysis needs fixed rates",
                    n.name, t.name
                ),
            ));
        }
        if n.measured_latency {
            partial.push(Diagnostic::at(
                "R351",
                format!("nodes[{i}].latency"),
                format!(
                    "`{}` has `latency: Measured` (wall-clock time): its execution time is unknown, so the throughput is not computed",
                    n.name
                ),
            ));
        }
    }
    if !refused.is_empty() {
        refused.extend(partial);
        return Err(Error::Refused(refused));
    }

    let arcs = arcs(plan)?;
    let n = plan.nodes.len();
    let mut out = SdfAnalysis {
        graph: plan.name.clone(),
        consistent: false,
        repetition_vector: None,
        deadlock_free: None,
        throughput: None,
        throughput_exact: None,
        iteration_period_ticks: None,
        inconsistency: None,
        deadlock: None,
        buffers: "unbounded",
        matrix_tokens: None,
        basis: String::new(),
        refusals: Vec::new(),
    };
    let q = match repetition_vector(n, &arcs)? {
        Err(msg) => {
            out.inconsistency = Some(msg);
            out.basis = "balance equations q[from]·prod = q[to]·cons per channel, solved exactly per weakly connected component: no positive solution".into();
            return Ok(out);
        }
        Ok(q) => q,
    };
    out.consistent = true;
    out.repetition_vector = Some(RepetitionVector(
        plan.nodes
            .iter()
            .zip(&q)
            .map(|(node, &c)| (node.name.clone(), c))
            .collect(),
    ));
    let mut basis = vec![
        "repetition vector: balance equations q[from]·prod = q[to]·cons solved exactly per weakly connected component".to_string(),
    ];
    let firings = q.iter().try_fold(0u64, |acc, &c| acc.checked_add(c));
    if firings.is_none_or(|f| f > MAX_ITERATION_FIRINGS) {
        partial.push(Diagnostic::at(
            "R352",
            "nodes",
            format!(
                "one iteration has {} firings, above the analysis limit of {MAX_ITERATION_FIRINGS}: deadlock freedom and throughput are not computed",
                firings.map_or("more than 2^64".to_string(), |f| f.to_string())
            ),
        ));
        out.refusals = partial.iter().map(PartialRefusal::from_diag).collect();
        out.basis = basis.join("; ");
        return Ok(out);
    }

    // Deadlock freedom: one iteration with token counts only.
    let fired = count_iteration(n, &arcs, &q);
    let stuck: Vec<usize> = (0..n).filter(|&v| fired[v] < q[v]).collect();
    out.deadlock_free = Some(stuck.is_empty());
    basis.push("deadlock freedom: abstract execution of one iteration (token counts)".into());
    if !stuck.is_empty() {
        out.deadlock = Some(deadlock_message(plan, &arcs, &q, &fired));
        out.throughput = Some(0.0);
        out.throughput_exact = Ratio::new(0, 1);
        basis.push("the graph deadlocks within one iteration: throughput 0".into());
    } else if partial.is_empty() {
        basis.push(
            "throughput = 1/λ, λ = maximum cycle mean (Howard policy iteration, exact) of the max-plus iteration matrix from a symbolic execution of one iteration; execution time = latency (Reference device), a token available latency + channel delay after its firing starts; concurrency Some(k) = k-token self-loop, None = unlimited; a source's period = 1-token self-loop returned period ticks after the start, its count and offset ignored (steady state); buffers unbounded".into(),
        );
        match throughput(plan, &arcs, &q) {
            Ok((tokens, lambda)) => {
                out.matrix_tokens = Some(tokens);
                match lambda {
                    None => {
                        basis.push("no cycle in the iteration matrix: throughput unbounded".into())
                    }
                    Some(l) => {
                        out.iteration_period_ticks = Some(l);
                        match l.recip() {
                            None => basis.push(
                                "iteration period 0 (a zero-time cycle): throughput unbounded"
                                    .into(),
                            ),
                            Some(t) => {
                                out.throughput = Some(t.to_f64());
                                out.throughput_exact = Some(t);
                            }
                        }
                    }
                }
            }
            Err(d) => partial.push(d),
        }
    }
    out.refusals = partial.iter().map(PartialRefusal::from_diag).collect();
    out.basis = basis.join("; ");
    Ok(out)
}

/// Why a kernel's rates depend on data, or `None` for a fixed-rate kernel.
fn data_dependent(k: &KernelSpec) -> Option<&'static str> {
    Some(match k {
        KernelSpec::OrderedMerge { .. } => "demands a token only on inputs whose head is empty",
        KernelSpec::Filter { .. } => "drops tokens depending on their values",
        KernelSpec::Take { .. } => "stops after n tokens",
        KernelSpec::Select { .. } => "routes each token to one of two outputs by a slot",
        KernelSpec::SlotLoad { .. } => "stores tokens into a slot",
        KernelSpec::Custom { .. } => "is a custom kernel whose demand and production are its own",
        KernelSpec::Inject => "fires when the embedding program injects a token",
        _ => return None,
    })
}

fn internal(msg: impl Into<String>) -> Error {
    Error::Internal(msg.into())
}

fn limit(path: impl Into<String>, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::at("R352", path, msg)
}

fn arcs(plan: &Plan) -> Result<Vec<SdfEdge>, Error> {
    plan.channels
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let from = plan.nodes.get(c.from_node);
            let prod = from.and_then(|n| n.outputs.get(c.from_tap)).map(|t| t.rate);
            let cons = plan
                .nodes
                .get(c.to_node)
                .and_then(|n| n.inputs.get(c.to_tap))
                .map(|t| t.rate);
            let (Some(from), Some(prod), Some(cons)) = (from, prod, cons) else {
                return Err(internal(format!(
                    "channel {k} refers to a tap the plan does not have"
                )));
            };
            let offset = from
                .latency
                .checked_add(c.delay)
                .and_then(|o| i64::try_from(o).ok());
            Ok(SdfEdge {
                name: c.name.clone(),
                from: c.from_node,
                to: c.to_node,
                // The planner guarantees rates of at least 1 (E215); never divide by 0 anyway.
                prod: u64::from(prod.max(1)),
                cons: u64::from(cons.max(1)),
                initial: c.initial.len() as u64,
                // An offset beyond i64 is caught (R352) when the throughput needs it.
                offset: offset.unwrap_or(i64::MAX),
            })
        })
        .collect()
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A positive fraction `num/den`, reduced.
#[derive(Debug, Clone, Copy)]
struct Frac {
    num: u128,
    den: u128,
}

impl Frac {
    /// `self · a / b`, reduced; `None` on overflow.
    fn scale(self, a: u64, b: u64) -> Option<Frac> {
        let (a, b) = (u128::from(a), u128::from(b));
        let g1 = gcd(self.num, b).max(1);
        let g2 = gcd(a, self.den).max(1);
        Some(Frac {
            num: (self.num / g1).checked_mul(a / g2)?,
            den: (self.den / g2).checked_mul(b / g1)?,
        })
    }
}

fn overflow() -> Error {
    Error::refused(limit(
        "nodes",
        "the repetition vector does not fit in 64-bit integers: the rates are too far apart to analyse",
    ))
}

/// Solves the balance equations. `Ok(Err(msg))`: inconsistent, `msg` names a channel.
fn repetition_vector(n: usize, arcs: &[SdfEdge]) -> Result<Result<Vec<u64>, String>, Error> {
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, a) in arcs.iter().enumerate() {
        adj[a.from].push(k);
        if a.to != a.from {
            adj[a.to].push(k);
        }
    }
    let mut frac: Vec<Option<Frac>> = vec![None; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for root in 0..n {
        if frac[root].is_some() {
            continue;
        }
        frac[root] = Some(Frac { num: 1, den: 1 });
        let mut comp = vec![root];
        let mut queue = VecDeque::from([root]);
        while let Some(v) = queue.pop_front() {
            let Some(fv) = frac[v] else { continue };
            for &k in &adj[v] {
                let a = &arcs[k];
                let (w, fw) = if a.from == v {
                    (a.to, fv.scale(a.prod, a.cons))
                } else {
                    (a.from, fv.scale(a.cons, a.prod))
                };
                if frac[w].is_none() {
                    frac[w] = Some(fw.ok_or_else(overflow)?);
                    comp.push(w);
                    queue.push_back(w);
                }
            }
        }
        comps.push(comp);
    }
    // Every channel must balance under the spanning-tree solution.
    for (k, a) in arcs.iter().enumerate() {
        let (Some(f), Some(t)) = (frac[a.from], frac[a.to]) else {
            return Err(internal("a node was left out of the balance equations"));
        };
        let lhs = f
            .num
            .checked_mul(u128::from(a.prod))
            .and_then(|x| x.checked_mul(t.den));
        let rhs = t
            .num
            .checked_mul(u128::from(a.cons))
            .and_then(|x| x.checked_mul(f.den));
        let (Some(lhs), Some(rhs)) = (lhs, rhs) else {
            return Err(overflow());
        };
        if lhs != rhs {
            let msg = if a.from == a.to {
                format!(
                    "channel `{}` (edges[{k}]) is a self-loop that produces {} but consumes {} tokens per firing: no repetition vector balances it",
                    a.name, a.prod, a.cons
                )
            } else {
                // The ratio q[from] : q[to] the other channels impose.
                let (x, y) = (
                    f.num.checked_mul(t.den).ok_or_else(overflow)?,
                    t.num.checked_mul(f.den).ok_or_else(overflow)?,
                );
                let g = gcd(x, y).max(1);
                format!(
                    "channel `{}` (edges[{k}]) breaks the balance equations: it needs q[from]·{} = q[to]·{}, but the other channels fix q[from] : q[to] = {} : {}",
                    a.name,
                    a.prod,
                    a.cons,
                    x / g,
                    y / g
                )
            };
            return Ok(Err(msg));
        }
    }
    let mut q = vec![0u64; n];
    for comp in comps {
        let mut l: u128 = 1;
        for &v in &comp {
            let d = frac[v].map_or(1, |f| f.den);
            l = (l / gcd(l, d).max(1)).checked_mul(d).ok_or_else(overflow)?;
        }
        let ints: Vec<u128> = comp
            .iter()
            .map(|&v| {
                let f = frac[v].unwrap_or(Frac { num: 1, den: 1 });
                f.num.checked_mul(l / f.den).ok_or_else(overflow)
            })
            .collect::<Result<_, _>>()?;
        let g = ints.iter().fold(0, |g, &x| gcd(g, x)).max(1);
        for (&v, &x) in comp.iter().zip(&ints) {
            q[v] = u64::try_from(x / g).map_err(|_| overflow())?;
        }
    }
    Ok(Ok(q))
}

/// Per node: its incoming channels from other nodes, its outgoing channels to other nodes, and
/// its self-loops.
struct Wiring {
    ins: Vec<Vec<usize>>,
    outs: Vec<Vec<usize>>,
    loops: Vec<Vec<usize>>,
}

fn wiring(n: usize, arcs: &[SdfEdge]) -> Wiring {
    let mut w = Wiring {
        ins: vec![Vec::new(); n],
        outs: vec![Vec::new(); n],
        loops: vec![Vec::new(); n],
    };
    for (k, a) in arcs.iter().enumerate() {
        if a.from == a.to {
            w.loops[a.from].push(k);
        } else {
            w.outs[a.from].push(k);
            w.ins[a.to].push(k);
        }
    }
    w
}

/// How many more firings node `v` can make now (token counts), at most `left`. A self-loop
/// returns its tokens at once in an untimed execution: it only gates (enough tokens or never).
fn fireable(v: usize, left: u64, w: &Wiring, arcs: &[SdfEdge], tokens: &[u64]) -> u64 {
    let mut k = left;
    for &c in &w.ins[v] {
        k = k.min(tokens[c] / arcs[c].cons);
    }
    if w.loops[v].iter().any(|&c| tokens[c] < arcs[c].cons) {
        k = 0;
    }
    k
}

/// One iteration with token counts only: how often each node fires (at most `q`).
fn count_iteration(n: usize, arcs: &[SdfEdge], q: &[u64]) -> Vec<u64> {
    let w = wiring(n, arcs);
    let mut tokens: Vec<u64> = arcs.iter().map(|a| a.initial).collect();
    let mut fired = vec![0u64; n];
    loop {
        let mut progress = false;
        for v in 0..n {
            let k = fireable(v, q[v] - fired[v], &w, arcs, &tokens);
            if k == 0 {
                continue;
            }
            progress = true;
            fired[v] += k;
            // Within one iteration at most q·rate tokens move: these products are bounded by
            // the balance equations (checked to fit when q was built) plus the initial tokens.
            for &c in &w.ins[v] {
                tokens[c] -= k * arcs[c].cons;
            }
            for &c in &w.outs[v] {
                tokens[c] = tokens[c].saturating_add(k.saturating_mul(arcs[c].prod));
            }
        }
        if !progress {
            return fired;
        }
    }
}

fn deadlock_message(plan: &Plan, arcs: &[SdfEdge], q: &[u64], fired: &[u64]) -> String {
    let n = plan.nodes.len();
    let w = wiring(n, arcs);
    let mut tokens: Vec<u64> = arcs.iter().map(|a| a.initial).collect();
    for (k, a) in arcs.iter().enumerate() {
        if a.from != a.to {
            tokens[k] = tokens[k]
                .saturating_add(fired[a.from].saturating_mul(a.prod))
                .saturating_sub(fired[a.to].saturating_mul(a.cons));
        }
    }
    let mut parts = Vec::new();
    for v in (0..n).filter(|&v| fired[v] < q[v]) {
        let waits: Vec<String> = w.ins[v]
            .iter()
            .chain(&w.loops[v])
            .filter(|&&c| tokens[c] < arcs[c].cons)
            .map(|&c| {
                format!(
                    "`{}` holds {} of {} tokens",
                    arcs[c].name, tokens[c], arcs[c].cons
                )
            })
            .collect();
        parts.push(format!(
            "`{}` fires {} of {} times ({})",
            plan.nodes[v].name,
            fired[v],
            q[v],
            waits.join(", ")
        ));
    }
    format!(
        "the iteration cannot complete with the initial tokens: {}",
        parts.join("; ")
    )
}

/// Minus infinity in max-plus algebra: "does not depend on this initial token".
const NEG: i64 = i64::MIN;

/// `count` tokens of one FIFO that share their time-stamp vector: available at `v + off`.
struct Run {
    v: Rc<[i64]>,
    off: i64,
    count: u64,
}

/// Pops `need` tokens from `fifo` and folds their time stamps into `acc` (max-plus sum).
fn take(fifo: &mut VecDeque<Run>, mut need: u64, acc: &mut [i64]) -> Result<(), Diagnostic> {
    while need > 0 {
        let Some(front) = fifo.front_mut() else {
            return Err(limit(
                "edges",
                "internal: a FIFO ran dry in the symbolic execution",
            ));
        };
        let t = need.min(front.count);
        for (a, &x) in acc.iter_mut().zip(front.v.iter()) {
            if x != NEG {
                let y = x.checked_add(front.off).ok_or_else(time_overflow)?;
                if y > *a {
                    *a = y;
                }
            }
        }
        front.count -= t;
        need -= t;
        if front.count == 0 {
            fifo.pop_front();
        }
    }
    Ok(())
}

fn time_overflow() -> Diagnostic {
    limit(
        "nodes",
        "time stamps of one iteration overflow 64-bit ticks: the throughput is not computed",
    )
}

/// One FIFO of the symbolic execution: an explicit channel, or an implicit self-loop.
struct Fifo {
    runs: VecDeque<Run>,
    initial: u64,
}

/// Symbolic (max-plus) execution of one iteration, then its maximum cycle mean. Returns the number of initial
/// tokens and the iteration period (`None`: no cycle). `Err`: a limit (R352).
fn throughput(
    plan: &Plan,
    arcs: &[SdfEdge],
    q: &[u64],
) -> Result<(usize, Option<Ratio>), Diagnostic> {
    let n = plan.nodes.len();
    let w = wiring(n, arcs);
    // FIFOs: explicit channels in edge order, then per node its concurrency and period loops.
    let mut fifos: Vec<Fifo> = arcs
        .iter()
        .map(|a| Fifo {
            runs: VecDeque::new(),
            initial: a.initial,
        })
        .collect();
    // Per node: (fifo, offset) of its concurrency loop and of its period loop.
    let mut conc: Vec<Option<(usize, i64)>> = vec![None; n];
    let mut period: Vec<Option<(usize, i64)>> = vec![None; n];
    let lat = |v: usize| i64::try_from(plan.nodes[v].latency).map_err(|_| time_overflow());
    for (v, node) in plan.nodes.iter().enumerate() {
        if let Some(k) = node.concurrency {
            conc[v] = Some((fifos.len(), lat(v)?));
            fifos.push(Fifo {
                runs: VecDeque::new(),
                initial: u64::from(k),
            });
        }
        if node.is_source
            && let Some(p) = node.period
        {
            let p = i64::try_from(p).map_err(|_| time_overflow())?;
            period[v] = Some((fifos.len(), p));
            fifos.push(Fifo {
                runs: VecDeque::new(),
                initial: 1,
            });
        }
    }
    let total = fifos
        .iter()
        .try_fold(0u64, |acc, f| acc.checked_add(f.initial));
    let dim = match total.and_then(|t| usize::try_from(t).ok()) {
        Some(t) if t <= MAX_MATRIX_TOKENS => t,
        _ => {
            return Err(limit(
                "edges",
                format!(
                    "the graph has {} initial tokens (explicit, concurrency and period self-loops), above the analysis limit of {MAX_MATRIX_TOKENS}: the throughput is not computed",
                    total.map_or("more than 2^64".into(), |t| t.to_string())
                ),
            ));
        }
    };
    // Budgets: one time-stamp vector per firing, one vector update per token consumed.
    let dim64 = dim as u64;
    let firings: u64 = q.iter().sum();
    let consumed = (0..n).try_fold(0u64, |acc, v| {
        let per: u64 = w.ins[v]
            .iter()
            .chain(&w.loops[v])
            .map(|&c| arcs[c].cons)
            .sum::<u64>()
            + 2;
        acc.checked_add(q[v].checked_mul(per)?)
    });
    let entries = firings.checked_mul(dim64);
    let work = consumed.and_then(|c| c.checked_mul(dim64));
    if entries.is_none_or(|e| e > MAX_SYMBOLIC_ENTRIES)
        || work.is_none_or(|x| x > MAX_SYMBOLIC_WORK)
    {
        return Err(limit(
            "nodes",
            format!(
                "the symbolic execution of one iteration ({firings} firings, {} tokens consumed, over {dim} initial tokens) exceeds the analysis budget ({MAX_SYMBOLIC_ENTRIES} time stamps, {MAX_SYMBOLIC_WORK} updates): the throughput is not computed",
                consumed.map_or("more than 2^64".into(), |c| c.to_string())
            ),
        ));
    }
    let mut j = 0;
    for f in &mut fifos {
        for _ in 0..f.initial {
            let mut e = vec![NEG; dim];
            e[j] = 0;
            f.runs.push_back(Run {
                v: e.into(),
                off: 0,
                count: 1,
            });
            j += 1;
        }
    }
    for a in arcs {
        if a.offset == i64::MAX {
            return Err(time_overflow());
        }
    }

    // Token counts drive the firing order (any order gives the same time stamps).
    let mut tokens: Vec<u64> = arcs.iter().map(|a| a.initial).collect();
    let mut fired = vec![0u64; n];
    let mut acc = vec![NEG; dim];
    loop {
        let mut progress = false;
        for v in 0..n {
            let k = fireable(v, q[v] - fired[v], &w, arcs, &tokens);
            if k == 0 {
                continue;
            }
            progress = true;
            for _ in 0..k {
                acc.fill(NEG);
                for &c in w.ins[v].iter().chain(&w.loops[v]) {
                    take(&mut fifos[c].runs, arcs[c].cons, &mut acc)?;
                }
                for (l, _) in conc[v].iter().chain(&period[v]) {
                    take(&mut fifos[*l].runs, 1, &mut acc)?;
                }
                let start: Rc<[i64]> = acc.as_slice().into();
                for &c in w.outs[v].iter().chain(&w.loops[v]) {
                    fifos[c].runs.push_back(Run {
                        v: start.clone(),
                        off: arcs[c].offset,
                        count: arcs[c].prod,
                    });
                }
                for &(l, off) in conc[v].iter().chain(&period[v]) {
                    fifos[l].runs.push_back(Run {
                        v: start.clone(),
                        off,
                        count: 1,
                    });
                }
            }
            fired[v] += k;
            for &c in &w.ins[v] {
                tokens[c] -= k * arcs[c].cons;
            }
            for &c in &w.outs[v] {
                tokens[c] = tokens[c].saturating_add(k.saturating_mul(arcs[c].prod));
            }
        }
        if !progress {
            break;
        }
    }
    if fired != q {
        return Err(limit(
            "nodes",
            "internal: the symbolic execution did not complete the iteration",
        ));
    }
    // Row i of the iteration matrix: the time stamp of the i-th token left, as a function of
    // the initial tokens.
    let mut m: Vec<Vec<i64>> = Vec::with_capacity(dim);
    for f in &fifos {
        let before = m.len();
        for r in &f.runs {
            for _ in 0..r.count {
                let row =
                    r.v.iter()
                        .map(|&x| {
                            if x == NEG {
                                Ok(NEG)
                            } else {
                                x.checked_add(r.off).ok_or_else(time_overflow)
                            }
                        })
                        .collect::<Result<Vec<i64>, _>>()?;
                m.push(row);
            }
        }
        if (m.len() - before) as u64 != f.initial {
            return Err(limit(
                "edges",
                "internal: a FIFO does not return to its initial token count after one iteration",
            ));
        }
    }
    Ok((dim, cycle_time(&m)?))
}

/// The maximum cycle mean of `m` (edge `i → j` when `m[i][j]` is finite; cycle means do not
/// depend on the direction): Howard's policy iteration, exact, with Karp's algorithm as the
/// fallback should it not settle within its iteration budget or leave 64/128-bit range.
fn cycle_time(m: &[Vec<i64>]) -> Result<Option<Ratio>, Diagnostic> {
    match howard(m) {
        Some(r) => Ok(r),
        None => karp(m),
    }
}

/// An exact rational `n/d`, `d > 0` (not necessarily reduced), for Howard's values.
#[derive(Debug, Clone, Copy)]
struct Q {
    n: i128,
    d: i128,
}

impl Q {
    /// `self` compared with `o`; `None` on overflow.
    fn cmp(self, o: Q) -> Option<std::cmp::Ordering> {
        Some(self.n.checked_mul(o.d)?.cmp(&o.n.checked_mul(self.d)?))
    }
}

/// Howard's policy iteration for the maximum cycle mean (Cochet-Terrasson, Cohen, Gaubert,
/// McGettrick, Quadrat 1998), in exact arithmetic. It stops only when no policy improves, which
/// certifies the result: along every edge `i → j`, `η(j) ≤ η(i)`, and where equal,
/// `m[i][j] − η(i) + v(j) ≤ v(i)`; summed around any cycle this bounds its mean by the `η` on
/// it, and every `η` is the mean of a policy cycle. `None`: give up (budget, overflow).
fn howard(m: &[Vec<i64>]) -> Option<Option<Ratio>> {
    use std::cmp::Ordering::*;
    let dim = m.len();
    // Keep only nodes with a successor that is kept: the others lie on no cycle.
    let mut succ_count: Vec<usize> = m
        .iter()
        .map(|row| row.iter().filter(|&&x| x != NEG).count())
        .collect();
    let preds: Vec<Vec<usize>> = (0..dim)
        .map(|j| (0..dim).filter(|&i| m[i][j] != NEG).collect())
        .collect();
    let mut alive = vec![true; dim];
    let mut dead: Vec<usize> = (0..dim).filter(|&i| succ_count[i] == 0).collect();
    while let Some(j) = dead.pop() {
        if !alive[j] {
            continue;
        }
        alive[j] = false;
        for &i in &preds[j] {
            succ_count[i] -= 1;
            if succ_count[i] == 0 && alive[i] {
                dead.push(i);
            }
        }
    }
    let nodes: Vec<usize> = (0..dim).filter(|&i| alive[i]).collect();
    if nodes.is_empty() {
        return Some(None);
    }
    let succ: Vec<Vec<(usize, i64)>> = (0..dim)
        .map(|i| {
            if !alive[i] {
                return Vec::new();
            }
            (0..dim)
                .filter(|&j| alive[j] && m[i][j] != NEG)
                .map(|j| (j, m[i][j]))
                .collect()
        })
        .collect();
    // Initial policy: the heaviest edge out of every node.
    let mut pi = vec![usize::MAX; dim];
    let mut pw = vec![0i64; dim];
    for &i in &nodes {
        let &(j, w) = succ[i].iter().max_by_key(|&&(_, w)| w)?;
        (pi[i], pw[i]) = (j, w);
    }
    let mut eta = vec![Q { n: 0, d: 1 }; dim];
    let mut v = vec![Q { n: 0, d: 1 }; dim];
    let budget = 100 + 10 * nodes.len();
    for _ in 0..budget {
        // Value determination on the functional graph of pi.
        let mut state = vec![0u8; dim]; // 0 new, 1 on the current walk, 2 done
        for &start in &nodes {
            if state[start] != 0 {
                continue;
            }
            let mut path = Vec::new();
            let mut x = start;
            while state[x] == 0 {
                state[x] = 1;
                path.push(x);
                x = pi[x];
            }
            let mut rest = path.len();
            if state[x] == 1 {
                // A new cycle: from x to the end of the path.
                let at = path.iter().position(|&p| p == x)?;
                let cyc = &path[at..];
                let mut sum: i128 = 0;
                for &c in cyc {
                    sum = sum.checked_add(i128::from(pw[c]))?;
                }
                let len = cyc.len() as i128;
                let e = Q { n: sum, d: len };
                // Root: the lowest index on the cycle (an unchanged cycle keeps its values).
                let r = at + cyc.iter().enumerate().min_by_key(|&(_, &c)| c)?.0;
                let root = path[r];
                eta[root] = e;
                v[root] = Q { n: 0, d: len };
                // Around the cycle backwards from the root: v(i) = w(i) − η + v(pi(i)).
                let l = cyc.len();
                for step in 1..l {
                    let i = path[at + (r - at + l - step) % l];
                    let next = v[pi[i]];
                    eta[i] = e;
                    v[i] = Q {
                        n: i128::from(pw[i])
                            .checked_mul(len)?
                            .checked_sub(sum)?
                            .checked_add(next.n)?,
                        d: len,
                    };
                }
                rest = at;
            }
            for &i in path[..rest].iter().rev() {
                let (e, next) = (eta[pi[i]], v[pi[i]]);
                eta[i] = e;
                v[i] = Q {
                    n: i128::from(pw[i])
                        .checked_mul(e.d)?
                        .checked_sub(e.n)?
                        .checked_add(next.n)?,
                    d: e.d,
                };
            }
            for &i in &path {
                state[i] = 2;
            }
        }
        // Improvement, first kind: reach a cycle of a larger mean.
        let mut changed = false;
        for &i in &nodes {
            let mut best = eta[i];
            let mut pick = None;
            for &(j, w) in &succ[i] {
                if eta[j].cmp(best)? == Greater {
                    best = eta[j];
                    pick = Some((j, w));
                }
            }
            if let Some((j, w)) = pick {
                (pi[i], pw[i]) = (j, w);
                changed = true;
            }
        }
        if changed {
            continue;
        }
        // Second kind: among successors of the same mean, a strictly larger bias.
        for &i in &nodes {
            let e = eta[i];
            let mut best = v[i];
            let mut pick = None;
            for &(j, w) in &succ[i] {
                if eta[j].cmp(e)? != Equal {
                    continue;
                }
                // w − η + v(j) over v(j)'s denominator, which is η(j)'s (= η(i) as a value).
                let ej = eta[j];
                let cand = Q {
                    n: i128::from(w)
                        .checked_mul(ej.d)?
                        .checked_sub(ej.n)?
                        .checked_add(v[j].n)?,
                    d: ej.d,
                };
                if cand.cmp(best)? == Greater {
                    best = cand;
                    pick = Some((j, w));
                }
            }
            if let Some((j, w)) = pick {
                (pi[i], pw[i]) = (j, w);
                changed = true;
            }
        }
        if !changed {
            let mut top = eta[nodes[0]];
            for &i in &nodes {
                if eta[i].cmp(top)? == Greater {
                    top = eta[i];
                }
            }
            let num = u64::try_from(top.n.max(0)).ok()?;
            let den = u64::try_from(top.d).ok()?;
            return Some(Ratio::new(num, den));
        }
    }
    None
}

/// The maximum cycle mean of the max-plus matrix `m` (edge `j → i` of weight `m[i][j]`), exact;
/// `None` when the graph has no cycle. Karp's theorem, per strongly connected component:
/// `λ = max_v min_k (D_n(v) − D_k(v)) / (n − k)`, `D_k(v)` the heaviest walk of k edges from a
/// fixed node of the component to `v`. `Err` when a walk's weight overflows 64 bits.
fn karp(m: &[Vec<i64>]) -> Result<Option<Ratio>, Diagnostic> {
    let dim = m.len();
    let adj: Vec<Vec<usize>> = (0..dim)
        .map(|j| (0..dim).filter(|&i| m[i][j] != NEG).collect())
        .collect();
    // Best (num, den) so far, den > 0.
    let mut best: Option<(i128, i128)> = None;
    let mut local = vec![usize::MAX; dim];
    for comp in crate::plan::tarjan(&adj) {
        let size = comp.len();
        let cyclic = size > 1 || m[comp[0]][comp[0]] != NEG;
        if !cyclic {
            continue;
        }
        for (l, &v) in comp.iter().enumerate() {
            local[v] = l;
        }
        // Predecessors of every v in compressed rows: (u, weight of u → v), so a sparse matrix
        // costs O(size · edges) rather than O(size³).
        let mut start = Vec::with_capacity(size + 1);
        let (mut from, mut weight) = (Vec::new(), Vec::new());
        for &v in &comp {
            start.push(from.len());
            for &u in &comp {
                if m[v][u] != NEG {
                    from.push(local[u]);
                    weight.push(m[v][u]);
                }
            }
        }
        start.push(from.len());
        // d[k·size + v] = D_k(v); NEG = no walk.
        let mut d = vec![NEG; (size + 1) * size];
        d[0] = 0;
        for k in 1..=size {
            let (prev, cur) = d.split_at_mut(k * size);
            let prev = &prev[(k - 1) * size..];
            for (v, out) in cur[..size].iter_mut().enumerate() {
                let mut b = NEG;
                for e in start[v]..start[v + 1] {
                    let p = prev[from[e]];
                    if p != NEG {
                        b = b.max(p.checked_add(weight[e]).ok_or_else(time_overflow)?);
                    }
                }
                *out = b;
            }
        }
        for v in 0..size {
            let dn = d[size * size + v];
            if dn == NEG {
                continue;
            }
            // min over k of (D_n − D_k) / (n − k)
            let mut worst: Option<(i128, i128)> = None;
            for k in 0..size {
                let dk = d[k * size + v];
                if dk == NEG {
                    continue;
                }
                let cand = (i128::from(dn) - i128::from(dk), (size - k) as i128);
                if worst.is_none_or(|(a, b)| cand.0 * b < a * cand.1) {
                    worst = Some(cand);
                }
            }
            if let Some(c) = worst
                && best.is_none_or(|(a, b)| c.0 * b > a * c.1)
            {
                best = Some(c);
            }
        }
    }
    let Some((num, den)) = best else {
        return Ok(None);
    };
    // Weights are non-negative, so the mean is too.
    Ok(Ratio::new(
        u64::try_from(num.max(0)).map_err(|_| time_overflow())?,
        u64::try_from(den).map_err(|_| time_overflow())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: &[&[i64]]) -> Vec<Vec<i64>> {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn karp_and_howard_find_the_heaviest_mean() {
        for f in [karp, cycle_time] {
            // Cycle 0 → 1 → 0 of weight 3 + 5 over 2 edges = 4; self-loop at 2 of weight 3.
            let m = mat(&[&[NEG, 5, NEG], &[3, NEG, NEG], &[1, NEG, 3]]);
            assert_eq!(f(&m), Ok(Ratio::new(4, 1)));
            // A 3-cycle of weight 7: 7/3, exact.
            let m = mat(&[&[NEG, NEG, 2], &[2, NEG, NEG], &[NEG, 3, NEG]]);
            assert_eq!(
                f(&m).map(|r| r.map(|r| r.to_string())),
                Ok(Some("7/3".into()))
            );
            // No cycle at all.
            let m = mat(&[&[NEG, NEG], &[4, NEG]]);
            assert_eq!(f(&m), Ok(None));
        }
    }

    /// Howard's exact policy iteration agrees with Karp on random matrices of every density
    /// (SplitMix64, fixed seed).
    #[test]
    fn howard_agrees_with_karp_on_random_matrices() {
        let mut state = 0x5eed_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut cyclic = 0;
        for case in 0..3000 {
            let dim = 1 + (next() % 9) as usize;
            let density = next() % 100;
            let wmax = [3, 20, 1000][case % 3];
            let m: Vec<Vec<i64>> = (0..dim)
                .map(|_| {
                    (0..dim)
                        .map(|_| {
                            if next() % 100 < density {
                                (next() % wmax) as i64
                            } else {
                                NEG
                            }
                        })
                        .collect()
                })
                .collect();
            let k = karp(&m).expect("in range");
            assert_eq!(howard(&m), Some(k), "case {case}: {m:?}");
            cyclic += usize::from(k.is_some());
        }
        assert!(cyclic > 1000, "{cyclic}");
    }

    #[test]
    fn ratios_print_reduced() {
        assert_eq!(
            Ratio::new(2, 1920).map(|r| r.to_string()),
            Some("1/960".into())
        );
        assert_eq!(
            Ratio::new(960, 1).map(|r| r.to_string()),
            Some("960".into())
        );
        assert_eq!(Ratio::new(0, 5).map(|r| r.to_string()), Some("0".into()));
        assert_eq!(Ratio::new(1, 0), None);
    }
}
