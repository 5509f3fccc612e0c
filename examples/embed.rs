//! Embedding tapwheel as a simulation kernel (SPEC §20): a scene built in code with a custom
//! kernel, fed by the host through an open input, read while it runs, snapshotted, restored and
//! re-run with another parameter.
//!
//! `cargo run --release --example embed`

use std::collections::BTreeMap;
use tapwheel::kernels::{FireIo, InputView, Kernel, KernelFactory, KernelRegistry, Signature};
use tapwheel::scene::{EdgeSpec, KernelSpec, NodeSpec};
use tapwheel::snapshot::Snapshot;
use tapwheel::{Engine, RunOptions, SceneBuilder};

/// `y = |x|`, the host's own kernel.
struct Rectify;
impl Kernel for Rectify {
    fn kind(&self) -> &str {
        "Rectify"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(1)
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let out = &mut io.outputs[0].values;
        out.extend(io.inputs[0].values.iter().map(|x| x.abs()));
    }
}

struct RectifyFactory;
impl KernelFactory for RectifyFactory {
    fn kind(&self) -> &str {
        "Rectify"
    }
    fn build(&self, _: &BTreeMap<String, f64>, _: &Signature) -> Box<dyn Kernel> {
        Box::new(Rectify)
    }
}

fn main() -> Result<(), tapwheel::Error> {
    let mut registry = KernelRegistry::new();
    registry
        .register(RectifyFactory)
        .map_err(|e| tapwheel::Error::Internal(e.to_string()))?;
    let rectify = KernelSpec::Custom {
        kind: "Rectify".into(),
        params: BTreeMap::new(),
    };
    let scene = SceneBuilder::new("embed")
        .tick_hz(1000.0)
        .node(NodeSpec::new("cv", KernelSpec::Inject))
        .node(NodeSpec::new("rect", rectify).latency(1))
        .node(NodeSpec::new("gain", KernelSpec::Gain { gain: 2.0 }))
        .node(NodeSpec::new("out", KernelSpec::Probe))
        .edge(EdgeSpec::new("cv.out", "rect.in").delay(4).capacity(8))
        .connect("rect.out", "gain.in")
        .connect("gain.out", "out.in")
        .build();
    let mut engine = Engine::from_scene_with(&scene, RunOptions::default(), &registry)?;

    // The host feeds the open input and reads the probe while the run is paused.
    for (tick, value) in [(0, -1.0), (10, 0.5), (20, -2.0)] {
        engine.inject("cv", tick, &[value])?;
    }
    engine.run_until(15);
    let out = engine.probe("out").expect("the scene has a probe");
    println!("by tick 15: ticks {:?} values {:?}", out.ticks, out.values);

    // Save the run here; go on; then restore the saved run and go on the same way.
    let saved = engine.snapshot()?.to_bytes();
    engine.run();
    let first = engine.report().output_digest;
    let mut again = Engine::restore_with(&Snapshot::from_bytes(&saved)?, &registry)?;
    again.run();
    println!(
        "restored run: ticks {:?}, same digest: {}",
        again
            .probe("out")
            .map(|p| p.ticks.clone())
            .unwrap_or_default(),
        again.report().output_digest == first
    );

    // A new run with another gain: no re-planning, the same plan digest.
    engine.set_param("gain.gain", -1.0)?;
    for (tick, value) in [(0, -1.0), (10, 0.5)] {
        engine.inject("cv", tick, &[value])?;
    }
    engine.run();
    let out = engine.probe("out").expect("the scene has a probe");
    println!("gain -1: ticks {:?} values {:?}", out.ticks, out.values);
    Ok(())
}
