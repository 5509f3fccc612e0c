//! DSP kernels (SPEC §7): one frame is one sample at sample rate `tick_hz`; every `(batch,
//! channel)` row of a token is an independent signal whose samples continue from token to token.
//! Filters compute in f32 with f32 state; coefficients are computed in f64 and rounded to f32.

use super::sources::{checked, unknown};
use super::{
    BackwardIo, CohortMember, FireIo, InputView, Kernel, NoAdjoint, Param, ParamError, Signature,
};
use crate::scene::{BiquadMode, Shape};

/// Index arithmetic over a block of tokens seen as `rows` signals of consecutive samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub rows: usize,
    pub frames: usize,
    pub token_len: usize,
}

impl Rows {
    pub fn new(shape: Shape) -> Rows {
        Rows {
            rows: (shape.batch * shape.channels) as usize,
            frames: shape.frames.max(1) as usize,
            token_len: shape.elements() as usize,
        }
    }
    /// Where sample `s` of row `row` sits in a block of tokens.
    ///
    /// ```
    /// use tapwheel::kernels::dsp::Rows;
    /// use tapwheel::scene::Shape;
    /// let r = Rows::new(Shape { batch: 1, channels: 2, frames: 3 });
    /// assert_eq!(r.index(1, 0), 3); // row 1 starts after row 0's three frames
    /// assert_eq!(r.index(0, 4), 7); // sample 4 of row 0 is frame 1 of the second token
    /// ```
    #[inline]
    pub fn index(&self, row: usize, s: usize) -> usize {
        (s / self.frames) * self.token_len + row * self.frames + s % self.frames
    }
    /// Samples per row in a block of `len` values.
    pub fn samples(&self, len: usize) -> usize {
        len.checked_div(self.token_len).unwrap_or(0) * self.frames
    }
    /// Every index of row `row` in a block of `len` values, in sample order: the same sequence
    /// as `index(row, s)` for `s` in `0..samples(len)`, without a division per sample.
    ///
    /// ```
    /// use tapwheel::kernels::dsp::Rows;
    /// use tapwheel::scene::Shape;
    /// let r = Rows::new(Shape { batch: 1, channels: 2, frames: 3 });
    /// let row1: Vec<usize> = r.indices(1, 12).collect();
    /// assert_eq!(row1, [3, 4, 5, 9, 10, 11]);
    /// assert!(row1.iter().enumerate().all(|(s, &i)| i == r.index(1, s)));
    /// ```
    pub fn indices(&self, row: usize, len: usize) -> impl Iterator<Item = usize> + use<> {
        self.spans(row, len).flatten()
    }
    /// The runs of consecutive samples of row `row` (one per token), in order.
    pub fn spans(
        &self,
        row: usize,
        len: usize,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let (frames, token_len) = (self.frames, self.token_len);
        let tokens = len.checked_div(token_len).unwrap_or(0);
        (0..tokens).map(move |t| {
            let start = t * token_len + row * frames;
            start..start + frames
        })
    }
}

// ---------------------------------------------------------------------------------------------
// OnePole

/// `OnePole(coeff)`: `y[n] = y[n−1] + coeff·(x[n] − y[n−1])`, `y[−1] = 0`, per row.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::dsp::OnePole;
/// use tapwheel::scene::Shape;
/// let mut k = OnePole::new(0.5, 1, Shape { batch: 1, channels: 1, frames: 3 });
/// let x = [1.0f32, 1.0, 1.0];
/// let mut out = [OutputBlock { values: vec![], token_len: 3 }];
/// k.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &x, token_len: 3 }], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![0.5, 0.75, 0.875]);
/// ```
pub struct OnePole {
    coeff: f32,
    rate: u32,
    rows: Rows,
    y: Vec<f32>,
}

impl OnePole {
    pub fn new(coeff: f64, rate: u32, shape: Shape) -> Self {
        let rows = Rows::new(shape);
        OnePole {
            coeff: coeff as f32,
            rate,
            rows,
            y: vec![0.0; rows.rows],
        }
    }
}

impl Kernel for OnePole {
    fn kind(&self) -> &str {
        "OnePole"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = io.outputs[0].append_zeroed(x.len());
        let r = self.rows;
        let coeff = self.coeff;
        for (row, state) in self.y.iter_mut().enumerate() {
            let mut y = *state; // in a register over the row
            for i in r.indices(row, x.len()) {
                y += coeff * (x[i] - y);
                out[i] = y;
            }
            *state = y;
        }
    }
    fn params(&self) -> Vec<Param> {
        vec![Param::new("coeff", f64::from(self.coeff))]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        match name {
            "coeff" => self.coeff = checked(name, value)? as f32,
            _ => return Err(unknown("OnePole", name)),
        }
        Ok(())
    }
    fn state_len(&self) -> usize {
        self.rows.rows
    }
    fn save_state(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.y);
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (x, y, g) = (
            io.inputs[0].values,
            io.outputs[0].values,
            &io.grad_outputs[0],
        );
        let c = f64::from(self.coeff);
        let r = self.rows;
        let n = r.samples(x.len());
        for row in 0..r.rows {
            let mut carry = io.grad_state[row];
            for s in (0..n).rev() {
                let i = r.index(row, s);
                let a = g[i] + carry;
                let prev = if s == 0 {
                    io.saved.get(row).copied().unwrap_or(0.0)
                } else {
                    y[r.index(row, s - 1)]
                };
                io.grad_inputs[0][i] += c * a;
                io.grad_params[0] += a * f64::from(x[i] - prev);
                carry = (1.0 - c) * a;
            }
            io.grad_state[row] = carry;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Biquad

/// A number with its gradient with respect to the Biquad parameters `(cutoff_hz, q, gain_db)`:
/// forward-mode differentiation of the cookbook formulas.
#[derive(Debug, Clone, Copy, PartialEq)]
struct D3 {
    v: f64,
    d: [f64; 3],
}

impl D3 {
    fn c(v: f64) -> D3 {
        D3 { v, d: [0.0; 3] }
    }
    fn var(v: f64, i: usize) -> D3 {
        let mut d = [0.0; 3];
        d[i] = 1.0;
        D3 { v, d }
    }
    fn map(self, v: f64, dv: f64) -> D3 {
        D3 {
            v,
            d: self.d.map(|x| x * dv),
        }
    }
    fn sin(self) -> D3 {
        self.map(self.v.sin(), self.v.cos())
    }
    fn cos(self) -> D3 {
        self.map(self.v.cos(), -self.v.sin())
    }
    fn sqrt(self) -> D3 {
        let s = self.v.sqrt();
        self.map(s, 0.5 / s)
    }
    fn exp(self) -> D3 {
        let e = self.v.exp();
        self.map(e, e)
    }
}

impl std::ops::Add for D3 {
    type Output = D3;
    fn add(self, o: D3) -> D3 {
        D3 {
            v: self.v + o.v,
            d: [self.d[0] + o.d[0], self.d[1] + o.d[1], self.d[2] + o.d[2]],
        }
    }
}
impl std::ops::Sub for D3 {
    type Output = D3;
    fn sub(self, o: D3) -> D3 {
        self + o * D3::c(-1.0)
    }
}
// Product and quotient rules: the derivative parts legitimately mix operators.
#[allow(clippy::suspicious_arithmetic_impl)]
impl std::ops::Mul for D3 {
    type Output = D3;
    fn mul(self, o: D3) -> D3 {
        D3 {
            v: self.v * o.v,
            d: [0, 1, 2].map(|i| self.d[i] * o.v + self.v * o.d[i]),
        }
    }
}
#[allow(clippy::suspicious_arithmetic_impl)]
impl std::ops::Div for D3 {
    type Output = D3;
    fn div(self, o: D3) -> D3 {
        D3 {
            v: self.v / o.v,
            d: [0, 1, 2].map(|i| (self.d[i] * o.v - self.v * o.d[i]) / (o.v * o.v)),
        }
    }
}
impl std::ops::Neg for D3 {
    type Output = D3;
    fn neg(self) -> D3 {
        self * D3::c(-1.0)
    }
}

/// RBJ Audio-EQ-Cookbook coefficients `[b0, b1, b2, a1, a2]` normalised by `a0`, each with its
/// gradient with respect to `(cutoff_hz, q, gain_db)`. `alpha = sin(w0)/(2q)` for every mode
/// (the cookbook's Q form, shelves included), `A = 10^(gain_db/40)`; Bandpass is the constant
/// 0 dB peak gain variant.
fn rbj(mode: BiquadMode, cutoff: f64, q: f64, gain_db: f64, fs: f64) -> [D3; 5] {
    let f0 = D3::var(cutoff, 0);
    let q = D3::var(q, 1);
    let g = D3::var(gain_db, 2);
    let k = |v: f64| D3::c(v);
    let w0 = f0 * k(std::f64::consts::TAU / fs);
    let (cw, sw) = (w0.cos(), w0.sin());
    let alpha = sw / (k(2.0) * q);
    let a = (g * k(std::f64::consts::LN_10 / 40.0)).exp();
    let one = k(1.0);
    let two = k(2.0);
    let [b0, b1, b2, a0, a1, a2] = match mode {
        BiquadMode::Lowpass => {
            let h = (one - cw) / two;
            [h, one - cw, h, one + alpha, -two * cw, one - alpha]
        }
        BiquadMode::Highpass => {
            let h = (one + cw) / two;
            [h, -(one + cw), h, one + alpha, -two * cw, one - alpha]
        }
        BiquadMode::Bandpass => [alpha, k(0.0), -alpha, one + alpha, -two * cw, one - alpha],
        BiquadMode::Notch => [one, -two * cw, one, one + alpha, -two * cw, one - alpha],
        BiquadMode::Peak => [
            one + alpha * a,
            -two * cw,
            one - alpha * a,
            one + alpha / a,
            -two * cw,
            one - alpha / a,
        ],
        BiquadMode::LowShelf => {
            let sa = two * a.sqrt() * alpha;
            let (ap, am) = (a + one, a - one);
            [
                a * (ap - am * cw + sa),
                two * a * (am - ap * cw),
                a * (ap - am * cw - sa),
                ap + am * cw + sa,
                -two * (am + ap * cw),
                ap + am * cw - sa,
            ]
        }
        BiquadMode::HighShelf => {
            let sa = two * a.sqrt() * alpha;
            let (ap, am) = (a + one, a - one);
            [
                a * (ap + am * cw + sa),
                -two * a * (am + ap * cw),
                a * (ap + am * cw - sa),
                ap - am * cw + sa,
                two * (am - ap * cw),
                ap - am * cw - sa,
            ]
        }
    };
    [b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0]
}

/// RBJ cookbook coefficients `[b0, b1, b2, a1, a2]` (normalised by `a0`) in f64.
///
/// ```
/// use tapwheel::kernels::dsp::biquad_coefficients;
/// use tapwheel::scene::BiquadMode;
/// // A lowpass has unit gain at DC: (b0 + b1 + b2) / (1 + a1 + a2) = 1.
/// let [b0, b1, b2, a1, a2] = biquad_coefficients(BiquadMode::Lowpass, 1000.0, 0.707, 0.0, 48000.0);
/// assert!(((b0 + b1 + b2) / (1.0 + a1 + a2) - 1.0).abs() < 1e-12);
/// // A notch has zero gain at its centre: |H(e^{jw0})| = 0.
/// let [b0, b1, b2, _, _] = biquad_coefficients(BiquadMode::Notch, 12000.0, 1.0, 0.0, 48000.0);
/// assert!((b0 - b2).abs() < 1e-12 && b1.abs() < 1e-12); // w0 = π/2: b0 − b2·1 and cos w0 = 0
/// ```
pub fn biquad_coefficients(
    mode: BiquadMode,
    cutoff_hz: f64,
    q: f64,
    gain_db: f64,
    fs: f64,
) -> [f64; 5] {
    rbj(mode, cutoff_hz, q, gain_db, fs).map(|c| c.v)
}

/// `Biquad(mode, cutoff_hz, q, gain_db)`: an RBJ cookbook filter in transposed direct form II,
/// per row: `y = b0·x + s1; s1 = b1·x − a1·y + s2; s2 = b2·x − a2·y`.
pub struct Biquad {
    mode: BiquadMode,
    params: [f64; 3],
    fs: f64,
    coef: [f32; 5],
    /// d(coefficient)/d(param), for the adjoint.
    jac: [[f64; 3]; 5],
    rate: u32,
    rows: Rows,
    /// `(s1, s2)` per row.
    state: Vec<[f32; 2]>,
}

impl Biquad {
    pub fn new(
        mode: BiquadMode,
        cutoff_hz: f64,
        q: f64,
        gain_db: f64,
        fs: f64,
        rate: u32,
        shape: Shape,
    ) -> Self {
        let rows = Rows::new(shape);
        let mut b = Biquad {
            mode,
            params: [cutoff_hz, q, gain_db].map(|p| f64::from(p as f32)),
            fs,
            coef: [0.0; 5],
            jac: [[0.0; 3]; 5],
            rate,
            rows,
            state: vec![[0.0; 2]; rows.rows],
        };
        b.design();
        b
    }

    fn design(&mut self) {
        let [f, q, g] = self.params;
        let c = rbj(self.mode, f, q, g, self.fs);
        self.coef = c.map(|c| c.v as f32);
        self.jac = c.map(|c| c.d);
    }

    /// The f32 coefficients `[b0, b1, b2, a1, a2]` the filter runs with.
    pub fn coefficients(&self) -> [f32; 5] {
        self.coef
    }
}

#[inline]
fn biquad_step(c: &[f32; 5], s: &mut [f32; 2], x: f32) -> f32 {
    let y = c[0] * x + s[0];
    s[0] = c[1] * x - c[3] * y + s[1];
    s[1] = c[2] * x - c[4] * y;
    y
}

impl Kernel for Biquad {
    fn kind(&self) -> &str {
        "Biquad"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = io.outputs[0].append_zeroed(x.len());
        let r = self.rows;
        let c = self.coef;
        for (row, state) in self.state.iter_mut().enumerate() {
            // The state lives in registers over the row (a store and reload per sample would
            // lengthen the recursion's critical path); each token holds a run of `frames`
            // consecutive samples of the row.
            let mut s = *state;
            for span in r.spans(row, x.len()) {
                for (y, &xv) in out[span.clone()].iter_mut().zip(&x[span]) {
                    *y = biquad_step(&c, &mut s, xv);
                }
            }
            *state = s;
        }
    }
    fn params(&self) -> Vec<Param> {
        vec![
            Param::new("cutoff_hz", self.params[0]),
            Param::new("q", self.params[1]),
            Param::new("gain_db", self.params[2]),
        ]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let i = match name {
            "cutoff_hz" => 0,
            "q" => 1,
            "gain_db" => 2,
            _ => return Err(unknown("Biquad", name)),
        };
        let v = checked(name, value)?;
        if let Some(reason) = match i {
            0 if !(v > 0.0 && v < self.fs / 2.0) => Some("must lie in (0, Nyquist)"),
            1 if v <= 0.0 => Some("must be positive"),
            _ => None,
        } {
            return Err(ParamError::Invalid {
                name: name.into(),
                value,
                reason: reason.into(),
            });
        }
        self.params[i] = v;
        self.design();
        Ok(())
    }
    fn state_len(&self) -> usize {
        2 * self.rows.rows
    }
    fn save_state(&self, out: &mut Vec<f32>) {
        out.extend(self.state.iter().flatten());
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (x, y, g) = (
            io.inputs[0].values,
            io.outputs[0].values,
            &io.grad_outputs[0],
        );
        let c = self.coef.map(f64::from);
        let r = self.rows;
        let n = r.samples(x.len());
        let mut gc = [0f64; 5];
        for row in 0..r.rows {
            // Adjoints of (s1, s2) after the current sample.
            let (mut a1, mut a2) = (io.grad_state[2 * row], io.grad_state[2 * row + 1]);
            for k in (0..n).rev() {
                let i = r.index(row, k);
                let (xi, yi) = (f64::from(x[i]), f64::from(y[i]));
                let ybar = g[i] - c[3] * a1 - c[4] * a2;
                io.grad_inputs[0][i] += c[0] * ybar + c[1] * a1 + c[2] * a2;
                gc[0] += ybar * xi;
                gc[1] += a1 * xi;
                gc[2] += a2 * xi;
                gc[3] -= a1 * yi;
                gc[4] -= a2 * yi;
                (a1, a2) = (ybar, a1);
            }
            io.grad_state[2 * row] = a1;
            io.grad_state[2 * row + 1] = a2;
        }
        for (p, gp) in io.grad_params.iter_mut().enumerate().take(3) {
            *gp += (0..5).map(|j| gc[j] * self.jac[j][p]).sum::<f64>();
        }
        Ok(())
    }
}

/// Lanes of the batched Biquad: rows of several filters advanced together, sample by sample.
const LANES: usize = 8;

/// The batched form of `Biquad`: the rows of every member, grouped by length, run `LANES` at a
/// time in lock-step (struct-of-arrays, which the compiler vectorises). Each lane performs the
/// scalar recurrence's operations in the same order, so results are bit-identical to firing
/// the members one by one.
pub fn biquad_cohort(members: &mut [CohortMember<'_, '_>]) {
    // (member, row, samples) of every lane.
    let mut lanes: Vec<(usize, usize, usize)> = Vec::new();
    for (mi, m) in members.iter_mut().enumerate() {
        let len = m.io.inputs[0].values.len();
        let out = &mut m.io.outputs[0].values;
        let start = out.len();
        out.resize(start + len, 0.0);
        match m.kernel.as_any().downcast_ref::<Biquad>() {
            Some(b) => {
                let n = b.rows.samples(len);
                lanes.extend((0..b.rows.rows).map(|row| (mi, row, n)));
            }
            None => {
                out.truncate(start);
                m.kernel.fire(&mut m.io);
            }
        }
    }
    lanes.sort_by_key(|&(m, row, n)| (n, m, row));
    for group in lanes.chunk_by(|a, b| a.2 == b.2) {
        for chunk in group.chunks(LANES) {
            run_lanes(members, chunk);
        }
    }
}

fn run_lanes(members: &mut [CohortMember<'_, '_>], chunk: &[(usize, usize, usize)]) {
    let w = chunk.len();
    let n = chunk[0].2;
    let mut c = [[0f32; LANES]; 5];
    let mut s = [[0f32; LANES]; 2];
    let mut rows = [Rows {
        rows: 0,
        frames: 1,
        token_len: 1,
    }; LANES];
    let mut base = [0usize; LANES];
    for (l, &(mi, row, _)) in chunk.iter().enumerate() {
        let Some(b) = members[mi].kernel.as_any().downcast_ref::<Biquad>() else {
            return;
        };
        for (cj, &bj) in c.iter_mut().zip(&b.coef) {
            cj[l] = bj;
        }
        s[0][l] = b.state[row][0];
        s[1][l] = b.state[row][1];
        rows[l] = b.rows;
        let len = members[mi].io.inputs[0].values.len();
        base[l] = members[mi].io.outputs[0].values.len() - len;
    }
    let mut x = [0f32; LANES];
    for k in 0..n {
        for (l, &(mi, row, _)) in chunk.iter().enumerate() {
            x[l] = members[mi].io.inputs[0].values[rows[l].index(row, k)];
        }
        let mut y = [0f32; LANES];
        for l in 0..LANES {
            y[l] = c[0][l] * x[l] + s[0][l];
            s[0][l] = c[1][l] * x[l] - c[3][l] * y[l] + s[1][l];
            s[1][l] = c[2][l] * x[l] - c[4][l] * y[l];
        }
        for (l, &(mi, row, _)) in chunk.iter().enumerate() {
            let i = base[l] + rows[l].index(row, k);
            members[mi].io.outputs[0].values[i] = y[l];
        }
    }
    for (l, &(mi, row, _)) in chunk.iter().enumerate().take(w) {
        if let Some(b) = members[mi].kernel.as_any_mut().downcast_mut::<Biquad>() {
            b.state[row] = [s[0][l], s[1][l]];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fir

/// `Fir(taps)`: `y[n] = Σₖ h[k]·x[n−k]` per row with `x[n<0] = 0`, summed in k order in f32.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::dsp::Fir;
/// use tapwheel::scene::Shape;
/// let mut k = Fir::new(&[1.0, 0.5], 1, Shape { batch: 1, channels: 1, frames: 2 });
/// let mut out = [OutputBlock { values: vec![], token_len: 2 }];
/// for (i, x) in [[1.0f32, 0.0], [0.0, 2.0]].iter().enumerate() {
///     let ins = [InputBlock { values: x, token_len: 2 }];
///     k.fire(&mut FireIo { firing: i as u64, tick: 0, inputs: &ins, outputs: &mut out, ..Default::default() });
/// }
/// assert_eq!(out[0].values, vec![1.0, 0.5, 0.0, 2.0]); // history crosses token boundaries
/// ```
pub struct Fir {
    taps: Vec<f32>,
    rate: u32,
    rows: Rows,
    /// The last `taps − 1` inputs per row, oldest first.
    history: Vec<f32>,
}

impl Fir {
    pub fn new(taps: &[f64], rate: u32, shape: Shape) -> Self {
        let rows = Rows::new(shape);
        let h = taps.len().saturating_sub(1);
        Fir {
            taps: taps.iter().map(|&t| t as f32).collect(),
            rate,
            rows,
            history: vec![0.0; h * rows.rows],
        }
    }
    fn hist_len(&self) -> usize {
        self.taps.len().saturating_sub(1)
    }
}

impl Kernel for Fir {
    fn kind(&self) -> &str {
        "Fir"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = io.outputs[0].append_zeroed(x.len());
        let r = self.rows;
        let n = r.samples(x.len());
        let h = self.hist_len();
        let mut ext = Vec::with_capacity(h + n);
        for row in 0..r.rows {
            ext.clear();
            ext.extend_from_slice(&self.history[row * h..(row + 1) * h]);
            ext.extend((0..n).map(|s| x[r.index(row, s)]));
            for s in 0..n {
                let mut acc = 0f32;
                for (k, &t) in self.taps.iter().enumerate() {
                    acc += t * ext[h + s - k];
                }
                out[r.index(row, s)] = acc;
            }
            self.history[row * h..(row + 1) * h].copy_from_slice(&ext[n..n + h]);
        }
    }
    fn params(&self) -> Vec<Param> {
        self.taps
            .iter()
            .enumerate()
            .map(|(i, &t)| Param::new(format!("taps[{i}]"), f64::from(t)))
            .collect()
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let slot = name
            .strip_prefix("taps[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.taps.get_mut(i));
        match slot {
            Some(t) => *t = checked(name, value)? as f32,
            None => return Err(unknown("Fir", name)),
        }
        Ok(())
    }
    fn state_len(&self) -> usize {
        self.history.len()
    }
    fn save_state(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.history);
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let x = io.inputs[0].values;
        let g = &io.grad_outputs[0];
        let r = self.rows;
        let n = r.samples(x.len());
        let h = self.hist_len();
        let mut ext = Vec::with_capacity(h + n);
        let mut ext_bar = vec![0f64; h + n];
        for row in 0..r.rows {
            ext.clear();
            ext.extend(
                (0..h).map(|j| f64::from(io.saved.get(row * h + j).copied().unwrap_or(0.0))),
            );
            ext.extend((0..n).map(|s| f64::from(x[r.index(row, s)])));
            ext_bar.fill(0.0);
            // The history after the firing is ext[n .. n + h].
            for j in 0..h {
                ext_bar[n + j] += io.grad_state[row * h + j];
            }
            for s in 0..n {
                let gy = g[r.index(row, s)];
                for (k, &t) in self.taps.iter().enumerate() {
                    ext_bar[h + s - k] += f64::from(t) * gy;
                    io.grad_params[k] += gy * ext[h + s - k];
                }
            }
            for s in 0..n {
                io.grad_inputs[0][r.index(row, s)] += ext_bar[h + s];
            }
            io.grad_state[row * h..(row + 1) * h].copy_from_slice(&ext_bar[..h]);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Decimate / Interpolate

/// `Decimate(factor)` keeps every `factor`-th sample of each row (`y[n] = x[n·factor]`);
/// `Interpolate(factor)` inserts `factor − 1` zeros after each (`y[n·factor] = x[n]`). The plan
/// makes every firing consume a whole number of output periods, so neither keeps state.
/// Anti-aliasing and image filtering are separate `Fir` nodes (as with `upfirdn`).
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock, Signature, TapSig};
/// use tapwheel::kernels::dsp::Resample;
/// use tapwheel::scene::Shape;
/// let one = Shape { batch: 1, channels: 1, frames: 1 };
/// let tap = |name: &str, rate| TapSig { name: name.into(), rate, token_len: 1, shape: one };
/// let sig = Signature { inputs: vec![tap("in", 3)], outputs: vec![tap("out", 1)] };
/// let mut d = Resample::decimate(3, &sig);
/// let x = [1.0f32, 2.0, 3.0];
/// let mut out = [OutputBlock { values: vec![], token_len: 1 }];
/// d.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &x, token_len: 1 }], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![1.0]);
/// ```
pub struct Resample {
    up: bool,
    factor: usize,
    in_rate: u32,
    out_rate: u32,
    in_rows: Rows,
    out_rows: Rows,
}

impl Resample {
    fn new(up: bool, factor: u32, sig: &Signature) -> Self {
        let tap =
            |t: Option<&super::TapSig>| t.map_or((1, Shape::default()), |t| (t.rate, t.shape));
        let (in_rate, in_shape) = tap(sig.inputs.first());
        let (out_rate, out_shape) = tap(sig.outputs.first());
        Resample {
            up,
            factor: factor.max(1) as usize,
            in_rate,
            out_rate,
            in_rows: Rows::new(in_shape),
            out_rows: Rows::new(out_shape),
        }
    }
    pub fn decimate(factor: u32, sig: &Signature) -> Self {
        Self::new(false, factor, sig)
    }
    pub fn interpolate(factor: u32, sig: &Signature) -> Self {
        Self::new(true, factor, sig)
    }
}

impl Kernel for Resample {
    fn kind(&self) -> &str {
        if self.up { "Interpolate" } else { "Decimate" }
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.in_rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.out_rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let (ri, ro) = (self.in_rows, self.out_rows);
        let n_out = ro.frames * self.out_rate as usize;
        let out = io.outputs[0].append_zeroed(n_out / ro.frames * ro.token_len);
        let n_in = ri.samples(x.len());
        for row in 0..ro.rows.min(ri.rows) {
            for s in 0..n_out {
                let v = if self.up {
                    if s % self.factor == 0 && s / self.factor < n_in {
                        x[ri.index(row, s / self.factor)]
                    } else {
                        0.0
                    }
                } else if s * self.factor < n_in {
                    x[ri.index(row, s * self.factor)]
                } else {
                    0.0
                };
                out[ro.index(row, s)] = v;
            }
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (ri, ro) = (self.in_rows, self.out_rows);
        let g = &io.grad_outputs[0];
        let n_out = ro.samples(g.len());
        let n_in = ri.samples(io.inputs[0].values.len());
        for row in 0..ro.rows.min(ri.rows) {
            for s in 0..n_out {
                let src = if self.up {
                    (s % self.factor == 0).then_some(s / self.factor)
                } else {
                    Some(s * self.factor)
                };
                if let Some(j) = src.filter(|&j| j < n_in) {
                    io.grad_inputs[0][ri.index(row, j)] += g[ro.index(row, s)];
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Attack,
    Hold,
    Decay,
    Sustain,
    Release,
}

#[derive(Debug, Clone, Copy)]
struct EnvRow {
    stage: Stage,
    level: f32,
    held: u64,
    gate: bool,
    release_step: f32,
}

/// `Envelope(attack, hold, decay, sustain, release)`: a linear AHDSR generator per row, gated by
/// its input (`x > 0` is "on"). Times are seconds at sample rate `tick_hz` (rounded to whole
/// samples); `sustain` is a level in [0, 1]. A rising gate restarts the attack from the current
/// level (slope 1/attack per sample up to 1); hold keeps 1; decay falls by (1 − sustain)/decay
/// per sample to the sustain level; a falling gate releases from the current level to 0 over
/// `release`. Zero-length segments are skipped. Output = level after each sample.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::dsp::Envelope;
/// use tapwheel::scene::Shape;
/// // fs = 1: attack 2, hold 1, decay 2, sustain 0.5, release 2 samples.
/// let mut e = Envelope::new([2.0, 1.0, 2.0, 0.5, 2.0], 1.0, 1, Shape { batch: 1, channels: 1, frames: 10 });
/// let gate = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
/// let mut out = [OutputBlock { values: vec![], token_len: 10 }];
/// e.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &gate, token_len: 10 }], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![0.5, 1.0, 1.0, 0.75, 0.5, 0.5, 0.5, 0.25, 0.0, 0.0]);
/// ```
pub struct Envelope {
    attack: u64,
    hold: u64,
    decay: u64,
    sustain: f32,
    release: u64,
    rate: u32,
    rows: Rows,
    state: Vec<EnvRow>,
}

impl Envelope {
    /// `times = [attack, hold, decay, sustain, release]` (sustain is a level, not a time).
    pub fn new(times: [f64; 5], fs: f64, rate: u32, shape: Shape) -> Self {
        let samples = |t: f64| (t * fs).round().max(0.0) as u64;
        let rows = Rows::new(shape);
        Envelope {
            attack: samples(times[0]),
            hold: samples(times[1]),
            decay: samples(times[2]),
            sustain: times[3] as f32,
            release: samples(times[4]),
            rate,
            rows,
            state: vec![
                EnvRow {
                    stage: Stage::Idle,
                    level: 0.0,
                    held: 0,
                    gate: false,
                    release_step: 0.0,
                };
                rows.rows
            ],
        }
    }

    fn step(&self, r: &mut EnvRow, gate: bool) -> f32 {
        if gate && !r.gate {
            r.stage = Stage::Attack;
        } else if !gate && r.gate && r.stage != Stage::Idle {
            r.stage = Stage::Release;
            r.release_step = r.level / self.release.max(1) as f32;
        }
        r.gate = gate;
        if r.stage == Stage::Attack {
            r.level = if self.attack == 0 {
                1.0
            } else {
                (r.level + 1.0 / self.attack as f32).min(1.0)
            };
            if r.level >= 1.0 {
                r.held = 0;
                r.stage = if self.hold == 0 {
                    Stage::Decay
                } else {
                    Stage::Hold
                };
                return r.level;
            }
        }
        match r.stage {
            Stage::Hold => {
                r.held += 1;
                if r.held >= self.hold {
                    r.stage = Stage::Decay;
                }
            }
            Stage::Decay => {
                let step = if self.decay == 0 {
                    f32::INFINITY
                } else {
                    (1.0 - self.sustain) / self.decay as f32
                };
                r.level = (r.level - step).max(self.sustain);
                if r.level <= self.sustain {
                    r.stage = Stage::Sustain;
                }
            }
            Stage::Sustain => r.level = self.sustain,
            Stage::Release => {
                r.level = if self.release == 0 {
                    0.0
                } else {
                    (r.level - r.release_step).max(0.0)
                };
                if r.level <= 0.0 {
                    r.stage = Stage::Idle;
                }
            }
            Stage::Idle => r.level = 0.0,
            Stage::Attack => {}
        }
        r.level
    }
}

impl Kernel for Envelope {
    fn kind(&self) -> &str {
        "Envelope"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = io.outputs[0].append_zeroed(x.len());
        let r = self.rows;
        let mut state = std::mem::take(&mut self.state);
        for (row, st) in state.iter_mut().enumerate() {
            for i in r.indices(row, x.len()) {
                out[i] = self.step(st, x[i] > 0.0);
            }
        }
        self.state = state;
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Err(NoAdjoint::new(
            "Envelope",
            "its output is a piecewise-linear function of time driven by a gate threshold; \
             the gradient with respect to the gate input is zero almost everywhere and the \
             segment times are whole samples",
        ))
    }
}
