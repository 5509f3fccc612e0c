//! Elementwise kernels: with rate `r` on their taps a firing is `r` independent applications.

use super::sources::{checked, unknown};
use super::{BackwardIo, CohortMember, FireIo, InputView, Kernel, NoAdjoint, Param, ParamError};
use crate::scene::MapOp;

/// A one-input elementwise operation (parameters already rounded to f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Identity,
    Mul(f32),
    Add(f32),
    Map(MapOp),
}

impl UnaryOp {
    /// Applies the operation in f32.
    ///
    /// ```
    /// use tapwheel::kernels::elementwise::UnaryOp;
    /// use tapwheel::scene::MapOp;
    /// assert_eq!(UnaryOp::Mul(2.0).apply(3.0), 6.0);
    /// assert_eq!(UnaryOp::Add(0.5).apply(3.0), 3.5);
    /// assert_eq!(UnaryOp::Map(MapOp::Relu).apply(-1.0), 0.0);
    /// assert_eq!(UnaryOp::Map(MapOp::Square).apply(-3.0), 9.0);
    /// ```
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Identity => x,
            UnaryOp::Mul(g) => x * g,
            UnaryOp::Add(v) => x + v,
            UnaryOp::Map(op) => match op {
                MapOp::Neg => -x,
                MapOp::Abs => x.abs(),
                MapOp::Square => x * x,
                MapOp::Sqrt => x.sqrt(),
                MapOp::Exp => x.exp(),
                MapOp::Log => x.ln(),
                MapOp::Tanh => x.tanh(),
                MapOp::Relu => x.max(0.0),
            },
        }
    }
}

impl UnaryOp {
    /// d(apply)/dx at `x`, given `y = apply(x)` (subgradients: `Abs` and `Relu` take 0 at 0).
    ///
    /// ```
    /// use tapwheel::kernels::elementwise::UnaryOp;
    /// use tapwheel::scene::MapOp;
    /// assert_eq!(UnaryOp::Map(MapOp::Square).derivative(3.0, 9.0), 6.0);
    /// assert_eq!(UnaryOp::Map(MapOp::Relu).derivative(0.0, 0.0), 0.0);
    /// assert_eq!(UnaryOp::Map(MapOp::Tanh).derivative(0.0, 0.0), 1.0);
    /// ```
    pub fn derivative(self, x: f32, y: f32) -> f64 {
        let (x, y) = (f64::from(x), f64::from(y));
        match self {
            UnaryOp::Identity | UnaryOp::Add(_) => 1.0,
            UnaryOp::Mul(g) => f64::from(g),
            UnaryOp::Map(op) => match op {
                MapOp::Neg => -1.0,
                MapOp::Abs => {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                }
                MapOp::Square => 2.0 * x,
                MapOp::Sqrt => 0.5 / y,
                MapOp::Exp => y,
                MapOp::Log => 1.0 / x,
                MapOp::Tanh => 1.0 - y * y,
                MapOp::Relu => {
                    if x > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
            },
        }
    }
}

/// `in` → `out` through a [`UnaryOp`].
pub struct Unary {
    kind: &'static str,
    op: UnaryOp,
    rate: u32,
}

impl Unary {
    pub fn new(kind: &'static str, op: UnaryOp, rate: u32) -> Self {
        Unary { kind, op, rate }
    }
}

impl Kernel for Unary {
    fn kind(&self) -> &str {
        self.kind
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let op = self.op;
        let out = &mut io.outputs[0].values;
        out.extend(io.inputs[0].values.iter().map(|&x| op.apply(x)));
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        let c = super::default_cost(sig, crate::scene::CoreType::Vector);
        // `Copy` moves data and computes nothing: on an NPU it is a pure transfer.
        if self.kind == "Copy" {
            super::Cost { elements: 0, ..c }
        } else {
            c
        }
    }
    fn params(&self) -> Vec<Param> {
        match (self.op, self.kind) {
            (UnaryOp::Mul(g), "Gain") => vec![Param::new("gain", f64::from(g))],
            (UnaryOp::Mul(v) | UnaryOp::Add(v), _) => vec![Param::new("value", f64::from(v))],
            _ => Vec::new(),
        }
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let expected = if self.kind == "Gain" { "gain" } else { "value" };
        match &mut self.op {
            UnaryOp::Mul(p) | UnaryOp::Add(p) if name == expected => {
                *p = checked(name, value)? as f32
            }
            _ => return Err(unknown(self.kind, name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (x, y, g) = (
            io.inputs[0].values,
            io.outputs[0].values,
            &io.grad_outputs[0],
        );
        for (k, gi) in io.grad_inputs[0].iter_mut().enumerate() {
            *gi += g[k] * self.op.derivative(x[k], y[k]);
        }
        match self.op {
            UnaryOp::Mul(_) => {
                io.grad_params[0] += x.iter().zip(g).map(|(&x, g)| f64::from(x) * g).sum::<f64>()
            }
            UnaryOp::Add(_) => io.grad_params[0] += g.iter().sum::<f64>(),
            _ => {}
        }
        Ok(())
    }
}

/// The batched form of the unary elementwise kinds: every member's block in one pass per op,
/// with the op resolved once per member instead of per element behind a trait object.
pub fn unary_cohort(members: &mut [CohortMember<'_, '_>]) {
    for m in members.iter_mut() {
        let op = match m.kernel.as_any().downcast_ref::<Unary>() {
            Some(u) => u.op,
            None => {
                m.kernel.fire(&mut m.io);
                continue;
            }
        };
        let x = m.io.inputs[0].values;
        let dst = m.io.outputs[0].append_zeroed(x.len());
        match op {
            UnaryOp::Identity => dst.copy_from_slice(x),
            UnaryOp::Mul(g) => dst.iter_mut().zip(x).for_each(|(d, &x)| *d = x * g),
            UnaryOp::Add(v) => dst.iter_mut().zip(x).for_each(|(d, &x)| *d = x + v),
            UnaryOp::Map(_) => dst.iter_mut().zip(x).for_each(|(d, &x)| *d = op.apply(x)),
        }
    }
}

/// A two-input elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// `a / b` (IEEE: `±∞` or NaN where `b = 0`).
    Div,
    /// The larger of `a`, `b` (`f32::max`: a NaN operand yields the other one).
    Max,
}

impl BinaryOp {
    /// Applies the operation in f32.
    ///
    /// ```
    /// use tapwheel::kernels::elementwise::BinaryOp;
    /// assert_eq!(BinaryOp::Sub.apply(1.0, 3.0), -2.0);
    /// assert_eq!(BinaryOp::Div.apply(3.0, 4.0), 0.75);
    /// assert_eq!(BinaryOp::Max.apply(-1.0, -2.0), -1.0);
    /// assert_eq!(BinaryOp::Max.apply(f32::NAN, 2.0), 2.0);
    /// ```
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
        }
    }

    /// `(∂y/∂a, ∂y/∂b)` at `(a, b)`. `Max` gives the whole gradient to `a` when `a ≥ b` (ties go
    /// to `a`) and to `b` otherwise (subgradient).
    ///
    /// ```
    /// use tapwheel::kernels::elementwise::BinaryOp;
    /// assert_eq!(BinaryOp::Div.partials(3.0, 2.0), (0.5, -0.75));
    /// assert_eq!(BinaryOp::Max.partials(1.0, 1.0), (1.0, 0.0));
    /// assert_eq!(BinaryOp::Max.partials(0.0, 1.0), (0.0, 1.0));
    /// ```
    pub fn partials(self, a: f32, b: f32) -> (f64, f64) {
        let (a, b) = (f64::from(a), f64::from(b));
        match self {
            BinaryOp::Add => (1.0, 1.0),
            BinaryOp::Sub => (1.0, -1.0),
            BinaryOp::Mul => (b, a),
            BinaryOp::Div => (1.0 / b, -a / (b * b)),
            BinaryOp::Max => {
                if a >= b || b.is_nan() {
                    (1.0, 0.0)
                } else {
                    (0.0, 1.0)
                }
            }
        }
    }
}

/// `a`, `b` → `out`, element by element: `Add`, `Sub`, `Mul`, `Div`, `Max`. A vector job on an
/// NPU (the default [`Kernel::cost`]); with a `Broadcast` adapter on `b` (SPEC §8) a `(B, C, 1)`
/// column applies to every element of its row, e.g. dividing each row of a tile by its sum:
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock, Signature, TapSig};
/// use tapwheel::kernels::elementwise::{Binary, BinaryOp};
/// use tapwheel::scene::{CoreType, Shape};
/// let mut k = Binary::new("Div", BinaryOp::Div, 1);
/// let (a, b) = ([1.0f32, 3.0, -4.0], [2.0f32, 4.0, 8.0]);
/// let ins = [InputBlock { values: &a, token_len: 3 }, InputBlock { values: &b, token_len: 3 }];
/// let mut out = [OutputBlock { values: vec![], token_len: 3 }];
/// k.fire(&mut FireIo { inputs: &ins, outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![0.5, 0.75, -0.5]);
/// let tap = |n: &str| TapSig { name: n.into(), rate: 1, token_len: 3,
///     shape: Shape { batch: 1, channels: 1, frames: 3 } };
/// let sig = Signature { inputs: vec![tap("a"), tap("b")], outputs: vec![tap("out")] };
/// assert_eq!(k.cost(&sig).core, CoreType::Vector);
/// ```
pub struct Binary {
    kind: &'static str,
    op: BinaryOp,
    rate: u32,
}

impl Binary {
    pub fn new(kind: &'static str, op: BinaryOp, rate: u32) -> Self {
        Binary { kind, op, rate }
    }
}

impl Kernel for Binary {
    fn kind(&self) -> &str {
        self.kind
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        // One vector operation per output element (it reads one element of each operand).
        let c = super::default_cost(sig, crate::scene::CoreType::Vector);
        super::Cost {
            elements: c.bytes_out / 4,
            ..c
        }
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let (a, b) = (io.inputs[0].values, io.inputs[1].values);
        let out = &mut io.outputs[0].values;
        match self.op {
            BinaryOp::Add => out.extend(a.iter().zip(b).map(|(x, y)| x + y)),
            BinaryOp::Sub => out.extend(a.iter().zip(b).map(|(x, y)| x - y)),
            BinaryOp::Mul => out.extend(a.iter().zip(b).map(|(x, y)| x * y)),
            op => out.extend(a.iter().zip(b).map(|(&x, &y)| op.apply(x, y))),
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (a, b) = (io.inputs[0].values, io.inputs[1].values);
        let g = &io.grad_outputs[0];
        let (ga, gb) = io.grad_inputs.split_at_mut(1);
        for k in 0..g.len().min(a.len()).min(b.len()) {
            let (da, db) = self.op.partials(a[k], b[k]);
            ga[0][k] += g[k] * da;
            gb[0][k] += g[k] * db;
        }
        Ok(())
    }
}

/// `Mix(inputs, gains)`: `out = Σᵢ gainsᵢ · inᵢ`, summed in tap order in f32.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::elementwise::Mix;
/// let mut m = Mix::new(&[0.5, 2.0], 1);
/// let (a, b) = ([2.0f32, 4.0], [1.0f32, -1.0]);
/// let ins = [InputBlock { values: &a, token_len: 2 }, InputBlock { values: &b, token_len: 2 }];
/// let mut out = [OutputBlock { values: vec![], token_len: 2 }];
/// m.fire(&mut FireIo { firing: 0, tick: 0, inputs: &ins, outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![3.0, 0.0]);
/// ```
pub struct Mix {
    gains: Vec<f32>,
    rate: u32,
}

impl Mix {
    pub fn new(gains: &[f64], rate: u32) -> Self {
        Mix {
            gains: gains.iter().map(|&g| g as f32).collect(),
            rate,
        }
    }
}

impl Kernel for Mix {
    fn kind(&self) -> &str {
        "Mix"
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        super::default_cost(sig, crate::scene::CoreType::Vector)
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let n = io.inputs.first().map_or(0, |b| b.values.len());
        let dst = io.outputs[0].append_zeroed(n);
        for (input, &g) in io.inputs.iter().zip(&self.gains) {
            for (d, &x) in dst.iter_mut().zip(input.values) {
                *d += g * x;
            }
        }
    }
    fn params(&self) -> Vec<Param> {
        self.gains
            .iter()
            .enumerate()
            .map(|(i, &g)| Param::new(format!("gains[{i}]"), f64::from(g)))
            .collect()
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let slot = name
            .strip_prefix("gains[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.gains.get_mut(i));
        match slot {
            Some(g) => *g = checked(name, value)? as f32,
            None => return Err(unknown("Mix", name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let g = &io.grad_outputs[0];
        for (i, &gain) in self.gains.iter().enumerate() {
            let x = io.inputs[i].values;
            let mut dp = 0.0;
            for (k, gi) in io.grad_inputs[i].iter_mut().enumerate() {
                *gi += g[k] * f64::from(gain);
                dp += g[k] * f64::from(x[k]);
            }
            io.grad_params[i] += dp;
        }
        Ok(())
    }
}
