//! Tracy instrumentation (cargo feature `tracy`). With the feature, every stage of a step is a
//! span named after its system, every cohort call a span named after its kernel kind, every
//! step ends with a frame mark, and the arena's occupied bytes and every thermal node's
//! temperature are plotted once per step. Without it nothing here is compiled: the macro
//! expands to nothing and the functions do not exist.
//!
//! The library never starts the Tracy client: the `tapwheel` binary does (built with
//! `--features tracy`), an embedding tool does its own. Spans and plots issued while no client
//! is running are skipped, never a panic.

/// Opens a Tracy span for the rest of the enclosing scope (`tracy` feature; nothing otherwise).
macro_rules! profile_span {
    ($name:expr) => {
        #[cfg(feature = "tracy")]
        let _tracy_span = $crate::profile::span($name);
    };
}
pub(crate) use profile_span;

/// A span named `name`, if a Tracy client runs.
#[cfg(feature = "tracy")]
pub fn span(name: &str) -> Option<tracy_client::Span> {
    tracy_client::Client::running()
        .map(|c| c.span_alloc(Some(name), "tapwheel", file!(), line!(), 0))
}

/// Ends a frame (one simulation step).
#[cfg(feature = "tracy")]
pub fn frame_mark() {
    if let Some(c) = tracy_client::Client::running() {
        c.frame_mark();
    }
}

/// Plots `value` on the plot `name` (names are interned once per distinct name).
#[cfg(feature = "tracy")]
pub fn plot(name: &str, value: f64) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<String, tracy_client::PlotName>>> = OnceLock::new();
    let Some(c) = tracy_client::Client::running() else {
        return;
    };
    let names = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
    let Ok(mut names) = names.lock() else {
        return;
    };
    let plot = *names
        .entry(name.to_string())
        .or_insert_with(|| tracy_client::PlotName::new_leak(name.to_string()));
    c.plot(plot, value);
}
