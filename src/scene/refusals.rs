//! Fields that parse (the whole SCENE.md format does) but whose behaviour this build does not
//! implement yet. Each is refused with a stable `R3xx` code naming the field — never ignored.

use super::model::*;
use crate::error::Diagnostic;

/// Every refusal the scene triggers, in scene order.
pub fn refusals(s: &SceneSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let refuse = |out: &mut Vec<Diagnostic>, code: &'static str, path: String, what: &str| {
        out.push(Diagnostic::at(
            code,
            path,
            format!("{what} is not supported by this build yet"),
        ));
    };
    if let Some(w) = &s.task_window
        && w.mode != WindowMode::Stall
    {
        refuse(
            &mut out,
            "R304",
            "task_window.mode".into(),
            &format!("task window mode `{:?}` (only `Stall`)", w.mode),
        );
    }
    match &s.device {
        // The bridge checks the feature, the library, its symbols and the device (R360–R364).
        DeviceSpec::Ascend { library, device_id } => {
            match crate::device::ascend::check_ascend(std::path::Path::new(library), *device_id) {
                Err(refused) => out.push(refused.diagnostic_at("device")),
                Ok(()) => out.push(Diagnostic::at(
                    "R305",
                    "device",
                    format!(
                        "Ascend device {device_id} is available through `{library}`, but running a scene on it (from its package, §16) is not supported by this build yet"
                    ),
                )),
            }
        }
        DeviceSpec::Reference | DeviceSpec::CycleSim { .. } => {}
    }
    out
}
