//! Every example scene under scenes/ runs through the CLI with its documented outcome, and the
//! digests of the hello scene are pinned (a change in them is a change in semantics or format).
//! Subfolders have their own tests: `scenes/sdf3/` in `sdf3_oracle.rs`, `scenes/pto/` in
//! `pto_scenes.rs`.

mod common;
use common::*;

#[test]
fn every_example_scene_runs() {
    let expected = [
        ("back_pressure", 0, "completed"),
        ("csp_pipeline", 0, "completed"),
        ("delay_line", 0, "completed"),
        ("fanout_throttle", 0, "completed"),
        ("filter_chain", 0, "completed"),
        ("fit_biquad", 0, "completed"),
        ("gate_sync", 0, "completed"),
        ("hamming", 0, "quiescent"),
        ("hello", 0, "completed"),
        ("ipls_bank", 0, "completed"),
        ("parks_fixed", 3, "deadlock"),
        ("parks_growth", 0, "completed"),
        ("pto2_vector_diamond", 0, "completed"),
        ("pto_matmul_diamond", 0, "completed"),
        ("pto_vector_diamond", 0, "completed"),
        ("slot_select", 0, "completed"),
        ("strict_quiescent", 3, "deadlock"),
        ("task_window", 0, "completed"),
        ("telemetry_shed", 0, "completed"),
        ("thermal_throttle", 0, "completed"),
        ("zero_delay_chain", 0, "completed"),
    ];
    let mut found: Vec<String> = std::fs::read_dir(repo().join("scenes"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "ron").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    let listed: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(found, listed, "every scene in scenes/ must be listed here");
    for (name, code, outcome) in expected {
        let dir = out_dir(&format!("example_{name}"));
        let (c, stdout, stderr) = cli(&[
            "run",
            &format!("scenes/{name}.ron"),
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(c, code, "{name}: {stdout}{stderr}");
        let r = read_json(&dir.join("report.json"));
        assert_eq!(r["outcome"], outcome, "{name}");
    }
}

#[test]
fn hello_digests_are_stable() {
    let (_, e) = run(&scene("hello"));
    let r = e.report();
    let (_, again) = run(&scene("hello"));
    assert_eq!(again.report().output_digest, r.output_digest);
    assert_eq!(
        r.plan_digest,
        "e751ab743e5fde9a5e4d3e616f776665bd94d6f1507e9d2371435ea5dd73001f"
    );
    assert_eq!(
        r.output_digest,
        "d5851423d5c2a57f61a9e94cf41def0d259d1cf7aa0539a75520ffc7f2acc716"
    );
}

#[test]
fn plan_digest_ignores_run_settings_but_not_the_graph() {
    let base = std::fs::read_to_string(repo().join("scenes/hello.ron")).unwrap();
    let digest = |t: &str| tapwheel::Plan::compile(&parse(t)).unwrap().digest;
    let d0 = digest(&base);
    let with_run = base.replace(
        "    edges: [",
        "    run: (until: 99, seed: 7),\n    edges: [",
    );
    assert_ne!(with_run, base);
    assert_eq!(digest(&with_run), d0);
    let other_delay = base.replace("delay: 3", "delay: 4");
    assert_ne!(digest(&other_delay), d0);
}
