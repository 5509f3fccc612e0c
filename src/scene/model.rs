//! The RON scene model (SCENE.md, version 1). Field and variant names are a public contract.
//!
//! Every struct denies unknown fields so typos are located errors, and every optional field
//! carries the default SCENE.md gives it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn one_f64() -> f64 {
    1.0
}
fn default_capacity() -> u32 {
    2
}
fn default_concurrency() -> Option<u32> {
    Some(1)
}
fn default_max_capacity() -> u32 {
    65536
}
fn half() -> f64 {
    0.5
}

/// A whole scene file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Scene", deny_unknown_fields)]
pub struct SceneSpec {
    pub version: u32,
    pub name: String,
    #[serde(default = "one_f64")]
    pub tick_hz: f64,
    #[serde(default)]
    pub defaults: Defaults,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
    #[serde(default)]
    pub gates: Vec<GateSpec>,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    #[serde(default)]
    pub memory: MemorySpec,
    #[serde(default)]
    pub dispatch: Option<DispatchSpec>,
    #[serde(default)]
    pub task_window: Option<TaskWindowSpec>,
    #[serde(default)]
    pub device: DeviceSpec,
    #[serde(default)]
    pub slots: BTreeMap<u32, u64>,
    #[serde(default)]
    pub symbols: BTreeMap<String, u64>,
    #[serde(default)]
    pub thermal_links: Vec<ThermalLinkSpec>,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub loss: Option<LossSpec>,
    #[serde(default)]
    pub run: RunSpec,
}

/// `(batch, channels, frames)`; a token holds `batch·channels·frames` `f32`s, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    #[serde(default = "one_u32")]
    pub batch: u32,
    #[serde(default = "one_u32")]
    pub channels: u32,
    #[serde(default = "one_u32")]
    pub frames: u32,
}
fn one_u32() -> u32 {
    1
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            batch: 1,
            channels: 1,
            frames: 1,
        }
    }
}

impl Shape {
    /// Elements in one token of this shape (saturating, so absurd shapes fail validation, not overflow).
    pub fn elements(&self) -> u64 {
        (self.batch as u64)
            .saturating_mul(self.channels as u64)
            .saturating_mul(self.frames as u64)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(batch: {}, channels: {}, frames: {})",
            self.batch, self.channels, self.frames
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub shape: Shape,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            shape: Shape::default(),
            capacity: 2,
        }
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Node", deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub kernel: KernelSpec,
    #[serde(default)]
    pub shape: Option<Shape>,
    #[serde(default)]
    pub period: Option<u64>,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub latency: LatencySpec,
    #[serde(default)]
    pub cost: Option<CostSpec>,
    #[serde(default = "default_concurrency")]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub lane: Lane,
    #[serde(default)]
    pub domain: Option<u32>,
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub core: Option<CoreType>,
    #[serde(default)]
    pub thermal: Option<ThermalSpec>,
    #[serde(default)]
    pub throttle: Option<ThrottleSpec>,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub taps: BTreeMap<String, TapOverride>,
}

/// `latency: 3` (ticks on the Reference device) or `latency: Measured`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LatencySpec {
    Ticks(u64),
    Word(LatencyWord),
}

impl<'de> Deserialize<'de> for LatencySpec {
    /// RON hands an untagged enum a bare identifier as a nameless unit, so `Measured` could not
    /// be told from a typo that way: read the raw RON text of the value and decide from it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw: Box<ron::value::RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get_ron().trim();
        if text == "Measured" {
            return Ok(LatencySpec::Word(LatencyWord::Measured));
        }
        ron::from_str::<u64>(text)
            .map(LatencySpec::Ticks)
            .map_err(|_| D::Error::custom("expected a latency: a number of ticks or Measured"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatencyWord {
    Measured,
}

impl Default for LatencySpec {
    fn default() -> Self {
        LatencySpec::Ticks(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CostSpec {
    Linear { base: u64, per_element: f64 },
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Lane {
    Control,
    #[default]
    Data,
    Telemetry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoreType {
    Cube,
    Vector,
    AiCpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Timing {
    #[default]
    Off,
    Measure,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThermalSpec {
    pub capacity: f64,
    pub resistance: f64,
    pub ambient: f64,
    #[serde(default)]
    pub input_coeff: f64,
    #[serde(default)]
    pub work_power: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    pub t_max: f64,
    pub factor: f64,
}

/// Per-tap overrides: `taps: { "in": (rate: 2, optional: true) }`. `TapOverride::default()` is
/// `()`: every field at its RON default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapOverride {
    #[serde(default)]
    pub dir: Option<TapDir>,
    /// `None`: the kernel's default rate (1, or `factor` on `Decimate.in`/`Interpolate.out`).
    #[serde(default)]
    pub rate: Option<u32>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub hold_last: bool,
    #[serde(default)]
    pub default: f64,
    #[serde(default)]
    pub shape: Option<Shape>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub adapter: Option<Adapter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TapDir {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adapter {
    Broadcast,
    SumFanIn,
    ConcatChannels,
    SplitChannels(u32),
    ConcatBatch,
    SplitBatch(u32),
}

/// A channel from an output tap to an input tap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Edge", deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub delay: DelaySpec,
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub lane: Lane,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub initial: Vec<TokenSpec>,
    #[serde(default)]
    pub watermarks: Option<(u32, u32)>,
}

/// `delay: 64` or `delay: Symbol("name")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DelaySpec {
    Ticks(u64),
    Named(NamedDelay),
}

impl<'de> Deserialize<'de> for DelaySpec {
    /// RON hands an untagged enum `Symbol("x")` as a nameless tuple (serde's content type moved
    /// crates, which ron 0.11 no longer recognises), so `Symbol` could not be told from a typo:
    /// read the raw RON text of the value and decide from it, as [`LatencySpec`] does.
    ///
    /// ```
    /// use tapwheel::scene::{DelaySpec, NamedDelay};
    /// let d: DelaySpec = ron::from_str("Symbol(\"link\")").unwrap();
    /// assert_eq!(d, DelaySpec::Named(NamedDelay::Symbol("link".into())));
    /// assert_eq!(ron::from_str::<DelaySpec>("64").unwrap(), DelaySpec::Ticks(64));
    /// assert!(ron::from_str::<DelaySpec>("Symbl(\"link\")").is_err());
    /// ```
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw: Box<ron::value::RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get_ron().trim();
        if let Ok(t) = ron::from_str::<u64>(text) {
            return Ok(DelaySpec::Ticks(t));
        }
        ron::from_str::<NamedDelay>(text)
            .map(DelaySpec::Named)
            .map_err(|_| {
                D::Error::custom("expected a delay: a number of ticks or Symbol(\"name\")")
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamedDelay {
    Symbol(String),
}

impl Default for DelaySpec {
    fn default() -> Self {
        DelaySpec::Ticks(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Policy {
    #[default]
    Block,
    DropOldest,
    DropNewest,
}

/// One initial token: a number broadcast to the tap's shape, or every element listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    Scalar(f64),
    Block(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Gate", deny_unknown_fields)]
pub struct GateSpec {
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum ScheduleSpec {
    #[default]
    Kpn,
    IplsAuto,
    Ipls {
        stages: Vec<StageSpec>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Stage", deny_unknown_fields)]
pub struct StageSpec {
    pub cohorts: Vec<CohortSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Cohort", deny_unknown_fields)]
pub struct CohortSpec {
    pub kind: String,
    pub nodes: Vec<String>,
}

/// Channel memory: Parks' bounded growth (default) or fixed capacities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemorySpec {
    Parks {
        #[serde(default = "default_max_capacity")]
        max_capacity: u32,
    },
    Fixed,
}

impl Default for MemorySpec {
    fn default() -> Self {
        MemorySpec::Parks {
            max_capacity: 65536,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSpec {
    pub domains: u32,
    #[serde(default)]
    pub policy: DispatchPolicy,
    #[serde(default)]
    pub dispatch_cost: u64,
    #[serde(default)]
    pub workers: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DispatchPolicy {
    #[default]
    RoundRobin,
    Hash(String),
    Affinity,
    LeastLoaded,
    Hook(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskWindowSpec {
    pub size: u32,
    #[serde(default)]
    pub mode: WindowMode,
    #[serde(default)]
    pub scope: WindowScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WindowMode {
    #[default]
    Stall,
    Abort,
    Benchmark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WindowScope {
    #[default]
    Global,
    PerDomain,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DeviceSpec {
    #[default]
    Reference,
    CycleSim {
        profile: String,
    },
    Ascend {
        library: String,
        #[serde(default)]
        device_id: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ThermalLink", deny_unknown_fields)]
pub struct ThermalLinkSpec {
    pub a: String,
    pub b: String,
    pub conductance: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossSpec {
    Sum { probe: String },
    Mse { probe: String, target: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default)]
    pub until: Option<u64>,
    #[serde(default)]
    pub max_steps: Option<u64>,
    #[serde(default)]
    pub seed: u64,
}

/// The kernel of a node (SPEC §7). Parameters are `f64` in the scene and rounded to `f32` by kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum KernelSpec {
    // sources
    Const {
        value: f64,
    },
    Ramp {
        #[serde(default)]
        start: f64,
        #[serde(default = "one_f64")]
        step: f64,
    },
    Sine {
        freq_hz: f64,
        #[serde(default = "one_f64")]
        amp: f64,
        #[serde(default)]
        phase: f64,
    },
    Saw {
        freq_hz: f64,
        #[serde(default = "one_f64")]
        amp: f64,
    },
    Square {
        freq_hz: f64,
        #[serde(default = "one_f64")]
        amp: f64,
        #[serde(default = "half")]
        duty: f64,
    },
    Noise {
        #[serde(default)]
        seed: u64,
        #[serde(default = "one_f64")]
        amp: f64,
    },
    File {
        path: String,
    },
    // elementwise
    Gain {
        gain: f64,
    },
    Offset {
        value: f64,
    },
    Map {
        op: MapOp,
    },
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Mix {
        inputs: u32,
        gains: Vec<f64>,
    },
    AddScalar {
        value: f64,
    },
    MulScalar {
        value: f64,
    },
    // DSP
    OnePole {
        coeff: f64,
    },
    Biquad {
        mode: BiquadMode,
        cutoff_hz: f64,
        #[serde(default = "default_q")]
        q: f64,
        #[serde(default)]
        gain_db: f64,
    },
    Fir {
        taps: Vec<f64>,
    },
    Decimate {
        factor: u32,
    },
    Interpolate {
        factor: u32,
    },
    BandSplit {
        bands: u32,
    },
    BandMerge {
        bands: u32,
    },
    Envelope {
        attack: f64,
        hold: f64,
        decay: f64,
        sustain: f64,
        release: f64,
    },
    // streams
    OrderedMerge {
        #[serde(default)]
        dedup: bool,
    },
    Filter {
        pred: Pred,
    },
    Take {
        n: u64,
    },
    Select {
        slot: u32,
    },
    SlotLoad {
        slot: u32,
        #[serde(default)]
        index: u32,
    },
    // tiles
    MatMul,
    Softmax {
        #[serde(default)]
        axis: u32,
    },
    RowSum,
    RowMax,
    Transpose,
    Copy,
    // integrator, sink, synthetic actor
    SlewIntegrator {
        mode: SlewMode,
        sample_rate_hz: f64,
    },
    Probe,
    Actor,
    /// An open input: a source fed by the embedding program (`Engine::inject`), one token per
    /// injection at the tick the host chooses (SPEC §20).
    Inject,
    /// A kernel registered by the embedding program (`KernelRegistry`).
    Custom {
        kind: String,
        #[serde(default)]
        params: std::collections::BTreeMap<String, f64>,
    },
}

fn default_q() -> f64 {
    std::f64::consts::FRAC_1_SQRT_2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapOp {
    Neg,
    Abs,
    Square,
    Sqrt,
    Exp,
    Log,
    Tanh,
    Relu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BiquadMode {
    Lowpass,
    Highpass,
    Bandpass,
    Notch,
    Peak,
    LowShelf,
    HighShelf,
}

/// Predicates of `Filter`: a token passes when its first element satisfies the predicate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Pred {
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
    Eq(f64),
    Ne(f64),
    NotMultipleOf(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SlewMode {
    Ideal,
    Limited { max_rate: f64, max_accel: f64 },
}

impl KernelSpec {
    /// The RON variant name, which is also the kernel *kind* used by cohorts.
    pub fn kind(&self) -> &str {
        use KernelSpec::*;
        match self {
            Const { .. } => "Const",
            Ramp { .. } => "Ramp",
            Sine { .. } => "Sine",
            Saw { .. } => "Saw",
            Square { .. } => "Square",
            Noise { .. } => "Noise",
            File { .. } => "File",
            Gain { .. } => "Gain",
            Offset { .. } => "Offset",
            Map { .. } => "Map",
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Max => "Max",
            Mix { .. } => "Mix",
            AddScalar { .. } => "AddScalar",
            MulScalar { .. } => "MulScalar",
            OnePole { .. } => "OnePole",
            Biquad { .. } => "Biquad",
            Fir { .. } => "Fir",
            Decimate { .. } => "Decimate",
            Interpolate { .. } => "Interpolate",
            BandSplit { .. } => "BandSplit",
            BandMerge { .. } => "BandMerge",
            Envelope { .. } => "Envelope",
            OrderedMerge { .. } => "OrderedMerge",
            Filter { .. } => "Filter",
            Take { .. } => "Take",
            Select { .. } => "Select",
            SlotLoad { .. } => "SlotLoad",
            MatMul => "MatMul",
            Softmax { .. } => "Softmax",
            RowSum => "RowSum",
            RowMax => "RowMax",
            Transpose => "Transpose",
            Copy => "Copy",
            SlewIntegrator { .. } => "SlewIntegrator",
            Probe => "Probe",
            Actor => "Actor",
            Inject => "Inject",
            Custom { kind, .. } => kind,
        }
    }
}
