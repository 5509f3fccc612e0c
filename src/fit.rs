//! Fitting kernel parameters to a scene's loss by gradient descent (`tapwheel fit`, §17): each
//! step runs the scene forward with a tape, walks it backward, and moves the chosen parameters
//! with Adam (Kingma & Ba). The learning rate is relative: each step moves a parameter by about
//! `lr` times its starting magnitude (1 for a parameter starting at 0), so a cutoff in hertz and
//! a linear gain move at comparable rates under one `lr`.
//!
//! ```
//! use tapwheel::{RunOptions, Scene};
//! use tapwheel::fit::{fit, FitOptions};
//! // out = g·1 for three firings; loss = Σ out = 3g; descending it lowers g.
//! let scene = Scene::parse(r#"Scene(version: 1, name: "f",
//!     nodes: [Node(name: "src", kernel: Const(value: 1.0), period: Some(1), count: Some(3)),
//!             Node(name: "g", kernel: Gain(gain: 2.0)), Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")],
//!     loss: Some(Sum(probe: "out")))"#, "f.ron", ".".into()).unwrap();
//! let opts = FitOptions { steps: 5, lr: 0.1, fit: vec!["g.gain".into()], run: RunOptions::default() };
//! let r = fit(&scene, &opts, |_| {}).unwrap();
//! assert_eq!(r.history.len(), 6);
//! assert_eq!(r.history[0].1, 6.0);
//! assert!(r.params["g.gain"] < 2.0 - 0.4); // Adam's first steps move by about lr·|2.0| each
//! ```

use crate::error::{Diagnostic, Error, Result};
use crate::{Engine, RunOptions, Scene};
use std::collections::BTreeMap;

/// What to fit and how.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Descent steps.
    pub steps: u32,
    /// Adam's learning rate, relative to each parameter's starting magnitude.
    pub lr: f64,
    /// Parameters to fit (`node.param`); empty: every parameter whose gradient is non-zero at
    /// the start.
    pub fit: Vec<String>,
    /// Options of every run (`params` holds the starting values over the scene's).
    pub run: RunOptions,
}

/// One step's state, for progress output.
#[derive(Debug, Clone)]
pub struct FitStep {
    pub step: u32,
    pub loss: f64,
    pub params: BTreeMap<String, f64>,
}

/// The outcome of a fit.
#[derive(Debug, Clone)]
pub struct FitResult {
    /// `(step, loss)` before each step and after the last (`steps + 1` entries).
    pub history: Vec<(u32, f64)>,
    /// The fitted parameters.
    pub params: BTreeMap<String, f64>,
}

/// Runs the scene forward and backward with `params` over its own values.
fn evaluate(
    scene: &Scene,
    run: &RunOptions,
    params: &BTreeMap<String, f64>,
) -> Result<(crate::tape::Gradients, BTreeMap<String, f64>)> {
    let mut opts = run.clone();
    opts.gradients = true;
    opts.params
        .extend(params.iter().map(|(k, v)| (k.clone(), *v)));
    let mut engine = Engine::from_scene(scene, opts)?;
    engine.run();
    let g = engine.gradients()?;
    Ok((g, engine.params()))
}

/// Fits the parameters; `on_step` sees every step before it moves.
pub fn fit(
    scene: &Scene,
    opts: &FitOptions,
    mut on_step: impl FnMut(&FitStep),
) -> Result<FitResult> {
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        return Err(Error::invalid(Diagnostic {
            code: "E106",
            message: format!("--lr must be finite and positive, got {}", opts.lr),
            location: crate::error::Location::Argument("--lr".into()),
        }));
    }
    let (first, values) = evaluate(scene, &opts.run, &BTreeMap::new())?;
    let names: Vec<String> = if opts.fit.is_empty() {
        first
            .grads
            .iter()
            .filter(|(_, g)| **g != 0.0)
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        opts.fit.clone()
    };
    let mut params = BTreeMap::new();
    for n in &names {
        let Some(&v) = values.get(n) else {
            return Err(Error::invalid(Diagnostic {
                code: "E455",
                message: format!("`{n}` is not a differentiable parameter of the scene"),
                location: crate::error::Location::Argument("--fit".into()),
            }));
        };
        params.insert(n.clone(), v);
    }
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let scale: Vec<f64> = names
        .iter()
        .map(|n| match params.get(n) {
            Some(&v) if v != 0.0 => v.abs(),
            _ => 1.0,
        })
        .collect();
    let mut m = vec![0.0; names.len()];
    let mut v = vec![0.0; names.len()];
    let mut history = Vec::with_capacity(opts.steps as usize + 1);
    let mut grads = first;
    for step in 0..=opts.steps {
        if step > 0 {
            grads = evaluate(scene, &opts.run, &params)?.0;
        }
        history.push((step, grads.loss));
        on_step(&FitStep {
            step,
            loss: grads.loss,
            params: params.clone(),
        });
        if step == opts.steps {
            break;
        }
        let t = f64::from(step + 1);
        for (k, name) in names.iter().enumerate() {
            let g = grads.grads.get(name).copied().unwrap_or(0.0);
            m[k] = b1 * m[k] + (1.0 - b1) * g;
            v[k] = b2 * v[k] + (1.0 - b2) * g * g;
            let mh = m[k] / (1.0 - b1.powf(t));
            let vh = v[k] / (1.0 - b2.powf(t));
            if let Some(p) = params.get_mut(name) {
                *p -= opts.lr * scale[k] * mh / (vh.sqrt() + eps);
            }
        }
    }
    Ok(FitResult { history, params })
}
