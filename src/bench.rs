//! The standard workloads of issue 12, run in-process by `tapwheel bench` and by
//! `benches/workloads.rs` (criterion), with the scene builders the benches share.
//!
//! | workload | value | baseline | ratio | goal |
//! |---|---|---|---|---|
//! | [`firing_overhead`] | ns per firing, 1000-node chain, frames = 1 | — | — | value ≤ 20 ns |
//! | [`audio_chain`] | engine µs per block, 64 Biquads, stereo, 64 frames | hand-fused loop, µs per block | engine / hand | ratio ≤ 1.25 |
//! | [`event_expiry`] | delayed tokens made visible per second (M/s) | — | — | value ≥ 50 M/s |
//! | [`cyclesim`] | simulated cycles per wall second (M/s), batched GEMM on CycleSim | the same scene on Reference, µs | CycleSim / Reference wall time | value ≥ 100 M/s |
//! | [`backward`] | backward pass, ms (64-node chain) | forward run, ms | backward / forward | ratio ≤ 3 |
//! | [`scale`] | load + plan + spawn of 1 M nodes, s | the same at 100 k nodes, s | per-node time 1 M / 100 k | value < 2 s, ratio ≈ 1 |
//!
//! Machines are noisy, so every workload warms up, then runs its variants in interleaved rounds
//! (engine and baseline alternately, their order swapped every round) and reports medians; a
//! ratio is the ratio of the two medians (the median of the per-round ratios is in `detail`).
//! Only ratios measured in one run are comparable between runs. Engine construction is never
//! timed except in `scale`, where it is the measure.
//!
//! ```
//! // The scene builders are plain RON text; every workload scene plans and runs.
//! use tapwheel::{Engine, Outcome, RunOptions, Scene};
//! let text = tapwheel::bench::chain(4, 3);
//! let scene = Scene::parse(&text, "chain", ".".into()).unwrap();
//! let mut e = Engine::from_scene(&scene, RunOptions::default()).unwrap();
//! assert_eq!(e.run(), Outcome::Completed);
//! assert_eq!(e.probe("out").unwrap().values, vec![0.0, 1.0, 2.0]);
//! ```

use crate::error::{Diagnostic, Error, Location};
use crate::kernels::dsp::biquad_coefficients;
use crate::scene::{BiquadMode, DeviceSpec};
use crate::{Engine, Outcome, Plan, RunOptions, Scene};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

/// The workloads, in the order [`run_all`] runs them (the issue's table).
pub const NAMES: [&str; 6] = [
    "firing_overhead",
    "audio_chain",
    "event_expiry",
    "cyclesim",
    "backward",
    "scale",
];

/// The issue's goal for a workload: `on` (`"value"` or `"ratio"`) `op` (`"<="`, `">="`, `"<"`)
/// `target`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub on: &'static str,
    pub op: &'static str,
    pub target: f64,
}

impl Goal {
    const fn new(on: &'static str, op: &'static str, target: f64) -> Goal {
        Goal { on, op, target }
    }

    /// Whether `w` meets the goal (a missing figure does not).
    pub fn met(&self, value: f64, ratio: Option<f64>) -> bool {
        let x = match self.on {
            "ratio" => match ratio {
                Some(r) => r,
                None => return false,
            },
            _ => value,
        };
        match self.op {
            "<=" => x <= self.target,
            ">=" => x >= self.target,
            "<" => x < self.target,
            _ => x > self.target,
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.on, self.op, self.target)
    }
}

/// One workload's result. `value` is in `unit`; `baseline` (in `baseline_unit`) is the same-run
/// reference it is compared with, and `ratio` the comparison (see the module table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
    pub baseline_unit: Option<&'static str>,
    pub goal: Goal,
    /// Whether the figure `goal.on` meets the goal.
    pub met: bool,
    /// `true` when `value` is a projection, not a measurement (`scale` whose large size would
    /// exceed its time budget); `detail` says how it was projected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub projected: bool,
    /// Further named figures (counts, medians, secondary ratios).
    pub figures: BTreeMap<&'static str, f64>,
    /// What was measured and how, in words.
    pub detail: String,
}

impl Workload {
    fn new(name: &'static str, value: f64, unit: &'static str, goal: Goal) -> Workload {
        Workload {
            name,
            value,
            unit,
            baseline: None,
            ratio: None,
            baseline_unit: None,
            met: goal.met(value, None),
            goal,
            projected: false,
            figures: BTreeMap::new(),
            detail: String::new(),
        }
    }

    fn with_baseline(mut self, baseline: f64, unit: &'static str, ratio: f64) -> Workload {
        self.baseline = Some(baseline);
        self.baseline_unit = Some(unit);
        self.ratio = Some(ratio);
        self.met = self.goal.met(self.value, self.ratio);
        self
    }
}

/// Runs every workload (`quick`: smaller sizes and fewer rounds, under 40 s on 2 cores).
pub fn run_all(quick: bool) -> Result<Vec<Workload>, Error> {
    NAMES.iter().map(|n| run(n, quick)).collect()
}

/// Runs one workload by name (E106 at `--only` for an unknown name).
pub fn run(name: &str, quick: bool) -> Result<Workload, Error> {
    match name {
        "firing_overhead" => firing_overhead(quick),
        "audio_chain" => audio_chain(quick),
        "event_expiry" => event_expiry(quick),
        "cyclesim" => cyclesim(quick),
        "backward" => backward(quick),
        "scale" => scale(quick),
        other => Err(unknown_workload(other)),
    }
}

/// Checks workload names (for `tapwheel bench --only`): every unknown one is an E106 at
/// `--only`. Returns the names in [`NAMES`] order, each once; all of them for an empty list.
pub fn select(only: &[String]) -> Result<Vec<&'static str>, Error> {
    let bad: Vec<Diagnostic> = only
        .iter()
        .filter(|n| !NAMES.contains(&n.as_str()))
        .map(|n| match unknown_workload(n) {
            Error::Invalid(mut d) => d.remove(0),
            _ => Diagnostic::nowhere("E106", n.clone()),
        })
        .collect();
    if !bad.is_empty() {
        return Err(Error::Invalid(bad));
    }
    Ok(NAMES
        .iter()
        .copied()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect())
}

fn unknown_workload(name: &str) -> Error {
    Error::invalid(Diagnostic {
        code: "E106",
        message: format!(
            "unknown workload `{name}` (expected one of: {})",
            NAMES.join(", ")
        ),
        location: Location::Argument("--only".into()),
    })
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// The median of `v` (the upper one for an even count); 0 for none.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Median of the per-round ratios `a[i] / b[i]`.
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&r)
}

/// Runs `warmup + rounds` rounds of `round(r, swapped)` and keeps the timings of the last
/// `rounds`; `swapped` alternates so that no variant always goes first.
fn rounds<const K: usize>(
    warmup: usize,
    rounds: usize,
    mut round: impl FnMut(usize, bool) -> Result<[f64; K], Error>,
) -> Result<[Vec<f64>; K], Error> {
    let mut out: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for r in 0..warmup + rounds {
        let t = round(r, r % 2 == 1)?;
        if r >= warmup {
            for (v, x) in out.iter_mut().zip(t) {
                v.push(x);
            }
        }
    }
    Ok(out)
}

/// Wall seconds of `engine.run()`, which must complete.
fn timed_run(engine: &mut Engine, what: &str) -> Result<f64, Error> {
    timed_run_to(engine, Outcome::Completed, what)
}

/// Wall seconds of `engine.run()`, which must end `expected`.
fn timed_run_to(engine: &mut Engine, expected: Outcome, what: &str) -> Result<f64, Error> {
    let t = Instant::now();
    let outcome = black_box(engine.run());
    let secs = t.elapsed().as_secs_f64();
    ended(outcome, expected, what)?;
    Ok(secs)
}

fn completed(outcome: Outcome, what: &str) -> Result<(), Error> {
    ended(outcome, Outcome::Completed, what)
}

fn ended(outcome: Outcome, expected: Outcome, what: &str) -> Result<(), Error> {
    if outcome == expected {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "bench workload `{what}`: the run ended {} instead of {}",
            outcome.as_str(),
            expected.as_str()
        )))
    }
}

fn parse(text: &str, origin: &str) -> Result<Scene, Error> {
    Scene::parse(text, origin, ".".into())
}

/// Sum of the numbers of a report object (`firings`, `probes`).
fn report_sum(json: &serde_json::Value, key: &str) -> u64 {
    json[key]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
}

// ---------------------------------------------------------------------------------------------
// Scenes

/// A `Ramp` source firing `tokens` times (period 1) into a chain of `n` `Gain(1.0)` nodes, each
/// edge with delay 1, into a probe `out`. Shape `(1, 1, 1)`: one value per token.
pub fn chain(n: usize, tokens: u64) -> String {
    gain_chain("chain", n, Some(tokens), false)
}

/// The `firing_overhead` graph: a `Ramp` source (period 1) → a chain of `n` `Gain(1.0)` nodes
/// → a probe `out`, every edge with delay 1 and one initial token, so that from tick 0 on every
/// node fires once per tick (run it with `until`; the source never stops first: count unbounded).
/// Shape `(1, 1, 1)`: one value per token.
pub fn busy_chain(n: usize) -> String {
    gain_chain("busy_chain", n, None, true)
}

/// `Ramp` (period 1, `count` firings or unbounded) → `n` × `Gain(1.0)` → `Probe`, the edges
/// into the gains with delay 1. `primed`: every edge also holds one initial token and the edge
/// into the probe has delay 1 too.
fn gain_chain(name: &str, n: usize, count: Option<u64>, primed: bool) -> String {
    let count = count.map_or(String::new(), |c| format!(", count: {c}"));
    let initial = if primed { ", initial: [0.0]" } else { "" };
    let last = if primed {
        ", delay: 1, initial: [0.0]"
    } else {
        ""
    };
    let mut nodes =
        format!(r#"Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1{count})"#);
    let mut edges = String::new();
    let mut prev = "src".to_string();
    for i in 0..n {
        let _ = write!(nodes, r#",Node(name: "g{i}", kernel: Gain(gain: 1.0))"#);
        let _ = write!(
            edges,
            r#"Edge(from: "{prev}.out", to: "g{i}.in", delay: 1{initial}),"#
        );
        prev = format!("g{i}");
    }
    nodes.push_str(r#",Node(name: "out", kernel: Probe)"#);
    let _ = write!(edges, r#"Edge(from: "{prev}.out", to: "out.in"{last})"#);
    format!("Scene(version: 1, name: \"{name}\", nodes: [{nodes}], edges: [{edges}])")
}

/// `n` differentiable audio nodes in a chain, cycling Biquad (low-pass, cutoff 2000 + 100·i Hz)
/// → OnePole → Gain, between a stereo 440 Hz sine firing `blocks` 64-frame blocks and a probe
/// `out`; the loss is the sum of the probe's samples (the `backward` workload uses `(64, 32)`).
pub fn dsp_chain(n: usize, blocks: u64) -> String {
    let mut nodes = format!(
        r#"Node(name: "src", kernel: Sine(freq_hz: 440.0, amp: 0.5, phase: 0.0), period: 64, count: {blocks})"#
    );
    let mut edges = String::new();
    let mut prev = "src".to_string();
    for i in 0..n {
        let kernel = match i % 3 {
            0 => format!(
                "Biquad(mode: Lowpass, cutoff_hz: {:.1}, q: 0.707, gain_db: 0.0)",
                2000.0 + 100.0 * i as f64
            ),
            1 => "OnePole(coeff: 0.9)".to_string(),
            _ => "Gain(gain: 1.01)".to_string(),
        };
        let _ = write!(nodes, r#",Node(name: "n{i}", kernel: {kernel})"#);
        let _ = write!(edges, r#"Edge(from: "{prev}.out", to: "n{i}.in"),"#);
        prev = format!("n{i}");
    }
    nodes.push_str(r#",Node(name: "out", kernel: Probe)"#);
    let _ = write!(edges, r#"Edge(from: "{prev}.out", to: "out.in")"#);
    format!(
        "Scene(version: 1, name: \"dsp_chain\", tick_hz: 48000.0, defaults: (shape: (batch: 1, channels: 2, frames: 64)), nodes: [{nodes}], edges: [{edges}], loss: Some(Sum(probe: \"out\")))"
    )
}

/// `lanes` stereo Biquad → Gain → Probe lanes on 64-frame blocks, fed by one oscillator that
/// fires `blocks` times.
pub fn wide(lanes: usize, blocks: u64) -> String {
    let mut nodes = format!(
        r#"Node(name: "osc", kernel: Sine(freq_hz: 440.0, amp: 0.5, phase: 0.0), period: 64, count: {blocks})"#
    );
    let mut edges = Vec::new();
    for i in 0..lanes {
        let cutoff = 100.0 + 50.0 * i as f64;
        let _ = write!(
            nodes,
            r#",Node(name: "lp{i}", kernel: Biquad(mode: Lowpass, cutoff_hz: {cutoff:.1}, q: 0.707, gain_db: 0.0)),Node(name: "g{i}", kernel: Gain(gain: 0.5)),Node(name: "p{i}", kernel: Probe)"#
        );
        edges.push(format!(r#"Edge(from: "osc.out", to: "lp{i}.in")"#));
        edges.push(format!(r#"Edge(from: "lp{i}.out", to: "g{i}.in")"#));
        edges.push(format!(r#"Edge(from: "g{i}.out", to: "p{i}.in")"#));
    }
    format!(
        "Scene(version: 1, name: \"wide\", tick_hz: 48000.0, defaults: (shape: (batch: 1, channels: 2, frames: 64)), nodes: [{nodes}], edges: [{}])",
        edges.join(",")
    )
}

/// Sample rate of the audio workloads.
pub const AUDIO_HZ: f64 = 48000.0;
/// The audio source: `Sine(freq_hz, amp, phase 0)`, exact in f32.
const SINE_HZ: f64 = 440.0;
const SINE_AMP: f64 = 0.5;
/// Q of every section of the audio chain.
const AUDIO_Q: f64 = 0.707;

/// Cutoff (Hz) of section `i` of the audio chain: 2000 + 100·i, so that the 440 Hz sine passes
/// every section at about unit gain (no decay into subnormals).
pub fn audio_cutoff(i: usize) -> f64 {
    2000.0 + 100.0 * i as f64
}

/// The `audio_chain` scene: a stereo 440 Hz `Sine` firing `blocks` 64-frame blocks into
/// `sections` low-pass `Biquad`s in a chain into a probe `out`.
pub fn audio_chain_scene(sections: usize, blocks: u64) -> String {
    let mut nodes = format!(
        r#"Node(name: "src", kernel: Sine(freq_hz: {SINE_HZ:.1}, amp: {SINE_AMP}, phase: 0.0), period: 64, count: {blocks})"#
    );
    let mut edges = String::new();
    let mut prev = "src".to_string();
    for i in 0..sections {
        let _ = write!(
            nodes,
            r#",Node(name: "bq{i}", kernel: Biquad(mode: Lowpass, cutoff_hz: {:.1}, q: {AUDIO_Q}, gain_db: 0.0))"#,
            audio_cutoff(i)
        );
        let _ = write!(edges, r#"Edge(from: "{prev}.out", to: "bq{i}.in"),"#);
        prev = format!("bq{i}");
    }
    nodes.push_str(r#",Node(name: "out", kernel: Probe)"#);
    let _ = write!(edges, r#"Edge(from: "{prev}.out", to: "out.in")"#);
    format!(
        "Scene(version: 1, name: \"audio_chain\", tick_hz: {AUDIO_HZ:.1}, defaults: (shape: (batch: 1, channels: 2, frames: 64)), nodes: [{nodes}], edges: [{edges}])"
    )
}

/// The `event_expiry` scene: `channels` delayed edges, `per_source` from each of
/// `channels / per_source` periodic `Ramp` sources (period 1, `tokens` firings), each into its
/// own probe. Channel `k` has delay `1 + (37·k mod 97)`, a deterministic spread over 1..=97
/// ticks, and capacity 128 (more than the tokens in flight, so no source ever waits).
pub fn expiry_scene(channels: usize, per_source: usize, tokens: u64) -> String {
    let per_source = per_source.max(1);
    let sources = channels.div_ceil(per_source);
    let mut nodes = Vec::with_capacity(sources + channels);
    let mut edges = Vec::with_capacity(channels);
    for s in 0..sources {
        nodes.push(format!(
            r#"Node(name: "s{s}", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: {tokens})"#
        ));
    }
    for k in 0..channels {
        nodes.push(format!(r#"Node(name: "p{k}", kernel: Probe)"#));
        edges.push(format!(
            r#"Edge(from: "s{}.out", to: "p{k}.in", delay: {}, capacity: 128)"#,
            k / per_source,
            expiry_delay(k)
        ));
    }
    format!(
        "Scene(version: 1, name: \"event_expiry\", nodes: [{}], edges: [{}])",
        nodes.join(","),
        edges.join(",")
    )
}

/// Delay (ticks) of channel `k` of the `event_expiry` scene.
pub fn expiry_delay(k: usize) -> u64 {
    1 + (37 * k as u64) % 97
}

/// The `scale` scene with `nodes` nodes: `nodes / 2` pairs `Const(1.0)` (one firing) → `Probe`.
pub fn scale_scene(nodes: usize) -> String {
    let pairs = nodes / 2;
    let mut s = String::with_capacity(pairs * 110 + 64);
    s.push_str("Scene(version: 1, name: \"scale\", nodes: [");
    for i in 0..pairs {
        let _ = write!(
            s,
            "Node(name: \"c{i}\", kernel: Const(value: 1.0), count: 1),Node(name: \"p{i}\", kernel: Probe),"
        );
    }
    s.push_str("], edges: [");
    for i in 0..pairs {
        let _ = write!(s, "Edge(from: \"c{i}.out\", to: \"p{i}.in\"),");
    }
    s.push_str("])");
    s
}

/// pto-runtime's batched GEMM (`scenes/pto/batched_gemm.ron`, compiled into the binary).
pub const BATCHED_GEMM: &str = include_str!("../scenes/pto/batched_gemm.ron");

/// The batched-GEMM scene planned for CycleSim (`builtin:a2a3`) and for Reference, in that order.
pub fn gemm_plans() -> Result<[(&'static str, Plan); 2], Error> {
    let scene = parse(BATCHED_GEMM, "scenes/pto/batched_gemm.ron")?;
    let on = |device: DeviceSpec| {
        let mut s = scene.clone();
        s.spec.device = device;
        Plan::compile(&s)
    };
    Ok([
        (
            "cyclesim",
            on(DeviceSpec::CycleSim {
                profile: "builtin:a2a3".into(),
            })?,
        ),
        ("reference", on(DeviceSpec::Reference)?),
    ])
}

// ---------------------------------------------------------------------------------------------
// firing_overhead

/// Nodes of the `firing_overhead` chain.
pub const FIRING_NODES: usize = 1000;

/// `firing_overhead`: wall ns per firing on [`busy_chain`]`(1000)` run for `T` ticks (a `Ramp`
/// → 1000 `Gain`s → `Probe`, frames = 1, every edge delay 1 with one initial token, so every
/// node fires once per tick: each firing reads one token and writes one), the firings counted
/// from the report. Goal ≤ 20 ns; no baseline.
pub fn firing_overhead(quick: bool) -> Result<Workload, Error> {
    let (ticks, warmup, reps) = if quick { (100, 1, 5) } else { (400, 1, 9) };
    let scene = parse(&busy_chain(FIRING_NODES), "firing_overhead")?;
    let opts = || RunOptions {
        until: Some(ticks - 1),
        ..RunOptions::default()
    };
    let mut counts = (0, 0);
    let [t] = rounds(warmup, reps, |r, _| {
        let mut e = Engine::from_scene(&scene, opts())?;
        let secs = timed_run_to(&mut e, Outcome::LimitReached, "firing_overhead")?;
        if r == 0 {
            counts = (report_sum(&e.report().json, "firings"), e.steps());
        }
        Ok([secs])
    })?;
    let (firings, steps) = counts;
    let secs = median(&t);
    let ns = secs * 1e9 / firings.max(1) as f64;
    let mut w = Workload::new(
        "firing_overhead",
        ns,
        "ns/firing",
        Goal::new("value", "<=", 20.0),
    );
    w.figures.insert("firings", firings as f64);
    w.figures.insert("steps", steps as f64);
    w.figures.insert("ticks", ticks as f64);
    w.figures.insert("run_ms", secs * 1e3);
    w.figures
        .insert("ns_per_step", secs * 1e9 / steps.max(1) as f64);
    w.detail = format!(
        "Ramp -> {FIRING_NODES} Gain -> Probe, frames = 1, every edge delay 1 with one initial token (every node fires every tick), until tick {}: {firings} firings in {steps} steps; median run {:.1} ms of {reps} (engine construction untimed); goal <= 20 ns per firing",
        ticks - 1,
        secs * 1e3
    );
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// audio_chain

/// Biquad sections of the `audio_chain` workload.
pub const AUDIO_SECTIONS: usize = 64;
/// Frames per block (and per token) of the audio workloads.
pub const AUDIO_FRAMES: usize = 64;
/// Channels (rows) of the audio workloads: stereo.
pub const AUDIO_ROWS: usize = 2;

/// The `audio_chain` workload written by hand: the same stereo 440 Hz sine (sample `n` is
/// `(0.5·sin(2π·frac(440·n/48000))) as f32`, as the `Sine` kernel computes it) through `sections`
/// RBJ low-pass biquads in transposed direct form II, f32, with the coefficients and state layout
/// of the `Biquad` kernel (`[b0, b1, b2, a1, a2]` per section, `[s1, s2]` per section and row),
/// one 64-frame block at a time through every section in one loop.
#[derive(Debug, Clone)]
pub struct HandChain {
    coef: Vec<[f32; 5]>,
    state: Vec<[[f32; 2]; AUDIO_ROWS]>,
    next_frame: u64,
    block: [f32; AUDIO_ROWS * AUDIO_FRAMES],
}

impl HandChain {
    pub fn new(sections: usize) -> HandChain {
        // As `Biquad::new`: parameters rounded to f32, coefficients computed in f64, rounded.
        let coef = (0..sections)
            .map(|i| {
                let p = |v: f64| f64::from(v as f32);
                biquad_coefficients(
                    BiquadMode::Lowpass,
                    p(audio_cutoff(i)),
                    p(AUDIO_Q),
                    0.0,
                    AUDIO_HZ,
                )
                .map(|c| c as f32)
            })
            .collect();
        HandChain {
            coef,
            state: vec![[[0.0; 2]; AUDIO_ROWS]; sections],
            next_frame: 0,
            block: [0.0; AUDIO_ROWS * AUDIO_FRAMES],
        }
    }

    /// The per-section coefficients `[b0, b1, b2, a1, a2]`.
    pub fn coefficients(&self) -> &[[f32; 5]] {
        &self.coef
    }

    /// Generates and filters the next block; returns it (`rows × frames`, row-major as a token).
    #[inline]
    pub fn block(&mut self) -> &[f32; AUDIO_ROWS * AUDIO_FRAMES] {
        let (left, right) = self.block.split_at_mut(AUDIO_FRAMES);
        for (f, (l, r)) in left.iter_mut().zip(right.iter_mut()).enumerate() {
            let x = SINE_HZ * (self.next_frame + f as u64) as f64 / AUDIO_HZ;
            let v = (SINE_AMP * (std::f64::consts::TAU * (x - x.floor())).sin()) as f32;
            *l = v;
            *r = v;
        }
        self.next_frame += AUDIO_FRAMES as u64;
        for (c, st) in self.coef.iter().zip(self.state.iter_mut()) {
            for (row, s) in self.block.chunks_exact_mut(AUDIO_FRAMES).zip(st.iter_mut()) {
                for x in row {
                    let y = c[0] * *x + s[0];
                    s[0] = c[1] * *x - c[3] * y + s[1];
                    s[1] = c[2] * *x - c[4] * y;
                    *x = y;
                }
            }
        }
        &self.block
    }

    /// Runs `blocks` blocks, appending every output block to `out`.
    pub fn run(&mut self, blocks: u64, out: &mut Vec<f32>) {
        for _ in 0..blocks {
            let b = self.block();
            out.extend_from_slice(b);
        }
    }
}

/// The `audio_chain` workload's fixture: the parsed scene and the block count.
pub struct AudioChain {
    pub sections: usize,
    pub blocks: u64,
    pub scene: Scene,
}

impl AudioChain {
    pub fn new(sections: usize, blocks: u64) -> Result<AudioChain, Error> {
        Ok(AudioChain {
            sections,
            blocks,
            scene: parse(&audio_chain_scene(sections, blocks), "audio_chain")?,
        })
    }

    /// A fresh engine (constructed, not run).
    pub fn engine(&self) -> Result<Engine, Error> {
        Engine::from_scene(&self.scene, RunOptions::default())
    }

    /// Wall seconds of one engine run (construction untimed).
    pub fn time_engine(&self) -> Result<f64, Error> {
        let mut e = self.engine()?;
        timed_run(&mut e, "audio_chain")
    }

    /// Wall seconds of the hand-fused loop over the same blocks (fresh state; the output
    /// buffer is allocated untimed).
    pub fn time_hand(&self) -> f64 {
        let mut h = HandChain::new(self.sections);
        let mut out = Vec::with_capacity(self.blocks as usize * AUDIO_ROWS * AUDIO_FRAMES);
        let t = Instant::now();
        h.run(self.blocks, &mut out);
        black_box(&out);
        t.elapsed().as_secs_f64()
    }
}

/// `audio_chain`: engine µs per block over hand-fused µs per block ([`HandChain`]), 64 Biquads,
/// stereo, 64-frame blocks. Goal: ratio ≤ 1.25.
pub fn audio_chain(quick: bool) -> Result<Workload, Error> {
    let (blocks, warmup, reps) = if quick { (64, 2, 9) } else { (256, 2, 21) };
    let fx = AudioChain::new(AUDIO_SECTIONS, blocks)?;
    let [eng, hand] = rounds(warmup, reps, |_, swapped| {
        let (e, h) = if swapped {
            let h = fx.time_hand();
            (fx.time_engine()?, h)
        } else {
            let e = fx.time_engine()?;
            (e, fx.time_hand())
        };
        Ok([e, h])
    })?;
    let per_block = |s: f64| s * 1e6 / blocks as f64;
    let (e, h) = (per_block(median(&eng)), per_block(median(&hand)));
    let mut w = Workload::new("audio_chain", e, "us/block", Goal::new("ratio", "<=", 1.25))
        .with_baseline(h, "us/block", e / h);
    w.figures
        .insert("per_round_ratio", median_ratio(&eng, &hand));
    w.figures.insert("blocks", blocks as f64);
    w.figures.insert(
        "engine_ns_per_sample_section",
        e * 1e3 / (AUDIO_SECTIONS * AUDIO_ROWS * AUDIO_FRAMES) as f64,
    );
    w.detail = format!(
        "Sine -> {AUDIO_SECTIONS} Biquad low-pass (stereo, 64-frame blocks, {blocks} blocks) -> Probe; baseline: the same sine and RBJ sections, f32, hand-fused (every section over each block in one loop); medians of {reps} interleaved rounds, engine construction untimed; goal ratio <= 1.25"
    );
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// event_expiry

/// Channels of the `event_expiry` scene, and channels per source.
pub const EXPIRY_CHANNELS: usize = 1000;
pub const EXPIRY_PER_SOURCE: usize = 100;

/// `event_expiry`: delayed tokens made visible per wall second on [`expiry_scene`] (1000
/// channels, delays 1..=97 ticks, 10 sources at period 1), counted as the tokens the probes
/// recorded (every token delivered became visible once). Goal ≥ 50 M/s.
pub fn event_expiry(quick: bool) -> Result<Workload, Error> {
    let (tokens, warmup, reps) = if quick { (100, 1, 5) } else { (300, 1, 9) };
    let scene = parse(
        &expiry_scene(EXPIRY_CHANNELS, EXPIRY_PER_SOURCE, tokens),
        "event_expiry",
    )?;
    let mut counts = (0, 0, 0);
    let [t] = rounds(warmup, reps, |r, _| {
        let mut e = Engine::from_scene(&scene, RunOptions::default())?;
        let secs = timed_run(&mut e, "event_expiry")?;
        if r == 0 {
            let report = e.report();
            counts = (
                report_sum(&report.json, "probes"),
                e.steps(),
                report.end_tick,
            );
        }
        Ok([secs])
    })?;
    let (visible, steps, ticks) = counts;
    let secs = median(&t);
    let rate = visible as f64 / secs / 1e6;
    let mut w = Workload::new("event_expiry", rate, "M/s", Goal::new("value", ">=", 50.0));
    w.figures.insert("tokens", visible as f64);
    w.figures.insert("steps", steps as f64);
    w.figures.insert("ticks", ticks as f64);
    w.figures.insert("run_ms", secs * 1e3);
    w.figures
        .insert("ns_per_token", secs * 1e9 / visible.max(1) as f64);
    w.detail = format!(
        "{EXPIRY_CHANNELS} channels with delays 1..=97 ticks (1 + 37k mod 97), {} Ramp sources x {EXPIRY_PER_SOURCE} channels, period 1, {tokens} tokens each, into one Probe per channel: {visible} tokens made visible (probe counts) in {steps} steps over {ticks} ticks; median run {:.1} ms of {reps}; goal >= 50 M/s",
        EXPIRY_CHANNELS.div_ceil(EXPIRY_PER_SOURCE),
        secs * 1e3
    );
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// cyclesim

/// `cyclesim`: simulated cycles per wall second of the batched GEMM on CycleSim (`builtin:a2a3`;
/// the report's `device.cycles`), timing engine construction from a planned scene plus the run
/// (planning untimed); baseline the same on the Reference device (µs); ratio CycleSim /
/// Reference wall time (the model's overhead). Goal ≥ 100 M cycles/s.
pub fn cyclesim(quick: bool) -> Result<Workload, Error> {
    let (warmup, reps) = if quick { (5, 31) } else { (10, 151) };
    let plans = gemm_plans()?;
    let mut cycles = 0u64;
    // Per round: [cyclesim total, reference total, cyclesim run alone, reference run alone].
    let [cs, rf, cs_run, rf_run] = rounds(warmup, reps, |r, swapped| {
        let mut total = [0.0; 2];
        let mut run = [0.0; 2];
        let order: [usize; 2] = if swapped { [1, 0] } else { [0, 1] };
        for k in order {
            let (label, plan) = &plans[k];
            let p = plan.clone();
            let t = Instant::now();
            let mut e = Engine::new(p, RunOptions::default())?;
            let built = t.elapsed().as_secs_f64();
            let outcome = black_box(e.run());
            total[k] = t.elapsed().as_secs_f64();
            run[k] = total[k] - built;
            completed(outcome, label)?;
            if k == 0 && r == 0 {
                cycles = e.report().json["device"]["cycles"].as_u64().unwrap_or(0);
            }
        }
        Ok([total[0], total[1], run[0], run[1]])
    })?;
    if cycles == 0 {
        return Err(Error::Internal(
            "bench workload `cyclesim`: the report has no device.cycles".into(),
        ));
    }
    let (c, f) = (median(&cs), median(&rf));
    let rate = cycles as f64 / c / 1e6;
    let mut w = Workload::new(
        "cyclesim",
        rate,
        "M cycles/s",
        Goal::new("value", ">=", 100.0),
    )
    .with_baseline(f * 1e6, "us (Reference wall time)", c / f);
    w.figures.insert("cycles", cycles as f64);
    w.figures.insert("cyclesim_us", c * 1e6);
    w.figures.insert(
        "run_only_m_cycles_per_s",
        cycles as f64 / median(&cs_run) / 1e6,
    );
    w.figures
        .insert("run_only_ratio", median(&cs_run) / median(&rf_run));
    w.figures.insert("per_round_ratio", median_ratio(&cs, &rf));
    w.detail = format!(
        "scenes/pto/batched_gemm.ron (64 MatMul + 64 Add tasks): {cycles} simulated cycles in {:.1} us on CycleSim builtin:a2a3 (engine construction + run; run alone {:.1} us), Reference {:.1} us; medians of {reps} interleaved rounds, planning untimed; goal >= 100 M cycles/s",
        c * 1e6,
        median(&cs_run) * 1e6,
        f * 1e6
    );
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// backward

/// Nodes and blocks of the `backward` workload's [`dsp_chain`].
pub const BACKWARD_NODES: usize = 64;
pub const BACKWARD_BLOCKS: u64 = 32;

/// The `backward` workload's engines: without a tape, or recording one (`gradients: true`).
pub fn backward_engine(scene: &Scene, gradients: bool) -> Result<Engine, Error> {
    Engine::from_scene(
        scene,
        RunOptions {
            gradients,
            ..RunOptions::default()
        },
    )
}

/// The `backward` workload's scene, [`dsp_chain`]`(64, 32)`.
pub fn backward_scene() -> Result<Scene, Error> {
    parse(&dsp_chain(BACKWARD_NODES, BACKWARD_BLOCKS), "dsp_chain")
}

/// `backward`: the backward pass alone (`Engine::gradients()` after a taped run, which is
/// untimed) over the forward run without a tape, on [`dsp_chain`]`(64, 32)`. Goal ≤ 3.
pub fn backward(quick: bool) -> Result<Workload, Error> {
    let (warmup, reps) = if quick { (1, 7) } else { (2, 21) };
    let scene = backward_scene()?;
    let mut tape = (0usize, 0usize);
    // Per round: [forward, taped forward, backward].
    let [fwd, taped, bwd] = rounds(warmup, reps, |r, _| {
        let mut e = backward_engine(&scene, false)?;
        let f = timed_run(&mut e, "backward")?;
        drop(e);
        let mut e = backward_engine(&scene, true)?;
        let tf = timed_run(&mut e, "backward")?;
        let t = Instant::now();
        let g = black_box(e.gradients()?);
        let b = t.elapsed().as_secs_f64();
        if r == 0 {
            let t = e.world().resource::<crate::tape::Tape>();
            tape = (t.len(), t.bytes());
            if !g.grads.values().all(|v| v.is_finite()) {
                return Err(Error::Internal(
                    "bench workload `backward`: a gradient is not finite".into(),
                ));
            }
        }
        Ok([f, tf, b])
    })?;
    let (f, t, b) = (median(&fwd), median(&taped), median(&bwd));
    let mut w = Workload::new("backward", b * 1e3, "ms", Goal::new("ratio", "<=", 3.0))
        .with_baseline(f * 1e3, "ms (forward run)", b / f);
    w.figures
        .insert("per_round_ratio", median_ratio(&bwd, &fwd));
    w.figures.insert("taped_forward_ms", t * 1e3);
    w.figures.insert("tape_overhead", t / f);
    w.figures.insert("tape_entries", tape.0 as f64);
    w.figures.insert("tape_bytes", tape.1 as f64);
    w.detail = format!(
        "dsp_chain({BACKWARD_NODES}, {BACKWARD_BLOCKS}): Sine -> {BACKWARD_NODES} Biquad/OnePole/Gain -> Probe, stereo 64-frame blocks, loss Sum; backward = Engine::gradients() after a taped run (untimed), forward = run without a tape; taped forward {:.2} ms (x{:.2}); tape {} entries, {:.1} MiB; medians of {reps} rounds; goal ratio <= 3",
        t * 1e3,
        t / f,
        tape.0,
        tape.1 as f64 / (1024.0 * 1024.0)
    );
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// scale

/// Resident memory of this process in bytes (`VmRSS` of /proc/self/status, the resident pages
/// /proc/self/statm counts, already in kB); `None` where /proc is unavailable.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One load + plan + spawn of a scene text: `(parse seconds, total seconds, resident growth)`.
/// The engine (which keeps the scene) is alive when the memory is read; it is dropped untimed.
fn load_once(text: &str) -> Result<(f64, f64, Option<u64>), Error> {
    let before = resident_bytes();
    let t = Instant::now();
    let scene = parse(text, "scale")?;
    let parsed = t.elapsed().as_secs_f64();
    // The path `tapwheel run` and `Engine::load` take: the engine keeps the parsed scene.
    let engine = Engine::from_scene_owned(scene, RunOptions::default())?;
    let total = t.elapsed().as_secs_f64();
    let after = resident_bytes();
    black_box(&engine);
    drop(engine);
    Ok((
        parsed,
        total,
        before.zip(after).map(|(b, a)| a.saturating_sub(b)),
    ))
}

/// Nodes of the `scale` workload: (large, small); `--quick` uses a tenth.
pub fn scale_sizes(quick: bool) -> (usize, usize) {
    if quick {
        (100_000, 10_000)
    } else {
        (1_000_000, 100_000)
    }
}

/// `scale`: seconds to load (parse the RON text), plan and spawn a scene of 1 M nodes
/// ([`scale_scene`]: Const → Probe pairs; the text is generated untimed); baseline the same at
/// 100 k nodes; ratio the per-node time 1 M / 100 k (1 is linear). Also the resident memory
/// growth per node of the largest size measured. `--quick`: 100 k and 10 k.
///
/// A tenth of the small size runs first (twice, the faster counts), then the small size (again,
/// up to three times, while the projection exceeds the budget; the fastest counts); from these
/// two a time `a·n + b·n²` is fitted and projected to the large size. The large size runs
/// (interleaved with the small one, up to 3 times each) only while its runs fit the budget (60 s
/// in all, `--quick` 10 s): when even the projected first run would not, the large figure is that
/// projection, marked `projected`, and `ratio` is the small/tenth per-node ratio instead.
pub fn scale(quick: bool) -> Result<Workload, Error> {
    let (large, small) = scale_sizes(quick);
    let tenth = small / 10;
    let budget = if quick { 10.0 } else { 60.0 };
    let reps = 3;

    let tenth_text = scale_scene(tenth);
    let (_, t1, _) = load_once(&tenth_text)?;
    let (_, t2, _) = load_once(&tenth_text)?;
    let t_tenth = t1.min(t2);
    drop(tenth_text);
    let small_text = scale_scene(small);
    let mut small_runs = Vec::new();
    let mut small_parse = Vec::new();
    let mut mem_small = None;
    let mut measure_small = |runs: &mut Vec<f64>| -> Result<(), Error> {
        let (p, t, m) = load_once(&small_text)?;
        runs.push(t);
        small_parse.push(p);
        mem_small = mem_small.or(m);
        Ok(())
    };
    measure_small(&mut small_runs)?;
    let fastest = |runs: &[f64]| runs.iter().copied().fold(f64::INFINITY, f64::min);
    let mut projected = project(tenth, t_tenth, small, fastest(&small_runs), large);
    // One slow small run (page faults, a busy machine) must not skip the large measurement:
    // measure it again before projecting past the budget.
    while projected > budget && small_runs.len() < 3 {
        measure_small(&mut small_runs)?;
        projected = project(tenth, t_tenth, small, fastest(&small_runs), large);
    }
    let trend = (t_tenth > 0.0).then(|| median(&small_runs) / t_tenth / 10.0);
    let mut large_reps = if projected <= budget { reps } else { 0 };
    let large_text = (large_reps > 0).then(|| scale_scene(large));
    let mut large_runs = Vec::new();
    let mut large_parse = Vec::new();
    let mut mem_large = None;
    let mut spent = 0.0;
    for r in 0..reps {
        let large_first = r % 2 == 1;
        if r > 0 && !large_first {
            measure_small(&mut small_runs)?;
        }
        if let Some(text) = large_text.as_deref().filter(|_| r < large_reps) {
            let (p, t, m) = load_once(text)?;
            large_runs.push(t);
            large_parse.push(p);
            mem_large = mem_large.or(m);
            spent += t;
            // Another run only while the budget holds it.
            if spent + t > budget {
                large_reps = r + 1;
            }
        }
        if r > 0 && large_first {
            measure_small(&mut small_runs)?;
        }
    }
    let ts = median(&small_runs);
    let per_node = |t: f64, n: usize| t / n.max(1) as f64;
    let measured_large = !large_runs.is_empty();
    let tl = if measured_large {
        median(&large_runs)
    } else {
        projected
    };
    let (ratio, ratio_of) = if measured_large {
        (per_node(tl, large) / per_node(ts, small), (large, small))
    } else {
        (trend.unwrap_or(f64::NAN), (small, tenth))
    };
    let (mem, mem_nodes) = match (mem_large, mem_small) {
        (Some(m), _) if measured_large => (Some(m), large),
        (_, m) => (m, small),
    };
    let bytes_per_node = mem.map_or(0.0, |m| m as f64 / mem_nodes.max(1) as f64);
    let mut w = Workload::new("scale", tl, "s", Goal::new("value", "<", 2.0));
    w = w.with_baseline(ts, "s (small size)", ratio);
    w.met = measured_large && tl < 2.0;
    w.projected = !measured_large;
    w.figures.insert("nodes", large as f64);
    w.figures.insert("baseline_nodes", small as f64);
    w.figures.insert("bytes_per_node", bytes_per_node);
    w.figures.insert("tenth_s", t_tenth);
    if measured_large {
        w.figures.insert("parse_s", median(&large_parse));
    }
    w.figures.insert("baseline_parse_s", median(&small_parse));
    let k = |n: usize| {
        if n >= 1_000_000 {
            format!("{} M", n / 1_000_000)
        } else {
            format!("{} k", n / 1000)
        }
    };
    let mut d = format!(
        "Const -> Probe pairs generated as RON text (untimed), then Scene::parse + Engine::from_scene_owned: {} nodes ",
        k(large)
    );
    if measured_large {
        let _ = write!(
            d,
            "{tl:.3} s (parse {:.3} s; median of {}), ",
            median(&large_parse),
            large_runs.len()
        );
    } else {
        let _ = write!(
            d,
            "NOT RUN: projected {tl:.1} s (t = a*n + b*n^2 fitted to the first {} and {} runs) exceeds the {budget:.0} s budget, ",
            k(small),
            k(tenth),
        );
    }
    let _ = write!(
        d,
        "{} nodes {ts:.3} s (median of {}), {} nodes {t_tenth:.3} s; per-node time {}/{} x{ratio:.2} (1 = linear); ",
        k(small),
        small_runs.len(),
        k(tenth),
        k(ratio_of.0),
        k(ratio_of.1)
    );
    match mem {
        Some(m) => {
            let _ = write!(
                d,
                "resident memory +{:.0} MiB at {} nodes = {bytes_per_node:.0} bytes/node (scene and engine alive; VmRSS); ",
                m as f64 / (1024.0 * 1024.0),
                k(mem_nodes)
            );
        }
        None => d.push_str("bytes/node 0: /proc/self/status unavailable; "),
    }
    d.push_str("goal < 2 s at 1 M nodes and linear");
    w.detail = d;
    Ok(w)
}

/// Projects the time at `n3` nodes from times at `n1` and `n2` nodes with `t = a·n + b·n²`
/// (`a`, `b` ≥ 0): linear work plus any quadratic part the two sizes reveal.
///
/// ```
/// use tapwheel::bench::project;
/// assert!((project(10, 1.0, 100, 10.0, 1000) - 100.0).abs() < 1e-9); // linear
/// assert!((project(10, 1.0, 100, 100.0, 1000) - 10_000.0).abs() < 1e-6); // quadratic
/// ```
pub fn project(n1: usize, t1: f64, n2: usize, t2: f64, n3: usize) -> f64 {
    let [n1, n2, n3] = [n1, n2, n3].map(|n| n.max(1) as f64);
    // t1 = a·n1 + b·n1², t2 = a·n2 + b·n2²  →  b = (t2 − t1·n2/n1) / (n2² − n2·n1).
    let denom = n2 * n2 - n2 * n1;
    let b = if denom > 0.0 {
        ((t2 - t1 * n2 / n1) / denom).max(0.0)
    } else {
        0.0
    };
    let a = ((t2 - b * n2 * n2) / n2).max(0.0);
    a * n3 + b * n3 * n3
}

// ---------------------------------------------------------------------------------------------
// Output

/// `{"workloads": [...]}` plus the machine the figures come from.
pub fn to_json(workloads: &[Workload], quick: bool, wall_seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "workloads": workloads,
        "quick": quick,
        "wall_seconds": wall_seconds,
        "machine": machine(),
    })
}

/// CPUs available and the load average (`/proc/loadavg`) when the run ended.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    serde_json::json!({"cpus": cpus, "loadavg": load})
}

/// A readable table, one workload a row, with each detail below it.
pub fn to_text(workloads: &[Workload]) -> String {
    let num = |x: f64| {
        if !x.is_finite() {
            "-".to_string()
        } else if x.abs() >= 100.0 {
            format!("{x:.1}")
        } else if x.abs() >= 1.0 {
            format!("{x:.3}")
        } else {
            format!("{x:.4}")
        }
    };
    let mut s = format!(
        "{:<16} {:>12} {:<11} {:>12} {:>8}  {:<20} {}\n",
        "workload", "value", "unit", "baseline", "ratio", "goal", "met"
    );
    for w in workloads {
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:<11} {:>12} {:>8}  {:<20} {}",
            w.name,
            if w.projected {
                format!("~{}", num(w.value))
            } else {
                num(w.value)
            },
            w.unit,
            w.baseline.map_or("-".into(), num),
            w.ratio.map_or("-".into(), |r| format!("x{}", num(r))),
            if w.goal.on == "value" {
                format!("{} {} {}", w.goal.op, w.goal.target, w.unit)
            } else {
                format!("ratio {} {}", w.goal.op, w.goal.target)
            },
            if w.met { "yes" } else { "no" }
        );
    }
    for w in workloads {
        let _ = writeln!(s, "\n{}: {}", w.name, w.detail);
    }
    s
}

/// The positional filter a criterion bench was given (`cargo bench --bench NAME -- FILTER`),
/// skipping criterion's own options and their values; the benches' in-process ratios follow it.
pub fn criterion_filter(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    let mut filter = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            // Options of criterion's CLI that take a value.
            "--save-baseline"
            | "--baseline"
            | "--baseline-lenient"
            | "--load-baseline"
            | "--color"
            | "--sample-size"
            | "--warm-up-time"
            | "--measurement-time"
            | "--nresamples"
            | "--noise-threshold"
            | "--confidence-level"
            | "--significance-level"
            | "--profile-time"
            | "--plotting-backend"
            | "--output-format" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filter = Some(s.to_string()),
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_scene(text: &str) -> Engine {
        let scene = parse(text, "test").expect("workload scene parses");
        let mut e = Engine::from_scene(&scene, RunOptions::default()).expect("plans");
        assert_eq!(e.run(), Outcome::Completed);
        e
    }

    /// The hand-fused baseline does the engine's maths: same sine, same coefficients, same
    /// sections in the same order, so the outputs agree (to 1e-4; in practice bit for bit).
    #[test]
    fn hand_fused_matches_engine_probe() {
        let (sections, blocks) = (AUDIO_SECTIONS, 8);
        let e = run_scene(&audio_chain_scene(sections, blocks));
        let probe = e.probe("out").expect("probe");
        assert_eq!(probe.len(), blocks as usize);
        let mut hand = Vec::new();
        HandChain::new(sections).run(blocks, &mut hand);
        assert_eq!(hand.len(), probe.values.len());
        let worst = hand
            .iter()
            .zip(&probe.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-4,
            "hand-fused differs from the engine by {worst}"
        );
        // Not a trivial signal: the sine passes the 64 low-passes near unit gain.
        let peak = hand.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.3, "peak {peak}");
        // The coefficients are the kernel's.
        let k = crate::kernels::dsp::Biquad::new(
            BiquadMode::Lowpass,
            audio_cutoff(5),
            AUDIO_Q,
            0.0,
            AUDIO_HZ,
            1,
            crate::scene::Shape::default(),
        );
        assert_eq!(HandChain::new(6).coefficients()[5], k.coefficients());
    }

    #[test]
    fn firing_chain_fires_every_node_per_token() {
        let e = run_scene(&chain(10, 5));
        let json = e.report().json;
        assert_eq!(report_sum(&json, "firings"), 12 * 5);
        assert_eq!(
            e.probe("out").expect("probe").values,
            [0.0, 1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn busy_chain_fires_every_node_every_tick() {
        let scene = parse(&busy_chain(10), "test").expect("parses");
        let opts = RunOptions {
            until: Some(4),
            ..RunOptions::default()
        };
        let mut e = Engine::from_scene(&scene, opts).expect("plans");
        assert_eq!(e.run(), Outcome::LimitReached);
        let json = e.report().json;
        for n in ["src", "g0", "g9", "out"] {
            assert_eq!(json["firings"][n], 5, "{n}");
        }
        // The probe sees the initial token, then the ramp once it has passed ten gains.
        assert_eq!(e.probe("out").expect("probe").values, [0.0; 5]);
    }

    #[test]
    fn expiry_scene_delivers_every_token_after_its_delay() {
        let e = run_scene(&expiry_scene(20, 5, 4));
        assert_eq!(report_sum(&e.report().json, "probes"), 20 * 4);
        for k in 0..20 {
            let p = e.probe(&format!("p{k}")).expect("probe");
            let d = expiry_delay(k);
            assert_eq!(p.ticks, vec![d, d + 1, d + 2, d + 3], "channel {k}");
        }
        let delays: std::collections::BTreeSet<u64> = (0..1000).map(expiry_delay).collect();
        assert_eq!(delays, (1..=97).collect());
    }

    #[test]
    fn scale_scene_has_the_asked_nodes() {
        let e = run_scene(&scale_scene(1000));
        assert_eq!(e.plan().nodes.len(), 1000);
        assert_eq!(report_sum(&e.report().json, "probes"), 500);
    }

    #[test]
    fn gemm_and_dsp_scenes_plan() {
        let [(_, cs), (_, rf)] = gemm_plans().expect("plans");
        assert_eq!(cs.nodes.len(), rf.nodes.len());
        assert_eq!(backward_scene().expect("scene").spec.nodes.len(), 66);
        parse(&wide(4, 2), "wide").expect("wide");
    }

    #[test]
    fn unknown_workload_is_e106_at_only() {
        let err = select(&["firing_overhead".into(), "nope".into()]).unwrap_err();
        let d = err.diagnostics();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "E106");
        assert_eq!(d[0].location, Location::Argument("--only".into()));
        assert_eq!(select(&[]).expect("all"), NAMES.to_vec());
        assert_eq!(
            select(&["scale".into(), "cyclesim".into()]).expect("two"),
            vec!["cyclesim", "scale"]
        );
    }

    #[test]
    fn goals() {
        let g = Goal::new("ratio", "<=", 1.25);
        assert!(g.met(99.0, Some(1.2)) && !g.met(1.0, Some(1.3)) && !g.met(1.0, None));
        assert!(Goal::new("value", ">=", 50.0).met(50.0, None));
    }
}
