//! pto-runtime's larger examples as generated scenes (`scenes/pto/`, written by
//! `examples/gen_pto_scenes.rs`): the committed files are exactly what the generator writes,
//! every scene runs through the CLI, the batched GEMM gives its closed form exactly with
//! pto-runtime's 128 tasks, and the paged attention's online softmax matches plain
//! `softmax(q·Kᵀ/√d)·V` computed in f64.

mod common;
use common::*;
use tapwheel::scene::{CoreType, KernelSpec, NodeSpec, ScheduleSpec};
use tapwheel::{Engine, Outcome, RunOptions, Scene};

#[allow(dead_code)]
#[path = "../examples/gen_pto_scenes.rs"]
mod generator;

fn pto_scene(name: &str) -> Scene {
    Scene::load(repo().join("scenes/pto").join(format!("{name}.ron"))).expect("pto scene loads")
}

fn is_source(n: &NodeSpec) -> bool {
    matches!(
        n.kernel,
        KernelSpec::Const { .. }
            | KernelSpec::Ramp { .. }
            | KernelSpec::Noise { .. }
            | KernelSpec::Sine { .. }
            | KernelSpec::Saw { .. }
            | KernelSpec::Square { .. }
            | KernelSpec::File { .. }
    )
}

/// The nodes whose firings are tasks: neither sources nor probes.
fn task_nodes(s: &Scene) -> Vec<&NodeSpec> {
    s.spec
        .nodes
        .iter()
        .filter(|n| !is_source(n) && n.kernel != KernelSpec::Probe)
        .collect()
}

/// Total firings of the task nodes (from the run report), asserting each fired exactly once.
fn task_firings(s: &Scene, e: &Engine) -> u64 {
    let r = e.report();
    task_nodes(s)
        .iter()
        .map(|n| {
            let f = r.json["firings"][&n.name].as_u64().expect("firing count");
            assert_eq!(f, 1, "{} fires once", n.name);
            f
        })
        .sum()
}

#[test]
fn generated_scenes_match_the_committed_files() {
    let dir = out_dir("pto_scenes_regenerated");
    let written = generator::write_all(&dir).expect("generator writes");
    assert_eq!(written.len(), 2);
    for path in &written {
        let name = path.file_name().unwrap();
        let fresh = std::fs::read(path).unwrap();
        let committed = std::fs::read(repo().join("scenes/pto").join(name))
            .unwrap_or_else(|e| panic!("scenes/pto/{} is committed: {e}", name.display()));
        assert!(
            fresh == committed,
            "scenes/pto/{} differs from the generator's output: run \
             `cargo run --release --example gen_pto_scenes -- scenes/pto` and commit",
            name.display()
        );
    }
    // No stale scene: every file in scenes/pto is one the generator writes.
    let mut committed: Vec<String> = std::fs::read_dir(repo().join("scenes/pto"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut generated: Vec<String> = generator::scenes()
        .into_iter()
        .map(|(n, _)| n.to_string())
        .collect();
    generated.sort();
    assert_eq!(committed, generated);
}

#[test]
fn every_pto_scene_runs_through_the_cli() {
    for (file, _) in generator::scenes() {
        let stem = file.trim_end_matches(".ron");
        let dir = out_dir(&format!("pto_{stem}"));
        let (code, stdout, stderr) = cli(&[
            "run",
            &format!("scenes/pto/{file}"),
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{file}: {stdout}{stderr}");
        assert_eq!(read_json(&dir.join("report.json"))["outcome"], "completed");
    }
}

#[test]
fn every_task_node_names_its_core() {
    for name in ["batched_gemm", "paged_attention"] {
        let s = pto_scene(name);
        for n in &s.spec.nodes {
            let want = match n.kernel {
                KernelSpec::MatMul => Some(CoreType::Cube),
                _ if is_source(n) || n.kernel == KernelSpec::Probe => None,
                _ => Some(CoreType::Vector),
            };
            assert_eq!(n.core, want, "{name}: {}", n.name);
        }
    }
}

#[test]
fn batched_gemm_gives_the_closed_form_with_128_tasks() {
    let s = pto_scene("batched_gemm");
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    // pto-runtime's graph: 4·4·4 gemm tiles on cube and as many accumulating adds on vector.
    let tasks = task_nodes(&s);
    let count = |k: &KernelSpec| tasks.iter().filter(|n| &n.kernel == k).count();
    assert_eq!(
        (count(&KernelSpec::MatMul), count(&KernelSpec::Add)),
        (64, 64)
    );
    assert_eq!(tasks.len(), 128);
    assert_eq!(task_firings(&s, &e), 128);
    // Every element of A[m,k] is (m + k + 1)/16 and of B[k,n] (4n + k + 2)/16, so with
    // u = m + 1, v = 4n + 2: C[m,n] = 64 · Σ_k (u + k)(v + k)/256 = (u + 1.5)(v + 1.5) + 1.25,
    // exact in f32.
    let mut seen = Vec::new();
    for m in 0..4u32 {
        for n in 0..4u32 {
            let (u, v) = (f64::from(m + 1), f64::from(4 * n + 2));
            let want = (u + 1.5) * (v + 1.5) + 1.25;
            let p = e.probe(&format!("C_m{m}_n{n}")).expect("probe");
            assert_eq!(p.len(), 1, "one C tile");
            assert_eq!((p.batch, p.channels, p.frames), (1, 64, 64));
            assert!(
                p.values.iter().all(|&x| f64::from(x) == want),
                "C[{m},{n}] = {want} in every element, got {}",
                p.values[0]
            );
            seen.push(want);
        }
    }
    // The 16 tiles are pairwise different, so a mis-wired tile cannot pass.
    seen.sort_by(f64::total_cmp);
    seen.dedup();
    assert_eq!(seen.len(), 16);
}

/// Element `d` of a `Noise(seed, amp)` source, per SPEC §7, with SplitMix64 written out here
/// (Vigna's splitmix64.c: the state after `d + 1` increments of the golden gamma).
fn noise(seed: u64, amp: f64, d: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(d + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 40) as f32 * (1.0 / 16_777_216.0);
    f64::from(amp as f32 * (2.0 * u - 1.0))
}

/// The `rows × cols` tile a `Noise` node of the scene writes, row-major, as f64.
fn noise_tile(s: &Scene, node: &str, rows: usize, cols: usize) -> Vec<Vec<f64>> {
    let n = s.spec.nodes.iter().find(|n| n.name == node).expect(node);
    let KernelSpec::Noise { seed, amp } = n.kernel else {
        panic!("{node} is a Noise source");
    };
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| noise(seed, amp, (r * cols + c) as u64))
                .collect()
        })
        .collect()
}

#[test]
fn paged_attention_matches_plain_softmax_attention() {
    use generator::paged_attention::*;
    let (h, d, bs, blocks) = (
        NUM_HEADS as usize,
        HEAD_DIM as usize,
        BLOCK_SIZE as usize,
        BLOCK_NUM as usize,
    );
    let s = pto_scene("paged_attention");
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);

    // 126 task firings; grouped by pto-runtime task (node names b<b>_<task><j>[_<op>]) they
    // are pto-runtime's batch · block_num · 4 = 32 tasks.
    let tasks = task_nodes(&s);
    assert_eq!(tasks.len(), 126);
    assert_eq!(task_firings(&s, &e), 126);
    let groups: std::collections::BTreeSet<String> = tasks
        .iter()
        .map(|n| n.name.split('_').take(2).collect::<Vec<_>>().join("_"))
        .collect();
    assert_eq!(groups.len(), 32, "pto-runtime tasks: {groups:?}");
    let kinds: std::collections::BTreeSet<&str> = groups
        .iter()
        .map(|g| {
            g.split('_')
                .nth(1)
                .unwrap()
                .trim_end_matches(char::is_numeric)
        })
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["pv", "qk", "sf", "up"]
    );

    let mut worst = 0f64;
    for b in 0..BATCH as usize {
        let q = noise_tile(&s, &format!("q_b{b}"), h, d);
        // Keys and values of all blocks, token-major: k[t][·], v[t][·] with t = j·bs + i.
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for j in 0..blocks {
            let kt = noise_tile(&s, &format!("kt_b{b}_j{j}"), d, bs);
            k.extend((0..bs).map(|i| (0..d).map(|x| kt[x][i]).collect::<Vec<_>>()));
            v.extend(noise_tile(&s, &format!("v_b{b}_j{j}"), bs, d));
        }
        let scale = 1.0 / (d as f64).sqrt();
        let mut reference = Vec::with_capacity(h * d);
        let mut later_block_max = false;
        for row in &q {
            let scores: Vec<f64> = k
                .iter()
                .map(|kt| scale * row.iter().zip(kt).map(|(a, b)| a * b).sum::<f64>())
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = w.iter().sum();
            reference.extend(
                (0..d).map(|c| w.iter().zip(&v).map(|(wt, vt)| wt * vt[c]).sum::<f64>() / sum),
            );
            // The online update's rescaling is exercised: some row's maximum lies past block 0.
            let first = scores[..bs]
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            later_block_max |= max > first;
        }
        assert!(
            later_block_max,
            "batch {b}: a later block raises the running max"
        );

        let p = e.probe(&format!("out_b{b}")).expect("probe");
        assert_eq!(p.len(), 1);
        assert_eq!((p.batch, p.channels as usize, p.frames as usize), (1, h, d));
        let norm = reference.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(norm > 0.05, "a non-trivial output (max |out| = {norm})");
        for (i, (&got, want)) in p.values.iter().zip(&reference).enumerate() {
            let err = (f64::from(got) - want).abs() / norm;
            worst = worst.max(err);
            assert!(
                err <= 1e-5,
                "batch {b}, head {}, dim {}: {got} vs {want} (error {err:e} of max |out|)",
                i / d,
                i % d
            );
        }
    }
    println!("paged attention: worst error {worst:e} of max |out|");
}

#[test]
fn pto_scene_values_do_not_depend_on_the_schedule() {
    for name in ["batched_gemm", "paged_attention"] {
        let s = pto_scene(name);
        let (_, kpn) = run(&s);
        let mut ipls = Engine::from_scene(
            &s,
            RunOptions {
                schedule: Some(ScheduleSpec::IplsAuto),
                ..RunOptions::default()
            },
        )
        .expect("plans");
        assert_eq!(ipls.run(), Outcome::Completed);
        assert_eq!(
            ipls.report().values_digest,
            kpn.report().values_digest,
            "{name}"
        );
    }
}
