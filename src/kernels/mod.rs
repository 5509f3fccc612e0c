//! The node contract (SPEC §7) and the built-in kernels, one file per family.
//!
//! Kernels know nothing of the ECS: the engine hands them views of their input channels to
//! compute *demand*, and blocks of consumed tokens to compute outputs.

pub mod actor;
pub mod bands;
pub mod dsp;
pub mod elementwise;
pub mod registry;
pub mod slew;
pub mod sources;
pub mod streams;
pub mod tiles;

pub use registry::{KernelFactory, KernelRegistry, RegistryError};

use crate::scene::{CoreType, KernelSpec, Shape, TapDir};
use serde::Serialize;
use std::any::Any;

/// What a kernel may know about one of its input channels when it decides its demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputView {
    /// Tokens visible now.
    pub visible: usize,
    /// Tokens held, visible or not.
    pub held: usize,
    /// The producer closed the channel (end of stream).
    pub closed: bool,
    /// The channel holds no token and no reservation.
    pub drained: bool,
    /// The tap is optional: a missing token falls back to `hold_last` / `default`, and the tap
    /// never finishes the node.
    pub optional: bool,
}

impl InputView {
    /// Closed and drained: nothing will ever arrive again.
    pub fn exhausted(&self) -> bool {
        self.closed && self.drained
    }
}

/// The tokens a firing consumed on one input tap, back to back.
#[derive(Debug, Clone, Copy)]
pub struct InputBlock<'a> {
    pub values: &'a [f32],
    pub token_len: usize,
}

impl InputBlock<'_> {
    pub fn tokens(&self) -> usize {
        self.values.len().checked_div(self.token_len).unwrap_or(0)
    }
    pub fn token(&self, i: usize) -> &[f32] {
        &self.values[i * self.token_len..(i + 1) * self.token_len]
    }
}

/// Where a firing writes the tokens of one output tap (at most the tap's maximum production).
#[derive(Debug, Clone, Default)]
pub struct OutputBlock {
    pub values: Vec<f32>,
    pub token_len: usize,
}

impl OutputBlock {
    pub fn tokens(&self) -> usize {
        self.values.len().checked_div(self.token_len).unwrap_or(0)
    }
    /// Appends one token.
    pub fn push(&mut self, token: &[f32]) {
        self.values.extend_from_slice(token);
    }
    /// Appends `n` zeros and returns them to be written.
    pub fn append_zeroed(&mut self, n: usize) -> &mut [f32] {
        let start = self.values.len();
        self.values.resize(start + n, 0.0);
        &mut self.values[start..]
    }
    /// Appends one token with every element equal to `v`.
    pub fn push_fill(&mut self, v: f32) {
        let n = self.values.len() + self.token_len;
        self.values.resize(n, v);
    }
}

/// One firing's inputs and outputs, and what else it may touch: the slot table (§11).
///
/// `Default` gives an empty firing that reads every slot as 0; build literals with
/// `..Default::default()` so fields added later need no edits:
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, OutputBlock};
/// let x = [1.0f32];
/// let mut out = [OutputBlock { values: vec![], token_len: 1 }];
/// let io = FireIo { inputs: &[InputBlock { values: &x, token_len: 1 }], outputs: &mut out, ..Default::default() };
/// assert_eq!((io.firing, io.slots.get(0)), (0, 0));
/// ```
#[derive(Default)]
pub struct FireIo<'a> {
    /// The node's firing index: 0, 1, 2, …
    pub firing: u64,
    /// The tick the firing starts at.
    pub tick: u64,
    pub inputs: &'a [InputBlock<'a>],
    pub outputs: &'a mut [OutputBlock],
    /// The slot table as of the firing's tick, and the queue for the firing's slot writes
    /// (applied by the engine at the end of the tick the firing completes, §11).
    pub slots: crate::slots::SlotIo<'a>,
}

/// A differentiable kernel parameter, named `node.param` in gradient reports (`param` here).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub value: f64,
}

impl Param {
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Param {
            name: name.into(),
            value,
        }
    }
}

/// Why a kernel has no adjoint (a typed refusal: `grad` names the node and this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel `{kind}` has no adjoint: {reason}")]
pub struct NoAdjoint {
    pub kind: String,
    pub reason: String,
}

impl NoAdjoint {
    pub fn new(kind: &str, reason: &str) -> Self {
        NoAdjoint {
            kind: kind.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A parameter that cannot be set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("kernel `{kind}` has no parameter `{name}`")]
    Unknown { kind: String, name: String },
    #[error("parameter `{name}` = {value}: {reason}")]
    Invalid {
        name: String,
        value: f64,
        reason: String,
    },
}

/// One firing seen backwards: the forward values, the state saved before it, and the gradient
/// buffers the kernel's adjoint reads and accumulates into (all gradients in `f64`).
pub struct BackwardIo<'a> {
    pub firing: u64,
    pub tick: u64,
    /// Forward inputs as consumed (after optional-tap fallbacks and adapters).
    pub inputs: &'a [InputBlock<'a>],
    /// Forward outputs as produced.
    pub outputs: &'a [InputBlock<'a>],
    /// What [`Kernel::save_state`] wrote before this firing.
    pub saved: &'a [f32],
    /// dL/d(output) per output tap, one value per produced element.
    pub grad_outputs: &'a [Vec<f64>],
    /// dL/d(input) per input tap, one value per consumed element: *accumulate* (`+=`).
    pub grad_inputs: &'a mut [Vec<f64>],
    /// On entry dL/d(state after the firing); on exit dL/d(state before it).
    /// Length [`Kernel::state_len`].
    pub grad_state: &'a mut [f64],
    /// dL/d(parameter) in [`Kernel::params`] order: *accumulate*.
    pub grad_params: &'a mut [f64],
}

/// What one firing costs a device (SPEC §12): the device turns this into a latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Elements computed (written) per firing.
    pub elements: u64,
    /// Bytes read from inputs and written to outputs per firing.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The core type that runs it on an NPU.
    pub core: CoreType,
    /// `(batch, m, k, n)` for matrix products (cube cost formula).
    pub matmul: Option<[u64; 4]>,
}

/// Gives `&mut dyn Any` for any kernel, so a cohort function can reach its concrete type.
/// Call it on `&mut dyn Kernel` (e.g. `boxed.as_mut().as_any_mut()`), never on the `Box`.
pub trait AsAny {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A node's behaviour. Implementations must be deterministic functions of their state and inputs.
pub trait Kernel: AsAny + Send + Sync + 'static {
    /// The kernel kind (the RON variant name, or a registered custom kind).
    fn kind(&self) -> &str;

    /// Tokens demanded on each input tap for the next firing (usually the tap rates).
    fn demand(&self, inputs: &[InputView], demand: &mut [u32]);

    /// Whether the node is finished given its inputs (it is idle when asked). The default is §4:
    /// some demanded mandatory input is closed and holds fewer tokens than demanded.
    fn finished(&self, inputs: &[InputView], demand: &[u32]) -> bool {
        inputs
            .iter()
            .zip(demand)
            .any(|(v, &d)| !v.optional && d > 0 && v.closed && v.held < d as usize)
    }

    /// The most tokens one firing writes to output tap `tap`.
    fn max_production(&self, tap: usize) -> u32;

    /// Computes one firing (the forward form).
    fn fire(&mut self, io: &mut FireIo<'_>);

    /// The differentiable parameters and their current values (f64 views of the f32 values the
    /// kernel computes with).
    fn params(&self) -> Vec<Param> {
        Vec::new()
    }

    /// Sets a parameter between runs (no re-planning). Values are validated like the scene's.
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let _ = value;
        Err(ParamError::Unknown {
            kind: self.kind().to_string(),
            name: name.to_string(),
        })
    }

    /// Length of the state the adjoint carries between firings (`grad_state`).
    fn state_len(&self) -> usize {
        0
    }

    /// Appends the state the adjoint needs, as it is *before* the next firing.
    fn save_state(&self, out: &mut Vec<f32>) {
        let _ = out;
    }

    /// The adjoint of one firing (reverse mode), or a typed refusal.
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let _ = io;
        Err(NoAdjoint::new(self.kind(), "no adjoint is defined"))
    }

    /// What a firing costs a device. The default reads every input and writes every output
    /// once on the AICPU (sources, DSP, stream and control kernels: they keep their reference
    /// timing on an NPU model); elementwise and tile kernels say `Vector`, `MatMul` `Cube`.
    fn cost(&self, sig: &Signature) -> Cost {
        default_cost(sig, CoreType::AiCpu)
    }

    /// Input energy of one firing, `Σ x²` over every consumed element (SPEC §14 heat input).
    fn heat(&self, inputs: &[InputBlock<'_>]) -> f64 {
        inputs
            .iter()
            .flat_map(|b| b.values.iter())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum()
    }
}

/// The cost of a job that reads every input and writes every output once.
pub fn default_cost(sig: &Signature, core: CoreType) -> Cost {
    let per = |taps: &[TapSig]| -> u64 {
        taps.iter()
            .map(|t| u64::from(t.rate) * t.token_len as u64)
            .sum()
    };
    let (i, o) = (per(&sig.inputs), per(&sig.outputs));
    Cost {
        elements: o.max(i),
        bytes_in: 4 * i,
        bytes_out: 4 * o,
        core,
        matmul: None,
    }
}

/// One member of a cohort call: a kernel and its firing.
pub struct CohortMember<'k, 'io> {
    pub kernel: &'k mut dyn Kernel,
    pub io: FireIo<'io>,
}

/// The batched form of a kernel kind: fires every member (all of that kind) in one call, with
/// results bit-identical to firing them one by one.
pub type CohortFn = fn(&mut [CohortMember<'_, '_>]);

/// Fires a cohort one member at a time (the fallback batched form).
pub fn fire_each(members: &mut [CohortMember<'_, '_>]) {
    for m in members {
        m.kernel.fire(&mut m.io);
    }
}

/// Runs a cohort of same-kind nodes through the kind's batched form.
pub fn fire_cohort(registry: &KernelRegistry, members: &mut [CohortMember<'_, '_>]) {
    let Some(kind) = members.first().map(|m| m.kernel.kind().to_string()) else {
        return;
    };
    match registry.cohort_fn(&kind) {
        Some(f) if members.iter().all(|m| m.kernel.kind() == kind) => f(members),
        _ => fire_each(members),
    }
}

/// A tap as the plan resolved it, handed to kernel constructors.
#[derive(Debug, Clone, PartialEq)]
pub struct TapSig {
    pub name: String,
    pub rate: u32,
    pub token_len: usize,
    pub shape: Shape,
}

/// The resolved taps of a node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    pub inputs: Vec<TapSig>,
    pub outputs: Vec<TapSig>,
}

impl Signature {
    fn in_rates(&self) -> Vec<u32> {
        self.inputs.iter().map(|t| t.rate).collect()
    }
    fn out_rates(&self) -> Vec<u32> {
        self.outputs.iter().map(|t| t.rate).collect()
    }
}

/// How a kernel family treats per-tap rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateRule {
    /// Any rate on any tap (sources, actors, probes).
    Free,
    /// One rate shared by every tap: `r` independent applications per firing.
    Uniform,
    /// Rate 1 only (stream kernels with their own demand).
    One,
    /// Multi-rate resampling: the samples per row consumed and produced per firing must be in
    /// the kernel's ratio (`Decimate`, `Interpolate`).
    Resample,
}

/// The most taps a kernel with a tap count parameter (`Mix`, `BandSplit`, `BandMerge`) may have;
/// larger counts are plan errors, and tap lists never grow beyond it.
pub const MAX_GENERATED_TAPS: u32 = 1024;

/// Every built-in kernel kind (the RON variant names), in SPEC §7 order.
pub const BUILTIN_KINDS: &[&str] = &[
    "Const",
    "Ramp",
    "Sine",
    "Saw",
    "Square",
    "Noise",
    "File",
    "Gain",
    "Offset",
    "Map",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Mix",
    "AddScalar",
    "MulScalar",
    "OnePole",
    "Biquad",
    "Fir",
    "Decimate",
    "Interpolate",
    "BandSplit",
    "BandMerge",
    "Envelope",
    "OrderedMerge",
    "Filter",
    "Take",
    "Select",
    "SlotLoad",
    "MatMul",
    "Softmax",
    "RowSum",
    "RowMax",
    "Transpose",
    "Copy",
    "SlewIntegrator",
    "Probe",
    "Actor",
    "Inject",
];

/// A kernel's taps as the planner sees them: `(name, default rate)` per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapLayout {
    pub inputs: Vec<(String, u32)>,
    pub outputs: Vec<(String, u32)>,
    pub rule: RateRule,
    /// Every tap carries one token shape.
    pub preserves_shape: bool,
}

fn names(prefix: &str, n: u32) -> Vec<(String, u32)> {
    // Tap counts above the limit are plan errors; never build huge tap lists for them.
    let n = if n > MAX_GENERATED_TAPS { 0 } else { n };
    (0..n).map(|i| (format!("{prefix}{i}"), 1)).collect()
}

/// The taps of a kernel; `Ok(None)` for `Actor`, whose taps the scene declares with `dir`;
/// `Err` for a custom kind the registry does not know.
pub fn kernel_taps(
    spec: &KernelSpec,
    registry: &KernelRegistry,
) -> Result<Option<TapLayout>, String> {
    use KernelSpec::*;
    let one = |v: &[&str]| v.iter().map(|x| (x.to_string(), 1)).collect::<Vec<_>>();
    let layout = |inputs, outputs, rule| TapLayout {
        inputs,
        outputs,
        rule,
        preserves_shape: true,
    };
    Ok(Some(match spec {
        Const { .. }
        | Ramp { .. }
        | Sine { .. }
        | Saw { .. }
        | Square { .. }
        | Noise { .. }
        | File { .. } => layout(vec![], one(&["out"]), RateRule::Free),
        Add | Sub | Mul | Div | Max => layout(one(&["a", "b"]), one(&["out"]), RateRule::Uniform),
        MatMul => TapLayout {
            preserves_shape: false,
            ..layout(one(&["a", "b"]), one(&["out"]), RateRule::Uniform)
        },
        OrderedMerge { .. } => layout(one(&["a", "b"]), one(&["out"]), RateRule::One),
        Mix { inputs, .. } => layout(names("in", *inputs), one(&["out"]), RateRule::Uniform),
        Select { .. } => layout(one(&["in"]), one(&["then", "else"]), RateRule::One),
        SlewIntegrator { .. } => layout(one(&["in"]), one(&["out", "integral"]), RateRule::Uniform),
        Probe => layout(one(&["in"]), vec![], RateRule::Free),
        Inject => layout(vec![], one(&["out"]), RateRule::One),
        SlotLoad { .. } => TapLayout {
            preserves_shape: false,
            ..layout(one(&["in"]), vec![], RateRule::One)
        },
        BandSplit { bands } => layout(one(&["in"]), names("band", *bands), RateRule::Uniform),
        BandMerge { bands } => layout(names("band", *bands), one(&["out"]), RateRule::Uniform),
        Filter { .. } | Take { .. } => layout(one(&["in"]), one(&["out"]), RateRule::One),
        Decimate { factor } => TapLayout {
            preserves_shape: false,
            ..layout(
                vec![("in".into(), (*factor).max(1))],
                one(&["out"]),
                RateRule::Resample,
            )
        },
        Interpolate { factor } => TapLayout {
            preserves_shape: false,
            ..layout(
                one(&["in"]),
                vec![("out".into(), (*factor).max(1))],
                RateRule::Resample,
            )
        },
        Transpose | RowSum | RowMax => TapLayout {
            preserves_shape: false,
            ..layout(one(&["in"]), one(&["out"]), RateRule::Uniform)
        },
        Actor => return Ok(None),
        Custom { kind, params } => {
            let f = registry.get(kind).ok_or_else(|| {
                format!("unknown custom kernel kind `{kind}` (register it first)")
            })?;
            let taps = |v: Vec<String>| v.into_iter().map(|n| (n, 1)).collect();
            TapLayout {
                inputs: taps(f.inputs(params)),
                outputs: taps(f.outputs(params)),
                rule: f.rate_rule(),
                preserves_shape: f.preserves_shape(),
            }
        }
        Gain { .. }
        | Offset { .. }
        | Map { .. }
        | AddScalar { .. }
        | MulScalar { .. }
        | OnePole { .. }
        | Biquad { .. }
        | Fir { .. }
        | Envelope { .. }
        | Softmax { .. }
        | Copy => layout(one(&["in"]), one(&["out"]), RateRule::Uniform),
    }))
}

/// Direction of an Actor tap (re-exported for the planner).
pub type Dir = TapDir;

/// What a kernel constructor may know beyond its parameters.
#[derive(Clone, Copy)]
pub struct BuildCtx<'a> {
    pub sig: &'a Signature,
    /// The sample rate of DSP kernels (SPEC §7: one frame = one sample at `tick_hz`).
    pub tick_hz: f64,
    /// Samples of a `File` source, decoded at plan time.
    pub file: Option<&'a std::sync::Arc<sources::FileData>>,
    pub registry: &'a KernelRegistry,
}

/// Builds the kernel instance for a node, or `None` when it cannot be built (a `File` source
/// without its decoded data, a custom kind the registry does not know).
pub fn instantiate(spec: &KernelSpec, ctx: &BuildCtx<'_>) -> Option<Box<dyn Kernel>> {
    use KernelSpec::*;
    use elementwise::{Binary, BinaryOp, Unary, UnaryOp};
    let sig = ctx.sig;
    let ins = sig.in_rates();
    let outs = sig.out_rates();
    // Tap lists come from `kernel_taps`, so index 0 exists; fall back to rate 1 defensively.
    let in0 = ins.first().copied().unwrap_or(1);
    let out0 = outs.first().copied().unwrap_or(1);
    let out_shape = sig.outputs.first().map_or(Shape::default(), |t| t.shape);
    let in_shape = sig.inputs.first().map_or(Shape::default(), |t| t.shape);
    let fs = ctx.tick_hz;
    Some(match spec {
        Const { value } => Box::new(sources::Const::new(*value, out0)),
        Ramp { start, step } => Box::new(sources::Ramp::new(*start, *step, out0)),
        Sine {
            freq_hz,
            amp,
            phase,
        } => Box::new(sources::Osc::new(
            sources::Wave::Sine { phase: *phase },
            *freq_hz,
            *amp,
            fs,
            out0,
            out_shape,
        )),
        Saw { freq_hz, amp } => Box::new(sources::Osc::new(
            sources::Wave::Saw,
            *freq_hz,
            *amp,
            fs,
            out0,
            out_shape,
        )),
        Square { freq_hz, amp, duty } => Box::new(sources::Osc::new(
            sources::Wave::Square { duty: *duty },
            *freq_hz,
            *amp,
            fs,
            out0,
            out_shape,
        )),
        Noise { seed, amp } => Box::new(sources::Noise::new(*seed, *amp, out0, out_shape)),
        File { .. } => Box::new(sources::FileSource::new(ctx.file?.clone(), out0, out_shape)),
        Gain { gain } => Box::new(Unary::new("Gain", UnaryOp::Mul(*gain as f32), in0)),
        MulScalar { value } => Box::new(Unary::new("MulScalar", UnaryOp::Mul(*value as f32), in0)),
        Offset { value } => Box::new(Unary::new("Offset", UnaryOp::Add(*value as f32), in0)),
        AddScalar { value } => Box::new(Unary::new("AddScalar", UnaryOp::Add(*value as f32), in0)),
        Map { op } => Box::new(Unary::new("Map", UnaryOp::Map(*op), in0)),
        Copy => Box::new(Unary::new("Copy", UnaryOp::Identity, in0)),
        Add => Box::new(Binary::new("Add", BinaryOp::Add, in0)),
        Sub => Box::new(Binary::new("Sub", BinaryOp::Sub, in0)),
        Mul => Box::new(Binary::new("Mul", BinaryOp::Mul, in0)),
        Div => Box::new(Binary::new("Div", BinaryOp::Div, in0)),
        Max => Box::new(Binary::new("Max", BinaryOp::Max, in0)),
        Mix { gains, .. } => Box::new(elementwise::Mix::new(gains, in0)),
        OnePole { coeff } => Box::new(dsp::OnePole::new(*coeff, in0, in_shape)),
        Biquad {
            mode,
            cutoff_hz,
            q,
            gain_db,
        } => Box::new(dsp::Biquad::new(
            *mode, *cutoff_hz, *q, *gain_db, fs, in0, in_shape,
        )),
        Fir { taps } => Box::new(dsp::Fir::new(taps, in0, in_shape)),
        Decimate { factor } => Box::new(dsp::Resample::decimate(*factor, sig)),
        Interpolate { factor } => Box::new(dsp::Resample::interpolate(*factor, sig)),
        Envelope {
            attack,
            hold,
            decay,
            sustain,
            release,
        } => Box::new(dsp::Envelope::new(
            [*attack, *hold, *decay, *sustain, *release],
            fs,
            in0,
            in_shape,
        )),
        BandSplit { bands } => Box::new(bands::BandSplit::new(*bands as usize, in0, in_shape)),
        BandMerge { bands } => Box::new(bands::BandMerge::new(*bands as usize, in0)),
        MatMul => Box::new(tiles::MatMul::new(sig)),
        Softmax { axis } => Box::new(tiles::Softmax::new(*axis, in0, in_shape)),
        RowSum => Box::new(tiles::RowReduce::new(tiles::Reduce::Sum, in0, in_shape)),
        RowMax => Box::new(tiles::RowReduce::new(tiles::Reduce::Max, in0, in_shape)),
        Transpose => Box::new(tiles::Transpose::new(in0, in_shape)),
        SlewIntegrator {
            mode,
            sample_rate_hz,
        } => Box::new(slew::SlewIntegrator::new(
            *mode,
            *sample_rate_hz,
            in0,
            in_shape,
        )),
        Probe => Box::new(streams::ProbeSink::new(in0)),
        Inject => Box::new(sources::Inject::new(
            sig.outputs.first().map_or(1, |t| t.token_len),
        )),
        OrderedMerge { dedup } => Box::new(streams::OrderedMerge::new(
            *dedup,
            sig.inputs.first().map_or(1, |t| t.token_len),
        )),
        Filter { pred } => Box::new(streams::Filter::new(*pred)),
        Take { n } => Box::new(streams::Take::new(*n)),
        Actor => Box::new(actor::Actor::new(ins, outs)),
        Custom { kind, params } => ctx.registry.get(kind)?.build(params, sig),
        Select { slot } => Box::new(streams::Select::new(*slot)),
        SlotLoad { slot, index } => Box::new(streams::SlotLoad::new(*slot, *index as usize)),
    })
}

/// The batched form of a built-in kind, where it has one beyond one-by-one firing.
pub fn builtin_cohort_fn(kind: &str) -> Option<CohortFn> {
    match kind {
        "Biquad" => Some(dsp::biquad_cohort),
        "Gain" | "MulScalar" | "Offset" | "AddScalar" | "Map" | "Copy" => {
            Some(elementwise::unary_cohort)
        }
        _ => None,
    }
}
