//! Fields that parse (the whole SCENE.md format does) but whose behaviour this build does not
//! implement yet. Each is refused with a stable `R3xx` code naming the field — never ignored.

use super::model::*;
use crate::error::Diagnostic;

/// Every refusal the scene triggers, in scene order.
pub fn refusals(s: &SceneSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut refuse = |code: &'static str, path: String, what: &str| {
        out.push(Diagnostic::at(
            code,
            path,
            format!("{what} is not supported by this build yet"),
        ));
    };
    for (i, n) in s.nodes.iter().enumerate() {
        let p = format!("nodes[{i}]");
        if n.thermal.is_some() {
            refuse("R307", format!("{p}.thermal"), "`thermal` state");
        }
        if n.throttle.is_some() {
            refuse("R307", format!("{p}.throttle"), "`throttle`");
        }
    }
    if let Some(w) = &s.task_window
        && w.mode != WindowMode::Stall
    {
        refuse(
            "R304",
            "task_window.mode".into(),
            &format!("task window mode `{:?}` (only `Stall`)", w.mode),
        );
    }
    if matches!(s.device, DeviceSpec::Ascend { .. }) {
        refuse("R305", "device".into(), "the Ascend device");
    }
    if !s.thermal_links.is_empty() {
        refuse("R307", "thermal_links".into(), "`thermal_links`");
    }
    if s.loss.is_some() {
        refuse("R310", "loss".into(), "`loss` (the backward pass)");
    }
    out
}
