//! Source kernels: no inputs; `rate` tokens per firing on `out`.

use super::{BackwardIo, FireIo, InputView, Kernel, NoAdjoint, OutputBlock, Param, ParamError};
use crate::scene::Shape;
use std::collections::VecDeque;

/// `Inject`: an open input (SPEC §20). The embedding program queues tokens with
/// `Engine::inject(node, tick, values)`; each firing writes the oldest queued token. The engine
/// makes the node due at each queued tick, so the kernel only ever fires with a token queued;
/// were it not, it would write zeros rather than fail.
///
/// ```
/// use tapwheel::kernels::{FireIo, Kernel, OutputBlock};
/// use tapwheel::kernels::sources::Inject;
/// let mut k = Inject::new(2);
/// k.queue(vec![1.0, 2.0]);
/// let mut out = [OutputBlock { values: vec![], token_len: 2 }];
/// k.fire(&mut FireIo { inputs: &[], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![1.0, 2.0]);
/// assert_eq!(k.queued(), 0);
/// ```
pub struct Inject {
    tokens: VecDeque<Vec<f32>>,
    token_len: usize,
}

impl Inject {
    pub fn new(token_len: usize) -> Self {
        Inject {
            tokens: VecDeque::new(),
            token_len,
        }
    }

    /// Queues one token (`token_len` values; the engine checks the length).
    pub fn queue(&mut self, values: Vec<f32>) {
        self.tokens.push_back(values);
    }

    /// Tokens queued and not yet written.
    pub fn queued(&self) -> usize {
        self.tokens.len()
    }

    /// The values of one token of this input.
    pub fn token_len(&self) -> usize {
        self.token_len
    }
}

impl Kernel for Inject {
    fn kind(&self) -> &str {
        "Inject"
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let Some(out) = io.outputs.first_mut() else {
            return;
        };
        match self.tokens.pop_front() {
            Some(v) => out.values.extend_from_slice(&v),
            None => out.values.resize(out.values.len() + self.token_len, 0.0),
        }
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        // No parameters and no inputs: nothing to send anywhere.
        Ok(())
    }
}

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
    fn kind(&self) -> &str {
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
    fn params(&self) -> Vec<Param> {
        vec![Param::new("value", f64::from(self.value))]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        match name {
            "value" => self.value = checked(name, value)? as f32,
            _ => return Err(unknown("Const", name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        self.grad(io);
        Ok(())
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
///     ramp.fire(&mut FireIo { firing, tick: 0, inputs: &[], outputs: &mut out, ..Default::default() });
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
    fn kind(&self) -> &str {
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
    fn params(&self) -> Vec<Param> {
        vec![
            Param::new("start", self.start),
            Param::new("step", self.step),
        ]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        if !value.is_finite() {
            return Err(ParamError::Invalid {
                name: name.into(),
                value,
                reason: "must be finite".into(),
            });
        }
        match name {
            "start" => self.start = value,
            "step" => self.step = value,
            _ => return Err(unknown("Ramp", name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        self.grad(io);
        Ok(())
    }
}

impl Const {
    fn grad(&self, io: &mut BackwardIo<'_>) {
        io.grad_params[0] += io.grad_outputs[0].iter().sum::<f64>();
    }
}

impl Ramp {
    fn grad(&self, io: &mut BackwardIo<'_>) {
        let len = io.outputs[0].token_len.max(1);
        let first = io.firing * u64::from(self.rate);
        for (t, g) in io.grad_outputs[0].chunks(len).enumerate() {
            let s: f64 = g.iter().sum();
            io.grad_params[0] += s;
            io.grad_params[1] += s * (first + t as u64) as f64;
        }
    }
}

/// Fills `tokens` tokens of `shape`, giving every `(batch, channel)` row sample `sample(n)` at
/// frame `f`, where `n = first_frame + token·frames + f` (SPEC §7: sources write one sample
/// into every row).
fn fill_rows(
    out: &mut OutputBlock,
    shape: Shape,
    tokens: u64,
    first_frame: u64,
    mut sample: impl FnMut(u64) -> f32,
) {
    let frames = shape.frames as usize;
    let rows = (shape.batch * shape.channels) as usize;
    let mut row = vec![0f32; frames];
    for t in 0..tokens {
        for (f, v) in row.iter_mut().enumerate() {
            *v = sample(first_frame + t * frames as u64 + f as u64);
        }
        for _ in 0..rows {
            out.values.extend_from_slice(&row);
        }
    }
}

/// Sums a gradient over every row of each token: the result has one value per sample frame,
/// in the order [`fill_rows`] generated them.
fn row_sums(grad: &[f64], shape: Shape) -> Vec<f64> {
    let frames = shape.frames as usize;
    let len = shape.elements() as usize;
    let mut out = Vec::with_capacity(grad.len() / shape.batch.max(1) as usize);
    for tok in grad.chunks(len) {
        let mut acc = vec![0f64; frames];
        for row in tok.chunks(frames) {
            for (a, g) in acc.iter_mut().zip(row) {
                *a += g;
            }
        }
        out.extend(acc);
    }
    out
}

/// The waveform of an oscillator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wave {
    Sine { phase: f64 },
    Saw,
    Square { duty: f64 },
}

/// PolyBLEP residual for a unit step at phase 0, for phase `t ∈ [0, 1)` and increment `dt`.
///
/// ```
/// use tapwheel::kernels::sources::poly_blep;
/// assert_eq!(poly_blep(0.5, 0.01), 0.0);          // far from the step
/// assert_eq!(poly_blep(0.0, 0.01), -1.0);         // just after it
/// assert!((poly_blep(0.995, 0.01) - 0.25).abs() < 1e-12); // just before it
/// ```
pub fn poly_blep(t: f64, dt: f64) -> f64 {
    if t < dt {
        let u = t / dt;
        u + u - u * u - 1.0
    } else if t > 1.0 - dt {
        let u = (t - 1.0) / dt;
        u * u + u + u + 1.0
    } else {
        0.0
    }
}

/// `Sine(freq_hz, amp, phase)`, `Saw(freq_hz, amp)`, `Square(freq_hz, amp, duty)` at sample rate
/// `tick_hz`: sample `n` (counting every frame generated) has phase `t = frac(freq·n/fs)`,
/// computed in f64; Sine is `amp·sin(2π·t + phase)`; Saw is `amp·(2t − 1 − blep(t))`; Square is
/// `amp·(±1 + blep(t) − blep(frac(t − duty)))` (+1 while `t < duty`), PolyBLEP band-limited.
///
/// ```
/// use tapwheel::kernels::{FireIo, Kernel, OutputBlock};
/// use tapwheel::kernels::sources::{Osc, Wave};
/// use tapwheel::scene::Shape;
/// let shape = Shape { batch: 1, channels: 2, frames: 4 };
/// let mut osc = Osc::new(Wave::Sine { phase: 0.0 }, 12000.0, 1.0, 48000.0, 1, shape);
/// let mut out = [OutputBlock { values: vec![], token_len: 8 }];
/// osc.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[], outputs: &mut out, ..Default::default() });
/// let quarter: Vec<f32> = out[0].values.iter().map(|v| v.round()).collect();
/// assert_eq!(quarter, [0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0]); // both rows alike
/// ```
pub struct Osc {
    wave: Wave,
    freq: f64,
    amp: f64,
    fs: f64,
    rate: u32,
    shape: Shape,
    next_frame: u64,
}

impl Osc {
    pub fn new(wave: Wave, freq_hz: f64, amp: f64, fs: f64, rate: u32, shape: Shape) -> Self {
        let r = |v: f64| f64::from(v as f32);
        let wave = match wave {
            Wave::Sine { phase } => Wave::Sine { phase: r(phase) },
            Wave::Square { duty } => Wave::Square { duty: r(duty) },
            w => w,
        };
        Osc {
            wave,
            freq: r(freq_hz),
            amp: r(amp),
            fs,
            rate,
            shape,
            next_frame: 0,
        }
    }

    fn phase(&self, n: u64) -> f64 {
        let x = self.freq * n as f64 / self.fs;
        x - x.floor()
    }

    /// The unscaled waveform at sample `n`.
    fn unit(&self, n: u64) -> f64 {
        let t = self.phase(n);
        let dt = (self.freq / self.fs).abs();
        match self.wave {
            Wave::Sine { phase } => (std::f64::consts::TAU * t + phase).sin(),
            Wave::Saw => 2.0 * t - 1.0 - poly_blep(t, dt),
            Wave::Square { duty } => {
                let naive = if t < duty { 1.0 } else { -1.0 };
                let t2 = t - duty;
                naive + poly_blep(t, dt) - poly_blep(t2 - t2.floor(), dt)
            }
        }
    }
}

impl Kernel for Osc {
    fn kind(&self) -> &str {
        match self.wave {
            Wave::Sine { .. } => "Sine",
            Wave::Saw => "Saw",
            Wave::Square { .. } => "Square",
        }
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let first = self.next_frame;
        let tokens = u64::from(self.rate);
        let this = &*self;
        fill_rows(&mut io.outputs[0], self.shape, tokens, first, |n| {
            (this.amp * this.unit(n)) as f32
        });
        self.next_frame += tokens * u64::from(self.shape.frames);
    }
    fn params(&self) -> Vec<Param> {
        match self.wave {
            Wave::Sine { phase } => vec![
                Param::new("freq_hz", self.freq),
                Param::new("amp", self.amp),
                Param::new("phase", phase),
            ],
            _ => vec![Param::new("amp", self.amp)],
        }
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        let v = checked(name, value)?;
        match (name, &mut self.wave) {
            ("amp", _) => self.amp = v,
            ("freq_hz", _) => self.freq = v,
            ("phase", Wave::Sine { phase }) => *phase = v,
            ("duty", Wave::Square { duty }) => *duty = v,
            _ => return Err(unknown(self.kind(), name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let first = io.firing * u64::from(self.rate) * u64::from(self.shape.frames);
        let sums = row_sums(&io.grad_outputs[0], self.shape);
        for (k, g) in sums.iter().enumerate() {
            let n = first + k as u64;
            match self.wave {
                Wave::Sine { phase } => {
                    let x = self.freq * n as f64 / self.fs;
                    let arg = std::f64::consts::TAU * (x - x.floor()) + phase;
                    let c = self.amp * arg.cos();
                    io.grad_params[0] += g * c * std::f64::consts::TAU * n as f64 / self.fs;
                    io.grad_params[1] += g * arg.sin();
                    io.grad_params[2] += g * c;
                }
                _ => io.grad_params[0] += g * self.unit(n),
            }
        }
        Ok(())
    }
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output for the state reached after `draw + 1` increments from `seed`
/// (the state of SplitMix64 is a plain counter, so any draw can be recomputed directly).
///
/// ```
/// use tapwheel::kernels::sources::split_mix64;
/// // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
/// assert_eq!(split_mix64(0, 0), 0xE220A8397B1DCDAF);
/// assert_eq!(split_mix64(0, 1), 0x6E789E6AA1B965F4);
/// ```
pub fn split_mix64(seed: u64, draw: u64) -> u64 {
    let mut z = seed.wrapping_add(GOLDEN_GAMMA.wrapping_mul(draw.wrapping_add(1)));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The unit noise value `2u − 1` of one draw, `u = (x >> 40)·2⁻²⁴`.
fn noise_unit(seed: u64, draw: u64) -> f32 {
    let u = (split_mix64(seed, draw) >> 40) as f32 * (1.0 / 16_777_216.0);
    2.0 * u - 1.0
}

/// `Noise(seed, amp)`: one SplitMix64 stream per node; every element is a draw, in
/// `(batch, channel, frame)` order, token after token: `amp·(2u − 1)`.
pub struct Noise {
    seed: u64,
    amp: f32,
    rate: u32,
    len: u64,
    draws: u64,
}

impl Noise {
    pub fn new(seed: u64, amp: f64, rate: u32, shape: Shape) -> Self {
        Noise {
            seed,
            amp: amp as f32,
            rate,
            len: shape.elements(),
            draws: 0,
        }
    }
}

impl Kernel for Noise {
    fn kind(&self) -> &str {
        "Noise"
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let n = u64::from(self.rate) * self.len;
        let out = &mut io.outputs[0].values;
        out.extend((self.draws..self.draws + n).map(|d| self.amp * noise_unit(self.seed, d)));
        self.draws += n;
    }
    fn params(&self) -> Vec<Param> {
        vec![Param::new("amp", f64::from(self.amp))]
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError> {
        match name {
            "amp" => self.amp = checked(name, value)? as f32,
            _ => return Err(unknown("Noise", name)),
        }
        Ok(())
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let first = io.firing * u64::from(self.rate) * self.len;
        for (k, g) in io.grad_outputs[0].iter().enumerate() {
            io.grad_params[0] += g * f64::from(noise_unit(self.seed, first + k as u64));
        }
        Ok(())
    }
}

/// Samples of a `File` source, decoded at plan time: `frames` sample frames of `columns`
/// channels, frame-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileData {
    pub columns: usize,
    pub frames: usize,
    pub samples: Vec<f32>,
    /// BLAKE3 of the file's bytes (part of the plan digest).
    pub digest: String,
}

impl FileData {
    /// Reads a WAV (by extension, with `hound`; integer samples scaled to [−1, 1)) or a CSV
    /// file (with `csv`: one line per sample frame, one column per channel, `#` comments, an
    /// optional header line).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("tapwheel-filedata-doc");
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let p = dir.join("x.csv");
    /// std::fs::write(&p, "# two channels\nleft,right\n1,2\n3,4.5\n").unwrap();
    /// let d = tapwheel::kernels::sources::FileData::load(&p).unwrap();
    /// assert_eq!((d.columns, d.frames), (2, 2));
    /// assert_eq!(d.samples, vec![1.0, 2.0, 3.0, 4.5]);
    /// ```
    pub fn load(path: &std::path::Path) -> Result<FileData, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        let wav = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        let mut data = if wav {
            Self::wav(&bytes)?
        } else {
            Self::csv(&bytes)?
        };
        data.digest = digest;
        if data.frames == 0 {
            return Err(format!("{} holds no samples", path.display()));
        }
        Ok(data)
    }

    fn wav(bytes: &[u8]) -> Result<FileData, String> {
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("not a readable WAV file: {e}"))?;
        let spec = reader.spec();
        let columns = spec.channels as usize;
        let samples: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(|e| format!("bad WAV sample: {e}"))?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f64;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("bad WAV sample: {e}"))?
            }
        };
        if columns == 0 {
            return Err("WAV file declares 0 channels".into());
        }
        if samples.iter().any(|v| !v.is_finite()) {
            return Err("WAV file holds non-finite samples".into());
        }
        Ok(FileData {
            columns,
            frames: samples.len() / columns,
            samples,
            digest: String::new(),
        })
    }

    fn csv(bytes: &[u8]) -> Result<FileData, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(bytes);
        let mut columns = 0;
        let mut samples = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| format!("CSV: {e}"))?;
            let line = rec.position().map_or(i as u64 + 1, |p| p.line());
            if rec.iter().all(|f| f.is_empty()) {
                continue;
            }
            let parsed: Result<Vec<f32>, _> = rec.iter().map(|f| f.parse::<f32>()).collect();
            let values = match parsed {
                Ok(v) => v,
                // A first line that is not numbers is a header.
                Err(_) if columns == 0 && samples.is_empty() && i == 0 => continue,
                Err(e) => return Err(format!("CSV line {line}: {e}")),
            };
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("CSV line {line}: non-finite value"));
            }
            if columns == 0 {
                columns = values.len();
            } else if values.len() != columns {
                return Err(format!(
                    "CSV line {line}: {} columns, expected {columns}",
                    values.len()
                ));
            }
            samples.extend(values);
        }
        Ok(FileData {
            columns: columns.max(1),
            frames: samples.len() / columns.max(1),
            samples,
            digest: String::new(),
        })
    }

    /// Tokens of `frames` sample frames the file fills (the last one zero-padded).
    pub fn tokens(&self, frames: u32) -> u64 {
        (self.frames as u64).div_ceil(u64::from(frames.max(1)))
    }
}

/// `File(path)`: plays a decoded file. Each token holds `frames` consecutive sample frames;
/// column `c` feeds channel `c` (a one-column file feeds every channel), every batch row alike;
/// the last token is zero-padded, and the source ends with the file.
pub struct FileSource {
    data: std::sync::Arc<FileData>,
    rate: u32,
    shape: Shape,
    next_frame: usize,
}

impl FileSource {
    pub fn new(data: std::sync::Arc<FileData>, rate: u32, shape: Shape) -> Self {
        FileSource {
            data,
            rate,
            shape,
            next_frame: 0,
        }
    }
}

impl Kernel for FileSource {
    fn kind(&self) -> &str {
        "File"
    }
    fn demand(&self, _: &[InputView], _: &mut [u32]) {}
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let d = &*self.data;
        let frames = self.shape.frames as usize;
        for _ in 0..self.rate {
            if self.next_frame >= d.frames {
                break;
            }
            for _ in 0..self.shape.batch {
                for c in 0..self.shape.channels as usize {
                    let col = if d.columns == 1 {
                        0
                    } else {
                        c.min(d.columns - 1)
                    };
                    io.outputs[0].values.extend((0..frames).map(|f| {
                        let n = self.next_frame + f;
                        if n < d.frames {
                            d.samples[n * d.columns + col]
                        } else {
                            0.0
                        }
                    }));
                }
            }
            self.next_frame += frames;
        }
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Ok(()) // no inputs, no parameters
    }
}

/// A finite parameter value, or the error naming it.
pub(crate) fn checked(name: &str, value: f64) -> Result<f64, ParamError> {
    if value.is_finite() && (value as f32).is_finite() {
        Ok(f64::from(value as f32))
    } else {
        Err(ParamError::Invalid {
            name: name.to_string(),
            value,
            reason: "must be a finite f32".into(),
        })
    }
}

pub(crate) fn unknown(kind: &str, name: &str) -> ParamError {
    ParamError::Unknown {
        kind: kind.to_string(),
        name: name.to_string(),
    }
}
