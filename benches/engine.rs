//! Engine throughput on standard workloads: the Hamming network (zero-time Kahn process network
//! with Parks growth), a 64-node delayed chain fed by a periodic source, and a wide graph (many
//! parallel Biquad → Gain → Probe lanes) under `Kpn` and under `IplsAuto` with batched cohorts,
//! single- and two-threaded. After criterion's runs, the IPLS speed-up over `Kpn` on the wide
//! graph is measured again, interleaved in the same process, and printed as ratios.

use criterion::{BatchSize, Criterion, criterion_group};
use std::hint::black_box;
use tapwheel::scene::ScheduleSpec;
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

/// `lanes` stereo Biquad → Gain → Probe lanes on 64-frame blocks, fed by one oscillator that
/// fires `blocks` times.
fn wide(lanes: usize, blocks: u64) -> String {
    let mut nodes = vec![format!(
        r#"Node(name: "osc", kernel: Sine(freq_hz: 440.0, amp: 0.5, phase: 0.0), period: 64, count: {blocks})"#
    )];
    let mut edges = Vec::new();
    for i in 0..lanes {
        let cutoff = 100.0 + 50.0 * i as f64;
        nodes.push(format!(
            r#"Node(name: "lp{i}", kernel: Biquad(mode: Lowpass, cutoff_hz: {cutoff:.1}, q: 0.707, gain_db: 0.0))"#
        ));
        nodes.push(format!(r#"Node(name: "g{i}", kernel: Gain(gain: 0.5))"#));
        nodes.push(format!(r#"Node(name: "p{i}", kernel: Probe)"#));
        edges.push(format!(r#"Edge(from: "osc.out", to: "lp{i}.in")"#));
        edges.push(format!(r#"Edge(from: "lp{i}.out", to: "g{i}.in")"#));
        edges.push(format!(r#"Edge(from: "g{i}.out", to: "p{i}.in")"#));
    }
    format!(
        "Scene(version: 1, name: \"wide\", tick_hz: 48000.0, defaults: (shape: (batch: 1, channels: 2, frames: 64)), nodes: [{}], edges: [{}])",
        nodes.join(","),
        edges.join(",")
    )
}

/// The wide-graph variants: label, schedule, threads.
fn wide_variants() -> Vec<(&'static str, Option<ScheduleSpec>, Option<usize>)> {
    vec![
        ("kpn", Some(ScheduleSpec::Kpn), Some(1)),
        ("ipls_auto_t1", Some(ScheduleSpec::IplsAuto), Some(1)),
        ("ipls_auto_t2", Some(ScheduleSpec::IplsAuto), Some(2)),
    ]
}

fn wide_engine(scene: &Scene, schedule: &Option<ScheduleSpec>, threads: Option<usize>) -> Engine {
    Engine::from_scene(
        scene,
        RunOptions {
            schedule: schedule.clone(),
            threads,
            ..RunOptions::default()
        },
    )
    .expect("plan")
}

fn bench(c: &mut Criterion) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let wide_scene = Scene::parse(&wide(256, 32), "wide", root.clone()).expect("scene");
    let mut group = c.benchmark_group("wide256");
    for (label, schedule, threads) in wide_variants() {
        group.bench_function(label, |b| {
            b.iter_batched(
                || wide_engine(&wide_scene, &schedule, threads),
                |mut e| black_box(e.run()),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
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

/// Interleaved timing of the wide-graph variants in this process; prints each median and its
/// ratio to `Kpn` (the speed-up of the IPLS/cohort path).
fn wide_ratio() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scene = Scene::parse(&wide(256, 32), "wide", root).expect("scene");
    let variants = wide_variants();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..15 {
        for (k, (_, schedule, threads)) in variants.iter().enumerate() {
            let mut e = wide_engine(&scene, schedule, *threads);
            let t = std::time::Instant::now();
            black_box(e.run());
            times[k].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let base = median(&mut times[0].clone());
    println!(
        "wide256 (256 lanes × 3 nodes, 32 stereo 64-frame blocks), median of 15 interleaved runs:"
    );
    for (k, (label, _, _)) in variants.iter().enumerate() {
        let m = median(&mut times[k]);
        println!(
            "  {label:>14}: {:8.3} ms   speed-up over kpn ×{:.2}",
            m * 1e3,
            base / m
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    wide_ratio();
}
