//! Packages (SPEC §16): `tapwheel package SCENE -o DIR` and `tapwheel run DIR` — round trips
//! with equal digests, byte-identical re-packaging, tamper detection naming the file, the ABI
//! rule, every manifest field, and the malformed catalogue through `package`.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tapwheel::device::package::{
    Manifest, PackageOptions, Platform, Runtime, kernel_content_hash, load_package, write_package,
};
use tapwheel::scene::KernelSpec;
use tapwheel::{Engine, RunOptions};

/// A fresh directory for one test (removed first; not created).
fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("package")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `(output_digest, values_digest)` of a finished engine.
fn digests(mut e: Engine) -> (String, String) {
    e.run();
    let r = e.report();
    (r.output_digest, r.values_digest)
}

fn scene_digests(name: &str) -> (String, String) {
    digests(engine(&scene(name)))
}

/// Packages `scenes/NAME.ron` with the CLI into a fresh directory.
fn cli_package(name: &str, dir_name: &str) -> PathBuf {
    let dir = tmp(dir_name);
    let scene = format!("scenes/{name}.ron");
    let (code, out, err) = cli(&["package", &scene, "-o", s(&dir)]);
    assert_eq!(code, 0, "{out}{err}");
    dir
}

/// Runs a package (or scene) with the CLI, `--format json`; returns (exit code, report, stderr).
fn cli_run(target: &Path, extra: &[&str], out_name: &str) -> (i32, serde_json::Value, String) {
    let out = tmp(out_name);
    let mut args = vec!["run", s(target), "--out", s(&out), "--format", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = cli(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

fn manifest_json(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("manifest.json"))
}

fn write_manifest(dir: &Path, v: &serde_json::Value) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(v).unwrap(),
    )
    .unwrap();
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn library_round_trip_keeps_the_digests() {
    for name in ["hello", "pto_matmul_diamond"] {
        let dir = tmp(&format!("lib_{name}"));
        let scene_path = repo().join("scenes").join(format!("{name}.ron"));
        let w = write_package(&scene_path, &dir, &PackageOptions::default()).unwrap();
        let pkg = load_package(&dir).unwrap();
        assert_eq!(pkg.manifest, w.manifest);
        assert_eq!(
            pkg.plan.digest,
            tapwheel::Plan::compile(&scene(name)).unwrap().digest
        );
        let e = Engine::from_scene(&pkg.scene, RunOptions::default()).unwrap();
        assert_eq!(digests(e), scene_digests(name), "{name}");
    }
}

#[test]
fn cli_round_trip_keeps_the_digests_and_honours_run_options() {
    for name in ["hello", "pto_matmul_diamond"] {
        let dir = cli_package(name, &format!("cli_{name}"));
        let scene = repo().join("scenes").join(format!("{name}.ron"));
        let (code, via_pkg, err) = cli_run(&dir, &[], &format!("cli_{name}_run_pkg"));
        assert_eq!(code, 0, "{err}");
        let (code, direct, err) = cli_run(&scene, &[], &format!("cli_{name}_run_scene"));
        assert_eq!(code, 0, "{err}");
        for key in [
            "outcome",
            "plan_digest",
            "output_digest",
            "values_digest",
            "end_tick",
        ] {
            assert_eq!(via_pkg[key], direct[key], "{name}: {key}");
        }
        let (od, vd) = scene_digests(name);
        assert_eq!(via_pkg["output_digest"], od.as_str());
        assert_eq!(via_pkg["values_digest"], vd.as_str());
    }
    // Every other run option applies to a package as to its scene.
    let dir = cli_package("hello", "cli_hello_opts");
    let scene = repo().join("scenes/hello.ron");
    for extra in [
        &["--until", "7"][..],
        &["--schedule", "ipls-auto"][..],
        &["--max-steps", "5"][..],
        &["--cancel-at", "4"][..],
    ] {
        let (c1, a, e1) = cli_run(&dir, extra, "cli_hello_opts_pkg");
        let (c2, b, e2) = cli_run(&scene, extra, "cli_hello_opts_scene");
        assert_eq!((c1, c2), (0, 0), "{extra:?}: {e1}{e2}");
        for key in [
            "outcome",
            "plan_digest",
            "output_digest",
            "end_tick",
            "steps",
        ] {
            assert_eq!(a[key], b[key], "{extra:?}: {key}");
        }
    }
    let (_, a, _) = cli_run(&dir, &["--until", "7"], "cli_hello_until");
    assert_eq!(a["outcome"], "limit_reached");
    assert_eq!(a["end_tick"], 7);
}

#[test]
fn repackaging_is_byte_identical() {
    let a = cli_package("pto_matmul_diamond", "ident_a");
    let b = cli_package("pto_matmul_diamond", "ident_b");
    let first = tree(&a);
    assert_eq!(first, tree(&b));
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        vec!["manifest.json", "scene.ron", "tasks.json"]
    );
    // Packaging again into an existing package replaces it with the same bytes.
    let (code, out, err) = cli(&["package", "scenes/pto_matmul_diamond.ron", "-o", s(&a)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(tree(&a), first);
    // A different scene into the same package directory replaces it completely.
    let (code, _, err) = cli(&["package", "scenes/hello.ron", "-o", s(&a)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tree(&a), tree(&cli_package("hello", "ident_hello")));
}

#[test]
fn package_prints_the_directory_and_the_digests() {
    let dir = tmp("prints");
    let (code, out, err) = cli(&["package", "scenes/hello.ron", "-o", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    assert!(out.contains(s(&dir)), "{out}");
    assert!(
        out.contains(&format!(
            "manifest_digest {}",
            blake3::hash(&manifest).to_hex()
        )),
        "{out}"
    );
    let (_, check, _) = cli(&["check", "scenes/hello.ron"]);
    let plan_line = check
        .lines()
        .find(|l| l.trim_start().starts_with("plan_digest"))
        .unwrap()
        .trim()
        .to_string();
    assert!(out.contains(&plan_line), "{out}\n{check}");
}

#[test]
fn a_changed_byte_is_exit_2_naming_the_file() {
    for file in ["scene.ron", "tasks.json"] {
        let dir = cli_package("hello", &format!("tamper_{}", file.replace('.', "_")));
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let (code, _, err) = cli_run(&dir, &[], "tamper_run");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("error[E297]"), "{err}");
        assert!(
            err.contains(&format!("package file `{file}` does not match its digest")),
            "{err}"
        );
        let e = load_package(&dir).unwrap_err();
        assert_eq!(e.diagnostics().len(), 1);
        assert_eq!(e.diagnostics()[0].code, "E297");
    }
}

#[test]
fn a_missing_file_is_exit_2_naming_the_file() {
    for file in ["scene.ron", "tasks.json"] {
        let dir = cli_package("hello", &format!("missing_{}", file.replace('.', "_")));
        std::fs::remove_file(dir.join(file)).unwrap();
        let (code, _, err) = cli_run(&dir, &[], "missing_run");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("error[E296]"), "{err}");
        assert!(
            err.contains(&format!("package file `{file}` is missing")),
            "{err}"
        );
    }
    // Without manifest.json a directory is not a package: the library says so (E291), and
    // `run` takes the path as a scene file, which a directory is not (E105).
    let dir = cli_package("hello", "missing_manifest");
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let e = load_package(&dir).unwrap_err();
    assert_eq!(e.diagnostics()[0].code, "E291");
    assert!(e.to_string().contains("is not a package"), "{e}");
    let (code, _, err) = cli_run(&dir, &[], "missing_run");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error[E105]"), "{err}");
    // A manifest that is not JSON.
    std::fs::write(dir.join("manifest.json"), "{ nope").unwrap();
    let (code, _, err) = cli_run(&dir, &[], "missing_run");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error[E291]") && err.contains("not valid JSON"),
        "{err}"
    );
}

#[test]
fn an_unknown_major_abi_fails_fast() {
    for (abi, what) in [
        ("tapwheel-pkg/2", "is not supported"),
        ("tapwheel-pkg/one", "malformed package ABI"),
        ("pto-pkg/1", "malformed package ABI"),
    ] {
        let dir = cli_package("hello", "abi_unknown");
        let mut m = manifest_json(&dir);
        m["abi"] = abi.into();
        // Fail fast: the ABI is judged before anything else (here a missing payload file).
        std::fs::remove_file(dir.join("tasks.json")).unwrap();
        write_manifest(&dir, &m);
        let (code, _, err) = cli_run(&dir, &[], "abi_run");
        assert_eq!(code, 2, "{abi}: {err}");
        assert!(err.contains("error[E292]"), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(err.contains("manifest.json (abi)"), "{err}");
        assert!(!err.contains("E296"), "{err}");
    }
}

#[test]
fn unknown_optional_fields_of_the_same_major_are_ignored() {
    let dir = cli_package("hello", "abi_extra");
    let mut m = manifest_json(&dir);
    m["signed_by"] = serde_json::json!({"key": "test", "sig": "00"});
    m["kernels"][0]["binary"] = "kernel_ramp.o".into();
    m["schedule"]["aicpu_threads"] = 3.into();
    write_manifest(&dir, &m);
    let (code, r, err) = cli_run(&dir, &[], "abi_extra_run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["output_digest"], scene_digests("hello").0.as_str());
    // A minor revision of major 1 reads too.
    m["abi"] = "tapwheel-pkg/1.1".into();
    write_manifest(&dir, &m);
    assert_eq!(cli_run(&dir, &[], "abi_extra_run").0, 0);
}

#[test]
fn a_missing_or_wrong_manifest_field_is_exit_2() {
    let dir = cli_package("hello", "fields");
    let good = manifest_json(&dir);
    let mut m = good.clone();
    m.as_object_mut().unwrap().remove("plan_digest");
    m.as_object_mut().unwrap().remove("csp");
    write_manifest(&dir, &m);
    let (code, _, err) = cli_run(&dir, &[], "fields_run");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("lacks the required field `plan_digest`"),
        "{err}"
    );
    assert!(err.contains("lacks the required field `csp`"), "{err}");

    let mut m = good.clone();
    m["platform"] = "gpu".into();
    m["runtime"] = "fast".into();
    write_manifest(&dir, &m);
    let (code, _, err) = cli_run(&dir, &[], "fields_run");
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E294]") && err.contains("error[E295]"),
        "{err}"
    );

    // A listed path that leaves the package is refused before any file is read.
    let mut m = good.clone();
    m["files"]["../escape.csv"] = "00".repeat(32).into();
    write_manifest(&dir, &m);
    let (code, _, err) = cli_run(&dir, &[], "fields_run");
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E293]") && err.contains("../escape.csv"),
        "{err}"
    );

    // A plan digest that does not match the scene's plan.
    let mut m = good;
    m["plan_digest"] = "0".repeat(64).into();
    write_manifest(&dir, &m);
    let (code, _, err) = cli_run(&dir, &[], "fields_run");
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E298]") && err.contains("plan_digest"),
        "{err}"
    );
}

#[test]
fn manifest_of_hello_holds_every_field() {
    let dir = cli_package("hello", "fields_hello");
    let m = manifest_json(&dir);
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "abi",
            "scene",
            "platform",
            "runtime",
            "plan_digest",
            "kernels",
            "orchestration",
            "schedule",
            "csp",
            "slots",
            "files"
        ]
    );
    assert_eq!(m["abi"], "tapwheel-pkg/1");
    assert_eq!(
        m["scene"],
        serde_json::json!({"name": "hello", "file": "scene.ron"})
    );
    assert_eq!(m["platform"], "cyclesim");
    assert_eq!(m["runtime"], "host_build_graph");
    let (_, check, _) = cli(&["check", "scenes/hello.ron", "--format", "json"]);
    let check: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert_eq!(m["plan_digest"], check["plan_digest"]);

    // The kernel registry: probes are not tasks, so src, gain, bias → 0, 1, 2.
    let one = |name: &str| serde_json::json!({"name": name, "rate": 1, "shape": [1, 1, 1], "dtype": "f32"});
    let expected = serde_json::json!([
        {"func_id": 0, "name": "Ramp", "core": "AiCpu",
         "signature": {"inputs": [], "outputs": [one("out")]},
         "content_hash": kernel_content_hash(&KernelSpec::Ramp { start: 0.0, step: 1.0 })},
        {"func_id": 1, "name": "Gain", "core": "Vector",
         "signature": {"inputs": [one("in")], "outputs": [one("out")]},
         "content_hash": kernel_content_hash(&KernelSpec::Gain { gain: 2.0 })},
        {"func_id": 2, "name": "Offset", "core": "Vector",
         "signature": {"inputs": [one("in")], "outputs": [one("out")]},
         "content_hash": kernel_content_hash(&KernelSpec::Offset { value: 1.0 })},
    ]);
    assert_eq!(m["kernels"], expected);
    assert_eq!(
        m["orchestration"],
        serde_json::json!({"kind": "task_graph/json", "file": "tasks.json"})
    );
    assert_eq!(
        m["schedule"],
        serde_json::json!({"mode": "kpn", "stages": [], "gates": [], "domains": 1,
            "policy": {"kind": "RoundRobin"}, "dispatch_cost": 0, "workers": null,
            "task_window": null})
    );
    assert_eq!(
        m["csp"]["memory"],
        serde_json::json!({"kind": "Parks", "max_capacity": 65536})
    );
    let chans: Vec<(String, u64, u64)> = m["csp"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}->{}",
                    c["from"].as_str().unwrap(),
                    c["to"].as_str().unwrap()
                ),
                c["capacity"].as_u64().unwrap(),
                c["latency"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chans,
        vec![
            ("src.out->gain.in".to_string(), 2, 0),
            ("gain.out->bias.in".to_string(), 2, 3),
            ("bias.out->out.in".to_string(), 2, 0),
        ]
    );
    assert_eq!(m["csp"]["channels"][1]["lane"], "Data");
    assert_eq!(m["csp"]["channels"][1]["policy"], "Block");
    assert_eq!(
        m["slots"],
        serde_json::json!({"count": 256, "slots": [], "symbols": []})
    );
    // `files` lists every other file with its BLAKE3, and scene.ron is the scene verbatim.
    let files = m["files"].as_object().unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec!["scene.ron", "tasks.json"]
    );
    for (rel, digest) in files {
        let bytes = std::fs::read(dir.join(rel)).unwrap();
        assert_eq!(digest, &blake3::hash(&bytes).to_hex().to_string());
    }
    assert_eq!(
        std::fs::read(dir.join("scene.ron")).unwrap(),
        std::fs::read(repo().join("scenes/hello.ron")).unwrap()
    );
    // The library reads what the CLI wrote.
    let parsed =
        Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap(), "m").unwrap();
    assert_eq!(parsed.platform, Platform::Cyclesim);
    assert_eq!(parsed.runtime, Runtime::HostBuildGraph);

    // tasks.json: every node with its func_id (probes: none), core and taps; every channel.
    let t = read_json(&dir.join("tasks.json"));
    assert_eq!(t["format"], "tapwheel-tasks/1");
    let nodes: Vec<(String, serde_json::Value, bool)> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["func_id"].clone(),
                n["task"] == true,
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("src".into(), 0.into(), true),
            ("gain".into(), 1.into(), true),
            ("bias".into(), 2.into(), true),
            ("out".into(), serde_json::Value::Null, false),
        ]
    );
    assert_eq!(
        t["nodes"][0]["source"],
        serde_json::json!({"period": 4, "offset": 0, "count": 4})
    );
    assert_eq!(
        t["nodes"][1]["outputs"][0]["channels"],
        serde_json::json!([1])
    );
    assert_eq!(
        t["channels"][1],
        serde_json::json!({"index": 1, "from": "gain.out", "to": "bias.in"})
    );
}

#[test]
fn matmul_diamond_registry_shares_func_ids_and_keeps_cores() {
    let dir = tmp("matmul_registry");
    let w = write_package(
        &repo().join("scenes/pto_matmul_diamond.ron"),
        &dir,
        &PackageOptions {
            platform: Some(Platform::A2a3sim),
            runtime: Runtime::TensormapAndRingbuffer,
        },
    )
    .unwrap();
    let m = &w.manifest;
    assert_eq!(
        (m.platform, m.runtime),
        (Platform::A2a3sim, Runtime::TensormapAndRingbuffer)
    );
    let reg: Vec<(u32, &str, String)> = m
        .kernels
        .iter()
        .map(|k| (k.func_id, k.name.as_str(), format!("{:?}", k.core)))
        .collect();
    // W1 and W2 are one function (same spec and signature), so are C and D; logA, B and F are
    // three `Map` functions (Log, Sqrt, Exp).
    assert_eq!(
        reg,
        vec![
            (0, "Const", "AiCpu".into()),
            (1, "Const", "AiCpu".into()),
            (2, "Map", "Vector".into()),
            (3, "Map", "Vector".into()),
            (4, "MatMul", "Cube".into()),
            (5, "Add", "Vector".into()),
            (6, "Map", "Vector".into()),
        ]
    );
    let mm = &m.kernels[4].signature;
    assert_eq!(mm.inputs[0].shape, [1, 128, 128]);
    assert_eq!(mm.outputs[0].dtype, "f32");
    let t = read_json(&dir.join("tasks.json"));
    let ids: Vec<_> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["func_id"].clone())
        .collect();
    assert_eq!(
        ids,
        serde_json::json!([0, 1, 1, 2, 3, 4, 4, 5, 6, null])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn core_defaults_to_the_kernels_cost_declaration() {
    let dir = tmp("core_default");
    std::fs::create_dir_all(&dir).unwrap();
    let scene = dir.join("mm.ron");
    std::fs::write(
        &scene,
        r#"Scene(version: 1, name: "mm", defaults: (shape: (batch: 1, channels: 4, frames: 4)),
            nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)),
                    Node(name: "m", kernel: MatMul), Node(name: "s", kernel: Softmax(axis: 0), core: Some(AiCpu)),
                    Node(name: "out", kernel: Probe)],
            edges: [Edge(from: "a.out", to: "m.a"), Edge(from: "a.out", to: "m.b"),
                    Edge(from: "m.out", to: "s.in"), Edge(from: "s.out", to: "out.in")])"#,
    )
    .unwrap();
    let w = write_package(&scene, &dir.join("pkg"), &PackageOptions::default()).unwrap();
    let cores: Vec<String> = w
        .manifest
        .kernels
        .iter()
        .map(|k| format!("{:?}", k.core))
        .collect();
    // Sources are AICPU work by default (docs/devices.md), MatMul cube work.
    assert_eq!(cores, vec!["AiCpu", "Cube", "AiCpu"]);
}

#[test]
fn referenced_files_travel_with_the_scene() {
    let dir = tmp("files");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/x.csv"), "1\n2\n3\n").unwrap();
    let scene_text = r#"Scene(version: 1, name: "filesrc",
        nodes: [Node(name: "src", kernel: File(path: "./data/x.csv"), period: Some(2)),
                Node(name: "g", kernel: Gain(gain: 3.0)), Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#;
    std::fs::write(dir.join("f.ron"), scene_text).unwrap();
    let pkg = dir.join("pkg");
    let w = write_package(&dir.join("f.ron"), &pkg, &PackageOptions::default()).unwrap();
    assert_eq!(
        w.manifest.files.keys().collect::<Vec<_>>(),
        vec!["data/x.csv", "scene.ron", "tasks.json"]
    );
    assert_eq!(std::fs::read(pkg.join("data/x.csv")).unwrap(), b"1\n2\n3\n");
    // The package runs from its own copy: remove the original.
    std::fs::remove_file(dir.join("data/x.csv")).unwrap();
    let loaded = load_package(&pkg).unwrap();
    let mut e = Engine::from_scene(&loaded.scene, RunOptions::default()).unwrap();
    e.run();
    assert_eq!(e.probe("out").unwrap().values, vec![3.0, 6.0, 9.0]);
    // A changed data file is named.
    std::fs::write(pkg.join("data/x.csv"), "1\n2\n4\n").unwrap();
    let err = load_package(&pkg).unwrap_err();
    assert_eq!(err.diagnostics()[0].code, "E297");
    assert!(
        err.to_string().contains("package file `data/x.csv`"),
        "{err}"
    );
}

#[test]
fn loss_target_is_packaged_and_must_exist() {
    let dir = tmp("loss");
    std::fs::create_dir_all(&dir).unwrap();
    let text = |target: &str| {
        format!(
            r#"Scene(version: 1, name: "l",
            nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "out", kernel: Probe)],
            edges: [Edge(from: "a.out", to: "out.in")],
            loss: Some(Mse(probe: "out", target: "{target}")))"#
        )
    };
    std::fs::write(dir.join("t.csv"), "1\n").unwrap();
    std::fs::write(dir.join("ok.ron"), text("t.csv")).unwrap();
    let w = write_package(
        &dir.join("ok.ron"),
        &dir.join("pkg"),
        &PackageOptions::default(),
    )
    .unwrap();
    assert!(w.manifest.files.contains_key("t.csv"));
    for (name, target) in [("missing.ron", "nope.csv"), ("escape.ron", "../t.csv")] {
        std::fs::write(dir.join(name), text(target)).unwrap();
        let err = write_package(
            &dir.join(name),
            &dir.join("pkg2"),
            &PackageOptions::default(),
        )
        .unwrap_err();
        // The plan checks the target first (E451, like `check`), before packaging would.
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.diagnostics()[0].code, "E451", "{err}");
        assert!(err.to_string().contains("loss.Mse.target"), "{err}");
        assert!(!dir.join("pkg2").exists());
    }
}

/// A tile GEMM + add on `device: CycleSim(profile: "PROFILE")`, one tick per cycle.
fn cyclesim_scene(profile: &str) -> String {
    format!(
        r#"Scene(version: 1, name: "cs", tick_hz: 1.8e9,
        defaults: (shape: (batch: 1, channels: 16, frames: 16)),
        nodes: [Node(name: "a", kernel: Const(value: 0.5), period: Some(1000), count: Some(3)),
                Node(name: "b", kernel: Const(value: 0.25), period: Some(1000), count: Some(3)),
                Node(name: "c", kernel: Const(value: 1.0), period: Some(1000), count: Some(3)),
                Node(name: "mm", kernel: MatMul, core: Some(Cube)),
                Node(name: "add", kernel: Add, core: Some(Vector)),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "a.out", to: "mm.a"), Edge(from: "b.out", to: "mm.b"),
                Edge(from: "mm.out", to: "add.a"), Edge(from: "c.out", to: "add.b"),
                Edge(from: "add.out", to: "out.in")],
        device: CycleSim(profile: "{profile}"))"#
    )
}

#[test]
fn cyclesim_profile_travels_with_the_scene() {
    let dir = tmp("cyclesim");
    std::fs::create_dir_all(&dir).unwrap();
    // The built-in figures with a slower orchestrator, so the run tells the two apart.
    let builtin = tapwheel::device::cyclesim::BUILTIN_A2A3;
    let submit = "orchestrator_submit: 200,";
    assert!(builtin.contains(submit));
    let prof = builtin.replace(submit, "orchestrator_submit: 300,");
    std::fs::write(dir.join("prof.ron"), &prof).unwrap();
    std::fs::write(dir.join("cs.ron"), cyclesim_scene("prof.ron")).unwrap();
    let pkg = dir.join("pkg");
    let (code, out, err) = cli(&["package", s(&dir.join("cs.ron")), "-o", s(&pkg)]);
    assert_eq!(code, 0, "{out}{err}");
    let m = manifest_json(&pkg);
    assert_eq!(m["platform"], "cyclesim");
    let files = m["files"].as_object().unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec!["prof.ron", "scene.ron", "tasks.json"]
    );
    assert_eq!(
        files["prof.ron"],
        blake3::hash(prof.as_bytes()).to_hex().as_str()
    );
    assert_eq!(std::fs::read_to_string(pkg.join("prof.ron")).unwrap(), prof);

    // The package runs from its own copy (the original is gone) exactly as the scene ran.
    let (code, direct, err) = cli_run(&dir.join("cs.ron"), &[], "cyclesim_scene_run");
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(dir.join("prof.ron")).unwrap();
    let (code, via_pkg, err) = cli_run(&pkg, &[], "cyclesim_pkg_run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(direct["outcome"], "completed");
    for key in [
        "outcome",
        "plan_digest",
        "output_digest",
        "values_digest",
        "end_tick",
    ] {
        assert_eq!(via_pkg[key], direct[key], "{key}");
    }
    assert_eq!(via_pkg["device"]["cycles"], direct["device"]["cycles"]);
    // The slower orchestrator shows: the built-in profile gives another timing.
    std::fs::write(dir.join("b.ron"), cyclesim_scene("builtin:a2a3")).unwrap();
    let (code, builtin_run, err) = cli_run(&dir.join("b.ron"), &[], "cyclesim_builtin_run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(builtin_run["values_digest"], direct["values_digest"]);
    assert_ne!(builtin_run["output_digest"], direct["output_digest"]);

    // A changed profile is named (exit 2), before anything runs.
    std::fs::write(
        pkg.join("prof.ron"),
        prof.replace("orchestrator_submit: 300,", "orchestrator_submit: 301,"),
    )
    .unwrap();
    let (code, _, err) = cli_run(&pkg, &[], "cyclesim_tamper_run");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error[E297]"), "{err}");
    assert!(
        err.contains("package file `prof.ron` does not match its digest"),
        "{err}"
    );
    let e = load_package(&pkg).unwrap_err();
    assert_eq!(e.diagnostics().len(), 1);
    assert_eq!(e.diagnostics()[0].code, "E297");
    // A missing one too.
    std::fs::remove_file(pkg.join("prof.ron")).unwrap();
    let (code, _, err) = cli_run(&pkg, &[], "cyclesim_missing_run");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("package file `prof.ron` is missing"), "{err}");
}

#[test]
fn cyclesim_profiles_outside_the_scene_folder_are_e299() {
    let dir = tmp("cyclesim_outside");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("prof.ron"),
        tapwheel::device::cyclesim::BUILTIN_A2A3,
    )
    .unwrap();
    // `../prof.ron` resolves from the scene's folder; `assets/devices/a2a3.ron` only from the
    // working directory (the CLI runs in the repository root).
    for (name, profile, says) in [
        (
            "up.ron",
            "../prof.ron",
            "must be a relative path inside the scene's folder",
        ),
        (
            "cwd.ron",
            "assets/devices/a2a3.ron",
            "is not in the scene's folder (it was found relative to the working directory)",
        ),
    ] {
        let scene = dir.join("sub").join(name);
        std::fs::write(&scene, cyclesim_scene(profile)).unwrap();
        // The scene itself plans and runs.
        let (code, _, err) = cli(&["check", s(&scene)]);
        assert_eq!(code, 0, "{profile}: {err}");
        let pkg = dir.join("pkg");
        let (code, out, err) = cli(&["package", s(&scene), "-o", s(&pkg)]);
        assert_eq!(code, 2, "{profile}: {out}{err}");
        assert!(err.contains("error[E299]"), "{err}");
        assert!(err.contains("device.profile"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!pkg.exists());
    }
    // A built-in profile is not a file: nothing more travels.
    let scene = dir.join("sub").join("builtin.ron");
    std::fs::write(&scene, cyclesim_scene("builtin:a2a3")).unwrap();
    let w = write_package(&scene, &dir.join("pkg"), &PackageOptions::default()).unwrap();
    assert_eq!(
        w.manifest.files.keys().collect::<Vec<_>>(),
        vec!["scene.ron", "tasks.json"]
    );
}

#[test]
fn platform_follows_the_device_and_runs_are_refused_like_the_scene() {
    let dir = tmp("ascend");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.ron"),
        r#"Scene(version: 1, name: "asc",
            nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "out", kernel: Probe)],
            edges: [Edge(from: "a.out", to: "out.in")],
            device: Ascend(library: "libpto_runtime.so", device_id: 0))"#,
    )
    .unwrap();
    let pkg = dir.join("pkg");
    let (code, out, err) = cli(&["package", s(&dir.join("a.ron")), "-o", s(&pkg)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(manifest_json(&pkg)["platform"], "a2a3");
    // The package runs as the scene does: the bridge refuses the missing library (exit 4).
    let (c1, _, e1) = cli_run(&pkg, &[], "ascend_run");
    let (c2, _, e2) = cli_run(&dir.join("a.ron"), &[], "ascend_run");
    assert_eq!((c1, c2), (4, 4), "{e1}{e2}");
    assert!(
        e1.contains("refused[R360]") && e2.contains("refused[R360]"),
        "{e1}"
    );
    // --platform overrides the default.
    let (code, _, err) = cli(&[
        "package",
        s(&dir.join("a.ron")),
        "-o",
        s(&pkg),
        "--platform",
        "a2a3sim",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(manifest_json(&pkg)["platform"], "a2a3sim");
}

#[test]
fn bad_arguments_and_directories_are_exit_2() {
    let dir = tmp("args");
    let (code, _, err) = cli(&[
        "package",
        "scenes/hello.ron",
        "-o",
        s(&dir),
        "--platform",
        "gpu",
        "--runtime",
        "fast",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E294]") && err.contains("--platform"),
        "{err}"
    );
    assert!(
        err.contains("error[E295]") && err.contains("--runtime"),
        "{err}"
    );
    assert!(!dir.exists());
    for r in [
        "host_build_graph",
        "aicpu_build_graph",
        "tensormap_and_ringbuffer",
    ] {
        let (code, _, err) = cli(&["package", "scenes/hello.ron", "-o", s(&dir), "--runtime", r]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(manifest_json(&dir)["runtime"], r);
    }

    // A non-empty directory that is not a package is left alone.
    let keep = tmp("args_keep");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("notes.txt"), "mine").unwrap();
    let (code, _, err) = cli(&["package", "scenes/hello.ron", "-o", s(&keep)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("error[E290]") && err.contains("not a package"),
        "{err}"
    );
    assert_eq!(tree(&keep).keys().collect::<Vec<_>>(), vec!["notes.txt"]);
    // A file is not a directory.
    let (code, _, err) = cli(&[
        "package",
        "scenes/hello.ron",
        "-o",
        s(&keep.join("notes.txt")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("error[E290]"), "{err}");
    // An empty directory is fine.
    let empty = tmp("args_empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(cli(&["package", "scenes/hello.ron", "-o", s(&empty)]).0, 0);

    // A bad scene: the usual diagnostics, exit 2, nothing written.
    let out = tmp("args_bad_scene");
    let (code, _, err) = cli(&["package", "tests/malformed/a_concat_sum.ron", "-o", s(&out)]);
    assert_eq!(code, 2);
    assert!(err.contains("error[E235]"), "{err}");
    assert!(!out.exists());
    let (code, _, err) = cli(&["package", "scenes/nope.ron", "-o", s(&out)]);
    assert_eq!(code, 2);
    assert!(err.contains("error[E105]"), "{err}");
}

/// The malformed catalogue through `tapwheel package`: every scene is rejected with its listed
/// codes (exit 2) and nothing is written — except scenes whose only fault is a run input (E280:
/// a symbol without a value), which package fine and fail when the package runs.
#[test]
fn malformed_catalogue_is_rejected_by_package() {
    let cat = repo().join("tests/malformed");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&cat)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 30);
    let root = tmp("malformed");
    let mut checked = 0;
    for p in &paths {
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        if text
            .lines()
            .any(|l| l.starts_with("//") && l.contains("engine-bug:"))
        {
            continue;
        }
        let codes: Vec<String> = text
            .lines()
            .take_while(|l| l.starts_with("//"))
            .filter_map(|l| {
                let body = l.trim_start_matches('/').trim();
                body.strip_prefix("expect:")
                    .or_else(|| body.strip_prefix("also:"))
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_string)
            })
            .collect();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let out = root.join(&name);
        let (code, stdout, stderr) = cli(&["package", s(p), "-o", s(&out)]);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if codes.iter().all(|c| c == "E280") {
            assert_eq!(code, 0, "{name}: {stdout}{stderr}");
            let (code, _, err) = cli_run(&out, &[], "malformed_run");
            assert_eq!(code, 2, "{name}: {err}");
            assert!(err.contains("error[E280]"), "{name}: {err}");
        } else {
            assert_eq!(code, 2, "{name}: {stdout}{stderr}");
            for c in codes.iter().filter(|c| *c != "E280") {
                assert!(
                    stderr.contains(&format!("error[{c}]")),
                    "{name}: expected {c}\n{stderr}"
                );
            }
            assert!(!out.exists(), "{name}: wrote a package");
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}
