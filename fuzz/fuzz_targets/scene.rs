//! Any bytes as a scene: parse, plan, and — when valid — run a bounded number of steps. Every
//! outcome is fine except a panic, a hang or an abort (stack or memory exhaustion).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapwheel::{Engine, RunOptions, Scene};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scene) = Scene::parse(text, "<fuzz>", "fuzz".into()) else {
        return;
    };
    // Bounded runs: a valid scene may legitimately run for a long time.
    let opts = RunOptions {
        max_steps: Some(2_000),
        max_deltas: 10_000,
        max_arena_bytes: 64 << 20,
        threads: Some(1),
        ..Default::default()
    };
    let Ok(mut engine) = Engine::from_scene(&scene, opts) else {
        return;
    };
    engine.run();
    let _ = engine.report();
    // The scene writer must read back to the same scene.
    let again = Scene::parse(&scene.to_ron(), "<fuzz>", "fuzz".into()).expect("to_ron re-parses");
    assert_eq!(again.spec, scene.spec);
});
