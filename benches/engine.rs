//! Engine throughput on standard workloads: the Hamming network (zero-time Kahn process network
//! with Parks growth), a 64-node delayed chain fed by a periodic source, and a wide graph (many
//! parallel Biquad → Gain → Probe lanes) under `Kpn` and under `IplsAuto` with batched cohorts,
//! single- and two-threaded. After criterion's runs, the IPLS speed-up over `Kpn` on the wide
//! graph is measured again, interleaved in the same process, and printed as ratios.
//!
//! `cyclesim`: pto-runtime's batched GEMM (`scenes/pto/batched_gemm.ron`, 64 MatMul + 64 Add
//! tasks, one tick per AI-core cycle) on the CycleSim device (`builtin:a2a3`) and, as the
//! baseline, on the Reference device. The scene is loaded and planned once, outside the timed
//! loop; one timed iteration is engine construction (`Engine::new` on a clone of the plan, made
//! in untimed setup) plus `run()`. Reading the report is not timed. After criterion, both are
//! measured again, interleaved, and the simulated cycles per wall-clock second (goal ≥ 100 M) and
//! the CycleSim/Reference wall-time ratio (the model's overhead) are printed.
//!
//! The scenes are built by `tapwheel::bench` (one definition, shared with `tapwheel bench` and
//! `benches/workloads.rs`).
//!
//! `backward` (SPEC §17): a 64-node audio chain (`tapwheel::bench::dsp_chain`: a stereo sine in
//! 64-frame blocks through Biquad → OnePole → Gain sections, repeated, into a probe with
//! `loss: Sum`). Timed:
//! the forward run without a tape, the forward run recording the tape (`gradients: true`), and
//! the backward pass alone (`Engine::gradients()` on an engine whose taped run is untimed
//! setup). Engine construction is untimed in all three. After criterion, the three are measured
//! again, interleaved, and `backward/forward` (goal ≤ 3×) and the tape overhead are printed.

use criterion::{BatchSize, Criterion, criterion_group};
use std::hint::black_box;
use tapwheel::bench::{
    BACKWARD_BLOCKS, BACKWARD_NODES, backward_engine, backward_scene, chain, gemm_plans, wide,
};
use tapwheel::scene::ScheduleSpec;
use tapwheel::{Engine, Plan, RunOptions, Scene};

/// A taped engine whose run has ended (the backward pass's input).
fn taped_run(scene: &Scene) -> Engine {
    let mut e = backward_engine(scene, true).expect("plan");
    assert_eq!(e.run(), tapwheel::Outcome::Completed);
    e
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

fn bench_backward(c: &mut Criterion) {
    let scene = backward_scene().expect("scene");
    let mut group = c.benchmark_group("backward");
    for (label, gradients) in [("forward", false), ("forward_taped", true)] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || backward_engine(&scene, gradients).expect("plan"),
                |mut e| {
                    black_box(e.run());
                    e
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("backward_only", |b| {
        b.iter_batched(
            || taped_run(&scene),
            |mut e| {
                black_box(e.gradients().expect("gradients"));
                e
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Interleaved timing of the `backward` workload: per round, a forward run without a tape, a
/// taped forward run, and the backward pass of that taped run (engine construction untimed).
/// Prints the medians and `backward/forward`, `taped/forward` of the medians, and the median of
/// the per-round ratios.
fn backward_ratio() {
    const RUNS: usize = 41;
    let scene = backward_scene().expect("scene");
    // [forward, taped forward, backward]
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut tape = (0, 0);
    for round in 0..RUNS + 2 {
        let mut e = backward_engine(&scene, false).expect("plan");
        let t = std::time::Instant::now();
        black_box(e.run());
        let fwd = t.elapsed().as_secs_f64();
        drop(e);
        let mut e = backward_engine(&scene, true).expect("plan");
        let t = std::time::Instant::now();
        black_box(e.run());
        let taped = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let g = black_box(e.gradients().expect("gradients"));
        let bwd = t.elapsed().as_secs_f64();
        if round == 0 {
            let t = e.world().resource::<tapwheel::tape::Tape>();
            tape = (t.len(), t.bytes());
            assert!(g.grads.values().all(|v| v.is_finite()));
        }
        // Two warm-up rounds.
        if round >= 2 {
            for (v, x) in times.iter_mut().zip([fwd, taped, bwd]) {
                v.push(x);
            }
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let per_round = |k: usize| {
        let r: Vec<f64> = times[k].iter().zip(&times[0]).map(|(x, f)| x / f).collect();
        median(&r)
    };
    let [f, t, b] = [0, 1, 2].map(|k| median(&times[k]));
    println!(
        "backward ({BACKWARD_NODES}-node Biquad/OnePole/Gain chain, stereo 64-frame blocks × {BACKWARD_BLOCKS}, loss Sum; tape {} firings, {:.1} MiB), median of {RUNS} interleaved rounds:",
        tape.0,
        tape.1 as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  forward {:.3} ms, forward with tape {:.3} ms, backward {:.3} ms",
        f * 1e3,
        t * 1e3,
        b * 1e3
    );
    println!(
        "  backward/forward ×{:.2} (goal <= 3; median of per-round ratios ×{:.2}); tape overhead taped/forward ×{:.2} (per-round ×{:.2})",
        b / f,
        per_round(2),
        t / f,
        per_round(1)
    );
}

/// One timed iteration: engine construction from an (untimed) plan clone, then the run.
fn gemm_run(plan: Plan) -> Engine {
    let mut e = Engine::new(plan, RunOptions::default()).expect("engine");
    black_box(e.run());
    e
}

fn bench_cyclesim(c: &mut Criterion) {
    let mut group = c.benchmark_group("cyclesim");
    for (label, plan) in gemm_plans().expect("plans") {
        group.bench_function(format!("batched_gemm_{label}"), |b| {
            b.iter_batched(|| plan.clone(), gemm_run, BatchSize::SmallInput)
        });
    }
    group.finish();
}

/// Interleaved timing of the batched GEMM on CycleSim and Reference (construction + run, best
/// of `RUNS`); prints the simulated cycles per wall-clock second and the overhead ratio.
fn cyclesim_rate() {
    const RUNS: usize = 200;
    let plans = gemm_plans().expect("plans");
    let mut best = [f64::INFINITY; 2];
    let mut best_run_only = [f64::INFINITY; 2];
    let mut cycles = 0u64;
    for _ in 0..RUNS {
        for (k, (label, plan)) in plans.iter().enumerate() {
            let p = plan.clone();
            let t = std::time::Instant::now();
            let mut e = Engine::new(p, RunOptions::default()).expect("engine");
            let built = t.elapsed().as_secs_f64();
            let outcome = black_box(e.run());
            let total = t.elapsed().as_secs_f64();
            best[k] = best[k].min(total);
            best_run_only[k] = best_run_only[k].min(total - built);
            if *label == "cyclesim" && cycles == 0 {
                assert_eq!(outcome, tapwheel::Outcome::Completed);
                cycles = e.report().json["device"]["cycles"]
                    .as_u64()
                    .expect("device.cycles");
            }
        }
    }
    let rate = |secs: f64| cycles as f64 / secs / 1e6;
    println!(
        "cyclesim batched_gemm: {cycles} simulated cycles in {:.1} µs = {:.1} M cycles/s (goal >= 100 M)",
        best[0] * 1e6,
        rate(best[0])
    );
    println!(
        "  (best of {RUNS} interleaved runs, engine construction + run; run alone {:.1} µs = {:.1} M cycles/s)",
        best_run_only[0] * 1e6,
        rate(best_run_only[0])
    );
    println!(
        "  reference batched_gemm: {:.1} µs (run alone {:.1} µs); CycleSim/Reference wall time ×{:.2} (run alone ×{:.2})",
        best[1] * 1e6,
        best_run_only[1] * 1e6,
        best[0] / best[1],
        best_run_only[0] / best_run_only[1]
    );
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

criterion_group!(benches, bench, bench_cyclesim, bench_backward);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // The in-process ratios follow the filter too: `-- cyclesim` runs only the CycleSim ones.
    let filter = tapwheel::bench::criterion_filter(std::env::args().skip(1));
    let wanted = |names: &[&str]| {
        filter
            .as_deref()
            .is_none_or(|f| names.iter().any(|n| n.contains(f) || f.contains(n)))
    };
    if wanted(&["wide256"]) {
        wide_ratio();
    }
    if wanted(&["cyclesim", "batched_gemm"]) {
        cyclesim_rate();
    }
    if wanted(&["backward", "forward_taped"]) {
        backward_ratio();
    }
}
