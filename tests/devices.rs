//! Devices (SPEC §12): every device yields the Reference device's values; CycleSim's cycle
//! counts follow the profile's formulas exactly; PTO-WSP's dispatch invariants hold on CycleSim
//! with one core per domain; exhausted rings and ready queues stall (never grow); the Reference
//! device's `cost: Linear(..)`. Every expected cycle count is worked out in a comment.

mod common;
use common::*;
use serde_json::Value;
use tapwheel::scene::DeviceSpec;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

fn on(device: DeviceSpec) -> RunOptions {
    RunOptions {
        device: Some(device),
        ..RunOptions::default()
    }
}

fn cyclesim() -> DeviceSpec {
    DeviceSpec::CycleSim {
        profile: "builtin:a2a3".into(),
    }
}

fn run_on(scene: &Scene, device: DeviceSpec) -> (Outcome, Engine) {
    let mut e = Engine::from_scene(scene, on(device)).expect("scene plans");
    let o = e.run();
    (o, e)
}

fn json(e: &Engine) -> Value {
    serde_json::from_str(&e.report().to_json_pretty()).expect("report is JSON")
}

fn example_scenes() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["scenes", "scenes/pto"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "ron") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_device_gives_the_reference_values_on_every_example_scene() {
    let scenes = example_scenes();
    assert!(scenes.len() >= 21, "{scenes:?}");
    for path in scenes {
        let scene = Scene::load(&path).unwrap();
        let (o_ref, reference) = run_on(&scene, DeviceSpec::Reference);
        let (o_sim, sim) = run_on(&scene, cyclesim());
        let (r, s) = (reference.report(), sim.report());
        assert_eq!(o_ref, o_sim, "{}", path.display());
        // Temperatures (§14) follow each device's busy time: every other probe is equal.
        let temp_probes: Vec<&str> = scene
            .spec
            .edges
            .iter()
            .filter(|e| e.from.ends_with(".temp"))
            .filter_map(|e| e.to.split('.').next())
            .collect();
        if temp_probes.is_empty() {
            assert_eq!(r.values_digest, s.values_digest, "{}", path.display());
        } else {
            for p in reference.probes() {
                if !temp_probes.contains(&p.name.as_str()) {
                    let q = sim.probe(&p.name).unwrap();
                    assert_eq!(p.values, q.values, "{} {}", path.display(), p.name);
                }
            }
        }
        // A second CycleSim run is identical to the first, timing included.
        let (_, again) = run_on(&scene, cyclesim());
        assert_eq!(
            again.report().output_digest,
            s.output_digest,
            "{}",
            path.display()
        );
        assert_eq!(
            json(&again)["device"],
            json(&sim)["device"],
            "{}",
            path.display()
        );
    }
}

/// A one-task scene at one tick per cycle: sources (AICPU, latency 0) feed `op`, whose output
/// a probe records at its completion tick.
fn one_task(kernel: &str, taps: &[&str]) -> Scene {
    let mut nodes = vec![format!(r#"Node(name: "op", kernel: {kernel})"#)];
    let mut edges = Vec::new();
    for (i, t) in taps.iter().enumerate() {
        nodes.push(format!(
            r#"Node(name: "s{i}", kernel: Const(value: {}.0), count: Some(1))"#,
            i + 1
        ));
        edges.push(format!(r#"Edge(from: "s{i}.out", to: "op.{t}")"#));
    }
    nodes.push(r#"Node(name: "p", kernel: Probe)"#.into());
    edges.push(r#"Edge(from: "op.out", to: "p.in")"#.into());
    parse(&format!(
        r#"Scene(version: 1, name: "one", tick_hz: 1.8e9,
            defaults: (shape: (batch: 1, channels: 64, frames: 64), capacity: 2),
            nodes: [{}], edges: [{}])"#,
        nodes.join(", "),
        edges.join(", ")
    ))
}

/// `(probe tick, device cycles, busy cycles of the one core used)`.
fn timing(scene: &Scene) -> (u64, u64, u64) {
    let (o, e) = run_on(scene, cyclesim());
    assert_eq!(o, Outcome::Completed);
    let j = json(&e);
    let cores = j["device"]["per_core"].as_array().unwrap();
    assert_eq!(cores.len(), 1, "{cores:?}");
    assert_eq!(
        j["makespan_ticks"].as_u64().unwrap(),
        j["device"]["cycles"].as_u64().unwrap()
    );
    (
        ticks(&e, "p")[0],
        j["device"]["cycles"].as_u64().unwrap(),
        cores[0]["busy_cycles"].as_u64().unwrap(),
    )
}

#[test]
fn one_cube_matmul_tile_costs_the_profile_formula() {
    // 64×64 @ 64×64 f32 (a2a3 profile). Core busy = GM→L1 of A and B (200 + 32768/64 = 712)
    // + L1→L0A and L1→L0B (8 + 16384/256 = 72 each) + cube (6 + ⌈64/16⌉·⌈64/8⌉·⌈64/16⌉)·2 = 268
    // + L0C→GM (200 + 16384/64 = 456) = 1580. The orchestrator submits at 200, the register
    // write starts the core at 250, it ends at 1830, the scheduler's poll sees it at 1900 and
    // reads the completion by 1950.
    let (tick, cycles, busy) = timing(&one_task("MatMul", &["a", "b"]));
    assert_eq!(busy, 712 + 72 + 72 + 268 + 456);
    assert_eq!((tick, cycles), (1950, 1950));
}

#[test]
fn one_vector_op_costs_the_profile_formula() {
    // A 64×64 f32 Add: GM→UB of both inputs (200 + 32768/64 = 712), vector head 6 + slope 1 ·
    // 16384/256 = 64 repeats (70), UB→GM (200 + 256 = 456): 1238 busy; starts at 250, ends at
    // 1488, seen at 1500 + 50.
    let (tick, cycles, busy) = timing(&one_task("Add", &["a", "b"]));
    assert_eq!(busy, 712 + 70 + 456);
    assert_eq!((tick, cycles), (1550, 1550));
}

#[test]
fn one_transfer_costs_the_profile_formula() {
    // `Copy` computes nothing: GM→UB (200 + 256) and UB→GM (200 + 256) = 912; ends at 1162,
    // seen at 1200 + 50.
    let (tick, cycles, busy) = timing(&one_task("Copy", &["in"]));
    assert_eq!(busy, 456 + 456);
    assert_eq!((tick, cycles), (1250, 1250));
}

/// A test profile: `clusters` clusters of one cube core and no vector cores, no handshake
/// costs, 1 cycle per transfer of a small tile, one tick per cycle.
fn profile(clusters: u32, ring: u32, heap: u64, queue: u32) -> String {
    format!(
        r#"DeviceProfile(name: "test", freq_hz: 1.0, clusters: {clusters}, aic_per_cluster: 1,
    aiv_per_cluster: 0, schedulers: 1, ready_queue_depth: {queue}, task_ring: {ring},
    heap_ring_bytes: {heap},
    handshake: (orchestrator_submit: 0, dispatch_write: 0, poll_interval: 0, completion_read: 0),
    cube: (head: 6, m_block: 16, k_block_bytes: 32, n_block: 16, fp32_factor: 2),
    vector: (head: 6, slope: 1, repeat_bytes: 256),
    transfers: (gm_to_ub: (setup: 0, bytes_per_cycle: 1048576), ub_to_gm: (setup: 0, bytes_per_cycle: 1048576),
        gm_to_l1: (setup: 0, bytes_per_cycle: 1048576), l1_to_l0a: (setup: 0, bytes_per_cycle: 1048576),
        l1_to_l0b: (setup: 0, bytes_per_cycle: 1048576), l0c_to_gm: (setup: 0, bytes_per_cycle: 1048576)),
    memory: (ub: 196608, l1: 524288, l0a: 65536, l0b: 65536, l0c: 131072, l2: 201326592),
    hbm_bytes_per_second: 1.6e12, sources: ["test"])"#
    )
}

/// Four independent identical 16×16 matrix products (S = 20 cycles each: one cycle for each of
/// the four transfers, cube (6 + 1·2·1)·2 = 16) on a die written to a temporary profile.
fn four_tasks(dir: &std::path::Path, profile_text: &str, extra: &str) -> Scene {
    std::fs::write(dir.join("die.ron"), profile_text).unwrap();
    let mut nodes = vec![
        r#"Node(name: "a", kernel: Const(value: 1.0), count: Some(1))"#.to_string(),
        r#"Node(name: "b", kernel: Const(value: 2.0), count: Some(1))"#.to_string(),
    ];
    let mut edges = Vec::new();
    for i in 0..4 {
        nodes.push(format!(r#"Node(name: "m{i}", kernel: MatMul)"#));
        nodes.push(format!(r#"Node(name: "p{i}", kernel: Probe)"#));
        edges.push(format!(r#"Edge(from: "a.out", to: "m{i}.a")"#));
        edges.push(format!(r#"Edge(from: "b.out", to: "m{i}.b")"#));
        edges.push(format!(r#"Edge(from: "m{i}.out", to: "p{i}.in")"#));
    }
    let text = format!(
        r#"Scene(version: 1, name: "four",
            defaults: (shape: (batch: 1, channels: 16, frames: 16), capacity: 2),
            nodes: [{}], edges: [{}], device: CycleSim(profile: "die.ron"), {extra})"#,
        nodes.join(", "),
        edges.join(", ")
    );
    Scene::parse(&text, "<test>", dir.to_path_buf()).expect("scene parses")
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tapwheel-devices-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn makespan(scene: &Scene) -> (u64, Value) {
    let (o, e) = run(scene);
    assert_eq!(o, Outcome::Completed);
    let j = json(&e);
    // Every product is 16 · (1 · 2) = 32.
    for i in 0..4 {
        assert_eq!(values(&e, &format!("p{i}"))[0], 32.0);
    }
    (e.report().makespan_ticks, j)
}

#[test]
fn pto_wsp_invariants_hold_on_cyclesim_with_one_core_per_domain() {
    let dir = tempdir("invariants");
    // One domain driving one cube core: 4S.
    let (one, _) = makespan(&four_tasks(&dir, &profile(1, 1024, 1 << 20, 64), ""));
    assert_eq!(one, 80);
    // RoundRobin over 2 domains (one cluster, one core each): 2S.
    let rr = r#"dispatch: Some((domains: 2, policy: RoundRobin, dispatch_cost: 0))"#;
    let (two, j) = makespan(&four_tasks(&dir, &profile(2, 1024, 1 << 20, 64), rr));
    assert_eq!(two, 40);
    let cores = j["device"]["per_core"].as_array().unwrap();
    assert_eq!(cores.len(), 2);
    assert!(
        cores
            .iter()
            .all(|c| c["tasks"] == 2 && c["busy_cycles"] == 40)
    );
    assert_eq!(j["device"]["utilisation"]["cube"].as_f64(), Some(1.0));
    // The same with a task window of size 1: 4S again.
    let w = format!("{rr}, task_window: Some((size: 1, mode: Stall, scope: Global))");
    let (windowed, _) = makespan(&four_tasks(&dir, &profile(2, 1024, 1 << 20, 64), &w));
    assert_eq!(windowed, 80);
}

/// Total ticks stalled on a device resource: m1, m2 and m3 wait 20, 40 and 60 ticks.
fn resource_stall(j: &Value, resource: &str, code: &str) -> u64 {
    j["stalls"]["resources"][resource][code]["ticks"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {resource}.{code} in {}", j["stalls"]["resources"]))
}

#[test]
fn exhausted_rings_and_queues_stall_and_never_grow() {
    let dir = tempdir("rings");
    // Two cores in one domain, but a task ring of one slot: the tasks run one after another
    // (4S) and m1, m2, m3 wait with TASK_RING_FULL.
    let (m, j) = makespan(&four_tasks(&dir, &profile(2, 1, 1 << 20, 64), ""));
    assert_eq!(m, 80);
    assert_eq!(resource_stall(&j, "task_ring", "TASK_RING_FULL"), 120);
    assert_eq!(j["device"]["task_ring"]["high_water"], 1);
    // A heap ring of exactly one 16×16 f32 output (1024 bytes): the same, HEAP_ARENA_FULL.
    let (m, j) = makespan(&four_tasks(&dir, &profile(2, 1024, 1024, 64), ""));
    assert_eq!(m, 80);
    assert_eq!(resource_stall(&j, "heap_ring", "HEAP_ARENA_FULL"), 120);
    assert_eq!(j["device"]["heap_ring"]["high_water"], 1024);
    // One core and no room to queue: a task waits for the core at dispatch (READY_QUEUE_FULL).
    let (m, j) = makespan(&four_tasks(&dir, &profile(1, 1024, 1 << 20, 0), ""));
    assert_eq!(m, 80);
    assert_eq!(resource_stall(&j, "ready_queue0", "READY_QUEUE_FULL"), 120);
    // With a queue of 3 every task is queued at once: no stall, same makespan.
    let (m, j) = makespan(&four_tasks(&dir, &profile(1, 1024, 1 << 20, 3), ""));
    assert_eq!(m, 80);
    assert_eq!(j["device"]["ready_queue"]["high_water"], 3);
    assert!(j["stalls"]["resources"].get("ready_queue0").is_none());
}

#[test]
fn a_task_larger_than_the_heap_ring_is_a_resource_deadlock() {
    let dir = tempdir("heap");
    let scene = four_tasks(&dir, &profile(1, 1024, 1000, 64), "");
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::Deadlock);
    let d = &json(&e)["deadlock"];
    assert_eq!(d["kind"], "resource");
    let blocked = d["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 4, "{d}");
    assert!(
        blocked
            .iter()
            .all(|b| b["reason"] == "HEAP_ARENA_FULL" && b["resource"] == "heap ring")
    );
    assert_eq!(
        d["mitigations"][0],
        "raise the device profile's heap_ring_bytes (1000) to at least 1024 so m0 can be \
         submitted (its outputs take 1024 bytes; 0 are held by tasks in flight)"
    );
}

#[test]
fn reference_cost_linear_rounds_up() {
    // Gain over 3 elements with Linear(base: 10, per_element: 0.5): 10 + ⌈1.5⌉ = 12 ticks.
    let s = parse(
        r#"Scene(version: 1, name: "lin", defaults: (shape: (batch: 1, channels: 1, frames: 3), capacity: 2),
        nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
                Node(name: "g", kernel: Gain(gain: 2.0), cost: Some(Linear(base: 10, per_element: 0.5))),
                Node(name: "p", kernel: Probe)],
        edges: [Edge(from: "s.out", to: "g.in"), Edge(from: "g.out", to: "p.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(ticks(&e, "p"), vec![12]);
    assert_eq!(values(&e, "p"), vec![2.0, 2.0, 2.0]);
}

fn codes(scene_text: &str, dir: &std::path::Path) -> Vec<&'static str> {
    let scene = Scene::parse(scene_text, "<test>", dir.to_path_buf()).unwrap();
    match Engine::from_scene(&scene, RunOptions::default()) {
        Ok(_) => vec![],
        Err(e) => e.diagnostics().iter().map(|d| d.code).collect(),
    }
}

#[test]
fn bad_devices_are_located_errors_or_refusals() {
    let dir = tempdir("bad");
    let body = r#"nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
        Node(name: "m", kernel: MatMul), Node(name: "p", kernel: Probe)],
        edges: [Edge(from: "s.out", to: "m.a"), Edge(from: "s.out", to: "m.b"), Edge(from: "m.out", to: "p.in")]"#;
    let scene = |shape: u32, device: &str, extra: &str| {
        format!(
            r#"Scene(version: 1, name: "bad", defaults: (shape: (batch: 1, channels: {shape}, frames: {shape}), capacity: 2),
            {body}, device: {device}, {extra})"#
        )
    };
    assert_eq!(
        codes(&scene(16, r#"CycleSim(profile: "nope.ron")"#, ""), &dir),
        vec!["E380"]
    );
    std::fs::write(dir.join("garbled.ron"), "DeviceProfile(").unwrap();
    assert_eq!(
        codes(&scene(16, r#"CycleSim(profile: "garbled.ron")"#, ""), &dir),
        vec!["E381"]
    );
    std::fs::write(dir.join("zero.ron"), profile(0, 0, 1, 1)).unwrap();
    assert_eq!(
        codes(&scene(16, r#"CycleSim(profile: "zero.ron")"#, ""), &dir),
        vec!["E382", "E382"]
    );
    std::fs::write(dir.join("two.ron"), profile(2, 8, 1 << 20, 8)).unwrap();
    let three = "dispatch: Some((domains: 3, policy: RoundRobin, dispatch_cost: 0))";
    assert_eq!(
        codes(&scene(16, r#"CycleSim(profile: "two.ron")"#, three), &dir),
        vec!["E383"]
    );
    // A 256×256 f32 tile needs 256 KiB of L0A (64 KiB): refused, the scene must tile it.
    assert_eq!(
        codes(
            &scene(256, r#"CycleSim(profile: "builtin:a2a3")"#, ""),
            &dir
        ),
        vec!["R306"]
    );
    let lin = |pe: &str, lat: &str| {
        format!(
            r#"Scene(version: 1, name: "lin", nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
            Node(name: "g", kernel: Gain(gain: 2.0), {lat} cost: Some(Linear(base: 1, per_element: {pe}))),
            Node(name: "p", kernel: Probe)], edges: [Edge(from: "s.out", to: "g.in"), Edge(from: "g.out", to: "p.in")])"#
        )
    };
    assert_eq!(codes(&lin("-1.0", ""), &dir), vec!["E384"]);
    assert_eq!(codes(&lin("1.0", "latency: 3,"), &dir), vec!["E385"]);
}

#[test]
fn the_cli_runs_a_scene_on_cyclesim() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapwheel"))
        .args([
            "run",
            "scenes/pto_matmul_diamond.ron",
            "--device",
            "cyclesim",
            "--format",
            "json",
        ])
        .arg("--out")
        .arg(tempdir("cli"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["device"]["name"], "CycleSim");
    assert_eq!(j["device"]["tasks"]["cube"], 2);
    assert_eq!(j["device"]["tasks"]["vector"], 4);
    assert!(j["makespan_ticks"].as_u64().unwrap() > 0);
    // `check` names the device and the profile.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapwheel"))
        .args(["check", "scenes/pto/batched_gemm.ron", "--format", "json"])
        .current_dir(repo())
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["device"], "Reference");
}
