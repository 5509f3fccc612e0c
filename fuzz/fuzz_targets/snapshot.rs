//! Any bytes as a snapshot file, and any bytes as a snapshot *body* under a valid header (so
//! the fuzzer gets past the digest to the JSON, the scene and the journal replay).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapwheel::Engine;
use tapwheel::snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION, Snapshot};

fuzz_target!(|data: &[u8]| {
    let _ = Snapshot::from_bytes(data);
    let header = format!(
        "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION} {}\n",
        tapwheel::snapshot::body_digest(data)
    );
    let mut file = header.into_bytes();
    file.extend_from_slice(data);
    let Ok(snap) = Snapshot::from_bytes(&file) else {
        return;
    };
    // Replay is as long as the saved run; keep fuzz inputs short.
    let opts = snap.run_options();
    if snap.steps() > 5_000 || opts.max_deltas > 10_000 || opts.max_arena_bytes > 64 << 20 {
        return;
    }
    if let Ok(mut engine) = Engine::restore(&snap) {
        engine.set_until(engine.next_instant().tick.saturating_add(100)).ok();
        engine.run();
    }
});
