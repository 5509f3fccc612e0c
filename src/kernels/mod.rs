//! The node contract (SPEC §7) and the built-in kernels, one file per family.
//!
//! Kernels know nothing of the ECS: the engine hands them views of their input channels to
//! compute *demand*, and blocks of consumed tokens to compute outputs.

pub mod actor;
pub mod elementwise;
pub mod sources;
pub mod streams;

use crate::scene::{KernelSpec, TapDir};

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
    /// Appends one token with every element equal to `v`.
    pub fn push_fill(&mut self, v: f32) {
        let n = self.values.len() + self.token_len;
        self.values.resize(n, v);
    }
}

/// One firing's inputs and outputs.
pub struct FireIo<'a> {
    /// The node's firing index: 0, 1, 2, …
    pub firing: u64,
    /// The tick the firing starts at.
    pub tick: u64,
    pub inputs: &'a [InputBlock<'a>],
    pub outputs: &'a mut [OutputBlock],
}

/// A node's behaviour. Implementations must be deterministic functions of their state and inputs.
pub trait Kernel: Send + Sync + 'static {
    /// The kernel kind (the RON variant name).
    fn kind(&self) -> &'static str;

    /// Tokens demanded on each input tap for the next firing (default: the tap rates).
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

    /// Computes one firing.
    fn fire(&mut self, io: &mut FireIo<'_>);
}

/// A tap as the plan resolved it, handed to kernel constructors.
#[derive(Debug, Clone, PartialEq)]
pub struct TapSig {
    pub name: String,
    pub rate: u32,
    pub token_len: usize,
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
}

/// The most taps a kernel with a tap count parameter (`Mix`, `BandSplit`, `BandMerge`) may have;
/// larger counts are plan errors, and tap lists never grow beyond it.
pub const MAX_GENERATED_TAPS: u32 = 1024;

/// The built-in taps of a kernel: `(inputs, outputs, rate rule)`; `None` for `Actor`, whose taps
/// are declared in the scene with `dir`.
pub fn builtin_taps(spec: &KernelSpec) -> Option<(Vec<String>, Vec<String>, RateRule)> {
    use KernelSpec::*;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Some(match spec {
        Const { .. }
        | Ramp { .. }
        | Sine { .. }
        | Saw { .. }
        | Square { .. }
        | Noise { .. }
        | File { .. } => (vec![], s(&["out"]), RateRule::Free),
        Add | Sub | Mul | MatMul => (s(&["a", "b"]), s(&["out"]), RateRule::Uniform),
        OrderedMerge { .. } => (s(&["a", "b"]), s(&["out"]), RateRule::One),
        Mix { inputs, .. } => (
            (0..if *inputs > MAX_GENERATED_TAPS {
                0
            } else {
                *inputs
            })
                .map(|i| format!("in{i}"))
                .collect(),
            s(&["out"]),
            RateRule::Uniform,
        ),
        Select { .. } => (s(&["in"]), s(&["then", "else"]), RateRule::One),
        SlewIntegrator { .. } => (s(&["in"]), s(&["out", "integral"]), RateRule::Uniform),
        Probe => (s(&["in"]), vec![], RateRule::Free),
        SlotLoad { .. } => (s(&["in"]), vec![], RateRule::One),
        BandSplit { bands } => (
            s(&["in"]),
            (0..if *bands > MAX_GENERATED_TAPS {
                0
            } else {
                *bands
            })
                .map(|i| format!("band{i}"))
                .collect(),
            RateRule::Uniform,
        ),
        BandMerge { bands } => (
            (0..if *bands > MAX_GENERATED_TAPS {
                0
            } else {
                *bands
            })
                .map(|i| format!("band{i}"))
                .collect(),
            s(&["out"]),
            RateRule::Uniform,
        ),
        Filter { .. } | Take { .. } => (s(&["in"]), s(&["out"]), RateRule::One),
        Decimate { .. } | Interpolate { .. } => (s(&["in"]), s(&["out"]), RateRule::Free),
        Actor => return None,
        _ => (s(&["in"]), s(&["out"]), RateRule::Uniform),
    })
}

/// Direction of an Actor tap (re-exported for the planner).
pub type Dir = TapDir;

/// Builds the kernel instance for a node, or `None` when this build has no implementation
/// (the scene scan refuses such nodes before planning, R320).
pub fn instantiate(spec: &KernelSpec, sig: &Signature) -> Option<Box<dyn Kernel>> {
    use KernelSpec::*;
    let ins = sig.in_rates();
    let outs = sig.out_rates();
    // Tap lists come from `builtin_taps`, so index 0 exists; fall back to rate 1 defensively.
    let in0 = ins.first().copied().unwrap_or(1);
    let out0 = outs.first().copied().unwrap_or(1);
    Some(match spec {
        Const { value } => Box::new(sources::Const::new(*value, out0)),
        Ramp { start, step } => Box::new(sources::Ramp::new(*start, *step, out0)),
        Gain { gain } => Box::new(elementwise::Unary::new(
            "Gain",
            elementwise::UnaryOp::Mul(*gain as f32),
            in0,
        )),
        MulScalar { value } => Box::new(elementwise::Unary::new(
            "MulScalar",
            elementwise::UnaryOp::Mul(*value as f32),
            in0,
        )),
        Offset { value } => Box::new(elementwise::Unary::new(
            "Offset",
            elementwise::UnaryOp::Add(*value as f32),
            in0,
        )),
        AddScalar { value } => Box::new(elementwise::Unary::new(
            "AddScalar",
            elementwise::UnaryOp::Add(*value as f32),
            in0,
        )),
        Map { op } => Box::new(elementwise::Unary::new(
            "Map",
            elementwise::UnaryOp::Map(*op),
            in0,
        )),
        Copy => Box::new(elementwise::Unary::new(
            "Copy",
            elementwise::UnaryOp::Identity,
            in0,
        )),
        Add => Box::new(elementwise::Binary::new(
            "Add",
            elementwise::BinaryOp::Add,
            in0,
        )),
        Sub => Box::new(elementwise::Binary::new(
            "Sub",
            elementwise::BinaryOp::Sub,
            in0,
        )),
        Mul => Box::new(elementwise::Binary::new(
            "Mul",
            elementwise::BinaryOp::Mul,
            in0,
        )),
        Probe => Box::new(streams::ProbeSink::new(in0)),
        OrderedMerge { dedup } => Box::new(streams::OrderedMerge::new(*dedup)),
        Filter { pred } => Box::new(streams::Filter::new(*pred)),
        Take { n } => Box::new(streams::Take::new(*n)),
        Actor => Box::new(actor::Actor::new(ins, outs)),
        _ => return None,
    })
}
