//! Observability on the command line (§19): `plot` (PNG of probes, temperatures, occupancy),
//! `inspect` (summary, JSON, Graphviz DOT), `--format json` on every printing command, and the
//! `run` progress bar staying off when stderr is not a terminal.

mod common;
use common::*;
use std::path::Path;
use tapwheel::plot::{DEFAULT_PANEL_HEIGHT, DEFAULT_WIDTH};

/// `(width, height, bit depth, colour type)` from a PNG's IHDR, after checking the signature.
fn png_header(path: &Path) -> (u32, u32, u8, u8) {
    let b = std::fs::read(path).expect("PNG written");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&b[8..12], &13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20), b[24], b[25])
}

/// Runs `scenes/NAME.ron` into a fresh `target/test-out/DIR`.
fn run_into(scene: &str, dir: &str) -> std::path::PathBuf {
    let dir = out_dir(dir);
    let (code, out, err) = cli(&[
        "run",
        &format!("scenes/{scene}.ron"),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    dir
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

#[test]
fn plot_hello_writes_a_png_of_the_default_size() {
    assert_eq!((DEFAULT_WIDTH, DEFAULT_PANEL_HEIGHT), (1200, 300));
    let dir = run_into("hello", "obs_plot_hello");
    let png = dir.join("hello.png");
    let (code, stdout, stderr) = cli(&["plot", dir.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(
        stdout,
        format!("wrote {} (1200x300 px): probe out\n", png.display())
    );
    // One panel: 1200 × 300, 8-bit RGB.
    assert_eq!(png_header(&png), (1200, 300, 8, 2));
    // Same run directory, same bytes.
    let again = dir.join("again.png");
    let (code, _, _) = cli(&["plot", dir.to_str().unwrap(), "-o", again.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&png).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn plot_thermal_throttle_draws_temperatures_in_kelvin() {
    let dir = run_into("thermal_throttle", "obs_plot_thermal");
    // Default: every probe, one panel each, in report order.
    let all = dir.join("all.png");
    let (code, stdout, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        all.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["width"], 1200);
    assert_eq!(v["height"], 900);
    let kinds: Vec<(&str, &str, &str)> = v["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap(),
                p["name"].as_str().unwrap(),
                p["y_label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("probe", "done", "value"),
            ("temperature", "core_temp", "temperature (K)"),
            ("temperature", "dma_temp", "temperature (K)"),
        ]
    );
    assert_eq!(
        v["panels"][1]["title"],
        "temperature core_temp <- core.temp"
    );
    // 3000 jobs: one temperature sample per firing.
    for p in 0..3 {
        assert_eq!(v["panels"][p]["samples"], 3000);
        assert_eq!(v["panels"][p]["lines"], 1);
    }
    assert_eq!(v["omitted"], serde_json::json!([]));
    assert_eq!(png_header(&all), (1200, 900, 8, 2));

    // Chosen probes, in the order given.
    let temps = dir.join("temps.png");
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        temps.to_str().unwrap(),
        "--probe",
        "dma_temp",
        "--probe",
        "core_temp",
        "--width",
        "800",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(png_header(&temps), (800, 600, 8, 2));
}

#[test]
fn plot_unknown_probe_is_e471_exit_2() {
    let dir = run_into("hello", "obs_plot_unknown");
    let png = dir.join("x.png");
    let (code, stdout, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--probe",
        "nope",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error[E471]: the run has no probe `nope` (its probes: out)\n  --> --probe\n"
    );
    assert!(!png.exists(), "nothing is written on an error");
}

#[test]
fn plot_input_errors_have_codes() {
    // Not a run directory.
    let empty = out_dir("obs_plot_empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, stderr) = cli(&["plot", empty.to_str().unwrap(), "-o", "x.png"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!(
            "error[E470]: `{}` is not a finished run's directory: cannot read {}",
            empty.display(),
            empty.join("report.json").display()
        )),
        "{stderr}"
    );

    let dir = run_into("hello", "obs_plot_errors");
    // --channel without occupancy.csv names the file.
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        dir.join("x.png").to_str().unwrap(),
        "--channel",
        "gain.out->bias.in",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!(
            "error[E473]: --channel needs {}, which this run did not write",
            dir.join("occupancy.csv").display()
        )),
        "{stderr}"
    );
    assert!(stderr.ends_with("  --> --channel\n"), "{stderr}");

    // An output in a folder that does not exist.
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        dir.join("no/such/dir/x.png").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!(
            "error[E475]: cannot write the plot to {}",
            dir.join("no/such/dir/x.png").display()
        )) && stderr.ends_with("  --> -o\n"),
        "{stderr}"
    );

    // A malformed probe CSV is located by line.
    let csv = dir.join("probes/out.csv");
    std::fs::write(
        &csv,
        "tick,seq,batch,channel,frame,value\n3,0,0,0,0,1\n7,1,0,0,0,three\n",
    )
    .unwrap();
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        dir.join("x.png").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error[E472]: {}: `three` is not a valid `value`\n  --> {}:3:1\n",
            csv.display(),
            csv.display()
        )
    );

    // Sizes out of range.
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        "x.png",
        "--width",
        "10",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("error[E106]") && stderr.contains("--> --width"),
        "{stderr}"
    );
}

#[test]
fn plot_channel_occupancy_from_occupancy_csv() {
    let dir = run_into("hello", "obs_plot_occupancy");
    // The `run` trace's file: channels by name, or by index into report.json `channels`.
    std::fs::write(
        dir.join("occupancy.csv"),
        "tick,channel,occupancy\n0,src.out->gain.in,1\n0,gain.out->bias.in,1\n3,gain.out->bias.in,0\n4,1,1\n7,gain.out->bias.in,0\n",
    )
    .unwrap();
    let png = dir.join("occ.png");
    let (code, stdout, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--probe",
        "out",
        "--channel",
        "gain.out->bias.in",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["panels"].as_array().unwrap().len(), 2);
    assert_eq!(v["panels"][1]["kind"], "occupancy");
    assert_eq!(v["panels"][1]["name"], "gain.out->bias.in");
    assert_eq!(v["panels"][1]["y_label"], "tokens");
    assert_eq!(v["panels"][1]["samples"], 4);
    assert_eq!(png_header(&png), (1200, 600, 8, 2));

    // The step function the panel draws, held to the run's end (tick 15).
    let run = tapwheel::plot::RunDir::open(&dir).unwrap();
    let opts = tapwheel::plot::PlotOptions {
        channels: vec!["gain.out->bias.in".into()],
        ..Default::default()
    };
    let (panels, _) = tapwheel::plot::panels(&run, &opts).unwrap();
    assert_eq!(
        panels[0].series[0].points,
        vec![
            (0.0, 1.0),
            (0.003, 1.0),
            (0.003, 0.0),
            (0.004, 0.0),
            (0.004, 1.0),
            (0.007, 1.0),
            (0.007, 0.0),
            (0.015, 0.0)
        ]
    );

    // A channel the run does not have.
    let (code, _, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--channel",
        "a.out->b.in",
    ]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error[E474]: the run has no channel `a.out->b.in` (its channels: src.out->gain.in, gain.out->bias.in, bias.out->out.in)\n  --> --channel\n"
    );
}

#[test]
fn plot_multi_channel_tokens_draw_one_line_per_row_up_to_eight() {
    let dir = run_into("hello", "obs_plot_rows");
    // Replace the probe's CSV with tokens of 10 channels × 2 frames.
    let mut csv = String::from("tick,seq,batch,channel,frame,value\n");
    for (seq, tick) in [(0, 3), (1, 7)] {
        for c in 0..10 {
            for f in 0..2 {
                csv += &format!("{tick},{seq},0,{c},{f},{}\n", c * 10 + f);
            }
        }
    }
    std::fs::write(dir.join("probes/out.csv"), csv).unwrap();
    let png = dir.join("rows.png");
    let (code, stdout, stderr) = cli(&[
        "plot",
        dir.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["panels"][0]["rows"], 10);
    assert_eq!(v["panels"][0]["lines"], 8);
    assert_eq!(v["panels"][0]["samples"], 2);
    assert_eq!(
        v["panels"][0]["title"],
        "probe out <- bias.out  (8 of 10 rows)"
    );
    // Frame f of a token at tick t is the sample at (t + f) / tick_hz.
    let run = tapwheel::plot::RunDir::open(&dir).unwrap();
    let (panels, _) = tapwheel::plot::panels(&run, &Default::default()).unwrap();
    assert_eq!(panels[0].series[3].label, "ch 3");
    assert_eq!(
        panels[0].series[3].points,
        vec![(0.003, 30.0), (0.004, 31.0), (0.007, 30.0), (0.008, 31.0)]
    );
}

#[test]
fn plot_runs_without_system_fonts() {
    // The font is compiled in and plotters is built without its system-font loader (`ttf`):
    // with fontconfig and the data folders pointed at nothing, the bytes are the same. (By hand,
    // with /usr/share/fonts and /etc/fonts hidden in a mount namespace, too.)
    let dir = run_into("hello", "obs_plot_fonts");
    let a = dir.join("a.png");
    let b = dir.join("b.png");
    let (code, _, _) = cli(&["plot", dir.to_str().unwrap(), "-o", a.to_str().unwrap()]);
    assert_eq!(code, 0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapwheel"))
        .args(["plot", dir.to_str().unwrap(), "-o", b.to_str().unwrap()])
        .env("FONTCONFIG_FILE", "/nonexistent")
        .env("FONTCONFIG_PATH", "/nonexistent")
        .env("XDG_DATA_DIRS", "/nonexistent")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

const HELLO_DOT: &str = r##"digraph "hello" {
  graph [rankdir=LR, label="hello", labelloc=t, fontname="Helvetica"];
  node [fontname="Helvetica", fontsize=11];
  edge [fontname="Helvetica", fontsize=9];
  "src" [label="src\nRamp", shape=cds, style=filled, fillcolor="#dbeafe"];
  "gain" [label="gain\nGain", shape=box];
  "bias" [label="bias\nOffset", shape=box];
  "out" [label="out\nProbe", shape=note, style=filled, fillcolor="#dcfce7"];
  "src" -> "gain" [label="capacity 2"];
  "gain" -> "bias" [label="delay 3\ncapacity 2"];
  "bias" -> "out" [label="capacity 2"];
}
"##;

#[test]
fn inspect_dot_of_hello_is_exact() {
    let (code, stdout, stderr) = cli(&["inspect", "scenes/hello.ron", "--dot"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, HELLO_DOT);
    // The library gives the same text.
    assert_eq!(
        tapwheel::Plan::compile(&scene("hello")).unwrap().to_dot(),
        HELLO_DOT
    );
}

#[test]
fn inspect_dot_draws_gates_as_clusters_and_labels_channels() {
    let (code, stdout, _) = cli(&["inspect", "scenes/gate_sync.ron", "--dot"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "  subgraph \"cluster_gate_sync\" {\n    label=\"gate sync\";\n    style=dashed;\n    \"ga\" [label=\"ga\\nCopy\", shape=box];\n    \"gb\" [label=\"gb\\nCopy\", shape=box];\n  }\n"
        ),
        "{stdout}"
    );
    // Taps, initial tokens, policies and lanes.
    let (code, stdout, _) = cli(&["inspect", "scenes/thermal_throttle.ron", "--dot"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "  \"core\" -> \"core_temp\" [label=\"temp -> in\\ncapacity 2\\nTelemetry\", style=dashed];\n"
        ),
        "{stdout}"
    );
    let (code, stdout, _) = cli(&["inspect", "scenes/hamming.ron", "--dot"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("\\ninitial 1"), "{stdout}");
    // --dot and --format exclude each other (a usage error).
    let (code, _, _) = cli(&["inspect", "scenes/hello.ron", "--dot", "--format", "json"]);
    assert_eq!(code, 2);
}

#[test]
fn inspect_prints_a_summary_or_json() {
    let (code, stdout, _) = cli(&["inspect", "scenes/hello.ron"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "hello: 4 nodes (1 source, 1 probe), 3 channels, 0 gates"
    );
    assert_eq!(
        &lines[2..],
        &[
            "  nodes:",
            "    src   Ramp    source",
            "    gain  Gain",
            "    bias  Offset",
            "    out   Probe   probe",
            "  channels:",
            "    src.out->gain.in   capacity 2",
            "    gain.out->bias.in  capacity 2  delay 3",
            "    bias.out->out.in   capacity 2",
        ]
    );
    let (code, stdout, _) = cli(&["inspect", "scenes/gate_sync.ron", "--format", "json"]);
    assert_eq!(code, 0);
    let v = json(&stdout);
    assert_eq!(v["scene"], "gate_sync");
    assert_eq!(v["nodes"][0]["role"], "source");
    assert_eq!(v["nodes"][2]["gate"], "sync");
    assert_eq!(v["nodes"][4]["role"], "probe");
    assert_eq!(v["channels"][2]["from"], "ga.out");
    assert_eq!(v["channels"][2]["to"], "pa.in");
    assert_eq!(v["gates"][0]["members"], serde_json::json!(["ga", "gb"]));
    // The digest is the plan's, as `check` prints it.
    let (_, check, _) = cli(&["check", "scenes/gate_sync.ron", "--format", "json"]);
    assert_eq!(v["plan_digest"], json(&check)["plan_digest"]);
}

#[test]
fn package_format_json() {
    let dir = out_dir("obs_package_json");
    let (code, stdout, stderr) = cli(&[
        "package",
        "scenes/hello.ron",
        "-o",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["scene"], "hello");
    assert_eq!(v["platform"], "cyclesim");
    assert_eq!(v["runtime"], "host_build_graph");
    assert_eq!(
        v["files"],
        serde_json::json!(["manifest.json", "scene.ron", "tasks.json"])
    );
    assert_eq!(
        v["kernels"],
        serde_json::json!(["Ramp", "Gain", "Offset"]) // probes are the host's, not kernels
    );
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(
        v["manifest_digest"],
        blake3::hash(&manifest).to_hex().to_string()
    );
    let (_, check, _) = cli(&["check", "scenes/hello.ron", "--format", "json"]);
    assert_eq!(v["plan_digest"], json(&check)["plan_digest"]);
}

#[test]
fn every_printing_command_has_format_json() {
    let dir = out_dir("obs_every_json");
    let d = dir.to_str().unwrap();
    let run_dir = format!("{d}/run");
    let png = format!("{d}/p.png");
    let pkg = format!("{d}/pkg");
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "scenes/hello.ron", "--out", &run_dir],
        vec!["check", "scenes/hello.ron"],
        vec!["analyze", "scenes/sdf3/modem.ron"],
        vec!["inspect", "scenes/hello.ron"],
        vec!["plot", &run_dir, "-o", &png],
        vec!["package", "scenes/hello.ron", "-o", &pkg],
        vec!["grad", "scenes/fit_biquad.ron"],
        vec!["fit", "scenes/fit_biquad.ron", "--steps", "2"],
    ];
    for mut args in cases {
        args.extend(["--format", "json"]);
        let (code, stdout, stderr) = cli(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let v = json(&stdout);
        assert!(v.is_object(), "{args:?} printed {v}");
    }
}

#[test]
fn run_shows_no_progress_bar_when_stderr_is_not_a_terminal() {
    // Tests run with pipes: a 30 s simulated run prints its summary and nothing on stderr.
    let dir = out_dir("obs_progress");
    for format in ["text", "json"] {
        let (code, stdout, stderr) = cli(&[
            "run",
            "scenes/thermal_throttle.ron",
            "--out",
            dir.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(code, 0);
        assert_eq!(stderr, "", "no progress text on a pipe");
        assert!(!stdout.contains('\r'));
    }
}

#[test]
fn observed_runs_equal_plain_runs() {
    // The progress hook only reads: same outcome, digests and report as `run()`.
    let s = scene("thermal_throttle");
    let (outcome, plain) = run(&s);
    let mut observed = engine(&s);
    let mut calls = 0u64;
    let mut last_tick = 0;
    let o = observed.run_observed(|p| {
        calls += 1;
        assert!(p.tick >= last_tick, "progress never goes back");
        last_tick = p.tick;
        assert_eq!(p.until, None);
    });
    assert_eq!(o, outcome);
    let (a, b) = (plain.report(), observed.report());
    assert_eq!(a.output_digest, b.output_digest);
    assert_eq!(a.json, b.json);
    // Called after every step but the last (which ends the run).
    assert_eq!(calls + 1, b.steps);
    assert_eq!(observed.progress().steps, b.steps);
}

#[test]
fn run_summary_names_the_top_stalls() {
    // back_pressure: src waits 5 ticks in all on its full channel (longest 2); probes are left
    // out (they wait for data by design).
    let dir = out_dir("summary_stalls");
    let (code, stdout, stderr) = cli(&[
        "run",
        repo().join("scenes/back_pressure.ron").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("  top stalls: src CHANNEL_FULL_WAIT 5 ticks (longest 2)\n"),
        "{stdout}"
    );
    // task_window: three tasks wait on the window, longest first.
    let (_, stdout, _) = cli(&[
        "run",
        repo().join("scenes/task_window.ron").to_str().unwrap(),
        "--out",
        out_dir("summary_window").to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("  top stalls: t3 WINDOW_FULL 30 ticks (longest 30), t1 WINDOW_FULL 20 ticks (longest 20), t0 WINDOW_FULL 10 ticks (longest 10)\n"),
        "{stdout}"
    );
}
