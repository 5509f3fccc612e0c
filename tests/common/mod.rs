//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use tapwheel::{Engine, Outcome, RunOptions, Scene};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads `scenes/<name>.ron`.
pub fn scene(name: &str) -> Scene {
    Scene::load(repo().join("scenes").join(format!("{name}.ron"))).expect("example scene loads")
}

/// Parses a scene written inline.
pub fn parse(text: &str) -> Scene {
    Scene::parse(text, "<test>", repo()).expect("test scene parses")
}

pub fn engine(scene: &Scene) -> Engine {
    Engine::from_scene(scene, RunOptions::default()).expect("scene plans")
}

/// Runs a scene to its end; returns the engine for inspection.
pub fn run(scene: &Scene) -> (Outcome, Engine) {
    let mut e = engine(scene);
    let o = e.run();
    (o, e)
}

pub fn run_until(scene: &Scene, until: u64) -> (Outcome, Engine) {
    let mut e = Engine::from_scene(
        scene,
        RunOptions {
            until: Some(until),
            ..RunOptions::default()
        },
    )
    .expect("scene plans");
    let o = e.run();
    (o, e)
}

/// `(tick, seq, first value)` of every token a probe recorded.
pub fn stream(e: &Engine, probe: &str) -> Vec<(u64, u64, f32)> {
    let p = e.probe(probe).expect("probe exists");
    (0..p.len())
        .map(|i| (p.ticks[i], p.seqs[i], p.token(i)[0]))
        .collect()
}

pub fn ticks(e: &Engine, probe: &str) -> Vec<u64> {
    e.probe(probe).expect("probe exists").ticks.clone()
}

pub fn values(e: &Engine, probe: &str) -> Vec<f32> {
    e.probe(probe).expect("probe exists").values.clone()
}

/// Runs the `tapwheel` binary; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapwheel"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh output directory under target/.
pub fn out_dir(name: &str) -> PathBuf {
    let d = repo().join("target").join("test-out").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file exists")).expect("valid JSON")
}
