//! `Actor`: a synthetic SDF actor. Its taps come from the scene (`dir: In | Out`, `rate`); each
//! firing consumes its input rates and writes `rate` tokens filled with its firing index on
//! every output.

use super::{BackwardIo, FireIo, InputView, Kernel, NoAdjoint};

pub struct Actor {
    in_rates: Vec<u32>,
    out_rates: Vec<u32>,
}

impl Actor {
    pub fn new(in_rates: Vec<u32>, out_rates: Vec<u32>) -> Self {
        Actor {
            in_rates,
            out_rates,
        }
    }
}

impl Kernel for Actor {
    fn kind(&self) -> &str {
        "Actor"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.copy_from_slice(&self.in_rates);
    }
    fn max_production(&self, tap: usize) -> u32 {
        self.out_rates.get(tap).copied().unwrap_or(0)
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let v = io.firing as f32;
        for (out, &rate) in io.outputs.iter_mut().zip(&self.out_rates) {
            for _ in 0..rate {
                out.push_fill(v);
            }
        }
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Err(NoAdjoint::new(
            "Actor",
            "a synthetic actor writes its firing index, which does not depend on its inputs",
        ))
    }
}
