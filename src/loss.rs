//! The scalar loss a backward pass differentiates (SCENE.md `loss`, SPEC §17).
//!
//! - `Sum(probe)`: `L = Σ v` over every element the probe recorded; `dL/dv = 1`.
//! - `Mse(probe, target)`: `L = (1/N)·Σ (v − t)²` over the `N` recorded elements against the
//!   target's `N` values, in order; `dL/dv = 2(v − t)/N`. The target is a CSV under the scene's
//!   folder: a probe CSV as `tapwheel run` writes it (its `value` column, read as the `f32`
//!   values it was written from, so a run's own recording is matched exactly), or one number per
//!   row (`f64`; an optional non-numeric header is skipped).
//!
//! ```
//! use tapwheel::loss::{Loss, LossKind};
//! let sum = Loss { probe: 0, kind: LossKind::Sum };
//! let (l, g) = sum.evaluate(&[1.0, 2.0, 3.5]).unwrap();
//! assert_eq!((l, g), (6.5, vec![1.0, 1.0, 1.0]));
//! let mse = Loss { probe: 0, kind: LossKind::Mse { target: vec![1.0, 1.0].into() } };
//! let (l, g) = mse.evaluate(&[2.0, 0.0]).unwrap();
//! assert_eq!((l, g), (1.0, vec![1.0, -1.0])); // ((1)² + (−1)²)/2; 2·(±1)/2
//! ```

use std::sync::Arc;

/// The loss as planned: the probe node it reads and its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    /// The probe node (canonical index).
    pub probe: usize,
    pub kind: LossKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LossKind {
    Sum,
    Mse { target: Arc<Vec<f64>> },
}

/// The probe recorded a different number of values than the target holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the probe recorded {recorded} values but the target holds {target}")]
pub struct LengthMismatch {
    pub recorded: usize,
    pub target: usize,
}

impl Loss {
    /// The loss of the probe's recorded `values` and `dL/d(value)` for each.
    pub fn evaluate(&self, values: &[f64]) -> Result<(f64, Vec<f64>), LengthMismatch> {
        match &self.kind {
            LossKind::Sum => Ok((values.iter().sum(), vec![1.0; values.len()])),
            LossKind::Mse { target } => {
                if target.len() != values.len() {
                    return Err(LengthMismatch {
                        recorded: values.len(),
                        target: target.len(),
                    });
                }
                let n = values.len().max(1) as f64;
                let loss = values
                    .iter()
                    .zip(target.iter())
                    .map(|(v, t)| (v - t) * (v - t))
                    .sum::<f64>()
                    / n;
                let grad = values
                    .iter()
                    .zip(target.iter())
                    .map(|(v, t)| 2.0 * (v - t) / n)
                    .collect();
                Ok((loss, grad))
            }
        }
    }
}

/// Reads a target CSV: the `value` column of a probe CSV, or the one column of a plain list.
///
/// Probe CSVs hold `f32` values in their shortest round-trip form (SPEC §19), so a `value`
/// column is parsed as `f32` and widened: the target is then exactly what the run recorded
/// (parsed as `f64`, `0.1` would sit half an `f32` ulp away from the recorded `f32(0.1)`). A
/// plain list keeps `f64` precision.
///
/// ```
/// use tapwheel::loss::parse_target;
/// assert_eq!(parse_target("tick,seq,batch,channel,frame,value\n0,0,0,0,0,1.5\n1,1,0,0,0,-2\n").unwrap(), vec![1.5, -2.0]);
/// assert_eq!(parse_target("value\n0.1\n").unwrap(), vec![f64::from(0.1f32)]);
/// assert_eq!(parse_target("0.1\n").unwrap(), vec![0.1]);
/// assert_eq!(parse_target("target\n0.25\n0.5\n").unwrap(), vec![0.25, 0.5]);
/// assert_eq!(parse_target("1\n2\n").unwrap(), vec![1.0, 2.0]);
/// assert!(parse_target("a,b\n1,2\n").is_err());
/// ```
pub fn parse_target(text: &str) -> Result<Vec<f64>, String> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut column: Option<usize> = None;
    // A `value` column is a probe CSV's: f32 values.
    let mut probe_csv = false;
    let mut out = Vec::new();
    for (line, rec) in rows.records().enumerate() {
        let rec = rec.map_err(|e| format!("line {}: {e}", line + 1))?;
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let col = match column {
            Some(c) => c,
            None => {
                let numeric = rec.iter().all(|f| f.parse::<f64>().is_ok());
                if numeric {
                    if rec.len() != 1 {
                        return Err(format!(
                            "line {}: {} columns; give one number per row or a probe CSV with a `value` column",
                            line + 1,
                            rec.len()
                        ));
                    }
                    column = Some(0);
                    0
                } else {
                    let c = match rec.iter().position(|f| f == "value") {
                        Some(c) => {
                            probe_csv = true;
                            c
                        }
                        None if rec.len() == 1 => 0,
                        None => {
                            return Err(format!(
                                "line {}: a header without a `value` column",
                                line + 1
                            ));
                        }
                    };
                    column = Some(c);
                    continue;
                }
            }
        };
        let field = rec.get(col).unwrap_or("");
        let v: f64 = if probe_csv {
            field.parse::<f32>().map(f64::from)
        } else {
            field.parse::<f64>()
        }
        .map_err(|_| format!("line {}: `{field}` is not a number", line + 1))?;
        if !v.is_finite() {
            return Err(format!("line {}: `{field}` is not finite", line + 1));
        }
        out.push(v);
    }
    Ok(out)
}
