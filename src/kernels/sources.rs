//! Source kernels: no inputs; `rate` tokens per firing on `out`.

use super::{FireIo, InputView, Kernel};

/// `Const(value)`: every element of every token is `value`.
pub struct Const {
    value: f32,
    rate: u32,
}

impl Const {
    pub fn new(value: f64, rate: u32) -> Self {
        Const {
            value: value as f32,
            rate,
        }
    }
}

impl Kernel for Const {
    fn kind(&self) -> &'static str {
        "Const"
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        for _ in 0..self.rate {
            io.outputs[0].push_fill(self.value);
        }
    }
}

/// `Ramp(start, step)`: token k (counting every token the node writes) is `start + k·step`,
/// computed in f64 and stored as f32.
///
/// ```
/// use tapwheel::kernels::{FireIo, Kernel, OutputBlock};
/// use tapwheel::kernels::sources::Ramp;
/// let mut ramp = Ramp::new(1.0, 0.5, 2);
/// let mut out = [OutputBlock { values: vec![], token_len: 1 }];
/// for firing in 0..2 {
///     ramp.fire(&mut FireIo { firing, tick: 0, inputs: &[], outputs: &mut out });
/// }
/// assert_eq!(out[0].values, vec![1.0, 1.5, 2.0, 2.5]);
/// ```
pub struct Ramp {
    start: f64,
    step: f64,
    rate: u32,
    next: u64,
}

impl Ramp {
    pub fn new(start: f64, step: f64, rate: u32) -> Self {
        Ramp {
            start,
            step,
            rate,
            next: 0,
        }
    }
}

impl Kernel for Ramp {
    fn kind(&self) -> &'static str {
        "Ramp"
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        for _ in 0..self.rate {
            let v = self.start + self.next as f64 * self.step;
            io.outputs[0].push_fill(v as f32);
            self.next += 1;
        }
    }
}
