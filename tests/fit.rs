//! Fitting by gradient descent (§17, `tapwheel fit`): the gradients are useful — a Biquad's
//! cutoff and a gain recover the values that produced the target response.

mod common;
use common::*;

#[test]
fn fit_recovers_the_biquad_cutoff_and_gain_of_the_target() {
    let scene = repo().join("scenes/fit_biquad.ron");
    let (code, stdout, stderr) = cli(&[
        "fit",
        scene.to_str().unwrap(),
        "--steps",
        "200",
        "--lr",
        "0.05",
        "--fit",
        "lp.cutoff_hz",
        "--fit",
        "g.gain",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The target was recorded with cutoff 1200 Hz and gain 0.7; the fit starts at 500 Hz, 1.0.
    let cutoff = j["params"]["lp.cutoff_hz"].as_f64().unwrap();
    let gain = j["params"]["g.gain"].as_f64().unwrap();
    assert!((cutoff - 1200.0).abs() < 0.5, "{cutoff}");
    assert!((gain - 0.7).abs() < 1e-4, "{gain}");
    let loss: Vec<f64> = j["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(loss.len(), 201);
    // The starting loss is the forward run's, exactly as `run` reports it.
    let dir = out_dir("fit_start");
    let (c, out, _) = cli(&[
        "run",
        scene.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(c, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["loss"].as_f64(), Some(loss[0]));
    assert!(loss[200] < loss[0] * 1e-6, "{} → {}", loss[0], loss[200]);
}

#[test]
fn fit_from_the_library_reports_every_step() {
    let scene = tapwheel::Scene::load(repo().join("scenes/fit_biquad.ron")).unwrap();
    let opts = tapwheel::fit::FitOptions {
        steps: 20,
        lr: 0.05,
        fit: vec!["lp.cutoff_hz".into(), "g.gain".into()],
        run: tapwheel::RunOptions::default(),
    };
    let mut seen = Vec::new();
    let mut first_moves = Vec::new();
    let r = tapwheel::fit::fit(&scene, &opts, |s| {
        seen.push((s.step, s.loss));
        if s.step == 1 {
            first_moves = vec![s.params["lp.cutoff_hz"], s.params["g.gain"]];
        }
    })
    .unwrap();
    assert_eq!(seen, r.history);
    assert_eq!(seen.len(), 21);
    assert_eq!(seen[0].0, 0);
    // Adam's first step is −lr·start·g/(|g| + ε), ε = 1e-8: about 25 Hz up (dL/dcutoff < 0)
    // and 0.05 down (dL/dgain > 0).
    let g0 = tapwheel::tape::gradients(&scene, tapwheel::RunOptions::default()).unwrap();
    let step = |start: f64, g: f64| start - 0.05 * start * g / (g.abs() + 1e-8);
    let (gc, gg) = (g0.grads["lp.cutoff_hz"], g0.grads["g.gain"]);
    assert!(gc < 0.0 && gg > 0.0, "{gc} {gg}");
    assert!(
        (first_moves[0] - step(500.0, gc)).abs() < 1e-9,
        "{first_moves:?}"
    );
    assert!(
        (first_moves[1] - step(1.0, gg)).abs() < 1e-12,
        "{first_moves:?}"
    );
    assert!((first_moves[0] - 525.0).abs() < 0.1 && (first_moves[1] - 0.95).abs() < 1e-5);
    assert!(r.history[1].1 < r.history[0].1);
    // A bad learning rate is a located error.
    let bad = tapwheel::fit::FitOptions { lr: -1.0, ..opts };
    let err = tapwheel::fit::fit(&scene, &bad, |_| {}).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--lr"), "{err}");
}
