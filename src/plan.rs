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
use crate::kernels::sources::FileData;
use crate::kernels::{self, KernelRegistry, RateRule, Signature, TapSig};
use crate::scene::*;
use crate::schedule::{PlanGate, PlanSchedule};
use serde::Serialize;
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

/// Node names to scene indices. The names are user text, so the map keeps a seeded hash
/// (foldhash: no crafted-collision blow-up) without SipHash's cost, which was a tenth of
/// planning a 1 M-node scene.
pub(crate) type NameIndex<'a> = HashMap<&'a str, usize, foldhash::fast::RandomState>;

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
    /// The channels into this tap: one, or several under a gather adapter.
    pub channels: Vec<usize>,
    pub adapter: Option<Adapter>,
}

impl PlanInput {
    /// The (first) channel into this tap.
    pub fn channel(&self) -> Option<usize> {
        self.channels.first().copied()
    }
}

/// An output tap as planned; several channels = fan-out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOutput {
    pub name: String,
    pub rate: u32,
    pub shape: Shape,
    pub channels: Vec<usize>,
    pub adapter: Option<Adapter>,
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
    /// A static scheduler domain (`domain: k`, §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<u32>,
    pub core: Option<CoreType>,
    /// `timing: Measure`: wall-clock time per firing goes into the report.
    pub timing: Timing,
    /// `latency: Measured`: the firing's latency is its measured wall-clock time (in ticks);
    /// the run is not deterministic.
    pub measured_latency: bool,
    /// `cost: Linear(..)`, already folded into `latency` (kept so the digest tells them apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSpec>,
    /// BLAKE3 of a `File` source's bytes (so the digest changes with the data).
    pub file_digest: Option<String>,
    /// A `File` source's samples, decoded at plan time.
    #[serde(skip)]
    pub file: Option<Arc<FileData>>,
    /// The kernel kind is unknown (E224): its taps cannot be judged.
    #[serde(skip)]
    pub opaque: bool,
    /// §14 thermal state; the node then has one more output tap, `temp` (last, Telemetry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thermal: Option<ThermalSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
}

/// The output tap a node with `thermal` publishes its temperature on (§14).
pub const TEMP_TAP: &str = "temp";

impl PlanNode {
    /// The output taps the kernel writes: every output but the engine's `temp` tap.
    pub fn kernel_outputs(&self) -> &[PlanOutput] {
        let n =
            self.outputs.len() - usize::from(self.thermal.is_some() && !self.outputs.is_empty());
        &self.outputs[..n]
    }

    /// The index of the `temp` output tap (nodes with `thermal`).
    pub fn temp_tap(&self) -> Option<usize> {
        self.thermal.and(self.outputs.len().checked_sub(1))
    }

    /// The kernel's taps (without the engine's `temp` tap).
    pub fn signature(&self) -> Signature {
        let tap = |name: &str, rate: u32, shape: Shape| TapSig {
            name: name.to_string(),
            rate,
            token_len: shape.elements() as usize,
            shape,
        };
        Signature {
            inputs: self
                .inputs
                .iter()
                .map(|t| tap(&t.name, t.rate, t.shape))
                .collect(),
            outputs: self
                .kernel_outputs()
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
    /// Ticks. A `Symbol` delay is 0 in the compiled plan (the zero-time cycle check counts it
    /// as 0) and takes its value from the symbol table at run start (`crate::slots`).
    pub delay: u64,
    /// `delay: Symbol("name")`: the symbol's *name* (never its value, so `plan_digest` does not
    /// change with symbol values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_symbol: Option<String>,
    pub lane: Lane,
    pub policy: Policy,
    pub shape: Shape,
    /// Initial tokens, each expanded to `shape.elements()` values.
    pub initial: Vec<Vec<f32>>,
    /// `(high, low)`, validated (`0 < low < high ≤ capacity`); absent from the digest input
    /// when unset, so plans without watermarks keep their digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermarks: Option<(u32, u32)>,
}

impl PlanChannel {
    /// The overflow rules the arena applies to this channel ([`crate::overflow`]).
    pub fn rules(&self) -> crate::overflow::ChannelRules {
        crate::overflow::ChannelRules::of(self.policy, self.lane, self.watermarks)
    }
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
    /// The step's stage list (§5); absent from the digest input under `Kpn`, so plans without
    /// a schedule keep their digests.
    #[serde(skip_serializing_if = "PlanSchedule::is_kpn")]
    pub schedule: PlanSchedule,
    /// Synchrony gates (§6).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<PlanGate>,
    /// Scheduler domains and their policy (§9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<DispatchSpec>,
    /// The task window (§9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_window: Option<TaskWindowSpec>,
    /// The loss a backward pass differentiates (§17); not part of the digest (it changes no
    /// forward value).
    #[serde(skip)]
    pub loss: Option<crate::loss::Loss>,
    /// §14 `thermal_links` as `(a, b, conductance)` over node indices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thermal_links: Vec<(u32, u32, f64)>,
    /// The device (§12); absent from the digest input on `Reference`.
    #[serde(skip_serializing_if = "PlanDevice::is_reference")]
    pub device: PlanDevice,
    /// Planner warnings (`W…`): legal but probably unintended (an IPLS order forcing deltas).
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
    /// Run settings (`until`, `max_steps`, `seed`) are not part of the plan digest.
    #[serde(skip)]
    pub run: RunSpec,
    /// The scene's initial slot values and symbols (§11): run inputs, not part of the digest,
    /// so a host changes them between runs without re-planning.
    #[serde(skip)]
    pub slots: BTreeMap<u32, u64>,
    #[serde(skip)]
    pub symbols: BTreeMap<String, u64>,
    #[serde(skip)]
    pub digest: String,
}

struct Ctx {
    errors: Vec<Diagnostic>,
}

/// The device a plan runs on (§12).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub enum PlanDevice {
    #[default]
    Reference,
    /// A CycleSim die: the profile as the scene names it, the BLAKE3 of its text (so the plan
    /// digest follows the profile's figures), and the parsed profile.
    CycleSim {
        profile: String,
        profile_digest: String,
        #[serde(skip)]
        loaded: Arc<crate::device::cyclesim::Profile>,
    },
    Ascend {
        library: String,
        device_id: u32,
    },
}

impl PlanDevice {
    pub fn is_reference(&self) -> bool {
        matches!(self, PlanDevice::Reference)
    }

    pub fn name(&self) -> &'static str {
        match self {
            PlanDevice::Reference => "Reference",
            PlanDevice::CycleSim { .. } => "CycleSim",
            PlanDevice::Ascend { .. } => "Ascend",
        }
    }
}

/// The text of a CycleSim profile: `builtin:a2a3`, or a path tried against the scene's folder,
/// then the working directory.
pub fn load_profile_text(
    profile: &str,
    base_dir: &std::path::Path,
) -> std::result::Result<String, String> {
    if let Some(name) = profile.strip_prefix("builtin:") {
        return match name {
            "a2a3" => Ok(crate::device::cyclesim::BUILTIN_A2A3.to_string()),
            _ => Err(format!(
                "unknown built-in profile `{name}` (built in: a2a3)"
            )),
        };
    }
    let rel = std::path::Path::new(profile);
    let mut tried = Vec::new();
    for cand in [base_dir.join(rel), rel.to_path_buf()] {
        if tried.contains(&cand) {
            continue;
        }
        match std::fs::metadata(&cand) {
            Ok(m) if m.len() > 16 << 20 => {
                return Err(format!("{} is larger than 16 MiB", cand.display()));
            }
            Ok(_) => {
                return std::fs::read_to_string(&cand)
                    .map_err(|e| format!("cannot read {}: {e}", cand.display()));
            }
            Err(_) => tried.push(cand),
        }
    }
    Err(format!(
        "profile `{profile}` not found (looked in {})",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn plan_device(ctx: &mut Ctx, spec: &DeviceSpec, base_dir: &std::path::Path) -> PlanDevice {
    match spec {
        DeviceSpec::Reference => PlanDevice::Reference,
        DeviceSpec::Ascend { library, device_id } => PlanDevice::Ascend {
            library: library.clone(),
            device_id: *device_id,
        },
        DeviceSpec::CycleSim { profile } => {
            let text = match load_profile_text(profile, base_dir) {
                Ok(t) => t,
                Err(why) => {
                    ctx.err("E380", "device.profile", why);
                    return PlanDevice::Reference;
                }
            };
            match crate::device::cyclesim::Profile::parse(&text, "device.profile") {
                Ok(p) => PlanDevice::CycleSim {
                    profile: profile.clone(),
                    profile_digest: blake3::hash(text.as_bytes()).to_hex().to_string(),
                    loaded: Arc::new(p),
                },
                Err(errs) => {
                    ctx.errors.extend(errs);
                    PlanDevice::Reference
                }
            }
        }
    }
}

impl Ctx {
    fn err(&mut self, code: &'static str, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::at(code, path, msg));
    }
}

/// Parameters are rounded to f32 by kernels, so they must be finite as f32 too. `path` is
/// written only for a diagnostic.
fn finite(ctx: &mut Ctx, path: impl FnOnce() -> String, name: &str, v: f64) {
    if !v.is_finite() {
        ctx.err(
            "E220",
            path(),
            format!("parameter `{name}` must be finite, got {v}"),
        );
    } else if !(v as f32).is_finite() {
        ctx.err(
            "E220",
            path(),
            format!("parameter `{name}` = {v} overflows f32 (kernels compute in f32)"),
        );
    }
}

/// What planning a node may consult beyond the node itself.
struct NodeEnv<'a> {
    tick_hz: f64,
    base_dir: &'a std::path::Path,
    registry: &'a KernelRegistry,
}

/// The longest FIR the planner accepts (taps); longer lists are located errors.
pub const MAX_FIR_TAPS: usize = 1 << 16;

fn check_kernel_params(ctx: &mut Ctx, path: &str, k: &KernelSpec, env: &NodeEnv<'_>) {
    let p = |f: &str| format!("{path}.kernel.{f}");
    let nyquist = env.tick_hz / 2.0;
    let bad = |ctx: &mut Ctx, field: &str, msg: String| ctx.err("E220", p(field), msg);
    // A frequency must be finite, non-negative and below Nyquist (tick_hz / 2).
    let freq = |ctx: &mut Ctx, field: &str, f: f64, zero_ok: bool| {
        finite(ctx, || p(field), field, f);
        if f.is_finite() && (f >= nyquist || f < 0.0 || (!zero_ok && f == 0.0)) {
            ctx.err(
                "E220",
                p(field),
                format!(
                    "{field} = {f} Hz must lie in {}0, Nyquist = tick_hz/2 = {nyquist} Hz)",
                    if zero_ok { "[" } else { "(" }
                ),
            );
        }
    };
    match k {
        KernelSpec::Const { value } => finite(ctx, || p("value"), "value", *value),
        KernelSpec::Ramp { start, step } => {
            finite(ctx, || p("start"), "start", *start);
            finite(ctx, || p("step"), "step", *step);
        }
        KernelSpec::Sine {
            freq_hz,
            amp,
            phase,
        } => {
            freq(ctx, "freq_hz", *freq_hz, true);
            finite(ctx, || p("amp"), "amp", *amp);
            finite(ctx, || p("phase"), "phase", *phase);
        }
        KernelSpec::Saw { freq_hz, amp } => {
            freq(ctx, "freq_hz", *freq_hz, true);
            finite(ctx, || p("amp"), "amp", *amp);
        }
        KernelSpec::Square { freq_hz, amp, duty } => {
            freq(ctx, "freq_hz", *freq_hz, true);
            finite(ctx, || p("amp"), "amp", *amp);
            if !(0.0..=1.0).contains(duty) {
                bad(ctx, "duty", format!("duty = {duty} must lie in [0, 1]"));
            }
        }
        KernelSpec::Noise { amp, .. } => finite(ctx, || p("amp"), "amp", *amp),
        KernelSpec::Gain { gain } => finite(ctx, || p("gain"), "gain", *gain),
        KernelSpec::Offset { value }
        | KernelSpec::AddScalar { value }
        | KernelSpec::MulScalar { value } => finite(ctx, || p("value"), "value", *value),
        KernelSpec::OnePole { coeff } => finite(ctx, || p("coeff"), "coeff", *coeff),
        KernelSpec::Biquad {
            cutoff_hz,
            q,
            gain_db,
            ..
        } => {
            freq(ctx, "cutoff_hz", *cutoff_hz, false);
            finite(ctx, || p("q"), "q", *q);
            if q.is_finite() && *q <= 0.0 {
                bad(ctx, "q", format!("q = {q} must be positive"));
            }
            finite(ctx, || p("gain_db"), "gain_db", *gain_db);
        }
        KernelSpec::Fir { taps } => {
            if taps.is_empty() || taps.len() > MAX_FIR_TAPS {
                bad(
                    ctx,
                    "taps",
                    format!("Fir needs 1 to {MAX_FIR_TAPS} taps, got {}", taps.len()),
                );
            }
            for (i, t) in taps.iter().enumerate() {
                finite(ctx, || p(&format!("taps[{i}]")), "taps", *t);
            }
        }
        KernelSpec::Decimate { factor } | KernelSpec::Interpolate { factor } if *factor == 0 => {
            bad(
                ctx,
                "factor",
                format!("{} factor must be at least 1", k.kind()),
            )
        }
        KernelSpec::Envelope {
            attack,
            hold,
            decay,
            sustain,
            release,
        } => {
            for (name, v) in [
                ("attack", attack),
                ("hold", hold),
                ("decay", decay),
                ("release", release),
            ] {
                finite(ctx, || p(name), name, *v);
                if *v < 0.0 {
                    bad(ctx, name, format!("{name} = {v} s must not be negative"));
                }
            }
            if !(0.0..=1.0).contains(sustain) {
                bad(
                    ctx,
                    "sustain",
                    format!("sustain = {sustain} is a level and must lie in [0, 1]"),
                );
            }
        }
        KernelSpec::Softmax { axis } if *axis > 2 => bad(
            ctx,
            "axis",
            format!("Softmax axis {axis}: 0 = frames (rows), 1 = channels, 2 = batch"),
        ),
        KernelSpec::SlewIntegrator {
            mode,
            sample_rate_hz,
        } => {
            finite(
                ctx,
                || p("sample_rate_hz"),
                "sample_rate_hz",
                *sample_rate_hz,
            );
            if sample_rate_hz.is_nan() || *sample_rate_hz <= 0.0 {
                bad(
                    ctx,
                    "sample_rate_hz",
                    format!("sample_rate_hz = {sample_rate_hz} must be positive"),
                );
            }
            if let SlewMode::Limited {
                max_rate,
                max_accel,
            } = mode
            {
                for (name, v) in [("max_rate", max_rate), ("max_accel", max_accel)] {
                    finite(ctx, || p(&format!("mode.{name}")), name, *v);
                    if v.is_nan() || *v <= 0.0 {
                        bad(
                            ctx,
                            &format!("mode.{name}"),
                            format!("{name} = {v} must be positive"),
                        );
                    }
                }
            }
        }
        KernelSpec::Filter { pred } => {
            let (Pred::Lt(x)
            | Pred::Le(x)
            | Pred::Gt(x)
            | Pred::Ge(x)
            | Pred::Eq(x)
            | Pred::Ne(x)
            | Pred::NotMultipleOf(x)) = *pred;
            finite(ctx, || p("pred"), "pred", x);
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
                finite(ctx, || p(&format!("gains[{k}]")), "gains", *g);
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
        KernelSpec::Select { slot } | KernelSpec::SlotLoad { slot, .. }
            if *slot as usize >= crate::slots::SLOT_COUNT =>
        {
            bad(
                ctx,
                "slot",
                format!(
                    "slot {slot} is out of range (a run has {} slots, 0..=255)",
                    crate::slots::SLOT_COUNT
                ),
            )
        }
        KernelSpec::Custom { kind, params } => {
            for (name, v) in params {
                finite(ctx, || p(&format!("params.{name}")), name, *v);
            }
            match env.registry.get(kind) {
                None => ctx.err(
                    "E224",
                    p("kind"),
                    format!("unknown custom kernel kind `{kind}` (the embedding program registers custom kernels)"),
                ),
                Some(f) => {
                    if let Err(msg) = f.validate(params) {
                        ctx.err("E220", p("params"), format!("{kind}: {msg}"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Loads a `File` source's data from under the scene's folder (E222 on any failure).
fn load_file(ctx: &mut Ctx, path: &str, rel: &str, env: &NodeEnv<'_>) -> Option<Arc<FileData>> {
    let p = format!("{path}.kernel.path");
    let relp = std::path::Path::new(rel);
    let escapes = relp.is_absolute()
        || relp.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if rel.is_empty() || escapes {
        ctx.err(
            "E222",
            p,
            format!("file `{rel}` must be a relative path inside the scene's folder"),
        );
        return None;
    }
    match FileData::load(&env.base_dir.join(relp)) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            ctx.err("E222", p, e);
            None
        }
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
        Plan::compile_with(scene, &KernelRegistry::default())
    }

    /// [`Plan::compile`] with custom kernels from `registry`.
    pub fn compile_with(scene: &Scene, registry: &KernelRegistry) -> Result<Plan> {
        Plan::compile_scheduled(scene, registry, None)
    }

    /// [`Plan::compile_with`] under another schedule than the scene's (`--schedule`).
    pub fn compile_scheduled(
        scene: &Scene,
        registry: &KernelRegistry,
        schedule: Option<&ScheduleSpec>,
    ) -> Result<Plan> {
        let s = &scene.spec;
        let schedule_spec = schedule.unwrap_or(&s.schedule);
        let env = NodeEnv {
            tick_hz: if s.tick_hz.is_finite() && s.tick_hz > 0.0 {
                s.tick_hz
            } else {
                1.0
            },
            base_dir: &scene.base_dir,
            registry,
        };
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
        for &n in s.slots.keys() {
            if n as usize >= crate::slots::SLOT_COUNT {
                ctx.err(
                    "E113",
                    format!("slots.{n}"),
                    format!(
                        "slot {n} is out of range (a run has {} slots, 0..=255)",
                        crate::slots::SLOT_COUNT
                    ),
                );
            }
        }

        // Nodes and their taps.
        let mut by_name = NameIndex::with_capacity_and_hasher(s.nodes.len(), Default::default());
        let mut nodes: Vec<PlanNode> = Vec::with_capacity(s.nodes.len());
        // One path buffer for every node (`plan_node` borrows it; diagnostics copy it).
        let mut path = String::new();
        for (i, n) in s.nodes.iter().enumerate() {
            path.clear();
            let _ = write!(path, "nodes[{i}]");
            if !valid_name(&n.name) {
                ctx.err(
                    "E201",
                    format!("{path}.name"),
                    format!("node name `{}` must match [A-Za-z0-9_]+", n.name),
                );
            }
            match by_name.entry(n.name.as_str()) {
                Entry::Occupied(first) => ctx.err(
                    "E202",
                    format!("{path}.name"),
                    format!(
                        "node name `{}` is already used by nodes[{}]",
                        n.name,
                        first.get()
                    ),
                ),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
            nodes.push(plan_node(&mut ctx, &path, n, &s.defaults.shape, &env));
        }

        // Channels.
        let mut channels = Vec::with_capacity(s.edges.len());
        // The last edge into each input tap, flat over (node, tap): `in_base[node] + tap`.
        let mut in_base = Vec::with_capacity(nodes.len());
        let mut in_total = 0;
        for n in &nodes {
            in_base.push(in_total);
            in_total += n.inputs.len();
        }
        let mut input_owner: Vec<Option<usize>> = vec![None; in_total];
        let mut lookup = EndpointLookup {
            by_name: &by_name,
            nodes: &s.nodes,
            unique: by_name.len() == s.nodes.len(),
            last: 0,
        };
        for (e, edge) in s.edges.iter().enumerate() {
            // Paths are only written for diagnostics, so only when there is one.
            let path = || format!("edges[{e}]");
            let from = resolve(&mut ctx, e, "from", &edge.from, &mut lookup, &nodes, true);
            let to = resolve(&mut ctx, e, "to", &edge.to, &mut lookup, &nodes, false);
            let capacity = edge.capacity.unwrap_or(s.defaults.capacity);
            for (code, field, msg) in crate::overflow::ChannelRules::check(
                edge.policy,
                edge.lane,
                edge.watermarks,
                capacity,
            ) {
                ctx.err(code, format!("{}.{field}", path()), msg);
            }
            let (delay, delay_symbol) = match &edge.delay {
                DelaySpec::Ticks(d) => (*d, None),
                DelaySpec::Named(NamedDelay::Symbol(name)) => (0, Some(name.clone())),
            };
            let (Some((fnode, ftap)), Some((tnode, ttap))) = (from, to) else {
                continue;
            };
            let fport = &nodes[fnode].outputs[ftap];
            let tport = &nodes[tnode].inputs[ttap];
            if capacity == 0 && tport.rate > fport.rate {
                // §10: the producer fires only into an empty rendezvous, so the channel never
                // holds more than one firing's tokens.
                ctx.err(
                    "E244",
                    format!("{}.capacity", path()),
                    format!(
                        "rendezvous channel (capacity 0) `{}` → `{}`: the consumer takes {} tokens per firing but the producer writes at most {} before it must wait for them to be taken (use a capacity of at least {})",
                        edge.from, edge.to, tport.rate, fport.rate, tport.rate
                    ),
                );
            }
            let (fshape, tshape) = (fport.shape, tport.shape);
            // What the channel carries: the producer's token, or its part under a split.
            let wshape = match fport.adapter {
                Some(Adapter::SplitChannels(k)) if k > 0 => Shape {
                    channels: fshape.channels / k,
                    ..fshape
                },
                Some(Adapter::SplitBatch(k)) if k > 0 => Shape {
                    batch: fshape.batch / k,
                    ..fshape
                },
                _ => fshape,
            };
            let gathers = matches!(
                tport.adapter,
                Some(Adapter::SumFanIn | Adapter::ConcatChannels | Adapter::ConcatBatch)
            );
            if let Some(prev) = input_owner[in_base[tnode] + ttap].replace(e)
                && !gathers
            {
                ctx.err(
                    "E234",
                    format!("{}.to", path()),
                    format!(
                        "input tap `{}` already has a channel (edges[{prev}]); an input tap takes one channel unless it declares a gather adapter (SumFanIn, ConcatChannels, ConcatBatch)",
                        edge.to
                    ),
                );
                continue;
            }
            let fits = match tport.adapter {
                Some(Adapter::Broadcast) => [
                    (wshape.batch, tshape.batch),
                    (wshape.channels, tshape.channels),
                    (wshape.frames, tshape.frames),
                ]
                .iter()
                .all(|&(w, t)| w == t || w == 1),
                Some(Adapter::ConcatChannels) => {
                    wshape.batch == tshape.batch && wshape.frames == tshape.frames
                }
                Some(Adapter::ConcatBatch) => {
                    wshape.channels == tshape.channels && wshape.frames == tshape.frames
                }
                _ => wshape == tshape,
            };
            if !fits {
                ctx.err(
                    "E235",
                    path(),
                    format!(
                        "shape mismatch: `{}` writes {wshape} but `{}` reads {tshape}{} (declare an adapter or make them equal)",
                        edge.from,
                        edge.to,
                        tport
                            .adapter
                            .map_or(String::new(), |a| format!(" through {a:?}"))
                    ),
                );
            }
            let tshape = wshape;
            let len = tshape.elements() as usize;
            let mut initial = Vec::with_capacity(edge.initial.len());
            for (k, tok) in edge.initial.iter().enumerate() {
                let tpath = || format!("{}.initial[{k}]", path());
                let values: Vec<f32> = match tok {
                    TokenSpec::Scalar(v) => vec![*v as f32; len],
                    TokenSpec::Block(vs) => {
                        if vs.len() != len {
                            ctx.err(
                                "E236",
                                tpath(),
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
                    ctx.err("E236", tpath(), "initial token values must be finite");
                }
                initial.push(values);
            }
            nodes[fnode].outputs[ftap].channels.push(e);
            nodes[tnode].inputs[ttap].channels.push(e);
            channels.push(PlanChannel {
                name: format!("{}->{}", edge.from, edge.to),
                from_node: fnode,
                from_tap: ftap,
                to_node: tnode,
                to_tap: ttap,
                capacity,
                delay,
                delay_symbol,
                lane: edge.lane,
                policy: edge.policy,
                shape: tshape,
                initial,
                watermarks: edge.watermarks,
            });
        }

        for (i, n) in nodes.iter().enumerate() {
            for t in &n.outputs {
                if let Some(Adapter::SplitChannels(k) | Adapter::SplitBatch(k)) = t.adapter
                    && t.channels.len() != k as usize
                {
                    ctx.err(
                        "E238",
                        format!("nodes[{i}].taps.{}.adapter", t.name),
                        format!(
                            "`{}.{}` splits into {k} parts but has {} channels (one per part, in edge order)",
                            n.name,
                            t.name,
                            t.channels.len()
                        ),
                    );
                }
            }
            for t in &n.inputs {
                let (axis, sum) = match t.adapter {
                    Some(Adapter::ConcatChannels) => (
                        "channels",
                        t.channels
                            .iter()
                            .map(|&c| channels[c].shape.channels)
                            .sum::<u32>(),
                    ),
                    Some(Adapter::ConcatBatch) => (
                        "batch",
                        t.channels
                            .iter()
                            .map(|&c| channels[c].shape.batch)
                            .sum::<u32>(),
                    ),
                    _ => ("", 0),
                };
                let want = if axis == "batch" {
                    t.shape.batch
                } else {
                    t.shape.channels
                };
                if !axis.is_empty() && !t.channels.is_empty() && sum != want {
                    ctx.err(
                        "E235",
                        format!("nodes[{i}].taps.{}", t.name),
                        format!(
                            "the channels into `{}.{}` concatenate to {sum} {axis}, but the tap has {want}",
                            n.name, t.name
                        ),
                    );
                }
                // Edges from an opaque node (unknown kind, E224) were not resolved, nor were
                // edges with a bad `from` (reported): an input they aimed at is not a second
                // error.
                // Only an unconnected tap needs the scans (every tap scanning every edge made
                // planning quadratic in the scene's size).
                let unconnected = t.channels.is_empty() && !t.optional;
                let aimed = || {
                    s.edges
                        .iter()
                        .any(|e| e.to.split_once('.') == Some((n.name.as_str(), t.name.as_str())))
                };
                if unconnected && !aimed() && !nodes.iter().any(|n| n.opaque) {
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
        let gates = crate::schedule::plan_gates(&mut ctx.errors, &s.gates, &s.nodes, &by_name);
        check_dispatch(&mut ctx, s, &nodes, registry);
        if ctx.errors.is_empty() {
            detect_zero_time_cycles(&mut ctx, &nodes, &channels, s);
        }
        let mut warnings = Vec::new();
        let schedule = if ctx.errors.is_empty() {
            crate::schedule::plan_schedule(
                &mut ctx.errors,
                &mut warnings,
                schedule_spec,
                &nodes,
                &channels,
                &by_name,
            )
        } else {
            PlanSchedule::default()
        };
        let device = plan_device(&mut ctx, &s.device, &scene.base_dir);
        let thermal_links = plan_thermal_links(&mut ctx, s, &nodes, &by_name);
        let loss = plan_loss(&mut ctx, s, &nodes, &by_name, &scene.base_dir);
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
            schedule,
            gates,
            dispatch: s.dispatch.clone(),
            task_window: s.task_window.clone(),
            thermal_links,
            loss,
            device,
            warnings,
            run: s.run.clone(),
            slots: s.slots.clone(),
            symbols: s.symbols.clone(),
            digest: String::new(),
        };
        let mut h = blake3::Hasher::new();
        h.update(b"tapwheel-plan/1\0");
        // The JSON streams into the hash through a buffer: the same bytes as `to_vec`, without
        // holding the whole text (hundreds of bytes per node) in memory.
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut h);
        serde_json::to_writer(&mut w, &plan)
            .map_err(|e| Error::Internal(format!("plan serialisation failed: {e}")))?;
        w.flush()
            .map_err(|e| Error::Internal(format!("plan serialisation failed: {e}")))?;
        drop(w);
        plan.digest = h.finalize().to_hex().to_string();
        Ok(plan)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

fn plan_node(
    ctx: &mut Ctx,
    path: &str,
    n: &NodeSpec,
    default_shape: &Shape,
    env: &NodeEnv<'_>,
) -> PlanNode {
    let shape = n.shape.unwrap_or(*default_shape);
    if n.shape.is_some() {
        check_shape(ctx, format!("{path}.shape"), &shape);
    }
    check_kernel_params(ctx, path, &n.kernel, env);
    // A kernel kind nobody registered (E224, reported above) has no known taps: the node is
    // opaque, and edges to it are not judged (that would only repeat the one error).
    let taps = kernels::kernel_taps(&n.kernel, env.registry);
    let opaque = taps.is_err();
    let layout = match taps {
        Ok(l) => l,
        Err(_) => Some(kernels::TapLayout {
            inputs: vec![],
            outputs: vec![],
            rule: RateRule::Free,
            preserves_shape: true,
        }),
    };
    let (in_taps, out_taps, rule, preserves_shape) = match layout {
        Some(l) => (l.inputs, l.outputs, l.rule, l.preserves_shape),
        None => {
            // Actor: taps declared in the scene.
            let mut ins = Vec::new();
            let mut outs = Vec::new();
            for (name, o) in &n.taps {
                match o.dir {
                    Some(TapDir::In) => ins.push((name.clone(), 1)),
                    Some(TapDir::Out) => outs.push((name.clone(), 1)),
                    None => ctx.err(
                        "E216",
                        format!("{path}.taps.{name}.dir"),
                        format!("Actor tap `{name}` needs `dir: In` or `dir: Out`"),
                    ),
                }
            }
            (ins, outs, RateRule::Free, false)
        }
    };
    let ov = |name: &str| n.taps.get(name);
    // A tap's rate: the override's, else the kernel's default (`Decimate` reads `factor`).
    let rate_of =
        |name: &str, default: u32| ov(name).and_then(|o| o.rate).map_or(default, |r| r.max(1));
    // The taps take the layout's names (building them emits no diagnostic, so the checks
    // below report in the same order as before).
    let inputs: Vec<PlanInput> = in_taps
        .into_iter()
        .map(|(name, default_rate)| {
            let o = ov(&name);
            PlanInput {
                rate: rate_of(&name, default_rate),
                optional: o.is_some_and(|o| o.optional),
                hold_last: o.is_some_and(|o| o.hold_last),
                default: o.map_or(0.0, |o| o.default),
                shape: o.and_then(|o| o.shape).unwrap_or(shape),
                channels: Vec::new(),
                adapter: o.and_then(|o| o.adapter),
                name,
            }
        })
        .collect();
    let in_shape = |i: usize| inputs.get(i).map_or(shape, |t| t.shape);
    // Output shapes of shape-changing kernels follow from their inputs unless overridden.
    let inferred = match &n.kernel {
        KernelSpec::MatMul => Shape {
            frames: in_shape(1).frames,
            ..in_shape(0)
        },
        KernelSpec::Transpose => Shape {
            channels: in_shape(0).frames,
            frames: in_shape(0).channels,
            ..in_shape(0)
        },
        KernelSpec::RowSum | KernelSpec::RowMax => Shape {
            frames: 1,
            ..in_shape(0)
        },
        _ => shape,
    };
    let outputs: Vec<PlanOutput> = out_taps
        .into_iter()
        .map(|(name, default_rate)| {
            let o = ov(&name);
            PlanOutput {
                rate: rate_of(&name, default_rate),
                shape: o.and_then(|o| o.shape).unwrap_or(inferred),
                channels: Vec::new(),
                adapter: o.and_then(|o| o.adapter),
                name,
            }
        })
        .collect();
    let in_names: SmallVec<[&str; 4]> = inputs.iter().map(|t| t.name.as_str()).collect();
    let out_names: SmallVec<[&str; 4]> = outputs.iter().map(|t| t.name.as_str()).collect();
    let is_actor = matches!(n.kernel, KernelSpec::Actor);
    for (name, o) in &n.taps {
        let tpath = format!("{path}.taps.{name}");
        let is_in = in_names.contains(&name.as_str());
        let is_out = out_names.contains(&name.as_str());
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
                            .copied()
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
        if o.rate == Some(0) {
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
    check_adapters(ctx, path, &inputs, &outputs);
    check_shape_rules(ctx, path, &n.kernel, &inputs, &outputs);
    if let (KernelSpec::SlotLoad { index, .. }, Some(t)) = (&n.kernel, inputs.first())
        && t.shape.elements() > 0 // a zero axis is E111 already
        && u64::from(*index) >= t.shape.elements()
    {
        ctx.err(
            "E220",
            format!("{path}.kernel.index"),
            format!(
                "SlotLoad index {index} is outside the input token: shape {} holds elements 0 to {}",
                t.shape,
                t.shape.elements() - 1
            ),
        );
    }
    let rates: SmallVec<[u32; 4]> = inputs
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
        let shapes: SmallVec<[Shape; 4]> = inputs
            .iter()
            .map(|t| t.shape)
            .chain(outputs.iter().map(|t| t.shape))
            .collect();
        if shapes.windows(2).any(|w| w[0] != w[1]) && preserves_shape {
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
    let file = match &n.kernel {
        KernelSpec::File { path: rel } => load_file(ctx, path, rel, env),
        _ => None,
    };
    let mut count = n.count;
    if let (Some(d), Some(out)) = (&file, outputs.first()) {
        let channels = out.shape.channels as usize;
        if d.columns != 1 && d.columns != channels {
            ctx.err(
                "E222",
                format!("{path}.kernel.path"),
                format!(
                    "the file has {} columns but `{}.out` has {channels} channels (give it 1 column or {channels})",
                    d.columns, n.name
                ),
            );
        }
        // The source ends with the file: its firing count is capped by the data.
        let firings = d.tokens(out.shape.frames).div_ceil(u64::from(out.rate));
        count = Some(count.map_or(firings, |c| c.min(firings)));
    }
    let is_source = !bad_tap_count && !opaque && inputs.iter().all(|t| t.optional);
    // The schedule fields the node sets: a source's own, meaningless elsewhere.
    let schedule_fields = [
        ("period", n.period.is_some()),
        ("offset", n.offset != 0),
        ("count", count.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field));
    if matches!(n.kernel, KernelSpec::Inject) {
        // The host decides when an open input fires (SPEC §20): no schedule of its own.
        for field in schedule_fields {
            ctx.err(
                "E480",
                format!("{path}.{field}"),
                format!(
                    "`{}` is an Inject node: it fires when the host injects a token, so `{field}` means nothing",
                    n.name
                ),
            );
        }
    } else if is_source {
        if n.period == Some(0) {
            ctx.err(
                "E211",
                format!("{path}.period"),
                "period must be at least 1 tick",
            );
        }
        if n.period.is_none() && count.is_none_or(|c| c > 1) {
            ctx.err(
                "E210",
                format!("{path}.period"),
                format!(
                    "source `{}` fires more than once (count {}) and needs a `period`",
                    n.name,
                    count.map_or("unbounded".to_string(), |c| c.to_string())
                ),
            );
        }
    } else {
        for field in schedule_fields {
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
    if n.concurrency == Some(0) {
        ctx.err(
            "E213",
            format!("{path}.concurrency"),
            "concurrency must be at least 1 (None = unlimited)",
        );
    }
    let mut latency = match n.latency {
        LatencySpec::Ticks(t) => t,
        LatencySpec::Word(_) => 0,
    };
    // §12 Reference: `cost: Linear(base, per_element)` instead of a fixed latency, over the
    // larger of the elements read and written per firing, rounded up (a firing never ends early).
    if let Some(CostSpec::Linear { base, per_element }) = n.cost {
        if !(per_element.is_finite() && per_element >= 0.0) {
            ctx.err(
                "E384",
                format!("{path}.cost.per_element"),
                format!("per_element must be finite and at least 0, got {per_element}"),
            );
        } else if !matches!(n.latency, LatencySpec::Ticks(0)) {
            ctx.err(
                "E385",
                format!("{path}.cost"),
                "give `latency` or `cost`, not both",
            );
        } else {
            let per = |taps: &mut dyn Iterator<Item = (u32, Shape)>| -> u64 {
                taps.map(|(r, s)| u64::from(r).saturating_mul(s.elements()))
                    .fold(0u64, u64::saturating_add)
            };
            let elements = per(&mut inputs.iter().map(|t| (t.rate, t.shape)))
                .max(per(&mut outputs.iter().map(|t| (t.rate, t.shape))));
            let extra = (per_element * elements as f64).ceil();
            latency = if extra >= u64::MAX as f64 {
                u64::MAX
            } else {
                base.saturating_add(extra as u64)
            };
        }
    }
    check_thermal(ctx, path, n, &out_names);
    drop((in_names, out_names));
    let mut outputs = outputs;
    if n.thermal.is_some() && !opaque {
        // The engine's Telemetry tap: one scalar token, the temperature, per firing.
        outputs.push(PlanOutput {
            name: TEMP_TAP.to_string(),
            rate: 1,
            shape: Shape {
                batch: 1,
                channels: 1,
                frames: 1,
            },
            channels: Vec::new(),
            adapter: None,
        });
    }
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
        count,
        latency,
        concurrency: n.concurrency,
        lane: n.lane,
        domain: n.domain,
        core: n.core,
        timing: n.timing,
        measured_latency: matches!(n.latency, LatencySpec::Word(LatencyWord::Measured)),
        cost: n.cost,
        file_digest: file.as_ref().map(|d| d.digest.clone()),
        file,
        opaque,
        thermal: n.thermal,
        throttle: n.throttle,
    }
}

/// The largest loss target read (bytes).
const MAX_TARGET_BYTES: u64 = 256 << 20;

/// §17 `loss`: a probe node of the scene, and for `Mse` a readable target CSV inside the scene's
/// folder.
fn plan_loss(
    ctx: &mut Ctx,
    s: &SceneSpec,
    nodes: &[PlanNode],
    by_name: &NameIndex<'_>,
    base_dir: &std::path::Path,
) -> Option<crate::loss::Loss> {
    let spec = s.loss.as_ref()?;
    let (LossSpec::Sum { probe: name } | LossSpec::Mse { probe: name, .. }) = spec;
    let variant = match spec {
        LossSpec::Sum { .. } => "Sum",
        LossSpec::Mse { .. } => "Mse",
    };
    let probe = match by_name.get(name.as_str()) {
        Some(&i) if nodes.get(i).is_some_and(|n| n.is_probe) => Some(i),
        Some(_) => {
            ctx.err(
                "E450",
                format!("loss.{variant}.probe"),
                format!("`{name}` is not a Probe node; a loss reads a probe's recorded values"),
            );
            None
        }
        None => {
            ctx.err(
                "E450",
                format!("loss.{variant}.probe"),
                format!("unknown node `{name}`"),
            );
            None
        }
    };
    let kind = match spec {
        LossSpec::Sum { .. } => Some(crate::loss::LossKind::Sum),
        LossSpec::Mse { target, .. } => {
            let path = "loss.Mse.target".to_string();
            let rel = std::path::Path::new(target);
            let escapes = rel.is_absolute()
                || rel.components().any(|c| {
                    !matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                });
            let full = base_dir.join(rel);
            if target.is_empty() || escapes {
                ctx.err(
                    "E451",
                    path,
                    format!("target `{target}` must be a relative path inside the scene's folder"),
                );
                None
            } else {
                match std::fs::metadata(&full) {
                    Err(e) => {
                        ctx.err(
                            "E451",
                            path,
                            format!("cannot read `{}`: {e}", full.display()),
                        );
                        None
                    }
                    Ok(m) if !m.is_file() || m.len() > MAX_TARGET_BYTES => {
                        ctx.err(
                            "E451",
                            path,
                            format!(
                                "`{}` is not a file of at most {} MiB",
                                full.display(),
                                MAX_TARGET_BYTES >> 20
                            ),
                        );
                        None
                    }
                    Ok(_) => match std::fs::read_to_string(&full)
                        .map_err(|e| e.to_string())
                        .and_then(|t| crate::loss::parse_target(&t))
                    {
                        Ok(v) => Some(crate::loss::LossKind::Mse {
                            target: Arc::new(v),
                        }),
                        Err(e) => {
                            ctx.err("E452", path, format!("target `{target}`: {e}"));
                            None
                        }
                    },
                }
            }
        }
    };
    Some(crate::loss::Loss {
        probe: probe?,
        kind: kind?,
    })
}

/// §14: thermal parameters are physical (positive capacity and resistance, non-negative
/// coefficients, an ambient in kelvin); a throttle needs thermal state and a factor ≥ 1.
fn check_thermal(ctx: &mut Ctx, path: &str, n: &NodeSpec, out_names: &[&str]) {
    if let Some(t) = &n.thermal {
        let fields = [
            ("capacity", t.capacity, false, "J/K"),
            ("resistance", t.resistance, false, "K/W"),
            ("ambient", t.ambient, true, "K"),
            ("input_coeff", t.input_coeff, true, "J per unit²"),
            ("work_power", t.work_power, true, "W"),
        ];
        for (field, v, zero_ok, unit) in fields {
            let ok = v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v < 1e300;
            if !ok {
                ctx.err(
                    "E390",
                    format!("{path}.thermal.{field}"),
                    format!(
                        "thermal {field} must be finite and {} ({unit}), got {v}",
                        if zero_ok {
                            "at least 0"
                        } else {
                            "greater than 0"
                        }
                    ),
                );
            }
        }
        if out_names.contains(&TEMP_TAP) {
            ctx.err(
                "E396",
                format!("{path}.taps.{TEMP_TAP}"),
                format!("the output tap `{TEMP_TAP}` is reserved for the temperature of a node with `thermal`"),
            );
        }
    }
    if let Some(th) = &n.throttle {
        if n.thermal.is_none() {
            ctx.err(
                "E392",
                format!("{path}.throttle"),
                format!("`throttle` needs `thermal` state on `{}`", n.name),
            );
        }
        if !(th.t_max.is_finite() && th.t_max > 0.0) {
            ctx.err(
                "E391",
                format!("{path}.throttle.t_max"),
                format!(
                    "t_max must be a finite temperature above 0 K, got {}",
                    th.t_max
                ),
            );
        }
        if !(th.factor.is_finite() && th.factor >= 1.0 && th.factor <= 1e6) {
            ctx.err(
                "E391",
                format!("{path}.throttle.factor"),
                format!(
                    "factor multiplies the latency while hot: it must be between 1 and 1e6, got {}",
                    th.factor
                ),
            );
        }
    }
}

/// §14 `thermal_links`: both ends are nodes with `thermal`, distinct, each pair once, with a
/// finite positive conductance (W/K).
fn plan_thermal_links(
    ctx: &mut Ctx,
    s: &SceneSpec,
    nodes: &[PlanNode],
    by_name: &NameIndex<'_>,
) -> Vec<(u32, u32, f64)> {
    let mut out = Vec::with_capacity(s.thermal_links.len());
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, l) in s.thermal_links.iter().enumerate() {
        let path = format!("thermal_links[{i}]");
        let mut end = |field: &str, name: &str| -> Option<usize> {
            match by_name.get(name) {
                None => {
                    ctx.err(
                        "E393",
                        format!("{path}.{field}"),
                        format!("unknown node `{name}`"),
                    );
                    None
                }
                Some(&n) if nodes.get(n).is_none_or(|n| n.thermal.is_none()) => {
                    ctx.err(
                        "E393",
                        format!("{path}.{field}"),
                        format!("node `{name}` has no `thermal` state to couple"),
                    );
                    None
                }
                Some(&n) => Some(n),
            }
        };
        let a = end("a", &l.a);
        let b = end("b", &l.b);
        if !(l.conductance.is_finite() && l.conductance > 0.0 && l.conductance < 1e300) {
            ctx.err(
                "E395",
                format!("{path}.conductance"),
                format!(
                    "conductance must be finite and greater than 0 (W/K), got {}",
                    l.conductance
                ),
            );
        }
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        if a == b {
            ctx.err(
                "E394",
                path,
                format!("a link needs two nodes; `{}` is linked to itself", l.a),
            );
            continue;
        }
        let key = (a.min(b), a.max(b));
        if let Some(first) = seen.get(&key) {
            ctx.err(
                "E394",
                path,
                format!(
                    "`{}` and `{}` are already linked by thermal_links[{first}] (give one link with the summed conductance)",
                    l.a, l.b
                ),
            );
            continue;
        }
        seen.insert(key, i);
        out.push((a as u32, b as u32, l.conductance));
    }
    out
}

/// §8: gather adapters sit on input taps, scatter adapters on output taps; a split must divide
/// its axis.
fn check_adapters(ctx: &mut Ctx, path: &str, inputs: &[PlanInput], outputs: &[PlanOutput]) {
    for t in inputs {
        if let Some(a @ (Adapter::SplitChannels(_) | Adapter::SplitBatch(_))) = t.adapter {
            ctx.err(
                "E238",
                format!("{path}.taps.{}.adapter", t.name),
                format!("{a:?} scatters an output tap; input `{}` can gather with Broadcast, SumFanIn, ConcatChannels or ConcatBatch", t.name),
            );
        }
    }
    for t in outputs {
        let p = || format!("{path}.taps.{}.adapter", t.name);
        match t.adapter {
            None => {}
            Some(Adapter::SplitChannels(k)) if k == 0 || t.shape.channels % k != 0 => ctx.err(
                "E238",
                p(),
                format!("SplitChannels({k}) must divide the tap's {} channels", t.shape.channels),
            ),
            Some(Adapter::SplitBatch(k)) if k == 0 || t.shape.batch % k != 0 => ctx.err(
                "E238",
                p(),
                format!("SplitBatch({k}) must divide the tap's batch of {}", t.shape.batch),
            ),
            Some(Adapter::SplitChannels(_) | Adapter::SplitBatch(_)) => {}
            Some(a) => ctx.err(
                "E238",
                p(),
                format!("{a:?} gathers into an input tap; output `{}` can scatter with SplitChannels(n) or SplitBatch(n)", t.name),
            ),
        }
    }
}

/// Shape rules of the shape-changing kernels (E221).
fn check_shape_rules(
    ctx: &mut Ctx,
    path: &str,
    k: &KernelSpec,
    inputs: &[PlanInput],
    outputs: &[PlanOutput],
) {
    let (Some(i0), Some(o0)) = (inputs.first(), outputs.first()) else {
        return;
    };
    let p = || format!("{path}.taps");
    match k {
        KernelSpec::MatMul => {
            let (a, b) = (i0.shape, inputs.get(1).map_or(i0.shape, |t| t.shape));
            let want = Shape {
                frames: b.frames,
                ..a
            };
            if a.frames != b.channels || a.batch != b.batch {
                ctx.err(
                    "E221",
                    p(),
                    format!("MatMul needs a (batch, M, K) and b (batch, K, N); got a {a} and b {b} (set `taps: {{\"b\": (shape: …)}}`)"),
                );
            } else if o0.shape != want {
                ctx.err(
                    "E221",
                    p(),
                    format!(
                        "MatMul of a {a} and b {b} gives {want}, but `out` is {}",
                        o0.shape
                    ),
                );
            }
        }
        KernelSpec::Transpose | KernelSpec::RowSum | KernelSpec::RowMax => {
            let s = i0.shape;
            let want = match k {
                KernelSpec::Transpose => Shape {
                    channels: s.frames,
                    frames: s.channels,
                    ..s
                },
                _ => Shape { frames: 1, ..s },
            };
            if o0.shape != want {
                ctx.err(
                    "E221",
                    p(),
                    format!(
                        "{} of {s} gives {want}, but `out` is {}",
                        k.kind(),
                        o0.shape
                    ),
                );
            }
        }
        KernelSpec::Decimate { factor } | KernelSpec::Interpolate { factor } if *factor > 0 => {
            let (si, so) = (i0.shape, o0.shape);
            let n_in = u64::from(i0.rate) * u64::from(si.frames);
            let n_out = u64::from(o0.rate) * u64::from(so.frames);
            let f = u64::from(*factor);
            let ok = match k {
                KernelSpec::Decimate { .. } => n_in == f * n_out,
                _ => n_in * f == n_out,
            };
            if si.batch != so.batch || si.channels != so.channels {
                ctx.err(
                    "E221",
                    p(),
                    format!(
                        "{} keeps batch and channels: `in` is {si}, `out` is {so}",
                        k.kind()
                    ),
                );
            } else if !ok {
                ctx.err(
                    "E221",
                    p(),
                    format!(
                        "{}({factor}) consumes rate × frames = {n_in} samples per row and must produce {} (it produces {n_out}): adjust the tap rates or frames",
                        k.kind(),
                        match k {
                            KernelSpec::Decimate { .. } => format!("{n_in}/{factor}"),
                            _ => format!("{n_in}·{factor}"),
                        }
                    ),
                );
            }
        }
        _ => {}
    }
}

/// Edge endpoints' node names to node indices. Scenes written by programs list edges in node
/// order, so the node last found and the one after it are tried first: a comparison with
/// names next in memory instead of a probe at a random place of a table that, at a million
/// nodes, is far larger than the cache. Only when names are unique (a repeated name resolves
/// to its first node, E202), so a matching neighbour is the node the map would give.
struct EndpointLookup<'a> {
    by_name: &'a NameIndex<'a>,
    nodes: &'a [NodeSpec],
    unique: bool,
    last: usize,
}

impl EndpointLookup<'_> {
    fn find(&mut self, name: &str) -> Option<usize> {
        let near = [self.last, self.last + 1]
            .into_iter()
            .find(|&k| self.unique && self.nodes.get(k).is_some_and(|n| n.name == name));
        let found = near.or_else(|| self.by_name.get(name).copied());
        if let Some(k) = found {
            self.last = k;
        }
        found
    }
}

/// Resolves `"node.tap"`; `output` says which side the tap must be on.
fn resolve(
    ctx: &mut Ctx,
    edge: usize,
    side: &str,
    endpoint: &str,
    lookup: &mut EndpointLookup<'_>,
    nodes: &[PlanNode],
    output: bool,
) -> Option<(usize, usize)> {
    let path = || format!("edges[{edge}].{side}");
    let Some((node, tap)) = endpoint.split_once('.') else {
        ctx.err(
            "E230",
            path(),
            format!("endpoint `{endpoint}` must be written \"node.tap\""),
        );
        return None;
    };
    let Some(ni) = lookup.find(node) else {
        ctx.err("E231", path(), format!("unknown node `{node}`"));
        return None;
    };
    if nodes.get(ni).is_some_and(|n| n.opaque) {
        return None;
    }
    let n = &nodes[ni];
    let outs = n.outputs.iter().position(|t| t.name == tap);
    let ins = n.inputs.iter().position(|t| t.name == tap);
    match (output, outs, ins) {
        (true, Some(t), _) | (false, _, Some(t)) => Some((ni, t)),
        (true, None, Some(_)) => {
            ctx.err(
                "E233",
                path(),
                format!("`{endpoint}` is an input tap; `from` needs an output tap"),
            );
            None
        }
        (false, Some(_), None) => {
            ctx.err(
                "E233",
                path(),
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
                path(),
                format!(
                    "node `{node}` ({}) has no tap `{tap}` (its taps: {}){}",
                    n.kernel.kind(),
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    },
                    if tap == TEMP_TAP && n.thermal.is_none() {
                        "; `temp` exists on nodes with `thermal`"
                    } else {
                        ""
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
    let zero_time =
        |c: &&PlanChannel| c.delay == 0 && c.initial.is_empty() && nodes[c.from_node].latency == 0;
    if acyclic(
        n,
        channels
            .iter()
            .filter(zero_time)
            .map(|c| (c.from_node, c.to_node)),
    ) {
        return;
    }
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for c in channels.iter().filter(zero_time) {
        adj[c.from_node].push(c.to_node);
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

/// The graph of `n` nodes and `edges` has no directed cycle (a self-loop is one). Kahn's
/// peeling over flat arrays: most plans are acyclic over their zero-time edges, and this
/// proves it without a list per node and a component search.
fn acyclic(n: usize, edges: impl Iterator<Item = (usize, usize)> + Clone) -> bool {
    let mut indegree = vec![0u32; n];
    // Out-edges grouped by source (CSR): `targets[first[v]..first[v + 1]]`.
    let mut first = vec![0usize; n + 1];
    for (a, b) in edges.clone() {
        indegree[b] += 1;
        first[a + 1] += 1;
    }
    for v in 0..n {
        first[v + 1] += first[v];
    }
    let mut fill = first.clone();
    let mut targets = vec![0usize; first[n]];
    for (a, b) in edges {
        targets[fill[a]] = b;
        fill[a] += 1;
    }
    drop(fill);
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut peeled = 0;
    while let Some(v) = ready.pop() {
        peeled += 1;
        for &w in &targets[first[v]..first[v + 1]] {
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.push(w);
            }
        }
    }
    peeled == n
}

/// Strongly connected components (iterative Tarjan), each listed once.
pub(crate) fn tarjan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
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

/// §9: domains, static `domain: k`, policies, workers and the task window (E270–E275).
fn check_dispatch(ctx: &mut Ctx, s: &SceneSpec, nodes: &[PlanNode], registry: &KernelRegistry) {
    let domains = s.dispatch.as_ref().map(|d| d.domains);
    if let Some(d) = &s.dispatch {
        if d.domains == 0 || d.domains > crate::dispatch::MAX_DOMAINS {
            ctx.err(
                "E270",
                "dispatch.domains",
                format!(
                    "`domains` must be between 1 and {}, got {}",
                    crate::dispatch::MAX_DOMAINS,
                    d.domains
                ),
            );
        }
        if d.workers == Some(0) {
            ctx.err(
                "E274",
                "dispatch.workers",
                "`workers: Some(0)` leaves no worker to run a task (use None for unlimited)",
            );
        }
        match &d.policy {
            DispatchPolicy::Hook(name) if registry.hook(name).is_none() => ctx.err(
                "E272",
                "dispatch.policy",
                format!("dispatch hook `{name}` is not registered (register it with KernelRegistry::register_hook)"),
            ),
            DispatchPolicy::Hash(key) if !crate::dispatch::HASH_KEYS.contains(&key.as_str()) => {
                ctx.err(
                    "E273",
                    "dispatch.policy",
                    format!(
                        "unknown Hash key `{key}` (one of: {})",
                        crate::dispatch::HASH_KEYS.join(", ")
                    ),
                )
            }
            _ => {}
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let Some(k) = n.domain else {
            continue;
        };
        let path = format!("nodes[{i}].domain");
        match domains {
            None => ctx.err(
                "E271",
                path,
                format!(
                    "`{}` names domain {k}, but the scene declares no `dispatch` domains",
                    n.name
                ),
            ),
            Some(_) if n.is_probe => ctx.err(
                "E271",
                path,
                format!(
                    "`{}` is a Probe: probe firings bypass dispatch, so a domain means nothing",
                    n.name
                ),
            ),
            Some(d) if k >= d => ctx.err(
                "E271",
                path,
                format!(
                    "`{}` names domain {k}, but there are {d} domains (0..{})",
                    n.name,
                    d.saturating_sub(1)
                ),
            ),
            _ => {}
        }
    }
    if let Some(w) = &s.task_window
        && w.size == 0
    {
        ctx.err(
            "E275",
            "task_window.size",
            "a task window of size 0 admits no task",
        );
    }
}
