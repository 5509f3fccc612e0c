//! Outside-oracle goldens for the DSP, oscillator, noise, integrator and tile kernels
//! (SPEC §7, §15). The scenes and expected streams under `tests/golden/dsp/` are written by
//! `tools/gen_dsp_goldens.py` with numpy/scipy in float64, independently of the Rust kernels; see
//! that script for the maths and the decisions behind each case.
//!
//! Each case loads `<case>.ron`, runs it to its end (it must end `completed`: every source is
//! finite), and compares every probe it names with `<case>.<probe>.csv`: the token shape, the
//! number of tokens and values, the sequence numbers, and every value within
//! `tol · max(1, |want|)` (1e-4 unless stated: f32 kernels against a float64 oracle).
//! Run with `-- --nocapture` to see the worst error of every probe.

mod common;
use common::*;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

const TOL: f64 = 1e-4;
/// The integrals stay below 0.01 here, where 1e-4 would let an off-by-one-sample integral
/// (a difference of h·y ≤ 3e-5 per sample) pass; f32 accumulation over 512 samples stays
/// far below 1e-6.
const INTEG_TOL: f64 = 1e-6;

struct Expected {
    shape: (u32, u32, u32),
    tokens: usize,
    values: Vec<f64>,
}

fn golden_dir() -> std::path::PathBuf {
    repo().join("tests").join("golden").join("dsp")
}

/// Reads `<case>.<probe>.csv`: `# shape: b c f` and `# tokens: n` header lines, other `#`
/// comments, then one value per line.
fn expected(case: &str, probe: &str) -> Expected {
    let path = golden_dir().join(format!("{case}.{probe}.csv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut shape = None;
    let mut tokens = None;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim();
            if let Some(s) = c.strip_prefix("shape:") {
                let d: Vec<u32> = s.split_whitespace().map(|v| v.parse().unwrap()).collect();
                assert_eq!(d.len(), 3, "{}:{}: bad shape line", path.display(), i + 1);
                shape = Some((d[0], d[1], d[2]));
            } else if let Some(s) = c.strip_prefix("tokens:") {
                tokens = Some(s.trim().parse().unwrap());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        values.push(
            line.parse::<f64>()
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)),
        );
    }
    let shape = shape.unwrap_or_else(|| panic!("{} has no `# shape:` line", path.display()));
    let tokens = tokens.unwrap_or_else(|| panic!("{} has no `# tokens:` line", path.display()));
    let len = (shape.0 * shape.1 * shape.2) as usize;
    assert_eq!(
        values.len(),
        tokens * len,
        "{}: value count",
        path.display()
    );
    Expected {
        shape,
        tokens,
        values,
    }
}

/// Runs `<case>.ron` and checks every listed probe against its golden within `tol`.
fn check(case: &str, probes: &[&str], tol: f64) {
    let with_tol: Vec<(&str, f64)> = probes.iter().map(|&p| (p, tol)).collect();
    check_each(case, &with_tol);
}

/// Like [`check`], with a tolerance per probe.
fn check_each(case: &str, probes: &[(&str, f64)]) {
    let path = golden_dir().join(format!("{case}.ron"));
    let scene = Scene::load(&path).unwrap_or_else(|e| panic!("{case}: scene does not load: {e}"));
    let mut e = Engine::from_scene(&scene, RunOptions::default())
        .unwrap_or_else(|e| panic!("{case}: scene does not plan: {e}"));
    let outcome = e.run();
    assert_eq!(outcome, Outcome::Completed, "{case}: outcome");
    for &(probe, tol) in probes {
        let want = expected(case, probe);
        let p = e
            .probe(probe)
            .unwrap_or_else(|| panic!("{case}: no probe `{probe}`"));
        assert_eq!(
            (p.batch, p.channels, p.frames),
            want.shape,
            "{case}.{probe}: probe token shape (batch, channels, frames)"
        );
        assert_eq!(p.len(), want.tokens, "{case}.{probe}: tokens recorded");
        assert_eq!(
            p.values.len(),
            want.values.len(),
            "{case}.{probe}: values recorded"
        );
        assert_eq!(
            p.seqs,
            (0..want.tokens as u64).collect::<Vec<_>>(),
            "{case}.{probe}: sequence numbers"
        );
        let len = (want.shape.0 * want.shape.1 * want.shape.2) as usize;
        let mut bad = Vec::new();
        let mut worst = 0f64;
        for (i, (&got, &w)) in p.values.iter().zip(&want.values).enumerate() {
            let err = (f64::from(got) - w).abs();
            let scaled = err / w.abs().max(1.0);
            if scaled > tol || scaled.is_nan() {
                bad.push((i, got, w, err));
            }
            worst = worst.max(scaled);
        }
        eprintln!("{case}.{probe}: worst scaled error {worst:.3e} (tolerance {tol:e})");
        if !bad.is_empty() {
            let first: Vec<String> = bad
                .iter()
                .take(8)
                .map(|(i, got, w, err)| {
                    format!(
                        "  [{i}] token {} element {}: got {got:e}, want {w:e}, |err| {err:.3e}",
                        i / len,
                        i % len
                    )
                })
                .collect();
            panic!(
                "{case}.{probe}: {} of {} values off by more than {tol:e} (worst scaled error {worst:.3e}); first:\n{}",
                bad.len(),
                want.values.len(),
                first.join("\n")
            );
        }
    }
}

// ---- OnePole: frames 64, frames 1, two channels

#[test]
fn onepole() {
    check("onepole", &["out"], TOL);
}

#[test]
fn onepole_frames1() {
    check("onepole_frames1", &["out"], TOL);
}

#[test]
fn onepole_stereo() {
    check("onepole_stereo", &["out"], TOL);
}

// ---- Biquad: the seven RBJ modes at 1 kHz, a resonant lowpass, frames 1, batch 2 × channels 2

#[test]
fn biquad_lowpass() {
    check("biquad_lowpass", &["out"], TOL);
}

#[test]
fn biquad_highpass() {
    check("biquad_highpass", &["out"], TOL);
}

#[test]
fn biquad_bandpass() {
    check("biquad_bandpass", &["out"], TOL);
}

#[test]
fn biquad_notch() {
    check("biquad_notch", &["out"], TOL);
}

#[test]
fn biquad_peak() {
    check("biquad_peak", &["out"], TOL);
}

#[test]
fn biquad_lowshelf() {
    check("biquad_lowshelf", &["out"], TOL);
}

#[test]
fn biquad_highshelf() {
    check("biquad_highshelf", &["out"], TOL);
}

#[test]
fn biquad_lowpass_5k_q2() {
    check("biquad_lowpass_5k_q2", &["out"], TOL);
}

#[test]
fn biquad_lowpass_frames1() {
    check("biquad_lowpass_frames1", &["out"], TOL);
}

#[test]
fn biquad_peak_b2c2() {
    check("biquad_peak_b2c2", &["out"], TOL);
}

// ---- FIR and multirate

#[test]
fn fir() {
    check("fir", &["out"], TOL);
}

#[test]
fn fir_decimate4() {
    check("fir_decimate4", &["out"], TOL);
}

#[test]
fn interpolate3_fir() {
    check("interpolate3_fir", &["out"], TOL);
}

// ---- FFT band split / merge

#[test]
fn bandsplit3() {
    check("bandsplit3", &["out", "b0", "b2"], TOL);
}

#[test]
fn bandsplit4_merge_reconstructs_the_input() {
    check("bandsplit4_merge", &["out"], 1e-5);
}

// ---- oscillators and noise

#[test]
fn sine() {
    check("sine", &["out"], TOL);
}

#[test]
fn saw() {
    check("saw", &["out"], TOL);
}

#[test]
fn square() {
    check("square", &["out"], TOL);
}

#[test]
fn noise() {
    // Every draw is exact in f32 (24-bit u, amp 0.5), so the golden holds exactly.
    check("noise", &["out"], 1e-7);
}

// ---- SlewIntegrator (§15)

#[test]
fn slew_limited() {
    check_each("slew_limited", &[("out", TOL), ("integ", INTEG_TOL)]);
}

#[test]
fn slew_rate_limited() {
    check_each("slew_rate_limited", &[("out", TOL), ("integ", INTEG_TOL)]);
}

#[test]
fn slew_ideal() {
    check_each("slew_ideal", &[("out", TOL), ("integ", INTEG_TOL)]);
}

// ---- tiles

#[test]
fn matmul() {
    check("matmul", &["out"], TOL);
}

#[test]
fn softmax_axis0() {
    check("softmax_axis0", &["out"], TOL);
}

#[test]
fn softmax_axis1() {
    check("softmax_axis1", &["out"], TOL);
}

#[test]
fn rowsum() {
    check("rowsum", &["out"], TOL);
}

#[test]
fn rowmax() {
    check("rowmax", &["out"], TOL);
}

#[test]
fn transpose() {
    check("transpose", &["out"], TOL);
}

/// Every scene in the golden folder has a test above (no orphaned or forgotten cases).
#[test]
fn every_golden_scene_is_checked() {
    let src = std::fs::read_to_string(repo().join("tests").join("dsp_goldens.rs")).unwrap();
    let mut scenes: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|d| {
            let name = d.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".ron").map(str::to_string)
        })
        .collect();
    scenes.sort();
    assert!(scenes.len() >= 30, "golden scenes: {scenes:?}");
    for s in scenes {
        assert!(
            src.contains(&format!("check(\"{s}\"")) || src.contains(&format!("check_each(\"{s}\"")),
            "tests/golden/dsp/{s}.ron has no check in tests/dsp_goldens.rs"
        );
    }
}
