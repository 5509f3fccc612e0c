//! `SlewIntegrator(mode, sample_rate_hz)` exactly as SPEC §15, per row, in f32 with f32 state.

use super::dsp::Rows;
use super::sources::{checked, unknown};
use super::{BackwardIo, FireIo, InputView, Kernel, NoAdjoint, Param, ParamError};
use crate::scene::{Shape, SlewMode};

/// Per frame with `h = 1/sample_rate_hz`, state `y`, `v`, integral `I` (all starting at 0):
/// `Ideal`: `y = x`, `I += h·y`. `Limited(max_rate, max_accel)`: `v* = (x − y)/h`;
/// `v = clamp(v*, v − max_accel·h, v + max_accel·h)`; `v = clamp(v, −max_rate, max_rate)`;
/// `y += v·h`; `I += h·y`. Outputs `y` on `out` and `I` on `integral`. The adjoint uses the
/// subgradient: 0 through a saturated clamp.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::slew::SlewIntegrator;
/// use tapwheel::scene::{Shape, SlewMode};
/// // h = 1: a unit step limited to rate 0.5 per sample and acceleration 0.25 per sample².
/// let mode = SlewMode::Limited { max_rate: 0.5, max_accel: 0.25 };
/// let mut k = SlewIntegrator::new(mode, 1.0, 1, Shape { batch: 1, channels: 1, frames: 4 });
/// let x = [1.0f32; 4];
/// let mut out = vec![OutputBlock { values: vec![], token_len: 4 }; 2];
/// k.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &x, token_len: 4 }], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![0.25, 0.75, 1.0, 1.0]); // v: 0.25, 0.5, 0.25 (= x − y), 0
/// assert_eq!(out[1].values, vec![0.25, 1.0, 2.0, 3.0]);
/// ```
pub struct SlewIntegrator {
    limited: Option<(f32, f32)>,
    fs: f64,
    h: f32,
    rate: u32,
    rows: Rows,
    /// `(y, v, I)` per row.
    state: Vec<[f32; 3]>,
}

/// The clamp of §15 and which bound (if any) was active: `(value, saturated)`.
fn clamp(v: f32, lo: f32, hi: f32) -> (f32, bool) {
    if v < lo {
        (lo, true)
    } else if v > hi {
        (hi, true)
    } else {
        (v, false)
    }
}

impl SlewIntegrator {
    pub fn new(mode: SlewMode, sample_rate_hz: f64, rate: u32, shape: Shape) -> Self {
        let rows = Rows::new(shape);
        SlewIntegrator {
            limited: match mode {
                SlewMode::Ideal => None,
                SlewMode::Limited {
                    max_rate,
                    max_accel,
                } => Some((max_rate as f32, max_accel as f32)),
            },
            fs: sample_rate_hz,
            h: (1.0 / sample_rate_hz) as f32,
            rate,
            rows,
            state: vec![[0.0; 3]; rows.rows],
        }
    }

    /// One frame of §15; returns the new state and which clamps saturated
    /// (`[accel, rate]`, with the accel clamp's side: −1 low, +1 high, 0 free).
    #[inline]
    fn step(&self, s: [f32; 3], x: f32) -> ([f32; 3], i8, i8) {
        let h = self.h;
        let [y, v, i] = s;
        match self.limited {
            None => ([x, v, i + h * x], 0, 0),
            Some((r, a)) => {
                let vs = (x - y) / h;
                let (lo, hi) = (v - a * h, v + a * h);
                let (v1, sat1) = clamp(vs, lo, hi);
                let side1 = if !sat1 {
                    0
                } else if vs < lo {
                    -1
                } else {
                    1
                };
                let (v2, sat2) = clamp(v1, -r, r);
                let side2 = if !sat2 {
                    0
                } else if v1 < -r {
                    -1
                } else {
                    1
                };
                let y2 = y + v2 * h;
                ([y2, v2, i + h * y2], side1, side2)
            }
        }
    }
}

impl Kernel for SlewIntegrator {
    fn kind(&self) -> &str {
        "SlewIntegrator"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        for o in io.outputs.iter_mut() {
            let n = o.values.len() + x.len();
            o.values.resize(n, 0.0);
        }
        let base = io.outputs[0].values.len() - x.len();
        let r = self.rows;
        for row in 0..r.rows {
            let mut s = self.state[row];
            for i in r.indices(row, x.len()) {
                s = self.step(s, x[i]).0;
                io.outputs[0].values[base + i] = s[0];
                io.outputs[1].values[base + i] = s[2];
            }
            self.state[row] = s;
        }
    }
    fn params(&self) -> Vec<Param> {
        match self.limited {
            Some((r, a)) => vec![
                Param::new("max_rate", f64::from(r)),
                Param::new("max_accel", f64::from(a)),
            ],
            None => Vec::new(),
        }
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        match (&mut self.limited, name) {
            (Some((r, _)), "max_rate") => *r = checked(name, value)? as f32,
            (Some((_, a)), "max_accel") => *a = checked(name, value)? as f32,
            (_, "sample_rate_hz") if value > 0.0 => {
                self.fs = checked(name, value)?;
                self.h = (1.0 / self.fs) as f32;
            }
            _ => return Err(unknown("SlewIntegrator", name)),
        }
        Ok(())
    }
    fn state_len(&self) -> usize {
        3 * self.rows.rows
    }
    fn save_state(&self, out: &mut Vec<f32>) {
        out.extend(self.state.iter().flatten());
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let x = io.inputs[0].values;
        let r = self.rows;
        let n = r.samples(x.len());
        let h = f64::from(self.h);
        for row in 0..r.rows {
            // Recompute the states inside the firing from the saved state before it.
            let mut states = Vec::with_capacity(n + 1);
            let mut s = [0f32; 3];
            for (j, v) in s.iter_mut().enumerate() {
                *v = io.saved.get(3 * row + j).copied().unwrap_or(0.0);
            }
            states.push((s, 0i8, 0i8));
            for k in 0..n {
                let (ns, a, b) = self.step(s, x[r.index(row, k)]);
                states.push((ns, a, b));
                s = ns;
            }
            // Adjoints of (y, v, I) after the current frame.
            let mut yb = io.grad_state[3 * row];
            let mut vb = io.grad_state[3 * row + 1];
            let mut ib = io.grad_state[3 * row + 2];
            for k in (0..n).rev() {
                let i = r.index(row, k);
                // Outputs y_k and I_k feed the loss directly.
                yb += io.grad_outputs[0][i];
                ib += io.grad_outputs[1][i];
                // I' = I + h·y'  →  ȳ' += h·Ī', Ī += Ī'.
                yb += h * ib;
                let (_, side1, side2) = states[k + 1];
                match self.limited {
                    None => {
                        // y' = x.
                        io.grad_inputs[0][i] += yb;
                        yb = 0.0;
                    }
                    Some((_, _)) => {
                        // y' = y + h·v2 ; v' = v2.
                        let v2b = vb + h * yb;
                        let mut y_prev_b = yb;
                        // v2 = clamp(v1, −R, R); saturated → d/dR = ±1.
                        let v1b = if side2 == 0 { v2b } else { 0.0 };
                        if side2 != 0 {
                            io.grad_params[0] += f64::from(side2) * v2b;
                        }
                        // v1 = clamp(v*, v − A·h, v + A·h).
                        let mut v_prev_b = 0.0;
                        match side1 {
                            0 => {
                                // v* = (x − y)/h.
                                io.grad_inputs[0][i] += v1b / h;
                                y_prev_b -= v1b / h;
                            }
                            s => {
                                v_prev_b += v1b;
                                io.grad_params[1] += f64::from(s) * h * v1b;
                            }
                        }
                        yb = y_prev_b;
                        vb = v_prev_b;
                    }
                }
            }
            io.grad_state[3 * row] = yb;
            io.grad_state[3 * row + 1] = vb;
            io.grad_state[3 * row + 2] = ib;
        }
        Ok(())
    }
}
