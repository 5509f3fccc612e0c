//! Engine throughput on standard workloads: the Hamming network (zero-time Kahn process network
//! with Parks growth) and a 64-node delayed chain fed by a periodic source.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tapwheel::{Engine, RunOptions, Scene};

fn chain(n: usize, tokens: u64) -> String {
    let mut nodes = vec![format!(
        r#"Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: {tokens})"#
    )];
    let mut edges = Vec::new();
    let mut prev = "src".to_string();
    for i in 0..n {
        nodes.push(format!(r#"Node(name: "g{i}", kernel: Gain(gain: 1.0))"#));
        edges.push(format!(
            r#"Edge(from: "{prev}.out", to: "g{i}.in", delay: 1)"#
        ));
        prev = format!("g{i}");
    }
    nodes.push(r#"Node(name: "out", kernel: Probe)"#.into());
    edges.push(format!(r#"Edge(from: "{prev}.out", to: "out.in")"#));
    format!(
        "Scene(version: 1, name: \"chain\", nodes: [{}], edges: [{}])",
        nodes.join(","),
        edges.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hamming = Scene::load(root.join("scenes/hamming.ron")).expect("scene");
    c.bench_function("hamming_run", |b| {
        b.iter(|| {
            let mut e = Engine::from_scene(&hamming, RunOptions::default()).expect("plan");
            black_box(e.run())
        })
    });
    let chain = Scene::parse(&chain(64, 256), "chain", root.clone()).expect("scene");
    c.bench_function("chain64_256_tokens", |b| {
        b.iter(|| {
            let mut e = Engine::from_scene(&chain, RunOptions::default()).expect("plan");
            black_box(e.run())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
