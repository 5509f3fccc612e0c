//! Building a scene in code (SPEC §20) and writing any scene back as RON.
//!
//! [`SceneBuilder`] assembles a [`SceneSpec`] field by field; [`NodeSpec::new`] and
//! [`EdgeSpec::new`] start a node or an edge with *exactly* the values the RON parser gives an
//! omitted field, so a scene built in code and the same scene written in RON are equal
//! (`==` on [`Scene::spec`]). [`SceneSpec::to_ron`] goes the other way: it writes pretty RON that
//! [`Scene::parse`] reads back to an equal spec — floats bit for bit, `delay: Symbol("x")`,
//! `latency: Measured`, every option as `Some(..)` — which is what engine snapshots rely on.
//!
//! The rules:
//! - **Defaults are the parser's.** Whatever a builder does not set is what RON gives a missing
//!   field (`concurrency: Some(1)`, `capacity: None` → `defaults.capacity`, `tick_hz: 1.0`,
//!   `memory: Parks(max_capacity: 65536)`, …).
//! - **The builder never validates and never panics.** Unknown nodes, bad names, shape
//!   mismatches are reported where RON scenes report them — by [`crate::Plan::compile`] /
//!   [`crate::Engine::from_scene`], with the same codes and scene paths (`edges[1].to`).
//! - **`to_ron` then `parse` is the identity** on [`SceneSpec`].
//!
//! ```
//! use tapwheel::scene::{EdgeSpec, KernelSpec, NodeSpec};
//! use tapwheel::{Scene, SceneBuilder};
//! let built = SceneBuilder::new("doc")
//!     .node(NodeSpec::new("src", KernelSpec::Ramp { start: 1.0, step: 1.0 }).period(2).count(3))
//!     .node(NodeSpec::new("g", KernelSpec::Gain { gain: 10.0 }))
//!     .node(NodeSpec::new("out", KernelSpec::Probe))
//!     .edge(EdgeSpec::new("src.out", "g.in").delay(5))
//!     .connect("g.out", "out.in")
//!     .build();
//! let parsed = Scene::parse(r#"Scene(version: 1, name: "doc",
//!     nodes: [Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(2), count: Some(3)),
//!             Node(name: "g", kernel: Gain(gain: 10.0)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in", delay: 5), Edge(from: "g.out", to: "out.in")])"#,
//!     "doc.ron", ".".into()).unwrap();
//! assert_eq!(built.spec, parsed.spec);
//! // And back: the RON a scene writes parses to the same spec.
//! let again = Scene::parse(&built.to_ron(), "again.ron", ".".into()).unwrap();
//! assert_eq!(again.spec, built.spec);
//! ```

use super::model::*;
use super::{SCENE_VERSION, Scene};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The origin a built scene reports in diagnostics.
pub const BUILDER_ORIGIN: &str = "<builder>";

impl Shape {
    /// `(batch, channels, frames)`; a token of this shape holds `batch·channels·frames` values.
    ///
    /// ```
    /// use tapwheel::scene::Shape;
    /// let s = Shape::new(2, 3, 4);
    /// assert_eq!((s.batch, s.channels, s.frames), (2, 3, 4));
    /// assert_eq!(s.elements(), 24);
    /// assert_eq!(Shape::new(1, 1, 1), Shape::default());
    /// ```
    pub fn new(batch: u32, channels: u32, frames: u32) -> Shape {
        Shape {
            batch,
            channels,
            frames,
        }
    }
}

impl NodeSpec {
    /// A node with every optional field at the value RON gives it when omitted: shape `None`
    /// (the scene's `defaults.shape`), no `period`/`count`, `offset: 0`, `latency: 0`, no
    /// `cost`, `concurrency: Some(1)`, lane `Data`, no domain, gate, core, thermal or
    /// throttle, `timing: Off`, no tap overrides.
    ///
    /// ```
    /// use tapwheel::scene::{KernelSpec, NodeSpec, SceneSpec};
    /// let node = NodeSpec::new("lp", KernelSpec::OnePole { coeff: 0.5 });
    /// let scene: SceneSpec = ron::from_str(
    ///     r#"Scene(version: 1, name: "s", nodes: [Node(name: "lp", kernel: OnePole(coeff: 0.5))])"#,
    /// ).unwrap();
    /// assert_eq!(scene.nodes[0], node);
    /// assert_eq!(node.concurrency, Some(1));
    /// ```
    ///
    /// Each setter stores exactly what its RON field parses to:
    ///
    /// ```
    /// use tapwheel::scene::*;
    /// use tapwheel::Scene;
    /// let node = NodeSpec::new("core", KernelSpec::Gain { gain: 2.0 })
    ///     .shape(Shape::new(1, 2, 64))
    ///     .period(4)
    ///     .offset(1)
    ///     .count(3)
    ///     .latency(7)
    ///     .cost(CostSpec::Linear { base: 10, per_element: 0.5 })
    ///     .concurrency(None)
    ///     .domain(2)
    ///     .gate("g")
    ///     .core(CoreType::Vector)
    ///     .thermal(ThermalSpec { capacity: 0.5, resistance: 20.0, ambient: 300.0,
    ///                            input_coeff: 0.001, work_power: 2.0 })
    ///     .throttle(ThrottleSpec { t_max: 360.0, factor: 2.0 })
    ///     .timing(Timing::Measure)
    ///     .tap("in", TapOverride { rate: Some(2), group: Some("1a".into()), ..TapOverride::default() })
    ///     .lane(Lane::Control);
    /// let parsed = Scene::parse(r#"Scene(version: 1, name: "s", nodes: [
    ///     Node(name: "core", kernel: Gain(gain: 2.0), shape: (batch: 1, channels: 2, frames: 64),
    ///          period: 4, offset: 1, count: 3, latency: 7, cost: Linear(base: 10, per_element: 0.5),
    ///          concurrency: None, domain: 2, gate: "g", core: Vector,
    ///          thermal: (capacity: 0.5, resistance: 20.0, ambient: 300.0, input_coeff: 0.001, work_power: 2.0),
    ///          throttle: (t_max: 360.0, factor: 2.0), timing: Measure,
    ///          taps: {"in": (rate: 2, group: "1a")}, lane: Control)])"#,
    ///     "s.ron", ".".into()).unwrap();
    /// assert_eq!(parsed.spec.nodes[0], node);
    /// assert_eq!(
    ///     NodeSpec::new("t", KernelSpec::Copy).latency_measured().latency,
    ///     LatencySpec::Word(LatencyWord::Measured),
    /// );
    /// ```
    pub fn new(name: impl Into<String>, kernel: KernelSpec) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            kernel,
            shape: None,
            period: None,
            offset: 0,
            count: None,
            latency: LatencySpec::default(),
            cost: None,
            concurrency: Some(1),
            lane: Lane::default(),
            domain: None,
            gate: None,
            core: None,
            thermal: None,
            throttle: None,
            timing: Timing::default(),
            taps: BTreeMap::new(),
        }
    }

    /// `shape: Some(shape)`: the shape of every tap (over `defaults.shape`).
    pub fn shape(mut self, shape: Shape) -> NodeSpec {
        self.shape = Some(shape);
        self
    }

    /// `period: Some(ticks)`: a source fires every `ticks` ticks.
    pub fn period(mut self, ticks: u64) -> NodeSpec {
        self.period = Some(ticks);
        self
    }

    /// `offset: tick`: a source's first firing.
    pub fn offset(mut self, tick: u64) -> NodeSpec {
        self.offset = tick;
        self
    }

    /// `count: Some(n)`: a source fires `n` times, then stops.
    pub fn count(mut self, n: u64) -> NodeSpec {
        self.count = Some(n);
        self
    }

    /// `latency: ticks` (on the Reference device).
    ///
    /// ```
    /// use tapwheel::scene::{KernelSpec, LatencySpec, NodeSpec};
    /// let n = NodeSpec::new("g", KernelSpec::Copy).latency(3);
    /// assert_eq!(n.latency, LatencySpec::Ticks(3));
    /// ```
    pub fn latency(mut self, ticks: u64) -> NodeSpec {
        self.latency = LatencySpec::Ticks(ticks);
        self
    }

    /// `latency: Measured`: the wall-clock time of each firing (marks the run non-deterministic).
    pub fn latency_measured(mut self) -> NodeSpec {
        self.latency = LatencySpec::Word(LatencyWord::Measured);
        self
    }

    /// `cost: Some(cost)`, the alternative to a fixed latency.
    pub fn cost(mut self, cost: CostSpec) -> NodeSpec {
        self.cost = Some(cost);
        self
    }

    /// `concurrency`: firings in flight at once; `None` is unlimited.
    pub fn concurrency(mut self, concurrency: Option<u32>) -> NodeSpec {
        self.concurrency = concurrency;
        self
    }

    /// `domain: Some(domain)`.
    pub fn domain(mut self, domain: u32) -> NodeSpec {
        self.domain = Some(domain);
        self
    }

    /// `gate: Some(name)`: the synchrony gate the node belongs to (declare it with
    /// [`SceneBuilder::gate`]).
    pub fn gate(mut self, name: impl Into<String>) -> NodeSpec {
        self.gate = Some(name.into());
        self
    }

    /// `core: Some(core)`: the CycleSim worker type that runs the node.
    pub fn core(mut self, core: CoreType) -> NodeSpec {
        self.core = Some(core);
        self
    }

    /// `thermal: Some(thermal)`.
    pub fn thermal(mut self, thermal: ThermalSpec) -> NodeSpec {
        self.thermal = Some(thermal);
        self
    }

    /// `throttle: Some(throttle)`.
    pub fn throttle(mut self, throttle: ThrottleSpec) -> NodeSpec {
        self.throttle = Some(throttle);
        self
    }

    /// `timing`.
    pub fn timing(mut self, timing: Timing) -> NodeSpec {
        self.timing = timing;
        self
    }

    /// One entry of `taps`; a second override of the same tap replaces the first.
    ///
    /// ```
    /// use tapwheel::scene::{KernelSpec, NodeSpec, TapOverride};
    /// let n = NodeSpec::new("m", KernelSpec::Add)
    ///     .tap("b", TapOverride { optional: true, hold_last: true, ..TapOverride::default() });
    /// assert!(n.taps["b"].hold_last);
    /// assert_eq!(n.taps["b"].rate, None);
    /// ```
    pub fn tap(mut self, name: impl Into<String>, over: TapOverride) -> NodeSpec {
        self.taps.insert(name.into(), over);
        self
    }

    /// `lane`.
    pub fn lane(mut self, lane: Lane) -> NodeSpec {
        self.lane = lane;
        self
    }
}

impl EdgeSpec {
    /// A channel `from` an output tap `to` an input tap (both `"node.tap"`), every other field at
    /// its RON default: `delay: 0`, `capacity: None` (the scene's `defaults.capacity`), lane
    /// `Data`, policy `Block`, no initial tokens, no watermarks.
    ///
    /// ```
    /// use tapwheel::scene::{DelaySpec, EdgeSpec, NamedDelay, Policy, TokenSpec};
    /// let e: EdgeSpec = ron::from_str(r#"Edge(from: "a.out", to: "b.in")"#).unwrap();
    /// assert_eq!(EdgeSpec::new("a.out", "b.in"), e);
    /// let e = EdgeSpec::new("a.out", "b.in")
    ///     .delay_symbol("link")
    ///     .capacity(4)
    ///     .policy(Policy::DropOldest)
    ///     .initial([1.0, 2.5]);
    /// assert_eq!(e.delay, DelaySpec::Named(NamedDelay::Symbol("link".into())));
    /// assert_eq!(e.initial, vec![TokenSpec::Scalar(1.0), TokenSpec::Scalar(2.5)]);
    /// ```
    ///
    /// Each setter stores exactly what its RON field parses to:
    ///
    /// ```
    /// use tapwheel::scene::{EdgeSpec, Lane, Policy};
    /// use tapwheel::Scene;
    /// let edge = EdgeSpec::new("a.out", "b.in")
    ///     .delay(64)
    ///     .capacity(4)
    ///     .policy(Policy::DropNewest)
    ///     .lane(Lane::Telemetry)
    ///     .initial([0.0, 1.5])
    ///     .watermarks(3, 1);
    /// let parsed = Scene::parse(r#"Scene(version: 1, name: "s", nodes: [],
    ///     edges: [Edge(from: "a.out", to: "b.in", delay: 64, capacity: 4, policy: DropNewest,
    ///                  lane: Telemetry, initial: [0.0, 1.5], watermarks: Some((3, 1)))])"#,
    ///     "s.ron", ".".into()).unwrap();
    /// assert_eq!(parsed.spec.edges[0], edge);
    /// ```
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> EdgeSpec {
        EdgeSpec {
            from: from.into(),
            to: to.into(),
            delay: DelaySpec::default(),
            capacity: None,
            lane: Lane::default(),
            policy: Policy::default(),
            initial: Vec::new(),
            watermarks: None,
        }
    }

    /// `delay: ticks`: a token pushed at tick `t` is visible at `t + ticks`.
    pub fn delay(mut self, ticks: u64) -> EdgeSpec {
        self.delay = DelaySpec::Ticks(ticks);
        self
    }

    /// `delay: Symbol(name)`: the delay is the symbol's value, read at run start.
    pub fn delay_symbol(mut self, name: impl Into<String>) -> EdgeSpec {
        self.delay = DelaySpec::Named(NamedDelay::Symbol(name.into()));
        self
    }

    /// `capacity: Some(tokens)` (0 is a rendezvous channel).
    pub fn capacity(mut self, tokens: u32) -> EdgeSpec {
        self.capacity = Some(tokens);
        self
    }

    /// `policy`.
    pub fn policy(mut self, policy: Policy) -> EdgeSpec {
        self.policy = policy;
        self
    }

    /// `lane`.
    pub fn lane(mut self, lane: Lane) -> EdgeSpec {
        self.lane = lane;
        self
    }

    /// `initial`: one scalar token per number (each broadcast to the tap's shape), replacing
    /// any tokens set before.
    pub fn initial(mut self, values: impl IntoIterator<Item = f64>) -> EdgeSpec {
        self.initial = values.into_iter().map(TokenSpec::Scalar).collect();
        self
    }

    /// `initial`: tokens written out in full ([`TokenSpec::Block`]) or as scalars, replacing any
    /// tokens set before.
    ///
    /// ```
    /// use tapwheel::scene::{EdgeSpec, TokenSpec};
    /// let e = EdgeSpec::new("a.out", "b.in")
    ///     .initial_tokens([TokenSpec::Block(vec![1.0, 2.0]), TokenSpec::Scalar(0.0)]);
    /// assert_eq!(e.initial.len(), 2);
    /// ```
    pub fn initial_tokens(mut self, tokens: impl IntoIterator<Item = TokenSpec>) -> EdgeSpec {
        self.initial = tokens.into_iter().collect();
        self
    }

    /// `watermarks: Some((high, low))`.
    pub fn watermarks(mut self, high: u32, low: u32) -> EdgeSpec {
        self.watermarks = Some((high, low));
        self
    }
}

impl SceneSpec {
    /// A scene of format version 1 named `name`, with no nodes or edges and every other field at
    /// its RON default.
    ///
    /// ```
    /// use tapwheel::scene::SceneSpec;
    /// let parsed: SceneSpec = ron::from_str(r#"Scene(version: 1, name: "empty", nodes: [])"#).unwrap();
    /// assert_eq!(SceneSpec::new("empty"), parsed);
    /// ```
    pub fn new(name: impl Into<String>) -> SceneSpec {
        SceneSpec {
            version: SCENE_VERSION,
            name: name.into(),
            tick_hz: 1.0,
            defaults: Defaults::default(),
            nodes: Vec::new(),
            edges: Vec::new(),
            gates: Vec::new(),
            schedule: ScheduleSpec::default(),
            memory: MemorySpec::default(),
            dispatch: None,
            task_window: None,
            device: DeviceSpec::default(),
            slots: BTreeMap::new(),
            symbols: BTreeMap::new(),
            thermal_links: Vec::new(),
            strict: false,
            loss: None,
            run: RunSpec::default(),
        }
    }

    /// Pretty RON that [`Scene::parse`] reads back to an equal spec.
    ///
    /// Every field is written (defaults too), options as `Some(..)` (so plain RON without
    /// `implicit_some` reads the text as well), structs with their names (`Scene(`, `Node(`,
    /// `Edge(`), floats in the shortest form that parses to the same bits, delays as a number or
    /// `Symbol("name")`, latencies as a number or `Measured`, initial tokens as a number or a
    /// list. One field per line down to the fields of a node or edge; anything deeper (kernel
    /// parameters, thermal, tap overrides) stays on its field's line. The text is a fixed point:
    /// parsing it and writing it again gives the same text.
    ///
    /// ```
    /// use tapwheel::scene::{EdgeSpec, KernelSpec, NodeSpec};
    /// use tapwheel::{Scene, SceneBuilder};
    /// let scene = SceneBuilder::new("rt")
    ///     .tick_hz(48000.0)
    ///     .node(NodeSpec::new("s", KernelSpec::Const { value: 0.1 + 0.2 }).period(1).count(2))
    ///     .node(NodeSpec::new("g", KernelSpec::Gain { gain: 1.0 / 3.0 }).latency_measured())
    ///     .node(NodeSpec::new("out", KernelSpec::Probe))
    ///     .edge(EdgeSpec::new("s.out", "g.in").delay_symbol("d").initial([-0.5, 1e-300]))
    ///     .connect("g.out", "out.in")
    ///     .symbol("d", 2)
    ///     .build();
    /// let text = scene.spec.to_ron();
    /// assert!(text.starts_with("Scene("));
    /// assert!(text.contains("delay: Symbol(\"d\")"));
    /// assert!(text.contains("latency: Measured"));
    /// assert!(text.contains("concurrency: Some(1)"));
    /// let back = Scene::parse(&text, "rt.ron", ".".into()).unwrap();
    /// assert_eq!(back.spec, scene.spec);
    /// // Bit for bit: 0.1 + 0.2 is not 0.3.
    /// let tapwheel::scene::KernelSpec::Const { value } = back.spec.nodes[0].kernel else { panic!() };
    /// assert_eq!(value.to_bits(), (0.1f64 + 0.2).to_bits());
    /// ```
    pub fn to_ron(&self) -> String {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .indentor("    ")
            .depth_limit(3);
        // The serializer fails only on a failing writer (a `String` never fails), a recursion
        // limit (none is set) or an invalid identifier (every name here is a Rust identifier);
        // should that ever change, the text still fails to parse with a located error.
        ron::ser::to_string_pretty(self, config)
            .unwrap_or_else(|e| format!("// the scene could not be written as RON: {e}\n"))
    }
}

impl Scene {
    /// The scene's spec as pretty RON ([`SceneSpec::to_ron`]); `origin` and `base_dir` are not
    /// part of the text.
    ///
    /// ```
    /// use tapwheel::Scene;
    /// let scene = Scene::parse(
    ///     r#"Scene(version: 1, name: "t", nodes: [Node(name: "p", kernel: Probe)])"#,
    ///     "t.ron", ".".into()).unwrap();
    /// let back = Scene::parse(&scene.to_ron(), "t.ron", ".".into()).unwrap();
    /// assert_eq!(back, scene);
    /// ```
    pub fn to_ron(&self) -> String {
        self.spec.to_ron()
    }
}

/// Builds a [`Scene`] in code: `SceneBuilder::new(name)`, chained setters, then
/// [`build`](SceneBuilder::build).
///
/// Every setter mirrors one RON field and stores exactly what the parser would; nothing is
/// checked until the scene is planned, so misuse is an `Err` from
/// [`Engine::from_scene`](crate::Engine::from_scene), never a panic:
///
/// ```
/// use tapwheel::scene::{EdgeSpec, KernelSpec, NodeSpec};
/// use tapwheel::{Engine, Location, Outcome, SceneBuilder};
/// // src fires at 0, 2, 4; each token waits 3 ticks on the edge, g adds 1 tick of latency.
/// let scene = SceneBuilder::new("ramp")
///     .node(NodeSpec::new("src", KernelSpec::Ramp { start: 1.0, step: 1.0 }).period(2).count(3))
///     .node(NodeSpec::new("g", KernelSpec::Gain { gain: 10.0 }).latency(1))
///     .node(NodeSpec::new("out", KernelSpec::Probe))
///     .edge(EdgeSpec::new("src.out", "g.in").delay(3).capacity(4))
///     .connect("g.out", "out.in")
///     .build();
/// let mut engine = Engine::from_scene(&scene, Default::default()).unwrap();
/// assert_eq!(engine.run(), Outcome::Completed);
/// let out = engine.probe("out").unwrap();
/// assert_eq!(out.values, vec![10.0, 20.0, 30.0]);
/// assert_eq!(out.ticks, vec![4, 6, 8]);
///
/// // An edge to a node that does not exist: the RON path's E231, at the same scene path.
/// let bad = SceneBuilder::new("bad")
///     .node(NodeSpec::new("src", KernelSpec::Const { value: 1.0 }).period(1).count(1))
///     .node(NodeSpec::new("out", KernelSpec::Probe))
///     .connect("src.out", "out.in")
///     .connect("src.out", "ghost.in")
///     .build();
/// let err = Engine::from_scene(&bad, Default::default()).err().unwrap();
/// let d = &err.diagnostics()[0];
/// assert_eq!(d.code, "E231");
/// assert_eq!(d.location, Location::ScenePath("edges[1].to".into()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SceneBuilder {
    spec: SceneSpec,
}

impl SceneBuilder {
    /// A scene of format version 1 named `name`, every other field at its RON default
    /// ([`SceneSpec::new`]). Each setter stores exactly what its RON field parses to:
    ///
    /// ```
    /// use tapwheel::scene::*;
    /// use tapwheel::{Scene, SceneBuilder};
    /// let built = SceneBuilder::new("all")
    ///     .tick_hz(48000.0)
    ///     .default_shape(Shape::new(1, 2, 4))
    ///     .default_capacity(3)
    ///     .node(NodeSpec::new("a", KernelSpec::Const { value: 1.0 }).count(1))
    ///     .node(NodeSpec::new("b", KernelSpec::Probe))
    ///     .connect("a.out", "b.in")
    ///     .gate("g", ["a", "b"])
    ///     .schedule(ScheduleSpec::IplsAuto)
    ///     .memory(MemorySpec::Fixed)
    ///     .dispatch(DispatchSpec { domains: 3, policy: DispatchPolicy::RoundRobin,
    ///                              dispatch_cost: 0, workers: None })
    ///     .task_window(TaskWindowSpec { size: 16, mode: WindowMode::Stall, scope: WindowScope::Global })
    ///     .device(DeviceSpec::CycleSim { profile: "assets/devices/a2a3.ron".into() })
    ///     .slot(0, 1)
    ///     .symbol("lat", 5)
    ///     .thermal_link("a", "b", 0.5)
    ///     .strict(true)
    ///     .loss(LossSpec::Sum { probe: "b".into() })
    ///     .until(480)
    ///     .max_steps(1000)
    ///     .seed(7)
    ///     .build();
    /// let parsed = Scene::parse(r#"Scene(version: 1, name: "all", tick_hz: 48000.0,
    ///     defaults: (shape: (batch: 1, channels: 2, frames: 4), capacity: 3),
    ///     nodes: [Node(name: "a", kernel: Const(value: 1.0), count: 1), Node(name: "b", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "b.in")],
    ///     gates: [Gate(name: "g", members: ["a", "b"])],
    ///     schedule: IplsAuto, memory: Fixed,
    ///     dispatch: Some((domains: 3, policy: RoundRobin, dispatch_cost: 0, workers: None)),
    ///     task_window: Some((size: 16, mode: Stall, scope: Global)),
    ///     device: CycleSim(profile: "assets/devices/a2a3.ron"),
    ///     slots: {0: 1}, symbols: {"lat": 5},
    ///     thermal_links: [ThermalLink(a: "a", b: "b", conductance: 0.5)],
    ///     strict: true, loss: Some(Sum(probe: "b")),
    ///     run: (until: Some(480), max_steps: Some(1000), seed: 7))"#,
    ///     "all.ron", ".".into()).unwrap();
    /// assert_eq!(built.spec, parsed.spec);
    /// ```
    pub fn new(name: impl Into<String>) -> SceneBuilder {
        SceneBuilder {
            spec: SceneSpec::new(name),
        }
    }

    /// Starts from an existing spec (a parsed scene to vary, say).
    pub fn from_spec(spec: SceneSpec) -> SceneBuilder {
        SceneBuilder { spec }
    }

    /// `tick_hz`: ticks per second (default 1.0).
    pub fn tick_hz(mut self, hz: f64) -> SceneBuilder {
        self.spec.tick_hz = hz;
        self
    }

    /// `defaults.shape`: the shape of nodes that set none.
    pub fn default_shape(mut self, shape: Shape) -> SceneBuilder {
        self.spec.defaults.shape = shape;
        self
    }

    /// `defaults.capacity`: the capacity of edges that set none (default 2).
    pub fn default_capacity(mut self, tokens: u32) -> SceneBuilder {
        self.spec.defaults.capacity = tokens;
        self
    }

    /// Appends a node (plan order is the order of the calls).
    pub fn node(mut self, node: NodeSpec) -> SceneBuilder {
        self.spec.nodes.push(node);
        self
    }

    /// Appends an edge.
    pub fn edge(mut self, edge: EdgeSpec) -> SceneBuilder {
        self.spec.edges.push(edge);
        self
    }

    /// Appends a default edge `from` → `to` (`"node.tap"` each): `edge(EdgeSpec::new(from, to))`.
    pub fn connect(self, from: impl Into<String>, to: impl Into<String>) -> SceneBuilder {
        self.edge(EdgeSpec::new(from, to))
    }

    /// Appends `Gate(name, members)`: the members fire only together.
    ///
    /// ```
    /// use tapwheel::scene::GateSpec;
    /// use tapwheel::SceneBuilder;
    /// let b = SceneBuilder::new("g").gate("sync", ["ga", "gb"]);
    /// assert_eq!(b.spec().gates, vec![GateSpec { name: "sync".into(), members: vec!["ga".into(), "gb".into()] }]);
    /// ```
    pub fn gate(
        mut self,
        name: impl Into<String>,
        members: impl IntoIterator<Item = impl Into<String>>,
    ) -> SceneBuilder {
        self.spec.gates.push(GateSpec {
            name: name.into(),
            members: members.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// `schedule` (default `Kpn`).
    pub fn schedule(mut self, schedule: ScheduleSpec) -> SceneBuilder {
        self.spec.schedule = schedule;
        self
    }

    /// `memory` (default `Parks(max_capacity: 65536)`).
    pub fn memory(mut self, memory: MemorySpec) -> SceneBuilder {
        self.spec.memory = memory;
        self
    }

    /// `dispatch: Some(dispatch)`.
    pub fn dispatch(mut self, dispatch: DispatchSpec) -> SceneBuilder {
        self.spec.dispatch = Some(dispatch);
        self
    }

    /// `task_window: Some(window)`.
    pub fn task_window(mut self, window: TaskWindowSpec) -> SceneBuilder {
        self.spec.task_window = Some(window);
        self
    }

    /// `device` (default `Reference`). Relative profile paths resolve against the scene's
    /// `base_dir` (see [`build_in`](SceneBuilder::build_in)).
    pub fn device(mut self, device: DeviceSpec) -> SceneBuilder {
        self.spec.device = device;
        self
    }

    /// One entry of `symbols` (a later value for the same name replaces the earlier).
    pub fn symbol(mut self, name: impl Into<String>, value: u64) -> SceneBuilder {
        self.spec.symbols.insert(name.into(), value);
        self
    }

    /// One entry of `slots`: the initial value of slot `index`.
    pub fn slot(mut self, index: u32, value: u64) -> SceneBuilder {
        self.spec.slots.insert(index, value);
        self
    }

    /// Appends `ThermalLink(a, b, conductance)`.
    pub fn thermal_link(
        mut self,
        a: impl Into<String>,
        b: impl Into<String>,
        conductance: f64,
    ) -> SceneBuilder {
        self.spec.thermal_links.push(ThermalLinkSpec {
            a: a.into(),
            b: b.into(),
            conductance,
        });
        self
    }

    /// `strict`: a quiescent end counts as a deadlock.
    pub fn strict(mut self, strict: bool) -> SceneBuilder {
        self.spec.strict = strict;
        self
    }

    /// `run.until: Some(tick)`: the last tick processed (inclusive).
    pub fn until(mut self, tick: u64) -> SceneBuilder {
        self.spec.run.until = Some(tick);
        self
    }

    /// `run.max_steps: Some(steps)`.
    pub fn max_steps(mut self, steps: u64) -> SceneBuilder {
        self.spec.run.max_steps = Some(steps);
        self
    }

    /// `run.seed`.
    pub fn seed(mut self, seed: u64) -> SceneBuilder {
        self.spec.run.seed = seed;
        self
    }

    /// `loss: Some(loss)`: what `tapwheel grad` and `fit` differentiate.
    pub fn loss(mut self, loss: LossSpec) -> SceneBuilder {
        self.spec.loss = Some(loss);
        self
    }

    /// The spec built so far.
    ///
    /// ```
    /// use tapwheel::scene::{KernelSpec, NodeSpec, SceneSpec};
    /// use tapwheel::SceneBuilder;
    /// let b = SceneBuilder::new("s").node(NodeSpec::new("p", KernelSpec::Probe));
    /// assert_eq!(b.spec().nodes.len(), 1);
    /// // from_spec and into_spec are inverses; build wraps the same spec.
    /// let spec: SceneSpec = b.clone().into_spec();
    /// assert_eq!(SceneBuilder::from_spec(spec.clone()), b);
    /// assert_eq!(b.build().spec, spec);
    /// ```
    pub fn spec(&self) -> &SceneSpec {
        &self.spec
    }

    /// The spec, without wrapping it in a [`Scene`].
    pub fn into_spec(self) -> SceneSpec {
        self.spec
    }

    /// The scene, with origin `<builder>` and relative paths resolved against the current
    /// directory.
    pub fn build(self) -> Scene {
        self.build_in(PathBuf::from("."))
    }

    /// The scene, with relative paths (`File` sources, device profiles) resolved against
    /// `base_dir`, as if it had been loaded from a file in that folder.
    ///
    /// ```
    /// use tapwheel::SceneBuilder;
    /// let scene = SceneBuilder::new("s").build_in("scenes".into());
    /// assert_eq!(scene.origin, "<builder>");
    /// assert_eq!(scene.base_dir, std::path::PathBuf::from("scenes"));
    /// ```
    pub fn build_in(self, base_dir: PathBuf) -> Scene {
        let mut scene = Scene::from_spec(self.spec);
        scene.origin = BUILDER_ORIGIN.to_string();
        scene.base_dir = base_dir;
        scene
    }
}
