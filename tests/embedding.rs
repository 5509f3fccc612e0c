//! The Rust embedding API (SPEC §20): pausing with `run_until`, open inputs, probe reads while
//! running, run inputs between runs, custom kernels and hooks, snapshots, and misuse.

use std::collections::BTreeMap;
use tapwheel::kernels::*;
use tapwheel::snapshot::Snapshot;
use tapwheel::{Engine, Outcome, RunOptions, Scene, SceneBuilder, StepStatus};

fn code(e: tapwheel::Error) -> &'static str {
    e.diagnostics().first().map_or("none", |d| d.code)
}

fn scene(path: &str) -> Scene {
    Scene::load(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect("scene")
}

fn whole(s: &Scene, opts: RunOptions) -> Engine {
    let mut e = Engine::from_scene(s, opts).expect("engine");
    e.run();
    e
}

/// The scenes the pause/snapshot tests cut at several points: `(file, cut ticks)`.
const CUT_SCENES: &[(&str, &[u64])] = &[
    ("scenes/hello.ron", &[0, 1, 3, 5, 9, 14]),
    ("scenes/back_pressure.ron", &[0, 2, 7, 30]),
    ("scenes/thermal_throttle.ron", &[0, 5_000, 17_345]),
    ("scenes/task_window.ron", &[0, 5, 12]),
    ("scenes/gate_sync.ron", &[0, 3, 10]),
    ("scenes/hamming.ron", &[0]),
    ("scenes/pto_matmul_diamond.ron", &[0, 100, 1000]),
    ("scenes/ipls_bank.ron", &[0, 64, 500]),
];

#[test]
fn pausing_anywhere_changes_nothing() {
    for (file, cuts) in CUT_SCENES {
        let s = scene(file);
        let reference = whole(&s, RunOptions::default()).report();
        let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
        for &cut in *cuts {
            if let StepStatus::Running = e.run_until(cut) {
                assert!(e.next_instant().tick > cut, "{file}: paused before {cut}");
            }
        }
        e.run();
        let got = e.report();
        assert_eq!(got.outcome, reference.outcome, "{file}");
        assert_eq!(got.output_digest, reference.output_digest, "{file}");
        assert_eq!(got.end_tick, reference.end_tick, "{file}");
        assert_eq!(got.steps, reference.steps, "{file}");
    }
}

#[test]
fn probes_read_while_running() {
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    let mut seen = Vec::new();
    for t in [3, 7, 11, 15] {
        // The last token arrives at 15 and the run completes there.
        let status = if t < 15 {
            StepStatus::Running
        } else {
            StepStatus::Ended(Outcome::Completed)
        };
        assert_eq!(e.run_until(t), status);
        let p = e.probe("out").unwrap();
        seen.push((p.len(), *p.ticks.last().unwrap(), *p.values.last().unwrap()));
    }
    assert_eq!(
        seen,
        vec![(1, 3, 1.0), (2, 7, 3.0), (3, 11, 5.0), (4, 15, 7.0)]
    );
    let t = e.probe_token("out", 2).unwrap();
    assert_eq!((t.tick, t.seq, t.values), (11, 2, &[5.0f32][..]));
    assert_eq!(code(e.probe_token("out", 4).unwrap_err()), "E486");
    assert_eq!(code(e.probe_token("out", usize::MAX).unwrap_err()), "E486");
    assert_eq!(code(e.probe_token("gain", 0).unwrap_err()), "E485");
}

const INJECT: &str = r#"Scene(version: 1, name: "inject",
    nodes: [Node(name: "cc", kernel: Inject),
            Node(name: "g", kernel: Gain(gain: 2.0), latency: 2),
            Node(name: "out", kernel: Probe)],
    edges: [Edge(from: "cc.out", to: "g.in", delay: 3, capacity: 1),
            Edge(from: "g.out", to: "out.in")])"#;

#[test]
fn injected_tokens_flow_with_delays_and_back_pressure() {
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    assert_eq!(e.open_inputs(), vec!["cc"]);
    e.inject("cc", 0, &[1.0]).unwrap();
    e.inject("cc", 0, &[2.0]).unwrap();
    e.inject("cc", 10, &[3.0]).unwrap();
    // Token 1 is written at 0 and visible at 3; g (latency 2) completes at 5. The capacity-1
    // channel holds token 1 until g takes it at 3, so token 2 is written at 3, visible at 6, and
    // out sees it at 8. Token 3: written at 10, out at 15.
    assert_eq!(e.run_until(9), StepStatus::Running);
    assert_eq!(e.probe("out").unwrap().ticks, vec![5, 8]);
    assert_eq!(e.run_until(100), StepStatus::Running);
    assert_eq!(e.earliest_injection(), 101);
    let p = e.probe("out").unwrap();
    assert_eq!(
        (p.ticks.clone(), p.values.clone()),
        (vec![5, 8, 15], vec![2.0, 4.0, 6.0])
    );
    assert_eq!(e.report().json["firings"]["cc"], 3);
    // Nothing has work and the input is open: the engine waits for the host, not quiescent.
    assert_eq!(e.outcome(), None);
    e.inject("cc", 101, &[0.5]).unwrap();
    e.close_input("cc").unwrap();
    assert!(e.open_inputs().is_empty());
    assert_eq!(e.run(), Outcome::Completed);
    let p = e.probe("out").unwrap();
    assert_eq!(p.ticks, vec![5, 8, 15, 106]);
    assert_eq!(p.values, vec![2.0, 4.0, 6.0, 1.0]);
    assert_eq!(e.report().end_tick, 106);
}

#[test]
fn closing_an_idle_input_ends_the_run_at_the_earliest_open_tick() {
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    assert_eq!(e.run_until(40), StepStatus::Running);
    assert_eq!(e.probe("out").unwrap().len(), 0);
    e.close_input("cc").unwrap();
    e.close_input("cc").unwrap(); // closing twice is fine
    assert_eq!(e.run_until(1000), StepStatus::Ended(Outcome::Completed));
    assert_eq!(e.report().end_tick, 41);
}

#[test]
fn injection_misuse_is_refused_and_changes_nothing() {
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    assert_eq!(code(e.inject("g", 0, &[1.0]).unwrap_err()), "E481");
    assert_eq!(code(e.inject("nobody", 0, &[1.0]).unwrap_err()), "E481");
    assert_eq!(code(e.inject("cc", 0, &[1.0, 2.0]).unwrap_err()), "E482");
    assert_eq!(code(e.inject("cc", 0, &[]).unwrap_err()), "E482");
    e.inject("cc", 7, &[1.0]).unwrap();
    assert_eq!(code(e.inject("cc", 6, &[1.0]).unwrap_err()), "E483"); // out of order
    e.run_until(20);
    assert_eq!(code(e.inject("cc", 20, &[1.0]).unwrap_err()), "E483"); // passed
    e.close_input("cc").unwrap();
    assert_eq!(code(e.inject("cc", 30, &[1.0]).unwrap_err()), "E484");
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(code(e.close_input("cc").unwrap_err()), "E484");
    assert_eq!(code(e.set_until(5).unwrap_err()), "E484");
    // Only the one good injection reached the probe.
    assert_eq!(e.probe("out").unwrap().ticks, vec![12]);
    assert_eq!(e.probe("out").unwrap().values, vec![2.0]);
}

#[test]
fn inject_with_a_period_is_a_located_plan_error() {
    let text = INJECT.replace(
        r#"Node(name: "cc", kernel: Inject)"#,
        r#"Node(name: "cc", kernel: Inject, period: Some(3))"#,
    );
    let err = Engine::from_ron(&text, RunOptions::default())
        .err()
        .unwrap();
    let d = &err.diagnostics()[0];
    assert_eq!(d.code, "E480");
    assert_eq!(
        d.location,
        tapwheel::Location::ScenePath("nodes[0].period".into())
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_cli_run_of_an_open_input_scene_closes_it_at_once() {
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(e.report().end_tick, 0);
    assert_eq!(e.probe("out").unwrap().len(), 0);
}

#[test]
fn injection_under_ipls_matches_kpn() {
    let ipls = INJECT.replace("edges:", "schedule: IplsAuto, edges:");
    let mut runs = Vec::new();
    for text in [INJECT.to_string(), ipls] {
        let mut e = Engine::from_ron(&text, RunOptions::default()).unwrap();
        for (t, v) in [(0, 1.0), (0, 2.0), (4, 3.0), (50, 4.0)] {
            e.inject("cc", t, &[v]).unwrap();
        }
        e.run();
        let p = e.probe("out").unwrap();
        runs.push((p.ticks.clone(), p.values.clone()));
    }
    assert_eq!(runs[0], (vec![5, 8, 11, 55], vec![2.0, 4.0, 6.0, 8.0]));
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn symbols_slots_and_params_between_runs() {
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run();
    let plan_digest = e.report().plan_digest;
    e.set_param("gain.gain", 10.0).unwrap();
    assert_eq!(e.outcome(), None); // a new run
    assert_eq!(e.probe("out").unwrap().len(), 0);
    e.run();
    assert_eq!(e.probe("out").unwrap().values, vec![1.0, 11.0, 21.0, 31.0]);
    assert_eq!(e.report().plan_digest, plan_digest);
    assert_eq!(e.params()["gain.gain"], 10.0);
    // A bad value is refused and the engine keeps its run.
    assert_eq!(
        code(e.set_param("gain.gain", f64::NAN).unwrap_err()),
        "E455"
    );
    assert_eq!(code(e.set_param("nobody.gain", 1.0).unwrap_err()), "E455");
    assert_eq!(e.outcome(), Some(Outcome::Completed));
    assert_eq!(e.probe("out").unwrap().len(), 4);
    // reset keeps what was set.
    e.reset().unwrap();
    e.run();
    assert_eq!(e.probe("out").unwrap().values, vec![1.0, 11.0, 21.0, 31.0]);

    let mut sel = Engine::load(
        format!("{}/scenes/slot_select.ron", env!("CARGO_MANIFEST_DIR")),
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(code(sel.set_slot(256, 1).unwrap_err()), "E106");
    let before = sel.slot(0);
    sel.set_slot(0, 7).unwrap();
    assert_eq!(sel.slot(0), Some(7));
    assert_ne!(before, Some(7));
}

#[test]
fn a_symbol_delay_moves_between_runs() {
    let text = r#"Scene(version: 1, name: "sym",
        nodes: [Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(10), count: Some(3)),
                Node(name: "p", kernel: Probe)],
        edges: [Edge(from: "a.out", to: "p.in", delay: Symbol("link"), capacity: 4)],
        symbols: {"link": 2})"#;
    let mut e = Engine::from_ron(text, RunOptions::default()).unwrap();
    e.run();
    assert_eq!(e.probe("p").unwrap().ticks, vec![2, 12, 22]);
    e.set_symbol("link", 25).unwrap();
    e.run();
    assert_eq!(e.probe("p").unwrap().ticks, vec![25, 35, 45]);
    assert_eq!(e.run_options().symbols["link"], 25);
}

/// `y = x + bias`, a custom kernel with a parameter.
struct Bias(f32);
impl Kernel for Bias {
    fn kind(&self) -> &str {
        "Bias"
    }
    fn demand(&self, _: &[InputView], d: &mut [u32]) {
        d.fill(1)
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let b = self.0;
        let out = &mut io.outputs[0].values;
        out.extend(io.inputs[0].values.iter().map(|x| x + b));
    }
}
struct BiasFactory;
impl KernelFactory for BiasFactory {
    fn kind(&self) -> &str {
        "Bias"
    }
    fn build(&self, p: &BTreeMap<String, f64>, _: &Signature) -> Box<dyn Kernel> {
        Box::new(Bias(p.get("b").copied().unwrap_or(0.0) as f32))
    }
}

#[test]
fn custom_kernels_and_hooks_with_injection_and_snapshots() {
    let mut reg = KernelRegistry::new();
    reg.register(BiasFactory).unwrap();
    // Every task goes to the last domain.
    reg.register_hook(
        "last",
        |_: &tapwheel::dispatch::TaskInfo<'_>, loads: &[tapwheel::dispatch::DomainLoad]| {
            loads.len() as u32 - 1
        },
    )
    .unwrap();
    let text = r#"Scene(version: 1, name: "custom",
        nodes: [Node(name: "in", kernel: Inject),
                Node(name: "b", kernel: Custom(kind: "Bias", params: {"b": 0.25}), latency: 1),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "in.out", to: "b.in"), Edge(from: "b.out", to: "out.in")],
        dispatch: Some((domains: 3, policy: Hook("last"), dispatch_cost: 0, workers: None)))"#;
    let s = Scene::parse(text, "custom", ".".into()).unwrap();
    let mut e = Engine::from_scene_with(&s, RunOptions::default(), &reg).unwrap();
    e.inject("in", 2, &[1.0]).unwrap();
    e.run_until(2);
    let snap = e.snapshot().unwrap();
    e.inject("in", 5, &[2.0]).unwrap();
    e.run();
    assert_eq!(e.probe("out").unwrap().values, vec![1.25, 2.25]);
    assert_eq!(e.probe("out").unwrap().ticks, vec![3, 6]);
    // The hook sent every task (2 injections, 2 Bias firings) to domain 2.
    let per_domain = &e.report().json["dispatch"]["per_domain"];
    let tasks: Vec<_> = (0..3).map(|d| per_domain[d]["tasks"].clone()).collect();
    assert_eq!(tasks, vec![0, 0, 4]);
    // Restoring needs the registry again.
    assert!(Engine::restore(&snap).is_err());
    let mut back = Engine::restore_with(&snap, &reg).unwrap();
    back.inject("in", 5, &[2.0]).unwrap();
    back.run();
    assert_eq!(back.report().output_digest, e.report().output_digest);
}

#[test]
fn snapshots_restore_exactly_at_every_cut() {
    for (file, cuts) in CUT_SCENES {
        let s = scene(file);
        let reference = whole(&s, RunOptions::default()).report();
        for &cut in *cuts {
            let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
            e.run_until(cut);
            let bytes = e.snapshot().unwrap().to_bytes();
            let snap = Snapshot::from_bytes(&bytes).unwrap();
            let mut back = Engine::restore(&snap).unwrap();
            assert_eq!(back.next_instant(), e.next_instant(), "{file} @ {cut}");
            assert_eq!(back.steps(), e.steps(), "{file} @ {cut}");
            assert_eq!(back.report().output_digest, e.report().output_digest);
            back.run();
            let got = back.report();
            assert_eq!(got.output_digest, reference.output_digest, "{file} @ {cut}");
            assert_eq!(
                got.json["firings"], reference.json["firings"],
                "{file} @ {cut}"
            );
            assert_eq!(
                got.json["stalls"], reference.json["stalls"],
                "{file} @ {cut}"
            );
            assert_eq!(got.end_tick, reference.end_tick, "{file} @ {cut}");
        }
    }
}

#[test]
fn snapshots_mid_delay_and_mid_firing() {
    // hello: at tick 5 gain's token 1 (written at 4) is in its 3-tick delay.
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run_until(5);
    let arena = e.world().resource::<tapwheel::arena::TokenArena>();
    assert!(arena.bytes() > 0);
    let mut back = Engine::restore(&e.snapshot().unwrap()).unwrap();
    back.run();
    assert_eq!(back.probe("out").unwrap().ticks, vec![3, 7, 11, 15]);
    // INJECT: at tick 4, g's firing on token 1 (started at 3, latency 2) is in flight.
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    e.inject("cc", 0, &[1.0]).unwrap();
    e.inject("cc", 0, &[2.0]).unwrap();
    e.run_until(4);
    assert_eq!(e.probe("out").unwrap().len(), 0);
    let snap = Snapshot::from_bytes(&e.snapshot().unwrap().to_bytes()).unwrap();
    let mut back = Engine::restore(&snap).unwrap();
    assert_eq!(back.earliest_injection(), 5);
    back.inject("cc", 9, &[3.0]).unwrap();
    back.run();
    assert_eq!(back.probe("out").unwrap().ticks, vec![5, 8, 14]);
    assert_eq!(back.probe("out").unwrap().values, vec![2.0, 4.0, 6.0]);
}

#[test]
fn a_restored_run_goes_past_its_old_limit() {
    let s = scene("scenes/hello.ron");
    let reference = whole(&s, RunOptions::default()).report();
    let mut e = Engine::from_scene(
        &s,
        RunOptions {
            until: Some(8),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.run(), Outcome::LimitReached);
    let snap = e.snapshot().unwrap();
    let mut back = Engine::restore(&snap).unwrap();
    back.set_until(1000).unwrap();
    assert_eq!(back.run(), Outcome::Completed);
    assert_eq!(back.report().output_digest, reference.output_digest);
    // Restored as saved, the run ends at its limit again.
    let mut again = Engine::restore(&snap).unwrap();
    assert_eq!(again.run(), Outcome::LimitReached);
    assert_eq!(again.report().output_digest, e.report().output_digest);
}

#[test]
fn snapshots_keep_the_tape_and_the_temperatures() {
    let s = scene("scenes/fit_biquad.ron");
    let opts = RunOptions {
        gradients: true,
        ..Default::default()
    };
    let mut full = Engine::from_scene(&s, opts.clone()).unwrap();
    full.run();
    let g = full.gradients().unwrap();
    let mut e = Engine::from_scene(&s, opts).unwrap();
    e.run_until(300);
    let mut back =
        Engine::restore(&Snapshot::from_bytes(&e.snapshot().unwrap().to_bytes()).unwrap()).unwrap();
    back.run();
    assert_eq!(back.gradients().unwrap(), g);

    let s = scene("scenes/thermal_throttle.ron");
    let full = whole(&s, RunOptions::default());
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run_until(12_000);
    let mut back = Engine::restore(&e.snapshot().unwrap()).unwrap();
    back.run();
    assert_eq!(back.temperature("core"), full.temperature("core"));
    assert_eq!(back.report().json["thermal"], full.report().json["thermal"]);
}

#[test]
fn cancelled_runs_snapshot_and_restore() {
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run_until(6);
    e.cancel_handle().cancel();
    assert_eq!(e.run(), Outcome::Cancelled);
    let back = Engine::restore(&e.snapshot().unwrap()).unwrap();
    assert_eq!(back.outcome(), Some(Outcome::Cancelled));
    assert_eq!(back.report().end_tick, e.report().end_tick);
    assert_eq!(back.probe("out").unwrap().ticks, vec![3]);
}

#[test]
fn bad_snapshots_are_refused() {
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run_until(9); // out has seen 1.0 (tick 3) and 3.0 (tick 7)
    let bytes = e.snapshot().unwrap().to_bytes();
    // Foreign, other version, corrupted (one byte of the body flipped), truncated.
    assert_eq!(code(Snapshot::from_bytes(b"").unwrap_err()), "E487");
    assert_eq!(
        code(Snapshot::from_bytes(b"{\"json\": 1}\n").unwrap_err()),
        "E487"
    );
    let text = String::from_utf8(bytes.clone()).unwrap();
    let v2 = text.replacen("TAPWHEEL-SNAPSHOT 1 ", "TAPWHEEL-SNAPSHOT 2 ", 1);
    let err = Snapshot::from_bytes(v2.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("version `2`"), "{err}");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 1;
    assert_eq!(code(Snapshot::from_bytes(&flipped).unwrap_err()), "E487");
    assert_eq!(
        code(Snapshot::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err()),
        "E487"
    );
    // A consistent file whose scene was edited no longer replays to its state: E488.
    let (header, body) = text.split_once('\n').unwrap();
    let _ = header;
    let edited = body.replace("gain: 2.0", "gain: 3.0");
    assert_ne!(edited, body);
    let forged = format!(
        "TAPWHEEL-SNAPSHOT 1 {}\n{edited}",
        blake3::hash(edited.as_bytes()).to_hex()
    );
    let snap = Snapshot::from_bytes(forged.as_bytes()).unwrap();
    let err = Engine::restore(&snap).err().unwrap();
    assert_eq!((code(err), 2), ("E488", 2));
    // Engines that cannot be snapshotted say why.
    let plan = tapwheel::Plan::compile(&s).unwrap();
    let bare = Engine::new(plan, RunOptions::default()).unwrap();
    assert_eq!(code(bare.snapshot().unwrap_err()), "R341");
}

#[test]
fn snapshot_files_round_trip() {
    let dir = std::env::temp_dir().join(format!("tw-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hello.twsnap");
    let s = scene("scenes/hello.ron");
    let mut e = Engine::from_scene(&s, RunOptions::default()).unwrap();
    e.run_until(9);
    let snap = e.snapshot().unwrap();
    snap.save(&path).unwrap();
    assert_eq!(Snapshot::load(&path).unwrap(), snap);
    assert_eq!(snap.steps(), e.steps());
    assert_eq!(
        code(Snapshot::load(dir.join("missing")).unwrap_err()),
        "E105"
    );
    assert_eq!(
        code(snap.save(dir.join("no/such/dir/x")).unwrap_err()),
        "E489"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_built_scene_runs_like_its_text() {
    use tapwheel::scene::{EdgeSpec, KernelSpec, NodeSpec};
    let built = SceneBuilder::new("hello")
        .tick_hz(1000.0)
        .node(
            NodeSpec::new(
                "src",
                KernelSpec::Ramp {
                    start: 0.0,
                    step: 1.0,
                },
            )
            .period(4)
            .count(4),
        )
        .node(NodeSpec::new("gain", KernelSpec::Gain { gain: 2.0 }))
        .node(NodeSpec::new("bias", KernelSpec::Offset { value: 1.0 }))
        .node(NodeSpec::new("out", KernelSpec::Probe))
        .connect("src.out", "gain.in")
        .edge(EdgeSpec::new("gain.out", "bias.in").delay(3))
        .connect("bias.out", "out.in")
        .build();
    let mut e = Engine::from_scene(&built, RunOptions::default()).unwrap();
    e.run();
    let text = whole(&scene("scenes/hello.ron"), RunOptions::default()).report();
    assert_eq!(e.report().output_digest, text.output_digest);
    // A built scene snapshots like any other.
    let mut back = Engine::restore(&e.snapshot().unwrap()).unwrap();
    assert_eq!(back.outcome(), Some(Outcome::Completed));
    assert_eq!(back.run(), Outcome::Completed);
}

mod common;

#[test]
fn cli_snapshot_then_resume_matches_the_uninterrupted_run() {
    let whole_dir = common::out_dir("snap_whole");
    let (code, out, err) = common::cli(&[
        "run",
        "scenes/thermal_throttle.ron",
        "--out",
        whole_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let whole = common::read_json(&whole_dir.join("report.json"));
    for cut in ["3000", "17345", "29999"] {
        let first = common::out_dir(&format!("snap_first_{cut}"));
        let snap = first.join("run.twsnap");
        std::fs::create_dir_all(&first).unwrap();
        let (code, out, err) = common::cli(&[
            "run",
            "scenes/thermal_throttle.ron",
            "--until",
            cut,
            "--out",
            first.to_str().unwrap(),
            "--snapshot",
            snap.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("wrote {}", snap.display())), "{out}");
        let second = common::out_dir(&format!("snap_second_{cut}"));
        let (code, out, err) = common::cli(&[
            "resume",
            snap.to_str().unwrap(),
            "--until",
            "100000",
            "--out",
            second.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.starts_with(&format!("resumed {}", snap.display())),
            "{out}"
        );
        let resumed = common::read_json(&second.join("report.json"));
        for key in [
            "outcome",
            "output_digest",
            "values_digest",
            "end_tick",
            "firings",
            "thermal",
        ] {
            assert_eq!(resumed[key], whole[key], "{key} after a cut at {cut}");
        }
        assert_eq!(
            std::fs::read_to_string(second.join("probes/core_temp.csv")).unwrap(),
            std::fs::read_to_string(whole_dir.join("probes/core_temp.csv")).unwrap()
        );
    }
}

#[test]
fn cli_snapshot_errors() {
    let dir = common::out_dir("snap_errors");
    std::fs::create_dir_all(&dir).unwrap();
    // The --snapshot folder is checked before the run.
    let (code, _, err) = common::cli(&[
        "run",
        "scenes/hello.ron",
        "--out",
        dir.to_str().unwrap(),
        "--snapshot",
        "/no/such/folder/x.twsnap",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error[E106]") && err.contains("--snapshot"),
        "{err}"
    );
    // A foreign file, a missing file, a corrupted snapshot.
    let foreign = dir.join("foreign.twsnap");
    std::fs::write(&foreign, "Scene(version: 1)\n").unwrap();
    let (code, _, err) = common::cli(&["resume", foreign.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E487]") && err.contains("not a tapwheel snapshot"),
        "{err}"
    );
    let (code, _, err) = common::cli(&["resume", dir.join("missing").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("error[E105]"), "{err}");
    let snap = dir.join("hello.twsnap");
    let (code, _, err) = common::cli(&[
        "run",
        "scenes/hello.ron",
        "--until",
        "5",
        "--out",
        dir.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x20;
    let bad = dir.join("bad.twsnap");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, _, err) = common::cli(&["resume", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E487]") && err.contains("corrupted"),
        "{err}"
    );
    // --until before what the saved run processed.
    let (code, _, err) = common::cli(&["resume", snap.to_str().unwrap(), "--until", "2"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E483]") && err.contains("--until"),
        "{err}"
    );
    // Without --until the resumed run keeps the saved limit.
    let (code, out, err) = common::cli(&[
        "resume",
        snap.to_str().unwrap(),
        "--out",
        dir.join("again").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello: limit_reached at tick 5"), "{out}");
}

/// The README's fifteen-line example, verbatim, with its claims checked.
#[test]
fn the_readme_example_runs() -> Result<(), tapwheel::Error> {
    let mut e = Engine::from_ron(
        r#"Scene(version: 1, name: "host",
    nodes: [Node(name: "cv", kernel: Inject), Node(name: "lp", kernel: OnePole(coeff: 0.5)),
            Node(name: "out", kernel: Probe)],
    edges: [Edge(from: "cv.out", to: "lp.in", delay: 2), Edge(from: "lp.out", to: "out.in")],
    tick_hz: 1000.0)"#,
        RunOptions::default(),
    )?;
    for t in 0..4 {
        e.inject("cv", t * 10, &[1.0])?;
    }
    e.run_until(15);
    assert_eq!(e.probe("out").unwrap().ticks, vec![2, 12]);
    let saved = e.snapshot()?;
    assert_eq!(e.run(), Outcome::Completed);
    let mut back = Engine::restore(&saved)?;
    back.run();
    assert_eq!(back.report().output_digest, e.report().output_digest);
    assert_eq!(e.probe("out").unwrap().ticks, vec![2, 12, 22, 32]);
    let plan = e.report().plan_digest;
    e.set_param("lp.coeff", 0.9)?;
    assert_eq!(e.report().plan_digest, plan);
    assert_eq!(e.probe("out").unwrap().len(), 0);
    Ok(())
}

#[test]
fn extreme_ticks_never_panic() {
    let far = u64::MAX - 100;
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    e.inject("cc", far, &[1.0]).unwrap();
    e.inject("cc", far + 50, &[2.0]).unwrap();
    assert_eq!(e.run_until(far + 10), StepStatus::Running);
    assert_eq!(e.probe("out").unwrap().ticks, vec![far + 5]);
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(e.probe("out").unwrap().ticks, vec![far + 5, far + 55]);
    // Pausing at the last tick, then closing: the run ends there.
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    assert_eq!(e.run_until(u64::MAX), StepStatus::Running);
    assert_eq!(e.earliest_injection(), u64::MAX);
    e.close_input("cc").unwrap();
    assert_eq!(e.run_until(u64::MAX), StepStatus::Ended(Outcome::Completed));
    // Work whose delay and latency would pass the last tick saturates there; the run ends with
    // a typed failure (E403), never a panic or a hang.
    let mut e = Engine::from_ron(
        INJECT,
        RunOptions {
            max_deltas: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    e.inject("cc", u64::MAX - 1, &[1.0]).unwrap();
    let outcome = e.run();
    assert!(
        matches!(outcome, Outcome::Completed | Outcome::Failed),
        "{outcome:?}"
    );
    // Values are data: NaN flows like any number.
    let mut e = Engine::from_ron(INJECT, RunOptions::default()).unwrap();
    e.inject("cc", 0, &[f32::NAN]).unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert!(e.probe("out").unwrap().values[0].is_nan());
}
