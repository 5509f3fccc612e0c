//! `tapwheel run --trace FILE.json --vcd FILE.vcd` (§19): the Chrome trace event JSON, the VCD
//! waveform and `occupancy.csv` of a recorded run, with exact times and values; recording
//! never changes a run's results.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tapwheel::trace::RecordOptions;
use tapwheel::{Engine, RunOptions};

/// Runs `tapwheel run SCENE --trace --vcd` (plus `extra`) into a fresh folder; returns the
/// folder, the trace, the VCD text and the report.
fn traced(name: &str, scene: &str, extra: &[&str]) -> (PathBuf, Value, String, Value) {
    let dir = out_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.json");
    let vcd = dir.join("wave.vcd");
    let run = dir.join("run");
    let mut args = vec![
        "run",
        scene,
        "--out",
        run.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--vcd",
        vcd.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = cli(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let t = read_json(&trace);
    let v = std::fs::read_to_string(&vcd).unwrap();
    let r = read_json(&run.join("report.json"));
    (run, t, v, r)
}

fn events(t: &Value) -> &Vec<Value> {
    t["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
}

/// `(ts, dur)` of the firing X events of `node`, in order.
fn firings(t: &Value, node: &str) -> Vec<(f64, f64)> {
    events(t)
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "firing" && e["name"] == node)
        .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect()
}

/// Track names by tid.
fn tracks(t: &Value) -> BTreeMap<u64, String> {
    events(t)
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(ts, value)` of a counter's events, in file order.
fn counter(t: &Value, name: &str, series: &str) -> Vec<(f64, f64)> {
    events(t)
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"] == name)
        .map(|e| {
            (
                e["ts"].as_f64().unwrap(),
                e["args"][series].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The X events of one track never overlap (a Chrome trace track must nest its slices).
fn assert_tracks_do_not_overlap(t: &Value) {
    let mut by_tid: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events(t).iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_f64().unwrap();
        let dur = e["dur"].as_f64().unwrap();
        assert!(dur >= 0.0, "{e}");
        by_tid
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    for (tid, mut v) in by_tid {
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        for w in v.windows(2) {
            assert!(
                w[1].0 >= w[0].1 - 1e-9 * w[0].1.abs().max(1.0),
                "track {tid}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
}

fn total_firings(r: &Value) -> u64 {
    r["firings"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn count_firing_events(t: &Value) -> u64 {
    events(t)
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "firing")
        .count() as u64
}

/// A parsed VCD: header text, variables `(kind, size, id, scope.name)`, and value changes
/// per identifier `(time, value text)`.
struct Vcd {
    header: String,
    vars: Vec<(String, String, String, String)>,
    changes: BTreeMap<String, Vec<(u128, String)>>,
    times: Vec<u128>,
}

fn parse_vcd(text: &str) -> Vcd {
    let (header, body) = text
        .split_once("$enddefinitions $end")
        .expect("a VCD has $enddefinitions $end");
    let mut vars = Vec::new();
    let mut scopes: Vec<String> = Vec::new();
    for line in header.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["$scope", "module", name, "$end"] => scopes.push(name.to_string()),
            ["$upscope", "$end"] => {
                scopes.pop();
            }
            ["$var", kind, size, id, name, "$end"] => vars.push((
                kind.to_string(),
                size.to_string(),
                id.to_string(),
                format!("{}.{name}", scopes.join(".")),
            )),
            _ => {}
        }
    }
    let mut changes: BTreeMap<String, Vec<(u128, String)>> = BTreeMap::new();
    let mut times = Vec::new();
    let mut now = 0u128;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(t) = line.strip_prefix('#') {
            now = t.parse().expect("a VCD time is an integer");
            times.push(now);
        } else if line.starts_with('$') {
            continue; // $dumpvars / $end
        } else {
            let (value, id) = line.split_once(' ').expect("`<value> <id>`");
            changes
                .entry(id.to_string())
                .or_default()
                .push((now, value.to_string()));
        }
    }
    Vcd {
        header: header.to_string(),
        vars,
        changes,
        times,
    }
}

impl Vcd {
    fn id(&self, path: &str) -> &str {
        &self
            .vars
            .iter()
            .find(|v| v.3 == path)
            .unwrap_or_else(|| panic!("no VCD variable {path}: {:?}", self.vars))
            .2
    }
    fn of(&self, path: &str) -> Vec<(u128, &str)> {
        self.changes
            .get(self.id(path))
            .map(|v| v.iter().map(|(t, s)| (*t, s.as_str())).collect())
            .unwrap_or_default()
    }
}

#[test]
fn hello_trace_has_one_firing_event_per_firing_at_exact_microseconds() {
    let (_, t, _, r) = traced("trace_hello", "scenes/hello.ron", &[]);
    assert_eq!(t["displayTimeUnit"], "ns");
    assert_eq!(t["otherData"]["tick_hz"], 1000.0);
    assert_eq!(t["otherData"]["microseconds_per_tick"], 1000.0);
    assert_eq!(t["otherData"]["output_digest"], r["output_digest"]);
    assert_eq!(total_firings(&r), 16);
    assert_eq!(count_firing_events(&t), 16);
    // tick_hz 1000: a tick is 1000 µs. src fires at 0, 4, 8, 12; bias and the probe see the
    // delayed tokens at 3, 7, 11, 15 (header of scenes/hello.ron); every latency is 0.
    assert_eq!(
        firings(&t, "src"),
        vec![(0.0, 0.0), (4000.0, 0.0), (8000.0, 0.0), (12000.0, 0.0)]
    );
    assert_eq!(
        firings(&t, "bias"),
        vec![(3000.0, 0.0), (7000.0, 0.0), (11000.0, 0.0), (15000.0, 0.0)]
    );
    assert_eq!(firings(&t, "out"), firings(&t, "bias"));
    let bias = events(&t)
        .iter()
        .find(|e| e["cat"] == "firing" && e["name"] == "bias" && e["args"]["firing"] == 2)
        .unwrap();
    assert_eq!(bias["args"]["issue_tick"], 11);
    assert_eq!(bias["args"]["complete_tick"], 11);
    assert!(bias["args"].get("domain").is_none());
    // Metadata: the process and one named track per node (Reference, no dispatch).
    assert!(events(&t).iter().any(|e| e["ph"] == "M"
        && e["name"] == "process_name"
        && e["args"]["name"] == "tapwheel hello"));
    let names = tracks(&t);
    for n in [
        "node src",
        "node gain",
        "node bias",
        "node out",
        "bias stalls",
    ] {
        assert!(names.values().any(|v| v == n), "no track {n}: {names:?}");
    }
    let bias_tid = events(&t)
        .iter()
        .find(|e| e["cat"] == "firing" && e["name"] == "bias")
        .unwrap()["tid"]
        .as_u64()
        .unwrap();
    assert_eq!(names[&bias_tid], "node bias");
    // bias waits for its delayed input: CHANNEL_EMPTY_WAIT [0, 3), [3, 7), … on its own track.
    let stalls: Vec<(f64, f64)> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "stall" && e["args"]["node"] == "bias")
        .map(|e| {
            assert_eq!(e["name"], "CHANNEL_EMPTY_WAIT");
            assert_eq!(e["args"]["on"], "channel gain.out->bias.in");
            (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(
        stalls,
        vec![
            (0.0, 3000.0),
            (3000.0, 4000.0),
            (7000.0, 4000.0),
            (11000.0, 4000.0)
        ]
    );
    assert_tracks_do_not_overlap(&t);
}

#[test]
fn back_pressure_firings_stalls_and_occupancy_counters_are_exact() {
    let (run, t, _, r) = traced("trace_back_pressure", "scenes/back_pressure.ron", &[]);
    assert_eq!(count_firing_events(&t), total_firings(&r));
    // tick_hz 1 (the default): a tick is 10⁶ µs. The source is held back to 0, 1, 3, 6, 9;
    // `slow` (latency 3) fires back to back from 0.
    let s = 1e6;
    assert_eq!(
        firings(&t, "src"),
        vec![
            (0.0, 0.0),
            (s, 0.0),
            (3.0 * s, 0.0),
            (6.0 * s, 0.0),
            (9.0 * s, 0.0)
        ]
    );
    assert_eq!(
        firings(&t, "slow"),
        (0..5)
            .map(|k| (3.0 * k as f64 * s, 3.0 * s))
            .collect::<Vec<_>>()
    );
    let full: Vec<(f64, f64)> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "stall" && e["args"]["node"] == "src")
        .map(|e| {
            assert_eq!(e["name"], "CHANNEL_FULL_WAIT");
            assert_eq!(e["args"]["on"], "channel src.out->slow.in");
            (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap())
        })
        .collect();
    // Due at 2 but the channel is full until slow takes the token at 3; due at 4 → 6; 7 → 9.
    assert_eq!(
        full,
        vec![(2.0 * s, s), (4.0 * s, 2.0 * s), (7.0 * s, 2.0 * s)]
    );
    // Occupancy = tokens + reservations, sampled at the end of every step that changed it:
    // src writes at (0,0), slow takes it at (0,1) and reserves its output slot for 3 ticks;
    // at (3,0) slow's output lands and its next firing reserves again (2), the probe takes one
    // at (3,1) while src refills the capacity-1 channel.
    assert_eq!(
        counter(&t, "occupancy src.out->slow.in", "tokens"),
        vec![
            (0.0, 0.0),
            (0.0, 1.0),
            (0.0, 0.0),
            (s, 1.0),
            (3.0 * s, 0.0),
            (3.0 * s, 1.0),
            (6.0 * s, 0.0),
            (6.0 * s, 1.0),
            (9.0 * s, 0.0),
            (9.0 * s, 1.0),
            (12.0 * s, 0.0),
        ]
    );
    assert_eq!(
        counter(&t, "occupancy slow.out->out.in", "tokens"),
        vec![
            (0.0, 0.0),
            (0.0, 1.0),
            (3.0 * s, 2.0),
            (3.0 * s, 1.0),
            (6.0 * s, 2.0),
            (6.0 * s, 1.0),
            (9.0 * s, 2.0),
            (9.0 * s, 1.0),
            (12.0 * s, 2.0),
            (12.0 * s, 1.0),
            (15.0 * s, 0.0),
        ]
    );
    let csv = std::fs::read_to_string(run.join("occupancy.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "tick,channel,occupancy");
    assert_eq!(
        &rows[1..6],
        &[
            "0,src.out->slow.in,0",
            "0,slow.out->out.in,0",
            "0,src.out->slow.in,1",
            "0,src.out->slow.in,0",
            "0,slow.out->out.in,1",
        ]
    );
    assert_eq!(rows.last(), Some(&"15,slow.out->out.in,0"));
    assert_eq!(rows.len(), 1 + 22);
    assert_tracks_do_not_overlap(&t);
}

#[test]
fn hello_vcd_has_header_variables_and_value_changes_at_the_right_times() {
    let (_, _, text, _) = traced("vcd_hello", "scenes/hello.ron", &[]);
    let vcd = parse_vcd(&text);
    for key in [
        "$date",
        "$version",
        "$timescale 1 ms $end",
        "$scope module tapwheel $end",
    ] {
        assert!(
            vcd.header.contains(key),
            "header lacks {key}:\n{}",
            vcd.header
        );
    }
    // One real per probe, one 32-bit integer per channel.
    let kinds: Vec<(&str, &str, &str)> = vcd
        .vars
        .iter()
        .map(|v| (v.0.as_str(), v.1.as_str(), v.3.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("real", "64", "tapwheel.probes.out"),
            ("integer", "32", "tapwheel.channels.src_out_to_gain_in"),
            ("integer", "32", "tapwheel.channels.gain_out_to_bias_in"),
            ("integer", "32", "tapwheel.channels.bias_out_to_out_in"),
        ]
    );
    for (_, _, id, _) in &vcd.vars {
        assert!(id.bytes().all(|b| (33..=126).contains(&b)), "bad id {id:?}");
    }
    assert!(vcd.times.windows(2).all(|w| w[0] < w[1]), "{:?}", vcd.times);
    // 1 tick = 1 ms: the probe's 1, 3, 5, 7 at ticks 3, 7, 11, 15.
    assert_eq!(
        vcd.of("tapwheel.probes.out"),
        vec![(3, "r1"), (7, "r3"), (11, "r5"), (15, "r7")]
    );
    // The delayed channel holds each token from its write (0, 4, 8, 12) to its visibility
    // (3, 7, 11, 15); the zero-delay channels only hold tokens for a delta (no change).
    assert_eq!(
        vcd.of("tapwheel.channels.gain_out_to_bias_in"),
        vec![
            (0, "b1"),
            (3, "b0"),
            (4, "b1"),
            (7, "b0"),
            (8, "b1"),
            (11, "b0"),
            (12, "b1"),
            (15, "b0")
        ]
    );
    assert_eq!(
        vcd.of("tapwheel.channels.src_out_to_gain_in"),
        vec![(0, "b0")]
    );
}

#[test]
fn thermal_throttle_temperatures_in_trace_and_vcd() {
    let (_, t, text, r) = traced("trace_thermal", "scenes/thermal_throttle.ron", &[]);
    assert_eq!(count_firing_events(&t), total_firings(&r));
    // Each firing of `core` carries the temperature its `temp` tap published into core_temp.
    let temps: Vec<f64> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "firing" && e["name"] == "core")
        .map(|e| e["args"]["temperature_k"].as_f64().unwrap())
        .collect();
    let scene = scene("thermal_throttle");
    let (_, e) = run(&scene);
    let probe = values(&e, "core_temp");
    assert_eq!(temps.len(), probe.len());
    assert!(temps.iter().zip(&probe).all(|(a, b)| *a as f32 == *b));
    // The counter starts at the ambient, follows every firing and ends at the report's final.
    let c = counter(&t, "temperature core", "kelvin");
    assert_eq!(c[0], (0.0, 318.0));
    assert_eq!(c.len(), 1 + temps.len() + 1);
    assert_eq!(
        c.last().unwrap(),
        &(
            r["end_tick"].as_f64().unwrap() * 1000.0,
            r["thermal"]["nodes"]["core"]["final"].as_f64().unwrap()
        )
    );
    assert!(c.iter().all(|&(_, k)| (318.0..=359.0).contains(&k)));
    let vcd = parse_vcd(&text);
    let core = vcd.of("tapwheel.thermal.core");
    assert_eq!(core[0], (0, "r318"));
    assert!(!vcd.of("tapwheel.thermal.dma").is_empty());
    // The second firing of core (tick 10) published 318.8295… K.
    let second: f64 = core[1].1[1..].parse().unwrap();
    assert_eq!(core[1].0, 10);
    // (serde_json parses floats to within an ulp; the VCD text is parsed exactly.)
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    assert!(close(second, temps[1]) && second > 318.82 && second < 318.83);
    let last: f64 = core.last().unwrap().1[1..].parse().unwrap();
    assert!(close(
        last,
        r["thermal"]["nodes"]["core"]["final"].as_f64().unwrap()
    ));
    // The probes are waveforms too: core_temp's first value 318 at its first token (tick 7).
    assert_eq!(vcd.of("tapwheel.probes.core_temp")[0], (7, "r318"));
}

#[test]
fn cyclesim_trace_has_a_track_per_core_and_per_domain() {
    let (_, t, text, r) = traced(
        "trace_cyclesim",
        "scenes/pto/batched_gemm.ron",
        &["--device", "cyclesim"],
    );
    assert_eq!(count_firing_events(&t), total_firings(&r));
    let names = tracks(&t);
    let cores: Vec<&String> = names.values().filter(|n| n.starts_with("core ")).collect();
    assert!(cores.len() >= 8, "{cores:?}");
    assert!(names.values().any(|n| n == "domain 0"), "{names:?}");
    // Every MatMul (gemm_*) runs on a cube core, every tile_add (add_*) on a vector core: the
    // event sits on its core's track, from its start cycle to its end cycle (1 tick = 1 cycle
    // at 1.8 GHz).
    let mut gemms = 0;
    for e in events(&t).iter().filter(|e| e["cat"] == "firing") {
        let name = e["name"].as_str().unwrap();
        let track = &names[&e["tid"].as_u64().unwrap()];
        if name.starts_with("gemm_") || name.starts_with("add_") {
            let core = e["args"]["core"].as_u64().expect("a core task has a core");
            let kind = if name.starts_with("gemm_") {
                "Cube"
            } else {
                "Vector"
            };
            assert!(
                track.starts_with(&format!("core {core} {kind} ")),
                "{name} on {track}"
            );
            let start = e["args"]["start_cycle"].as_u64().unwrap() as f64;
            let end = e["args"]["end_cycle"].as_u64().unwrap() as f64;
            // (serde_json parses floats to within an ulp: compare to 1e-12 µs.)
            let ts = e["ts"].as_f64().unwrap();
            assert!((ts - start * 1e6 / 1.8e9).abs() < 1e-12, "{e}");
            let dur = e["dur"].as_f64().unwrap();
            assert!((dur - (end - start) * 1e6 / 1.8e9).abs() < 1e-12, "{e}");
            assert!(e["args"]["domain"].is_u64());
            gemms += usize::from(name.starts_with("gemm_"));
        }
    }
    assert_eq!(gemms, 64);
    assert_tracks_do_not_overlap(&t);
    // 1.8 GHz has no whole VCD unit per tick: 1 fs, rounded.
    let vcd = parse_vcd(&text);
    assert!(vcd.header.contains("$timescale 1 fs $end"));
    assert!(vcd.vars.iter().any(|v| v.3 == "tapwheel.probes.C_m3_n3"));
}

#[test]
fn dispatched_tasks_sit_on_their_domain_tracks() {
    let (_, t, _, _) = traced("trace_task_window", "scenes/task_window.ron", &[]);
    let names = tracks(&t);
    // A window of 1: the four 10-tick tasks run one after another, alternating domains.
    let mut tasks: Vec<(f64, String, String)> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "firing" && e["args"].get("domain").is_some())
        .map(|e| {
            (
                e["ts"].as_f64().unwrap(),
                e["name"].as_str().unwrap().to_string(),
                names[&e["tid"].as_u64().unwrap()].clone(),
            )
        })
        .collect();
    tasks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let s = 1e6;
    assert_eq!(
        tasks,
        vec![
            (0.0, "t2".into(), "domain 0".into()),
            (10.0 * s, "t0".into(), "domain 1".into()),
            (20.0 * s, "t1".into(), "domain 0".into()),
            (30.0 * s, "t3".into(), "domain 1".into()),
        ]
    );
    let waits: Vec<(String, f64)> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "stall" && e["name"] == "WINDOW_FULL")
        .map(|e| {
            assert_eq!(e["args"]["on"], "task window");
            (
                e["args"]["node"].as_str().unwrap().to_string(),
                e["dur"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waits,
        vec![
            ("t0".into(), 10.0 * s),
            ("t1".into(), 20.0 * s),
            ("t3".into(), 30.0 * s)
        ]
    );
}

#[test]
fn overlapping_firings_of_one_node_spread_over_lanes() {
    let scene = parse(
        r#"Scene(version: 1, name: "lanes", tick_hz: 1000.0,
            nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1), count: Some(4)),
                    Node(name: "w", kernel: Gain(gain: 1.0), latency: 3, concurrency: Some(2)),
                    Node(name: "p", kernel: Probe)],
            edges: [Edge(from: "src.out", to: "w.in", capacity: 4),
                    Edge(from: "w.out", to: "p.in", capacity: 4)])"#,
    );
    let opts = RunOptions {
        record: Some(RecordOptions::default()),
        ..RunOptions::default()
    };
    let mut e = Engine::from_scene(&scene, opts).unwrap();
    e.run();
    let mut buf = Vec::new();
    e.trace().unwrap().write_chrome_trace(&mut buf).unwrap();
    let t: Value = serde_json::from_slice(&buf).unwrap();
    let names = tracks(&t);
    // w fires at 0, 1 (two in flight), then 3, 4: two lanes.
    let w: Vec<(f64, String)> = events(&t)
        .iter()
        .filter(|e| e["cat"] == "firing" && e["name"] == "w")
        .map(|e| {
            (
                e["ts"].as_f64().unwrap(),
                names[&e["tid"].as_u64().unwrap()].clone(),
            )
        })
        .collect();
    assert_eq!(
        w,
        vec![
            (0.0, "node w".into()),
            (1000.0, "node w #2".into()),
            (3000.0, "node w".into()),
            (4000.0, "node w #2".into()),
        ]
    );
    assert_tracks_do_not_overlap(&t);
}

#[test]
fn recording_leaves_every_result_identical() {
    for name in [
        "hello",
        "back_pressure",
        "thermal_throttle",
        "csp_pipeline",
        "task_window",
        "ipls_bank",
        "gate_sync",
        "telemetry_shed",
    ] {
        let s = scene(name);
        let (o1, plain) = run(&s);
        let opts = RunOptions {
            record: Some(RecordOptions::default()),
            ..RunOptions::default()
        };
        let mut rec = Engine::from_scene(&s, opts).unwrap();
        let o2 = rec.run();
        assert_eq!(o1, o2, "{name}");
        let (a, b) = (plain.report(), rec.report());
        assert_eq!(a.output_digest, b.output_digest, "{name}");
        assert_eq!(a.values_digest, b.values_digest, "{name}");
        assert_eq!(a.steps, b.steps, "{name}");
        assert_eq!(a.json["firings"], b.json["firings"], "{name}");
        assert_eq!(a.json["stalls"], b.json["stalls"], "{name}");
        assert_eq!(a.json["thermal"], b.json["thermal"], "{name}");
        assert!(plain.trace().is_err() && a.json.get("trace").is_none());
        // The log holds every firing of the run.
        let log = rec.trace().unwrap().log;
        let total: u64 = b.json["firings"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(log.firings.len() as u64, total, "{name}");
        assert_eq!(b.json["trace"]["truncated_at"], Value::Null);
    }
    // The same through the command line.
    let dir = out_dir("trace_digest_plain");
    let (code, ..) = cli(&[
        "run",
        "scenes/csp_pipeline.ron",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let (run, ..) = traced("trace_digest", "scenes/csp_pipeline.ron", &[]);
    let a = read_json(&dir.join("report.json"));
    let b = read_json(&run.join("report.json"));
    assert_eq!(a["output_digest"], b["output_digest"]);
    assert!(!dir.join("occupancy.csv").exists());
    assert!(run.join("occupancy.csv").exists());
}

#[test]
fn the_event_cap_truncates_with_a_warning() {
    let dir = out_dir("trace_cap");
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.json");
    let vcd = dir.join("t.vcd");
    let (code, _, stderr) = cli(&[
        "run",
        "scenes/hello.ron",
        "--out",
        dir.join("run").to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--vcd",
        vcd.to_str().unwrap(),
        "--trace-max-events",
        "10",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning[W340]"), "{stderr}");
    let t = read_json(&trace);
    // Tick 0: 3 initial samples, src, 1 sample, gain, 2 samples; tick 3: bias, 1 sample —
    // 10 records; the next one (a sample at tick 3) is refused.
    assert_eq!(t["otherData"]["events"], 10);
    assert_eq!(t["otherData"]["truncated_at"], 3);
    assert_eq!(t["otherData"]["complete_to_tick"], 3);
    assert!(
        events(&t)
            .iter()
            .any(|e| e["ph"] == "i" && e["name"] == "trace truncated" && e["ts"] == 3000.0)
    );
    let r = read_json(&dir.join("run/report.json"));
    assert_eq!(r["trace"]["max_events"], 10);
    assert_eq!(r["trace"]["truncated_at"], 3);
    assert!(r["trace"]["dropped"].as_u64().unwrap() > 0);
    // The results themselves are complete.
    assert_eq!(r["firings"]["out"], 4);
    let v = std::fs::read_to_string(&vcd).unwrap();
    assert!(v.contains("truncated: the run log reached its cap of 10 events at tick 3"));
}

#[test]
fn trace_arguments_are_checked_before_the_run() {
    let bad = |args: &[&str], arg: &str| {
        let mut all = vec![
            "run",
            "scenes/hello.ron",
            "--out",
            "target/test-out/trace_bad",
        ];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = cli(&all);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("error[E106]"), "{stderr}");
        assert!(stderr.contains(&format!("--> {arg}")), "{stderr}");
        assert!(!stderr.contains("R340"), "{stderr}");
    };
    bad(&["--trace", "no/such/folder/t.json"], "--trace");
    bad(&["--vcd", "scenes"], "--vcd");
    bad(
        &["--trace", "target/x.json", "--vcd", "target/x.json"],
        "--vcd",
    );
    bad(
        &["--trace", "target/x.json", "--trace-max-events", "0"],
        "--trace-max-events",
    );
}

#[test]
fn an_engine_without_recording_has_no_trace() {
    let (_, e) = run(&scene("hello"));
    let err = e.trace().err().expect("no run log");
    assert_eq!(err.exit_code(), 2);
    assert_eq!(err.diagnostics()[0].code, "E460");
}

/// A path below a plain file is refused before the run (nothing is simulated in vain).
#[test]
fn a_trace_path_below_a_file_is_refused_before_the_run() {
    let dir = out_dir("trace_unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    let target: PathBuf = Path::new(&file).join("t.json");
    let (code, _, stderr) = cli(&[
        "run",
        "scenes/hello.ron",
        "--out",
        dir.join("run").to_str().unwrap(),
        "--trace",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error[E106]") && stderr.contains("--> --trace"),
        "{stderr}"
    );
    assert!(!dir.join("run/report.json").exists());
}
