//! The standard workloads of issue 12 under criterion, one benchmark (group) per workload, built
//! from `tapwheel::bench` (the same scenes and baselines `tapwheel bench` runs):
//!
//! - `firing_overhead/engine`: `busy_chain(1000)` (every node fires every tick), 100 ticks.
//! - `audio_chain/{engine,hand_fused,fundsp}`: 64 low-pass Biquads, stereo, 64 blocks of 64
//!   frames: the engine, the hand-fused loop (`bench::HandChain`) and the same chain built with
//!   fundsp (`stacki::<U2>(pipei::<U64>(biquad(…)))` with the engine's coefficients, direct form
//!   I, processed 64 frames per `process` call), each including its sine source.
//! - `event_expiry/engine`: 1000 delayed channels, 100 tokens each.
//! - `cyclesim/{cyclesim,reference}`: the batched GEMM, engine construction + run.
//! - `backward/{forward,backward_only}`: `dsp_chain(64, 32)`.
//! - `scale/load_plan_spawn_10k`: parse + plan + spawn of 10 k nodes (the harness measures 100 k
//!   and 1 M; criterion's repetitions of those would take minutes).
//!
//! After criterion, the three audio variants are timed again, interleaved in this process, and
//! both ratios (engine/hand, engine/fundsp) are printed; then the other workloads' same-run
//! figures as `tapwheel bench` prints them. A positional filter (`cargo bench --bench workloads
//! -- audio`) applies to both parts.

use criterion::{BatchSize, Criterion, criterion_group};
use fundsp::prelude32::{AudioNode, BufferVec, U2, U64, biquad, pipei, stacki};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tapwheel::bench::{
    self, AUDIO_FRAMES, AUDIO_HZ, AUDIO_ROWS, AUDIO_SECTIONS, AudioChain, HandChain,
};
use tapwheel::{Engine, RunOptions, Scene};

/// Blocks of the criterion audio benchmarks.
const BLOCKS: u64 = 64;

/// The audio chain in fundsp: two channels, each 64 biquads in series with the engine's f32
/// coefficients, fed the same 440 Hz sine; `run` appends each 64-frame output block (left row,
/// then right row, as a token) to `out`.
struct FundspChain<N: AudioNode> {
    node: N,
    input: BufferVec,
    output: BufferVec,
    next_frame: u64,
}

fn fundsp_chain() -> FundspChain<impl AudioNode> {
    let coef: Vec<[f32; 5]> = HandChain::new(AUDIO_SECTIONS).coefficients().to_vec();
    let node = stacki::<U2, _, _>(|_| {
        pipei::<U64, _, _>(|i| {
            let c = coef[i as usize];
            // fundsp's order is (a1, a2, b0, b1, b2), normalised, y = b·x − a·y as ours.
            biquad(c[3], c[4], c[0], c[1], c[2])
        })
    });
    assert_eq!(
        AUDIO_SECTIONS, 64,
        "the fundsp chain is typed for 64 sections"
    );
    FundspChain {
        node: node.0,
        input: BufferVec::new(AUDIO_ROWS),
        output: BufferVec::new(AUDIO_ROWS),
        next_frame: 0,
    }
}

impl<N: AudioNode> FundspChain<N> {
    fn run(&mut self, blocks: u64, out: &mut Vec<f32>) {
        for _ in 0..blocks {
            for f in 0..AUDIO_FRAMES {
                let x = 440.0 * (self.next_frame + f as u64) as f64 / AUDIO_HZ;
                let v = (0.5 * (std::f64::consts::TAU * (x - x.floor())).sin()) as f32;
                for ch in 0..AUDIO_ROWS {
                    self.input.set_f32(ch, f, v);
                }
            }
            self.next_frame += AUDIO_FRAMES as u64;
            self.node.process(
                AUDIO_FRAMES,
                &self.input.buffer_ref(),
                &mut self.output.buffer_mut(),
            );
            for ch in 0..AUDIO_ROWS {
                out.extend_from_slice(&self.output.channel_f32(ch)[..AUDIO_FRAMES]);
            }
        }
    }
}

/// Wall seconds of the fundsp chain over `blocks` blocks (construction and the output buffer
/// untimed).
fn time_fundsp(blocks: u64) -> f64 {
    let mut c = fundsp_chain();
    let mut out = Vec::with_capacity(blocks as usize * AUDIO_ROWS * AUDIO_FRAMES);
    let t = Instant::now();
    c.run(blocks, &mut out);
    black_box(&out);
    t.elapsed().as_secs_f64()
}

fn bench_workloads(c: &mut Criterion) {
    // firing_overhead
    let busy =
        Scene::parse(&bench::busy_chain(bench::FIRING_NODES), "busy", ".".into()).expect("scene");
    let busy_opts = || RunOptions {
        until: Some(99),
        ..RunOptions::default()
    };
    let mut g = c.benchmark_group("firing_overhead");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("engine", |b| {
        b.iter_batched(
            || Engine::from_scene(&busy, busy_opts()).expect("plan"),
            |mut e| {
                black_box(e.run());
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // audio_chain
    let fx = AudioChain::new(AUDIO_SECTIONS, BLOCKS).expect("scene");
    let mut g = c.benchmark_group("audio_chain");
    g.sample_size(20);
    g.bench_function("engine", |b| {
        b.iter_batched(
            || fx.engine().expect("plan"),
            |mut e| {
                black_box(e.run());
                e
            },
            BatchSize::LargeInput,
        )
    });
    let cap = BLOCKS as usize * AUDIO_ROWS * AUDIO_FRAMES;
    g.bench_function("hand_fused", |b| {
        b.iter_batched(
            || (HandChain::new(AUDIO_SECTIONS), Vec::with_capacity(cap)),
            |(mut h, mut out)| {
                h.run(BLOCKS, &mut out);
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("fundsp", |b| {
        b.iter_batched(
            || (fundsp_chain(), Vec::with_capacity(cap)),
            |(mut f, mut out)| {
                f.run(BLOCKS, &mut out);
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // event_expiry
    let expiry = Scene::parse(
        &bench::expiry_scene(bench::EXPIRY_CHANNELS, bench::EXPIRY_PER_SOURCE, 100),
        "expiry",
        ".".into(),
    )
    .expect("scene");
    let mut g = c.benchmark_group("event_expiry");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("engine", |b| {
        b.iter_batched(
            || Engine::from_scene(&expiry, RunOptions::default()).expect("plan"),
            |mut e| {
                black_box(e.run());
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // cyclesim
    let mut g = c.benchmark_group("cyclesim");
    for (label, plan) in bench::gemm_plans().expect("plans") {
        g.bench_function(label, |b| {
            b.iter_batched(
                || plan.clone(),
                |p| {
                    let mut e = Engine::new(p, RunOptions::default()).expect("engine");
                    black_box(e.run());
                    e
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    // backward
    let scene = bench::backward_scene().expect("scene");
    let mut g = c.benchmark_group("backward");
    g.sample_size(20);
    g.bench_function("forward", |b| {
        b.iter_batched(
            || bench::backward_engine(&scene, false).expect("plan"),
            |mut e| {
                black_box(e.run());
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("backward_only", |b| {
        b.iter_batched(
            || {
                let mut e = bench::backward_engine(&scene, true).expect("plan");
                e.run();
                e
            },
            |mut e| {
                black_box(e.gradients().expect("gradients"));
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // scale
    let text = bench::scale_scene(10_000);
    let mut g = c.benchmark_group("scale");
    g.sample_size(10);
    g.bench_function("load_plan_spawn_10k", |b| {
        b.iter(|| {
            let scene = Scene::parse(&text, "scale", ".".into()).expect("scene");
            black_box(Engine::from_scene(&scene, RunOptions::default()).expect("plan"))
        })
    });
    g.finish();
}

/// Engine, hand-fused and fundsp, interleaved (order rotated every round); prints the medians
/// and both ratios, and checks that fundsp computes the same signal.
fn audio_ratios() {
    const BLOCKS: u64 = 256;
    const ROUNDS: usize = 21;
    let fx = AudioChain::new(AUDIO_SECTIONS, BLOCKS).expect("scene");
    // Same maths: fundsp (direct form I) against the hand-fused loop (transposed form II).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    HandChain::new(AUDIO_SECTIONS).run(BLOCKS, &mut a);
    fundsp_chain().run(BLOCKS, &mut b);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-3,
        "fundsp differs from the hand-fused chain by {worst}"
    );
    let mut t: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS + 2 {
        let mut got = [0.0; 3];
        for k in 0..3 {
            let v = (k + round) % 3;
            got[v] = match v {
                0 => fx.time_engine().expect("engine run"),
                1 => fx.time_hand(),
                _ => time_fundsp(BLOCKS),
            };
        }
        if round >= 2 {
            for (v, x) in t.iter_mut().zip(got) {
                v.push(x);
            }
        }
    }
    let per_block = |v: &[f64]| bench::median(v) * 1e6 / BLOCKS as f64;
    let [e, h, f] = [0, 1, 2].map(|k| per_block(&t[k]));
    println!(
        "audio_chain ({AUDIO_SECTIONS} low-pass Biquads, stereo, {BLOCKS} blocks of {AUDIO_FRAMES} frames), medians of {ROUNDS} interleaved rounds:"
    );
    println!("  engine {e:.2} us/block, hand-fused {h:.2} us/block, fundsp {f:.2} us/block");
    println!(
        "  engine/hand x{:.2} (goal <= 1.25), engine/fundsp x{:.2}, fundsp/hand x{:.2}; fundsp vs hand max |diff| {worst:.2e}",
        e / h,
        e / f,
        f / h
    );
}

criterion_group!(benches, bench_workloads);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `--list` (cargo's and criterion's) only names the benchmarks.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let filter = tapwheel::bench::criterion_filter(std::env::args().skip(1));
    let wanted = |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| name.contains(f) || f.contains(name))
    };
    if wanted("audio_chain") {
        audio_ratios();
    }
    let others: Vec<&str> = bench::NAMES
        .iter()
        .copied()
        .filter(|n| *n != "audio_chain" && wanted(n))
        .collect();
    if !others.is_empty() {
        let w: Vec<bench::Workload> = others
            .iter()
            .map(|n| bench::run(n, false).expect("workload"))
            .collect();
        println!("\nsame-run figures (as `tapwheel bench --only …`):");
        print!("{}", bench::to_text(&w));
    }
}
