//! `BandSplit(bands)` / `BandMerge(bands)`: FFT band splitting with exact reconstruction.
//!
//! Each token row of `F` frames is one analysis block. Its spectrum (`rustfft`, length `F`)
//! has `B = ⌊F/2⌋ + 1` non-negative-frequency bins; band `i` keeps bins
//! `[⌊i·B/n⌋, ⌊(i+1)·B/n⌋)` together with their mirror images, and its signal is the inverse
//! transform. The bands partition the bins, so they sum to the input: `BandMerge` sums its bands
//! (by linearity the sum of the inverse transforms is the inverse transform of the summed
//! spectra, so merging needs no transform and adds no rounding).

use super::dsp::Rows;
use super::{BackwardIo, FireIo, InputView, Kernel, NoAdjoint};
use crate::scene::Shape;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// The first bin of band `i` of `n` over `bins` bins.
///
/// ```
/// use tapwheel::kernels::bands::band_start;
/// // 64 frames → 33 bins; three bands get bins 0..11, 11..22, 22..33.
/// assert_eq!((0..=3).map(|i| band_start(i, 3, 33)).collect::<Vec<_>>(), [0, 11, 22, 33]);
/// ```
pub fn band_start(i: usize, n: usize, bins: usize) -> usize {
    i * bins / n.max(1)
}

/// `in` → `band0` … `band{n−1}`.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::bands::BandSplit;
/// use tapwheel::scene::Shape;
/// let mut k = BandSplit::new(2, 1, Shape { batch: 1, channels: 1, frames: 8 });
/// let x = [1.0f32, 2.0, -1.0, 0.5, 3.0, 0.0, -2.0, 1.0];
/// let mut out = vec![OutputBlock { values: vec![], token_len: 8 }; 2];
/// k.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &x, token_len: 8 }], outputs: &mut out, ..Default::default() });
/// for i in 0..8 {
///     assert!((out[0].values[i] + out[1].values[i] - x[i]).abs() < 1e-6); // bands sum to x
/// }
/// ```
pub struct BandSplit {
    bands: usize,
    rate: u32,
    rows: Rows,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    spectrum: Vec<Complex<f32>>,
    work: Vec<Complex<f32>>,
}

impl BandSplit {
    pub fn new(bands: usize, rate: u32, shape: Shape) -> Self {
        let rows = Rows::new(shape);
        let mut planner = FftPlanner::new();
        BandSplit {
            bands: bands.max(1),
            rate,
            rows,
            fwd: planner.plan_fft_forward(rows.frames),
            inv: planner.plan_fft_inverse(rows.frames),
            spectrum: vec![Complex::default(); rows.frames],
            work: vec![Complex::default(); rows.frames],
        }
    }

    /// Projects one block onto each band: `f(band, samples)` receives each band's signal.
    fn split_block(&mut self, block: &[f32], mut f: impl FnMut(usize, &[Complex<f32>])) {
        let frames = self.rows.frames;
        let bins = frames / 2 + 1;
        for (c, &x) in self.spectrum.iter_mut().zip(block) {
            *c = Complex::new(x, 0.0);
        }
        self.fwd.process(&mut self.spectrum);
        for b in 0..self.bands {
            let (lo, hi) = (
                band_start(b, self.bands, bins),
                band_start(b + 1, self.bands, bins),
            );
            self.work.fill(Complex::default());
            for k in lo..hi {
                self.work[k] = self.spectrum[k];
                if k != 0 {
                    // The mirror bin of k (for even F, k = F/2 is its own mirror).
                    self.work[frames - k] = self.spectrum[frames - k];
                }
            }
            self.inv.process(&mut self.work);
            f(b, &self.work);
        }
    }
}

impl Kernel for BandSplit {
    fn kind(&self) -> &str {
        "BandSplit"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let frames = self.rows.frames;
        let scale = 1.0 / frames as f32;
        for o in io.outputs.iter_mut() {
            let start = o.values.len();
            o.values.resize(start + x.len(), 0.0);
        }
        let starts: Vec<usize> = io
            .outputs
            .iter()
            .map(|o| o.values.len() - x.len())
            .collect();
        for (blk, chunk) in x.chunks(frames).enumerate() {
            let outs = &mut *io.outputs;
            self.split_block(chunk, |b, sig| {
                let dst = &mut outs[b].values[starts[b] + blk * frames..][..frames];
                for (d, c) in dst.iter_mut().zip(sig) {
                    *d = c.re * scale;
                }
            });
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        // Each band is a real symmetric projection P_b (a circulant with an even mask), so the
        // adjoint is x̄ += Σ_b P_b ḡ_b, computed in f64 by a direct DFT of the gradient blocks.
        let frames = self.rows.frames;
        let bins = frames / 2 + 1;
        let n = io.inputs[0].values.len();
        for blk in 0..n / frames {
            for (b, g) in io.grad_outputs.iter().enumerate().take(self.bands) {
                let (lo, hi) = (
                    band_start(b, self.bands, bins),
                    band_start(b + 1, self.bands, bins),
                );
                let gb = &g[blk * frames..(blk + 1) * frames];
                let proj = project(gb, lo, hi);
                for (t, p) in proj.iter().enumerate() {
                    io.grad_inputs[0][blk * frames + t] += p;
                }
            }
        }
        Ok(())
    }
}

/// The band projection of a block in f64: keep DFT bins `lo..hi` and their mirrors.
fn project(x: &[f64], lo: usize, hi: usize) -> Vec<f64> {
    let f = x.len();
    let mut planner = FftPlanner::<f64>::new();
    let mut s: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
    planner.plan_fft_forward(f).process(&mut s);
    let mut w = vec![Complex::default(); f];
    for k in lo..hi {
        w[k] = s[k];
        if k != 0 {
            w[f - k] = s[f - k];
        }
    }
    planner.plan_fft_inverse(f).process(&mut w);
    w.iter().map(|c| c.re / f as f64).collect()
}

/// `band0` … `band{n−1}` → `out`: the sum of the bands, in band order.
pub struct BandMerge {
    bands: usize,
    rate: u32,
}

impl BandMerge {
    pub fn new(bands: usize, rate: u32) -> Self {
        BandMerge { bands, rate }
    }
}

impl Kernel for BandMerge {
    fn kind(&self) -> &str {
        "BandMerge"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let n = io.inputs.first().map_or(0, |b| b.values.len());
        let out = io.outputs[0].append_zeroed(n);
        for input in io.inputs.iter().take(self.bands) {
            for (d, &x) in out.iter_mut().zip(input.values) {
                *d += x;
            }
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let g = &io.grad_outputs[0];
        for gi in io.grad_inputs.iter_mut() {
            for (a, b) in gi.iter_mut().zip(g) {
                *a += b;
            }
        }
        Ok(())
    }
}
