//! Elementwise kernels: with rate `r` on their taps a firing is `r` independent applications.

use super::{FireIo, InputView, Kernel};
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
    fn kind(&self) -> &'static str {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
}

/// `a`, `b` → `out`, element by element.
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
    fn kind(&self) -> &'static str {
        self.kind
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
        }
    }
}
