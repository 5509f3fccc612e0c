//! Central finite-difference checks of every kernel adjoint (`Kernel::backward`).
//!
//! Each case builds a kernel with `instantiate`, runs it for a few firings on deterministic
//! pseudo-random inputs (kept away from kinks: `Abs`/`Relu` inputs away from 0, `Log`/`Sqrt`
//! inputs positive, `RowMax` rows without near-ties, slew clamps clearly saturated or clearly
//! free), and takes the loss `L = Σ w·y` over every element every firing produced, with fixed
//! pseudo-random weights `w`. The adjoint runs backwards firing by firing, carrying
//! `grad_state` (zeros before the last firing) and accumulating `grad_params`. Every
//! `dL/d(input element)` of every firing and every `dL/d(parameter)` is compared with a central
//! difference recomputed on a *fresh* kernel run from scratch (an input element perturbed in the
//! feed, or the parameter changed with `set_param` before firing 0).
//!
//! Forward values are f32, so: input step `EPS_IN = 1e-2`; parameter step
//! `max(1e-3·|p|, 1e-2)`; the difference is divided by the step actually taken after f32
//! rounding (read back through `params()`); tolerance
//! `|analytic − numeric| ≤ 3e-3 + 3e-2·max(|analytic|, |numeric|)`.
//!
//! Cross-firing input gradients check the state adjoint (an input of firing 0 reaches later
//! outputs only through the state). The state a kernel starts from (zeros at construction)
//! cannot be set through the public API, so `dL/d(initial state)` is not checked directly;
//! instead every stateful kernel is also run with *warm-up* firings whose outputs carry no
//! weight: they set the state the weighted firings start from, and the `grad_state` carried
//! back to that boundary, pushed through the Jacobian of the saved state (`save_state`) with
//! respect to each warm-up input (itself measured by central differences), must match the
//! finite-difference `dL/d(warm-up input)`. Where that Jacobian has full row rank (OnePole,
//! Biquad, Fir with enough warm-up samples, the free SlewIntegrator regime) this pins the
//! carried `grad_state` completely.
//!
//! Run with `-- --nocapture` to see the number of checks and the worst error of every case.

use tapwheel::kernels::{
    BackwardIo, BuildCtx, FireIo, InputBlock, InputView, Kernel, KernelRegistry, OutputBlock,
    Signature, TapSig, instantiate,
};
use tapwheel::scene::{BiquadMode, KernelSpec, MapOp, Pred, Shape, SlewMode};

/// One block of values per tap.
type Taps = Vec<Vec<f32>>;
/// One [`Taps`] per firing.
type Feed = Vec<Taps>;

const EPS_IN: f32 = 1e-2;
const ABS_TOL: f64 = 3e-3;
const REL_TOL: f64 = 3e-2;
/// The sample rate of the DSP cases.
const FS: f64 = 48_000.0;

// ---------------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers

/// A 64-bit linear congruential generator (Knuth's MMIX constants), high bits out.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        let mut g = Lcg(seed ^ 0x2545_F491_4F6C_DD1D);
        g.next_u31();
        g
    }
    fn next_u31(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        f64::from(self.next_u31()) / f64::from(1u32 << 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
    /// Magnitude uniform in [lo, hi), random sign.
    fn signed(&mut self, lo: f64, hi: f64) -> f32 {
        let m = self.uniform(lo, hi);
        if self.next_u31() & 1 == 0 { m } else { -m }
    }
}

/// The loss weight of element `i` of output tap `tap` in firing `firing`: in [−1, 1].
fn weight(firing: usize, tap: usize, i: usize) -> f64 {
    let mut z = ((firing as u64) << 40) ^ ((tap as u64) << 32) ^ i as u64;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

// ---------------------------------------------------------------------------------------------
// Cases

fn shape(batch: u32, channels: u32, frames: u32) -> Shape {
    Shape {
        batch,
        channels,
        frames,
    }
}

fn tap(name: &str, rate: u32, shape: Shape) -> TapSig {
    TapSig {
        name: name.into(),
        rate,
        token_len: shape.elements() as usize,
        shape,
    }
}

fn sig(inputs: Vec<TapSig>, outputs: Vec<TapSig>) -> Signature {
    Signature { inputs, outputs }
}

/// `firings` firings of `rate·token_len` values on every input tap, each value drawn by
/// `draw(rng, tap, index within the firing's block)`.
fn feed(
    sig: &Signature,
    firings: usize,
    seed: u64,
    mut draw: impl FnMut(&mut Lcg, usize, usize) -> f32,
) -> Feed {
    let mut rng = Lcg::new(seed);
    (0..firings)
        .map(|_| {
            sig.inputs
                .iter()
                .enumerate()
                .map(|(t, s)| {
                    (0..s.rate as usize * s.token_len)
                        .map(|i| draw(&mut rng, t, i))
                        .collect()
                })
                .collect()
        })
        .collect()
}

struct Case {
    name: String,
    spec: KernelSpec,
    sig: Signature,
    tick_hz: f64,
    feed: Feed,
    /// Leading firings whose outputs carry no weight (they only set the state).
    warmup: usize,
    /// The parameters `params()` must list, in order.
    params: Vec<&'static str>,
    /// Which input elements `(firing, tap, index)` are perturbed (default: all); elements
    /// where the kernel is not differentiable are left out.
    perturb: Box<dyn Fn(usize, usize, usize) -> bool>,
}

impl Case {
    fn new(name: &str, spec: KernelSpec, sig: Signature, feed: Feed) -> Self {
        Case {
            name: name.into(),
            spec,
            sig,
            tick_hz: FS,
            feed,
            warmup: 0,
            params: Vec::new(),
            perturb: Box::new(|_, _, _| true),
        }
    }
    fn params(mut self, names: &[&'static str]) -> Self {
        self.params = names.to_vec();
        self
    }
    fn tick_hz(mut self, hz: f64) -> Self {
        self.tick_hz = hz;
        self
    }
    fn warmup(mut self, firings: usize) -> Self {
        self.warmup = firings;
        self
    }

    fn build(&self) -> Box<dyn Kernel> {
        let registry = KernelRegistry::default();
        let ctx = BuildCtx {
            sig: &self.sig,
            tick_hz: self.tick_hz,
            file: None,
            registry: &registry,
        };
        instantiate(&self.spec, &ctx)
            .unwrap_or_else(|| panic!("{}: instantiate returned None", self.name))
    }

    /// Runs `feed` through `k`, checking before each firing that the kernel demands exactly the
    /// tokens the feed supplies.
    fn run(&self, k: &mut dyn Kernel, feed: &Feed) -> Trace {
        let mut trace = Trace {
            outputs: Vec::new(),
            saved: Vec::new(),
        };
        for (f, ins) in feed.iter().enumerate() {
            let tokens: Vec<usize> = ins
                .iter()
                .zip(&self.sig.inputs)
                .map(|(v, t)| v.len() / t.token_len)
                .collect();
            let views = vec![
                InputView {
                    visible: 16,
                    held: 16,
                    closed: false,
                    drained: false,
                    optional: false,
                };
                ins.len()
            ];
            let mut demand = vec![0u32; ins.len()];
            k.demand(&views, &mut demand);
            let demand: Vec<usize> = demand.iter().map(|&d| d as usize).collect();
            assert_eq!(demand, tokens, "{}: firing {f} demand vs feed", self.name);
            let mut saved = Vec::new();
            k.save_state(&mut saved);
            trace.saved.push(saved);
            let blocks = self.blocks(ins);
            let mut outs: Vec<OutputBlock> = self
                .sig
                .outputs
                .iter()
                .map(|t| OutputBlock {
                    values: Vec::new(),
                    token_len: t.token_len,
                })
                .collect();
            k.fire(&mut FireIo {
                firing: f as u64,
                tick: 10 * f as u64,
                inputs: &blocks,
                outputs: &mut outs,
                ..Default::default()
            });
            trace
                .outputs
                .push(outs.into_iter().map(|o| o.values).collect());
        }
        let mut saved = Vec::new();
        k.save_state(&mut saved);
        trace.saved.push(saved);
        trace
    }

    fn blocks<'a>(&self, taps: &'a Taps) -> Vec<InputBlock<'a>> {
        taps.iter()
            .zip(&self.sig.inputs)
            .map(|(v, t)| InputBlock {
                values: v,
                token_len: t.token_len,
            })
            .collect()
    }

    fn out_blocks<'a>(&self, taps: &'a Taps) -> Vec<InputBlock<'a>> {
        taps.iter()
            .zip(&self.sig.outputs)
            .map(|(v, t)| InputBlock {
                values: v,
                token_len: t.token_len,
            })
            .collect()
    }

    fn out_weight(&self, firing: usize, tap: usize, i: usize) -> f64 {
        if firing < self.warmup {
            0.0
        } else {
            weight(firing, tap, i)
        }
    }

    fn loss(&self, trace: &Trace) -> f64 {
        let mut l = 0.0;
        for (f, outs) in trace.outputs.iter().enumerate() {
            for (t, values) in outs.iter().enumerate() {
                for (i, &y) in values.iter().enumerate() {
                    l += self.out_weight(f, t, i) * f64::from(y);
                }
            }
        }
        l
    }

    /// Runs the adjoint backwards over a trace of `k`: `(dL/d inputs, dL/d params, carried
    /// grad_state before each firing)`.
    fn adjoint(&self, k: &dyn Kernel, trace: &Trace) -> (Vec<Taps64>, Vec<f64>, Vec<Vec<f64>>) {
        let n = self.feed.len();
        let mut carry = vec![0.0; k.state_len()];
        let mut gp = vec![0.0; k.params().len()];
        let mut gin: Vec<Taps64> = vec![Vec::new(); n];
        let mut carries = vec![Vec::new(); n];
        for f in (0..n).rev() {
            let go: Taps64 = trace.outputs[f]
                .iter()
                .enumerate()
                .map(|(t, v)| (0..v.len()).map(|i| self.out_weight(f, t, i)).collect())
                .collect();
            let mut gi: Taps64 = self.feed[f].iter().map(|v| vec![0.0; v.len()]).collect();
            let inputs = self.blocks(&self.feed[f]);
            let outputs = self.out_blocks(&trace.outputs[f]);
            k.backward(&mut BackwardIo {
                firing: f as u64,
                tick: 10 * f as u64,
                inputs: &inputs,
                outputs: &outputs,
                saved: &trace.saved[f],
                grad_outputs: &go,
                grad_inputs: &mut gi,
                grad_state: &mut carry,
                grad_params: &mut gp,
            })
            .unwrap_or_else(|e| panic!("{}: backward refused: {e}", self.name));
            gin[f] = gi;
            carries[f] = carry.clone();
        }
        (gin, gp, carries)
    }
}

type Taps64 = Vec<Vec<f64>>;

struct Trace {
    outputs: Feed,
    /// The saved state before each firing, and after the last.
    saved: Vec<Vec<f32>>,
}

/// The outcome of one case.
struct Report {
    name: String,
    checks: usize,
    /// Checks where the gradient is not ~0 (so the comparison is not 0 = 0).
    nonzero: usize,
    max_err: f64,
    failures: Vec<String>,
}

impl Report {
    fn compare(&mut self, what: impl FnOnce() -> String, analytic: f64, numeric: f64) {
        self.checks += 1;
        if analytic.abs().max(numeric.abs()) > 1e-3 {
            self.nonzero += 1;
        }
        let err = (analytic - numeric).abs();
        self.max_err = self.max_err.max(err);
        let tol = ABS_TOL + REL_TOL * analytic.abs().max(numeric.abs());
        if err.is_nan() || err > tol {
            self.failures.push(format!(
                "{}: analytic {analytic:.6e} vs numeric {numeric:.6e} (|diff| {err:.3e} > tol {tol:.3e})",
                what()
            ));
        }
    }
}

/// Runs every check of one case and reports (does not panic on a gradient mismatch).
fn check(case: &Case) -> Report {
    let mut report = Report {
        name: case.name.clone(),
        checks: 0,
        nonzero: 0,
        max_err: 0.0,
        failures: Vec::new(),
    };
    let mut k = case.build();
    let names: Vec<String> = k.params().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names, case.params,
        "{}: params() lists other parameters",
        case.name
    );
    let trace = case.run(k.as_mut(), &case.feed);
    let (gin, gp, carries) = case.adjoint(k.as_ref(), &trace);
    let state_len = k.state_len();

    // Where the state after the warm-up firings sits in `save_state`'s output.
    let state_offset = if case.warmup > 0 && state_len > 0 {
        let saved = trace.saved[case.warmup].len();
        match k.kind() {
            // Documented layout: [present_a, present_b, head_a…, head_b…].
            "OrderedMerge" => saved - state_len,
            _ => {
                assert_eq!(saved, state_len, "{}: save_state vs state_len", case.name);
                0
            }
        }
    } else {
        0
    };

    // (a) Every input element of every firing.
    for (f, taps) in case.feed.iter().enumerate() {
        for (t, values) in taps.iter().enumerate() {
            for i in (0..values.len()).filter(|&i| (case.perturb)(f, t, i)) {
                let mut plus = case.feed.clone();
                let mut minus = case.feed.clone();
                plus[f][t][i] = values[i] + EPS_IN;
                minus[f][t][i] = values[i] - EPS_IN;
                let h = f64::from(plus[f][t][i]) - f64::from(minus[f][t][i]);
                let tp = case.run(case.build().as_mut(), &plus);
                let tm = case.run(case.build().as_mut(), &minus);
                let numeric = (case.loss(&tp) - case.loss(&tm)) / h;
                let tap_name = &case.sig.inputs[t].name;
                report.compare(
                    || format!("dL/d {tap_name}[{i}] of firing {f}"),
                    gin[f][t][i],
                    numeric,
                );
                // The carried grad_state at the warm-up boundary, through the measured
                // Jacobian of the state with respect to this warm-up input.
                if f < case.warmup && state_len > 0 {
                    let w = case.warmup;
                    let jg: f64 = (0..state_len)
                        .map(|s| {
                            let o = state_offset + s;
                            let ds = f64::from(tp.saved[w][o]) - f64::from(tm.saved[w][o]);
                            ds / h * carries[w][s]
                        })
                        .sum();
                    report.compare(
                        || {
                            format!(
                                "state check: (d state/d {tap_name}[{i}] of warm-up firing {f})·grad_state \
                                 before firing {w} (grad_state = {:?})",
                                carries[w]
                            )
                        },
                        jg,
                        numeric,
                    );
                }
            }
        }
    }

    // (b) Every parameter, changed with set_param on a fresh kernel before firing 0.
    for (p, name) in names.iter().enumerate() {
        let value = k.params()[p].value;
        let eps = (1e-3 * value.abs()).max(1e-2);
        let run_with = |v: f64| {
            let mut kp = case.build();
            kp.set_param(name, v)
                .unwrap_or_else(|e| panic!("{}: set_param({name}, {v}): {e}", case.name));
            let actual = kp.params()[p].value;
            (actual, case.loss(&case.run(kp.as_mut(), &case.feed)))
        };
        let (vp, lp) = run_with(value + eps);
        let (vm, lm) = run_with(value - eps);
        report.compare(|| format!("dL/d {name}"), gp[p], (lp - lm) / (vp - vm));
    }
    report
}

/// Checks every case and fails with every mismatch of every case.
fn check_all(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let r = check(case);
        println!(
            "{}: {} checks ({} with a nonzero gradient), max |analytic − numeric| = {:.3e}, \
             {} failed",
            r.name,
            r.checks,
            r.nonzero,
            r.max_err,
            r.failures.len()
        );
        if r.nonzero == 0 {
            failures.push(format!("{}: every gradient checked is ~0", r.name));
        }
        for f in &r.failures {
            println!("  FAIL {f}");
        }
        if !r.failures.is_empty() {
            let shown: Vec<&String> = r.failures.iter().take(12).collect();
            failures.push(format!(
                "{} ({} of {} checks failed):\n    {}",
                r.name,
                r.failures.len(),
                r.checks,
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "gradient mismatches:\n{}",
        failures.join("\n")
    );
}

/// Builds a one-input, one-output case with the same shape and rate on both taps and inputs
/// drawn by `draw`.
fn unary_case(
    name: &str,
    spec: KernelSpec,
    rate: u32,
    sh: Shape,
    firings: usize,
    draw: impl FnMut(&mut Lcg) -> f32,
) -> Case {
    let s = sig(vec![tap("in", rate, sh)], vec![tap("out", rate, sh)]);
    let mut draw = draw;
    let f = feed(&s, firings, name.len() as u64 * 7919, |r, _, _| draw(r));
    Case::new(name, spec, s, f)
}

fn source_case(name: &str, spec: KernelSpec, rate: u32, sh: Shape) -> Case {
    let s = sig(vec![], vec![tap("out", rate, sh)]);
    let f = vec![Vec::new(); 3];
    Case::new(name, spec, s, f)
}

// ---------------------------------------------------------------------------------------------
// Sources

#[test]
fn const_value() {
    check_all(&[source_case(
        "Const",
        KernelSpec::Const { value: 0.75 },
        2,
        shape(1, 2, 3),
    )
    .params(&["value"])]);
}

#[test]
fn ramp_start_step() {
    check_all(&[source_case(
        "Ramp",
        KernelSpec::Ramp {
            start: 0.25,
            step: 0.5,
        },
        3,
        shape(1, 2, 2),
    )
    .params(&["start", "step"])]);
}

#[test]
fn sine_freq_amp_phase() {
    check_all(&[source_case(
        "Sine",
        KernelSpec::Sine {
            freq_hz: 37.0,
            amp: 0.8,
            phase: 0.3,
        },
        2,
        shape(2, 1, 3),
    )
    .tick_hz(1000.0)
    .params(&["freq_hz", "amp", "phase"])]);
}

#[test]
fn saw_and_square_amp() {
    check_all(&[
        source_case(
            "Saw",
            KernelSpec::Saw {
                freq_hz: 55.0,
                amp: 0.7,
            },
            2,
            shape(1, 2, 3),
        )
        .tick_hz(1000.0)
        .params(&["amp"]),
        source_case(
            "Square",
            KernelSpec::Square {
                freq_hz: 55.0,
                amp: 0.6,
                duty: 0.3,
            },
            2,
            shape(1, 2, 3),
        )
        .tick_hz(1000.0)
        .params(&["amp"]),
    ]);
}

#[test]
fn noise_amp() {
    check_all(&[source_case(
        "Noise",
        KernelSpec::Noise { seed: 42, amp: 0.9 },
        2,
        shape(1, 2, 4),
    )
    .params(&["amp"])]);
}

// ---------------------------------------------------------------------------------------------
// Elementwise

#[test]
fn scalar_unaries() {
    let sh = shape(2, 3, 2);
    let u = |r: &mut Lcg| r.uniform(-2.0, 2.0);
    check_all(&[
        unary_case("Gain", KernelSpec::Gain { gain: -1.7 }, 2, sh, 3, u).params(&["gain"]),
        unary_case("Offset", KernelSpec::Offset { value: 0.4 }, 2, sh, 3, u).params(&["value"]),
        unary_case(
            "AddScalar",
            KernelSpec::AddScalar { value: -0.9 },
            2,
            sh,
            3,
            u,
        )
        .params(&["value"]),
        unary_case(
            "MulScalar",
            KernelSpec::MulScalar { value: 1.5 },
            2,
            sh,
            3,
            u,
        )
        .params(&["value"]),
        unary_case("Copy", KernelSpec::Copy, 2, sh, 3, u),
    ]);
}

fn map_case(op: MapOp, draw: impl FnMut(&mut Lcg) -> f32) -> Case {
    unary_case(
        &format!("Map({op:?})"),
        KernelSpec::Map { op },
        2,
        shape(2, 3, 2),
        3,
        draw,
    )
}

#[test]
fn map_neg() {
    check_all(&[map_case(MapOp::Neg, |r| r.uniform(-2.0, 2.0))]);
}

#[test]
fn map_abs() {
    check_all(&[map_case(MapOp::Abs, |r| r.signed(0.2, 2.0))]);
}

#[test]
fn map_square() {
    check_all(&[map_case(MapOp::Square, |r| r.uniform(-2.0, 2.0))]);
}

#[test]
fn map_sqrt() {
    check_all(&[map_case(MapOp::Sqrt, |r| r.uniform(0.5, 2.0))]);
}

#[test]
fn map_exp() {
    check_all(&[map_case(MapOp::Exp, |r| r.uniform(-1.0, 1.0))]);
}

#[test]
fn map_log() {
    check_all(&[map_case(MapOp::Log, |r| r.uniform(0.5, 2.0))]);
}

#[test]
fn map_tanh() {
    check_all(&[map_case(MapOp::Tanh, |r| r.uniform(-2.0, 2.0))]);
}

#[test]
fn map_relu() {
    check_all(&[map_case(MapOp::Relu, |r| r.signed(0.2, 2.0))]);
}

fn binary_case(name: &str, spec: KernelSpec) -> Case {
    let sh = shape(1, 2, 3);
    let s = sig(
        vec![tap("a", 2, sh), tap("b", 2, sh)],
        vec![tap("out", 2, sh)],
    );
    let f = feed(&s, 3, 11, |r, _, _| r.uniform(-2.0, 2.0));
    Case::new(name, spec, s, f)
}

#[test]
fn add_sub_mul() {
    check_all(&[
        binary_case("Add", KernelSpec::Add),
        binary_case("Sub", KernelSpec::Sub),
        binary_case("Mul", KernelSpec::Mul),
    ]);
}

#[test]
fn div_and_max() {
    let sh = shape(1, 2, 3);
    let s = sig(
        vec![tap("a", 2, sh), tap("b", 2, sh)],
        vec![tap("out", 2, sh)],
    );
    // Div: divisors away from 0.
    let div = feed(&s, 3, 13, |r, t, _| {
        if t == 0 {
            r.uniform(-2.0, 2.0)
        } else {
            r.signed(0.5, 2.0)
        }
    });
    // Max: `a` in [−2, 2), `b` at least 0.5 above or below it (alternating), so no element
    // sits near the kink and both branches are taken.
    let max = feed(&s, 3, 14, |r, t, i| match (t, i % 2) {
        (0, _) => r.uniform(-2.0, 2.0),
        (_, 0) => r.uniform(2.5, 3.0),
        _ => r.uniform(-3.0, -2.5),
    });
    check_all(&[
        Case::new("Div", KernelSpec::Div, s.clone(), div),
        Case::new("Max", KernelSpec::Max, s, max),
    ]);
}

#[test]
fn mix_gains() {
    let sh = shape(1, 2, 3);
    let s = sig(
        vec![tap("in0", 2, sh), tap("in1", 2, sh), tap("in2", 2, sh)],
        vec![tap("out", 2, sh)],
    );
    let f = feed(&s, 3, 12, |r, _, _| r.uniform(-2.0, 2.0));
    let spec = KernelSpec::Mix {
        inputs: 3,
        gains: vec![0.5, -1.25, 2.0],
    };
    check_all(&[Case::new("Mix", spec, s, f).params(&["gains[0]", "gains[1]", "gains[2]"])]);
}

// ---------------------------------------------------------------------------------------------
// DSP

/// A stateful case in two forms: every firing weighted, and with `warmup` unweighted firings
/// in front (the carried grad_state check).
fn with_warmup(make: impl Fn(usize) -> Case, warmup: usize) -> [Case; 2] {
    let mut w = make(warmup + 3).warmup(warmup);
    w.name = format!("{} [warm-up {warmup}]", w.name);
    [make(3), w]
}

#[test]
fn one_pole_coeff() {
    check_all(&with_warmup(
        |n| {
            unary_case(
                "OnePole",
                KernelSpec::OnePole { coeff: 0.3 },
                2,
                shape(2, 1, 4),
                n,
                |r| r.uniform(-1.0, 1.0),
            )
            .params(&["coeff"])
        },
        1,
    ));
}

fn biquad_cases(mode: BiquadMode) -> [Case; 2] {
    with_warmup(
        |n| {
            unary_case(
                &format!("Biquad({mode:?})"),
                KernelSpec::Biquad {
                    mode,
                    cutoff_hz: 3000.0,
                    q: 0.9,
                    gain_db: 4.0,
                },
                1,
                shape(1, 2, 16),
                n,
                |r| r.uniform(-1.0, 1.0),
            )
            .params(&["cutoff_hz", "q", "gain_db"])
        },
        1,
    )
}

#[test]
fn biquad_lowpass() {
    check_all(&biquad_cases(BiquadMode::Lowpass));
}

#[test]
fn biquad_highpass() {
    check_all(&biquad_cases(BiquadMode::Highpass));
}

#[test]
fn biquad_bandpass() {
    check_all(&biquad_cases(BiquadMode::Bandpass));
}

#[test]
fn biquad_notch() {
    check_all(&biquad_cases(BiquadMode::Notch));
}

#[test]
fn biquad_peak() {
    check_all(&biquad_cases(BiquadMode::Peak));
}

#[test]
fn biquad_low_shelf() {
    check_all(&biquad_cases(BiquadMode::LowShelf));
}

#[test]
fn biquad_high_shelf() {
    check_all(&biquad_cases(BiquadMode::HighShelf));
}

#[test]
fn biquad_rate_2_batch_2() {
    // Beyond the brief's (1,2,16) rate 1: two tokens per firing, batch rows, short frames.
    let cases: Vec<Case> = [BiquadMode::Peak, BiquadMode::HighShelf]
        .into_iter()
        .flat_map(|mode| {
            with_warmup(
                |n| {
                    unary_case(
                        &format!("Biquad({mode:?}, rate 2, (2,1,4))"),
                        KernelSpec::Biquad {
                            mode,
                            cutoff_hz: 5000.0,
                            q: 1.3,
                            gain_db: -5.0,
                        },
                        2,
                        shape(2, 1, 4),
                        n,
                        |r| r.uniform(-1.0, 1.0),
                    )
                    .params(&["cutoff_hz", "q", "gain_db"])
                },
                1,
            )
        })
        .collect();
    check_all(&cases);
}

#[test]
fn fir_taps() {
    // 5 taps, 3 samples per row per firing: the 4-sample history spans two firings. Two
    // warm-up firings (6 samples) set the whole history.
    check_all(&with_warmup(
        |n| {
            unary_case(
                "Fir",
                KernelSpec::Fir {
                    taps: vec![0.5, -0.25, 0.8, 0.1, -0.3],
                },
                1,
                shape(1, 2, 3),
                n,
                |r| r.uniform(-1.0, 1.0),
            )
            .params(&["taps[0]", "taps[1]", "taps[2]", "taps[3]", "taps[4]"])
        },
        2,
    ));
}

#[test]
fn decimate_3() {
    let sh = shape(1, 2, 4);
    let s = sig(vec![tap("in", 3, sh)], vec![tap("out", 1, sh)]);
    let f = feed(&s, 3, 13, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new(
        "Decimate(3)",
        KernelSpec::Decimate { factor: 3 },
        s,
        f,
    )]);
}

#[test]
fn interpolate_2() {
    let sh = shape(1, 2, 4);
    let s = sig(vec![tap("in", 1, sh)], vec![tap("out", 2, sh)]);
    let f = feed(&s, 3, 14, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new(
        "Interpolate(2)",
        KernelSpec::Interpolate { factor: 2 },
        s,
        f,
    )]);
}

#[test]
fn band_split_3() {
    let sh = shape(1, 2, 16);
    let s = sig(
        vec![tap("in", 1, sh)],
        vec![
            tap("band0", 1, sh),
            tap("band1", 1, sh),
            tap("band2", 1, sh),
        ],
    );
    let f = feed(&s, 3, 15, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new(
        "BandSplit(3)",
        KernelSpec::BandSplit { bands: 3 },
        s,
        f,
    )]);
}

#[test]
fn band_split_odd_frames_rate_2() {
    // 15 frames (8 bins, no Nyquist bin), two tokens per firing, bands of 2, 3 and 3 bins.
    let sh = shape(2, 1, 15);
    let s = sig(
        vec![tap("in", 2, sh)],
        vec![
            tap("band0", 2, sh),
            tap("band1", 2, sh),
            tap("band2", 2, sh),
        ],
    );
    let f = feed(&s, 3, 26, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new(
        "BandSplit(3), 15 frames, rate 2",
        KernelSpec::BandSplit { bands: 3 },
        s,
        f,
    )]);
}

#[test]
fn band_merge_3() {
    let sh = shape(1, 2, 4);
    let s = sig(
        vec![
            tap("band0", 2, sh),
            tap("band1", 2, sh),
            tap("band2", 2, sh),
        ],
        vec![tap("out", 2, sh)],
    );
    let f = feed(&s, 3, 16, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new(
        "BandMerge(3)",
        KernelSpec::BandMerge { bands: 3 },
        s,
        f,
    )]);
}

// ---------------------------------------------------------------------------------------------
// Tiles

#[test]
fn matmul() {
    let s = sig(
        vec![tap("a", 2, shape(1, 2, 3)), tap("b", 2, shape(1, 3, 4))],
        vec![tap("out", 2, shape(1, 2, 4))],
    );
    let f = feed(&s, 3, 17, |r, _, _| r.uniform(-1.5, 1.5));
    let s2 = sig(
        vec![tap("a", 1, shape(2, 3, 2)), tap("b", 1, shape(2, 2, 3))],
        vec![tap("out", 1, shape(2, 3, 3))],
    );
    let f2 = feed(&s2, 3, 27, |r, _, _| r.uniform(-1.5, 1.5));
    check_all(&[
        Case::new("MatMul", KernelSpec::MatMul, s, f),
        Case::new("MatMul (batch 2)", KernelSpec::MatMul, s2, f2),
    ]);
}

#[test]
fn softmax_axes() {
    let mut cases: Vec<Case> = (0..3)
        .map(|axis| {
            unary_case(
                &format!("Softmax(axis {axis})"),
                KernelSpec::Softmax { axis },
                1,
                shape(2, 3, 4),
                3,
                |r| r.uniform(-2.0, 2.0),
            )
        })
        .collect();
    cases.push(unary_case(
        "Softmax(axis 1, rate 2)",
        KernelSpec::Softmax { axis: 1 },
        2,
        shape(2, 3, 4),
        3,
        |r| r.uniform(-2.0, 2.0),
    ));
    check_all(&cases);
}

#[test]
fn row_sum() {
    let s = sig(
        vec![tap("in", 2, shape(2, 3, 4))],
        vec![tap("out", 2, shape(2, 3, 1))],
    );
    let f = feed(&s, 3, 18, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new("RowSum", KernelSpec::RowSum, s, f)]);
}

#[test]
fn row_max() {
    // Each row of 4 holds a shuffled ladder base + {0, 0.3, 0.6, 0.9} (+ jitter < 0.05): the
    // maximum leads the runner-up by more than 0.2, far beyond the FD step.
    let s = sig(
        vec![tap("in", 2, shape(2, 3, 4))],
        vec![tap("out", 2, shape(2, 3, 1))],
    );
    let mut rng = Lcg::new(19);
    let f: Feed = (0..3)
        .map(|_| {
            let mut v = Vec::new();
            for _ in 0..2 * 6 {
                let base = rng.uniform(-1.0, 1.0);
                let mut rungs = [0.0f32, 0.3, 0.6, 0.9];
                for i in (1..4).rev() {
                    rungs.swap(i, rng.next_u31() as usize % (i + 1));
                }
                v.extend(rungs.iter().map(|&d| base + d + rng.uniform(0.0, 0.05)));
            }
            vec![v]
        })
        .collect();
    check_all(&[Case::new("RowMax", KernelSpec::RowMax, s, f)]);
}

#[test]
fn transpose() {
    let s = sig(
        vec![tap("in", 2, shape(2, 3, 4))],
        vec![tap("out", 2, shape(2, 4, 3))],
    );
    let f = feed(&s, 3, 20, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new("Transpose", KernelSpec::Transpose, s, f)]);
}

// ---------------------------------------------------------------------------------------------
// SlewIntegrator (h = 1/100 s)

fn slew_case(
    name: &str,
    mode: SlewMode,
    firings: usize,
    seed: u64,
    mut draw: impl FnMut(&mut Lcg, usize) -> f32,
) -> Case {
    let sh = shape(2, 1, 3);
    let s = sig(
        vec![tap("in", 2, sh)],
        vec![tap("out", 2, sh), tap("integral", 2, sh)],
    );
    // Row of element i within a token of 2 rows × 3 frames.
    let f = feed(&s, firings, seed, |r, _, i| draw(r, (i % 6) / 3));
    let params: &[&'static str] = match mode {
        SlewMode::Ideal => &[],
        SlewMode::Limited { .. } => &["max_rate", "max_accel"],
    };
    Case::new(
        name,
        KernelSpec::SlewIntegrator {
            mode,
            sample_rate_hz: 100.0,
        },
        s,
        f,
    )
    .params(params)
}

#[test]
fn slew_ideal() {
    check_all(&with_warmup(
        |n| {
            slew_case("SlewIntegrator(Ideal)", SlewMode::Ideal, n, 21, |r, _| {
                r.uniform(-1.0, 1.0)
            })
        },
        2,
    ));
}

#[test]
fn slew_limited_free() {
    // Neither clamp active: |v*| = 100·|x − y| ≤ 400 < max_rate, |v* − v| ≤ 600 < max_accel·h.
    let mode = SlewMode::Limited {
        max_rate: 1000.0,
        max_accel: 1.0e6,
    };
    check_all(&with_warmup(
        |n| {
            slew_case("SlewIntegrator(Limited, free)", mode, n, 21, |r, _| {
                r.uniform(-1.0, 1.0)
            })
        },
        2,
    ));
}

#[test]
fn slew_limited_rate_saturated() {
    // Rate clamp saturated, accel clamp free: |y| ≤ 0.05 per sample · 30 samples ≤ 1.5 while
    // |x| ≥ 2.5, so |v*| ≥ 100 ≫ max_rate = 5, and |v* − v| ≤ 355 < max_accel·h = 1000.
    let mode = SlewMode::Limited {
        max_rate: 5.0,
        max_accel: 1.0e5,
    };
    check_all(&with_warmup(
        |n| {
            slew_case(
                "SlewIntegrator(Limited, rate saturated)",
                mode,
                n,
                21,
                |r, _| r.signed(2.5, 3.5),
            )
        },
        2,
    ));
}

#[test]
fn slew_limited_accel_saturated() {
    // Accel clamp saturated, rate clamp free: v moves by max_accel·h = 0.5 per sample (|v| ≤ 15,
    // |y| ≤ 2.4 over 30 samples) while |x| ≥ 20, so |v*| ≥ 1700; max_rate = 1000 never binds.
    // Row 0 is driven up (clamp side +1), row 1 down (side −1).
    let mode = SlewMode::Limited {
        max_rate: 1000.0,
        max_accel: 50.0,
    };
    check_all(&with_warmup(
        |n| {
            slew_case(
                "SlewIntegrator(Limited, accel saturated)",
                mode,
                n,
                21,
                |r, row| {
                    let m = r.uniform(20.0, 30.0);
                    if row == 0 { m } else { -m }
                },
            )
        },
        2,
    ));
}

/// §15's Limited step in f32, replicated to find where the clamps' kinks are: returns the new
/// `(y, v, I)` and the active clamps `(accel side, rate side)`.
fn slew_step(s: [f32; 3], x: f32, h: f32, r: f32, a: f32) -> ([f32; 3], i8, i8) {
    let [y, v, i] = s;
    let vs = (x - y) / h;
    let (lo, hi) = (v - a * h, v + a * h);
    let (v1, side1) = if vs < lo {
        (lo, -1)
    } else if vs > hi {
        (hi, 1)
    } else {
        (vs, 0)
    };
    let (v2, side2) = if v1 < -r {
        (-r, -1)
    } else if v1 > r {
        (r, 1)
    } else {
        (v1, 0)
    };
    let y2 = y + v2 * h;
    ([y2, v2, i + h * y2], side1, side2)
}

/// The clamp pattern `(accel side, rate side)` of every sample of every row, by the replicated
/// step.
fn slew_pattern(feed: &Feed, r: f32, a: f32) -> Vec<(i8, i8)> {
    const H: f32 = (1.0 / 100.0_f64) as f32;
    let (rows, frames, rate) = (2usize, 3usize, 2usize);
    let mut pattern = Vec::new();
    for row in 0..rows {
        let mut st = [0.0f32; 3];
        for taps in feed {
            for s in 0..rate * frames {
                let idx = (s / frames) * rows * frames + row * frames + s % frames;
                let (ns, s1, s2) = slew_step(st, taps[0][idx], H, r, a);
                pattern.push((s1, s2));
                st = ns;
            }
        }
    }
    pattern
}

/// A Limited SlewIntegrator whose rows jump between levels, so within one run samples are free
/// (at least a third), accel-clamped and rate-clamped (at least 4 each). A perturbation's effect on later samples grows through
/// clamped stretches (a velocity change persists while the accel clamp holds), so instead of a
/// margin rule every FD step is replayed with the replicated §15 step: input elements whose
/// ±step changes any sample's clamp pattern are not checked (they sit at a kink of the loss),
/// and the parameter steps must keep the pattern. The inputs are found by a deterministic
/// search over seeds; the replicated step's outputs must equal the kernel's bit for bit.
fn slew_mixed_case(firings: usize) -> Case {
    const H: f32 = (1.0 / 100.0_f64) as f32;
    const R: f32 = 100.0;
    const A: f32 = 6000.0;
    let mode = SlewMode::Limited {
        max_rate: f64::from(R),
        max_accel: f64::from(A),
    };
    let (rows, frames, rate) = (2usize, 3usize, 2usize);
    for seed in 0..10_000u64 {
        let mut level = [0.0f32; 2];
        let mut count = [0usize; 2];
        let name = "SlewIntegrator(Limited, mixed regimes)";
        let mut case = slew_case(name, mode, firings, seed, |r, row| {
            count[row] += 1;
            if count[row] % 4 == 1 {
                level[row] += r.signed(0.5, 3.0);
            }
            level[row] + r.uniform(-0.05, 0.05)
        });
        let base = slew_pattern(&case.feed, R, A);
        let mut counts = [0usize; 3];
        for &(s1, s2) in &base {
            counts[if s2 != 0 {
                2
            } else if s1 != 0 {
                1
            } else {
                0
            }] += 1;
        }
        if counts[0] < counts.iter().sum::<usize>() / 3 || counts[1] < 4 || counts[2] < 4 {
            continue;
        }
        // Parameter steps (as `check` takes them) must keep the pattern.
        let (er, ea) = (1e-3 * R, 1e-3 * A);
        let param_steps = [(R + er, A), (R - er, A), (R, A + ea), (R, A - ea)];
        if param_steps
            .iter()
            .any(|&(r, a)| slew_pattern(&case.feed, r, a) != base)
        {
            continue;
        }
        let mut kinks = std::collections::BTreeSet::new();
        for f in 0..case.feed.len() {
            for i in 0..case.feed[f][0].len() {
                for d in [EPS_IN, -EPS_IN] {
                    let mut moved = case.feed.clone();
                    moved[f][0][i] += d;
                    if slew_pattern(&moved, R, A) != base {
                        kinks.insert((f, i));
                    }
                }
            }
        }
        let total: usize = case.feed.iter().map(|t| t[0].len()).sum();
        if kinks.len() * 4 > total {
            continue;
        }
        // The replicated step is the kernel's, bit for bit.
        let mut expect_y = Vec::new();
        for row in 0..rows {
            let mut st = [0.0f32; 3];
            for taps in &case.feed {
                for s in 0..rate * frames {
                    let idx = (s / frames) * rows * frames + row * frames + s % frames;
                    st = slew_step(st, taps[0][idx], H, R, A).0;
                    expect_y.push(st[0].to_bits());
                }
            }
        }
        let mut k = case.build();
        let trace = case.run(k.as_mut(), &case.feed);
        let mut got_y = Vec::new();
        for row in 0..rows {
            for outs in &trace.outputs {
                for s in 0..rate * frames {
                    let idx = (s / frames) * rows * frames + row * frames + s % frames;
                    got_y.push(outs[0][idx].to_bits());
                }
            }
        }
        assert_eq!(got_y, expect_y, "replicated §15 step vs kernel");
        println!(
            "mixed slew regimes ({firings} firings): seed {seed}, free/accel/rate samples \
             {counts:?}, {} of {total} inputs at a kink (not checked)",
            kinks.len()
        );
        case.perturb = Box::new(move |f, _, i| !kinks.contains(&(f, i)));
        return case;
    }
    panic!("no seed gives a mixed-regime slew feed");
}

#[test]
fn slew_limited_mixed_regimes() {
    check_all(&with_warmup(slew_mixed_case, 2));
}

// ---------------------------------------------------------------------------------------------
// Streams

#[test]
fn take_3() {
    let sh = shape(1, 1, 2);
    let s = sig(vec![tap("in", 1, sh)], vec![tap("out", 1, sh)]);
    let f = feed(&s, 3, 22, |r, _, _| r.uniform(-1.0, 1.0));
    check_all(&[Case::new("Take(3)", KernelSpec::Take { n: 3 }, s, f)]);
}

#[test]
fn filter_pass_and_drop() {
    // First elements 0.7 (passes `> 0`), −0.6 (dropped), 0.4 (passes).
    let sh = shape(1, 1, 3);
    let s = sig(vec![tap("in", 1, sh)], vec![tap("out", 1, sh)]);
    let firsts = [0.7f32, -0.6, 0.4];
    let f = feed(&s, 3, 23, |r, _, _| r.uniform(-1.0, 1.0))
        .into_iter()
        .zip(firsts)
        .map(|(mut taps, first)| {
            taps[0][0] = first;
            taps
        })
        .collect();
    let case = Case::new(
        "Filter(Gt(0))",
        KernelSpec::Filter {
            pred: Pred::Gt(0.0),
        },
        s,
        f,
    );
    // The setup really drops the middle token.
    let mut k = case.build();
    let trace = case.run(k.as_mut(), &case.feed);
    let produced: Vec<usize> = trace.outputs.iter().map(|o| o[0].len()).collect();
    assert_eq!(produced, [3, 0, 3]);
    check_all(&[case]);
}

/// An OrderedMerge feed: before each firing, one token (key, random second element) on every
/// tap the kernel demands. Keys are at least 0.05 apart, so the merge order survives the FD step.
fn merge_case(dedup: bool, keys: [[f32; 7]; 2], firings: usize) -> Case {
    let sh = shape(1, 1, 2);
    let s = sig(
        vec![tap("a", 1, sh), tap("b", 1, sh)],
        vec![tap("out", 1, sh)],
    );
    let name = format!("OrderedMerge(dedup {dedup})");
    let spec = KernelSpec::OrderedMerge { dedup };
    let mut case = Case::new(&name, spec, s, Vec::new());
    let mut k = case.build();
    let mut rng = Lcg::new(24);
    let mut next = [0usize; 2];
    for f in 0..firings {
        let views = [InputView {
            visible: 16,
            held: 16,
            closed: false,
            drained: false,
            optional: false,
        }; 2];
        let mut d = [0u32; 2];
        k.demand(&views, &mut d);
        let taps: Taps = (0..2)
            .map(|i| {
                if d[i] == 1 {
                    let key = keys[i][next[i]];
                    next[i] += 1;
                    vec![key, rng.uniform(-1.0, 1.0)]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let blocks = case.blocks(&taps);
        let mut outs = [OutputBlock {
            values: Vec::new(),
            token_len: 2,
        }];
        k.fire(&mut FireIo {
            firing: f as u64,
            tick: 10 * f as u64,
            inputs: &blocks,
            outputs: &mut outs,
            ..Default::default()
        });
        case.feed.push(taps);
    }
    case
}

#[test]
fn ordered_merge() {
    let keys = [
        [0.1f32, 0.5, 0.9, 1.3, 1.7, 2.1, 2.5],
        [0.3, 0.4, 1.2, 1.5, 2.0, 2.3, 2.8],
    ];
    // Schedule (keys): f0 a0.1 b0.3 → 0.1; f1 a0.5 → 0.3 (b's head, consumed in f0);
    // f2 b0.4 → 0.4; f3 b1.2 → 0.5 (a's head, consumed in f1); f4 a0.9 → 0.9; f5 a1.3 → 1.2.
    let plain = merge_case(false, keys, 6);
    let consumed: Vec<[usize; 2]> = plain
        .feed
        .iter()
        .map(|t| [t[0].len() / 2, t[1].len() / 2])
        .collect();
    assert_eq!(
        consumed,
        [[1, 1], [1, 0], [0, 1], [0, 1], [1, 0], [1, 0]],
        "merge schedule"
    );
    let mut warm = merge_case(false, keys, 6).warmup(2);
    warm.name = format!("{} [warm-up 2]", warm.name);
    check_all(&[plain, merge_case(true, keys, 6), warm]);
}

#[test]
fn ordered_merge_equal_keys() {
    // Equal heads: `a`'s goes first, and with dedup one token clears both. The loss is not
    // differentiable in a tied key, so only the second elements are perturbed.
    let keys = [
        [0.1f32, 0.5, 0.9, 1.3, 1.7, 2.1, 2.5],
        [0.1, 0.5, 1.2, 1.3, 2.0, 2.3, 2.8],
    ];
    let cases = [false, true].map(|dedup| {
        let mut c = merge_case(dedup, keys, 7);
        c.name = format!("{} with ties", c.name);
        c.perturb = Box::new(|_, _, i| i % 2 == 1);
        c
    });
    // With dedup the tied `b` tokens are dropped: 7 firings emit 0.1, 0.5, 0.9, 1.2, 1.3, …
    let mut k = cases[1].build();
    let trace = cases[1].run(k.as_mut(), &cases[1].feed);
    let keys_out: Vec<f32> = trace
        .outputs
        .iter()
        .flat_map(|o| o[0].chunks(2).map(|t| t[0]))
        .collect();
    assert_eq!(keys_out[..5], [0.1, 0.5, 0.9, 1.2, 1.3]);
    check_all(&cases);
}

// ---------------------------------------------------------------------------------------------
// Kernels without an adjoint

fn assert_no_adjoint(case: &Case, kind: &str) {
    let mut k = case.build();
    assert_eq!(k.kind(), kind);
    let trace = case.run(k.as_mut(), &case.feed);
    let go: Taps64 = trace.outputs[0]
        .iter()
        .map(|v| vec![1.0; v.len()])
        .collect();
    let mut gi: Taps64 = case.feed[0].iter().map(|v| vec![0.0; v.len()]).collect();
    let mut gs = vec![0.0; k.state_len()];
    let mut gp = vec![0.0; k.params().len()];
    let inputs = case.blocks(&case.feed[0]);
    let outputs = case.out_blocks(&trace.outputs[0]);
    let err = k
        .backward(&mut BackwardIo {
            firing: 0,
            tick: 0,
            inputs: &inputs,
            outputs: &outputs,
            saved: &trace.saved[0],
            grad_outputs: &go,
            grad_inputs: &mut gi,
            grad_state: &mut gs,
            grad_params: &mut gp,
        })
        .expect_err("backward must refuse");
    assert_eq!(err.kind, kind);
    let msg = err.to_string();
    assert!(msg.contains(kind), "message {msg:?} does not name {kind}");
    assert!(!err.reason.is_empty());
}

#[test]
fn envelope_has_no_adjoint() {
    let case = unary_case(
        "Envelope",
        KernelSpec::Envelope {
            attack: 0.001,
            hold: 0.0,
            decay: 0.001,
            sustain: 0.5,
            release: 0.001,
        },
        1,
        shape(1, 2, 8),
        1,
        |r| r.uniform(-1.0, 1.0),
    );
    assert_no_adjoint(&case, "Envelope");
}

#[test]
fn actor_has_no_adjoint() {
    let s = sig(
        vec![tap("in", 2, shape(1, 1, 1))],
        vec![tap("out", 1, shape(1, 1, 1))],
    );
    let f = feed(&s, 1, 25, |r, _, _| r.uniform(-1.0, 1.0));
    let case = Case::new("Actor", KernelSpec::Actor, s, f);
    assert_no_adjoint(&case, "Actor");
}
