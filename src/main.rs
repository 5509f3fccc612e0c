//! The `tapwheel` command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 internal, 2 invalid input, 3 deadlock, 4 refused).

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;

/// stdout that never panics: a closed pipe (`tapwheel run … | head -1`) just drops the text.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tapwheel::error::{Diagnostic, Error, Location};
use tapwheel::{Engine, RunOptions, Scene};

#[derive(Parser)]
#[command(
    name = "tapwheel",
    version,
    about = "Deterministic simulation of timed dataflow process networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    Reference,
    Cyclesim,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Kpn,
    IplsAuto,
}

impl ScheduleArg {
    fn spec(self) -> tapwheel::scene::ScheduleSpec {
        match self {
            ScheduleArg::Kpn => tapwheel::scene::ScheduleSpec::Kpn,
            ScheduleArg::IplsAuto => tapwheel::scene::ScheduleSpec::IplsAuto,
        }
    }
}

/// Planner warnings go to stderr (`warning[W…]`); they never change the exit code.
fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

/// `--symbol NAME=VALUE` and `--slot N=VALUE` (§11, §19): run inputs, never part of the plan.
#[derive(clap::Args)]
struct TableArgs {
    /// Set a symbol (NAME=VALUE); repeatable; overrides the scene's `symbols`.
    #[arg(long = "symbol", value_name = "NAME=VALUE")]
    symbols: Vec<String>,
    /// Set a slot (N=VALUE, N in 0..=255); repeatable; overrides the scene's `slots`.
    #[arg(long = "slot", value_name = "N=VALUE")]
    slots: Vec<String>,
    /// Set a kernel parameter (NODE.PARAM=VALUE); repeatable; overrides the scene's value.
    #[arg(long = "param", value_name = "NODE.PARAM=VALUE")]
    params: Vec<String>,
}

/// Slot and symbol values from the command line (later repeats win).
type Tables = (BTreeMap<u32, u64>, BTreeMap<String, u64>);

impl TableArgs {
    /// Run options from `--slot`, `--symbol` and `--param`, with `--until`.
    fn run_options(&self, until: Option<u64>) -> Result<RunOptions, Error> {
        let (slots, symbols) = self.parse()?;
        Ok(RunOptions {
            until,
            slots,
            symbols,
            params: self.params()?,
            ..RunOptions::default()
        })
    }

    /// `--param NODE.PARAM=VALUE` values (E106 for a malformed one).
    fn params(&self) -> Result<BTreeMap<String, f64>, Error> {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for a in &self.params {
            let parsed = a.split_once('=').and_then(|(k, v)| {
                let v: f64 = v.trim().parse().ok()?;
                (k.contains('.') && v.is_finite()).then(|| (k.trim().to_string(), v))
            });
            match parsed {
                Some((k, v)) => {
                    out.insert(k, v);
                }
                None => errors.push(Diagnostic {
                    code: "E106",
                    message: format!("`{a}`: expected NODE.PARAM=VALUE with a finite number"),
                    location: Location::Argument("--param".into()),
                }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

impl TableArgs {
    /// Parses every argument; each malformed one is an E106 located at the argument.
    fn parse(&self) -> Result<Tables, Error> {
        let mut errors = Vec::new();
        let mut slots = BTreeMap::new();
        let mut symbols = BTreeMap::new();
        for a in &self.slots {
            match tapwheel::slots::parse_slot_arg(a) {
                Ok((n, v)) => {
                    slots.insert(n, v);
                }
                Err(d) => errors.push(d),
            }
        }
        for a in &self.symbols {
            match tapwheel::slots::parse_symbol_arg(a) {
                Ok((n, v)) => {
                    symbols.insert(n, v);
                }
                Err(d) => errors.push(d),
            }
        }
        if errors.is_empty() {
            Ok((slots, symbols))
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a scene, or a package directory written by `tapwheel package`; writes
    /// DIR/report.json and DIR/probes/NAME.csv.
    Run {
        /// A scene file, or a package directory holding manifest.json (verified before it runs).
        scene: PathBuf,
        /// Last tick processed (inclusive); overrides the scene's run.until.
        #[arg(long)]
        until: Option<u64>,
        /// Stop after this many steps; overrides the scene's run.max_steps.
        #[arg(long)]
        max_steps: Option<u64>,
        /// The most deltas one tick may take before the run fails with E403 (a zero-time loop).
        #[arg(long, default_value_t = tapwheel::engine::DEFAULT_MAX_DELTAS)]
        max_deltas: u64,
        /// Cancel the run after tick T (outcome `cancelled`, nothing later reaches a probe).
        #[arg(long)]
        cancel_at: Option<u64>,
        /// Output directory (default: out/<scene name>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
        #[arg(long, value_enum)]
        schedule: Option<ScheduleArg>,
        /// Worker threads for the engine's pool (results never depend on it).
        #[arg(long)]
        threads: Option<usize>,
        /// Write a Chrome trace event JSON of the run (open it in ui.perfetto.dev); also
        /// writes DIR/occupancy.csv.
        #[arg(long, value_name = "FILE.json")]
        trace: Option<PathBuf>,
        /// Write a VCD waveform of probes, channel occupancy and temperatures (GTKWave,
        /// Surfer); also writes DIR/occupancy.csv.
        #[arg(long, value_name = "FILE.vcd")]
        vcd: Option<PathBuf>,
        /// The most records (firings, stalls, occupancy changes) the trace keeps; the run log
        /// is truncated there (warning W340).
        #[arg(long, default_value_t = tapwheel::trace::DEFAULT_MAX_EVENTS)]
        trace_max_events: usize,
        /// Save the run at its end to FILE (`tapwheel resume FILE` goes on from there).
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// Byte limit of the token arena.
        #[arg(long, default_value_t = tapwheel::engine::DEFAULT_ARENA_LIMIT)]
        max_arena_bytes: usize,
        /// Byte limit of the probe streams (E404 past it).
        #[arg(long, default_value_t = tapwheel::engine::DEFAULT_PROBE_LIMIT)]
        max_probe_bytes: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Validate a scene and print its plan (stages, cohorts, gates, channels).
    Check {
        scene: PathBuf,
        #[arg(long, value_enum)]
        schedule: Option<ScheduleArg>,
        #[command(flatten)]
        tables: TableArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Resume a run saved with `run --snapshot FILE`: it goes on exactly as the saved run
    /// would have (to its own end, or to `--until`); writes DIR/report.json and the probes.
    Resume {
        snapshot: PathBuf,
        /// Last tick processed (inclusive), replacing the saved run's limit.
        #[arg(long)]
        until: Option<u64>,
        /// Output directory (default: out/<scene name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Save the resumed run at its end to FILE.
        #[arg(long = "snapshot", value_name = "FILE")]
        save: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// SDF analysis: consistency, repetition vector, deadlock freedom, throughput (unbounded
    /// buffers). Exit 0 with the analysis (also for an inconsistent or deadlocking graph); 4 when
    /// the graph has data-dependent rates, or when a part of the analysis is refused (the rest is
    /// still printed).
    Analyze {
        scene: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Write a versioned package (manifest.json, scene.ron, tasks.json and the scene's files)
    /// into DIR; `tapwheel run DIR` runs it.
    Package {
        scene: PathBuf,
        /// The package directory: missing, empty, or an earlier package (replaced).
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: PathBuf,
        /// cyclesim | a2a3 | a2a3sim (default: a2a3 for an Ascend device, else cyclesim).
        #[arg(long)]
        platform: Option<String>,
        /// host_build_graph (default) | aicpu_build_graph | tensormap_and_ringbuffer.
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Gradients of the scene's `loss` with respect to every float kernel parameter
    /// (`node.param`) and every initial token, by a backward pass over the recorded run.
    Grad {
        scene: PathBuf,
        /// Last tick processed (inclusive); overrides the scene's run.until.
        #[arg(long)]
        until: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Fit kernel parameters to the scene's `loss` by gradient descent (Adam): each step runs
    /// the scene forward and backward and moves the parameters against their gradient.
    Fit {
        scene: PathBuf,
        /// Descent steps.
        #[arg(long, default_value_t = 100)]
        steps: u32,
        /// Learning rate: each step moves a parameter by about LR times its starting magnitude.
        #[arg(long, default_value_t = 0.01)]
        lr: f64,
        /// A parameter to fit (NODE.PARAM); repeatable. Default: every parameter with a
        /// non-zero gradient at the start.
        #[arg(long = "fit", value_name = "NODE.PARAM")]
        fit: Vec<String>,
        #[arg(long)]
        until: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Plot a finished run (the directory `run --out DIR` wrote) into a PNG: probe waveforms,
    /// temperatures (K) and channel occupancy, one panel each, over time in seconds.
    Plot {
        run_dir: PathBuf,
        /// The PNG file to write.
        #[arg(short = 'o', long = "out", value_name = "FILE.png")]
        out: PathBuf,
        /// A probe to plot; repeatable. Default (no --probe, no --channel): every probe, up to
        /// 12 panels.
        #[arg(long = "probe", value_name = "NAME")]
        probes: Vec<String>,
        /// A channel (`from.tap->to.tap`) whose occupancy to plot from RUN_DIR/occupancy.csv;
        /// repeatable.
        #[arg(long = "channel", value_name = "NAME")]
        channels: Vec<String>,
        /// Image width in pixels.
        #[arg(long, default_value_t = tapwheel::plot::DEFAULT_WIDTH)]
        width: u32,
        /// Height of each panel in pixels (the image is panels × this tall).
        #[arg(long, default_value_t = tapwheel::plot::DEFAULT_PANEL_HEIGHT)]
        panel_height: u32,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show a scene's planned graph: a short summary, JSON (--format json) or Graphviz DOT
    /// (--dot; e.g. `tapwheel inspect SCENE --dot | dot -Tsvg -o graph.svg`).
    Inspect {
        scene: PathBuf,
        /// Print the graph in Graphviz DOT.
        #[arg(long, conflicts_with = "format")]
        dot: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the standard performance workloads in-process (issue 12: firing_overhead,
    /// audio_chain, event_expiry, cyclesim, backward, scale) and print each figure with its
    /// same-run baseline and ratio (docs/performance.md). Takes minutes; --quick under 40 s.
    Bench {
        /// Smaller sizes and fewer rounds (under 40 s on 2 cores).
        #[arg(long)]
        quick: bool,
        /// Run only this workload; repeatable.
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn main() -> ExitCode {
    // `--features tracy`: the profiler client lives for the whole process.
    #[cfg(feature = "tracy")]
    let _tracy = tracy_client::Client::start();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Nothing a user writes may panic; should a bug panic anyway, report it as internal (exit 1).
    let result = std::panic::catch_unwind(move || dispatch(cli));
    match result {
        Ok(Ok(code)) => ExitCode::from(code as u8),
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => {
            eprintln!(
                "internal error: the engine panicked (a bug: please report it with the scene)"
            );
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Run {
            scene,
            until,
            max_steps,
            max_deltas,
            cancel_at,
            out,
            device,
            schedule,
            threads,
            trace,
            vcd,
            trace_max_events,
            snapshot,
            max_arena_bytes,
            max_probe_bytes,
            format,
            tables,
        } => {
            check_trace_args(trace.as_deref(), vcd.as_deref(), trace_max_events)?;
            if let Some(path) = &snapshot {
                check_snapshot_path(path)?;
            }
            let (slots, symbols) = tables.parse()?;
            let loaded = if tapwheel::device::package::is_package(&scene) {
                tapwheel::device::package::load_package(&scene)?.scene
            } else {
                Scene::load(&scene)?
            };
            // `--device cyclesim` keeps a scene's own CycleSim profile, else the built-in one.
            let device = device.map(|d| match (d, &loaded.spec.device) {
                (DeviceArg::Reference, _) => tapwheel::scene::DeviceSpec::Reference,
                (DeviceArg::Cyclesim, own @ tapwheel::scene::DeviceSpec::CycleSim { .. }) => {
                    own.clone()
                }
                (DeviceArg::Cyclesim, _) => tapwheel::scene::DeviceSpec::CycleSim {
                    profile: "builtin:a2a3".into(),
                },
            });
            let opts = RunOptions {
                until,
                max_steps,
                max_arena_bytes,
                device,
                schedule: schedule.map(ScheduleArg::spec),
                threads,
                slots,
                symbols,
                params: tables.params()?,
                gradients: false,
                max_deltas,
                max_probe_bytes,
                record: (trace.is_some() || vcd.is_some()).then_some(
                    tapwheel::trace::RecordOptions {
                        max_events: trace_max_events,
                    },
                ),
            };
            let mut engine = Engine::from_scene_owned(loaded, opts)?;
            print_warnings(&engine.plan().warnings);
            if let Some(t) = cancel_at {
                engine.cancel_at(t);
            }
            // A progress bar only for a person watching (stderr a terminal); pipes stay quiet.
            let outcome = if std::io::stderr().is_terminal() {
                run_with_progress(&mut engine)
            } else {
                engine.run()
            };
            let report = engine.report();
            let dir =
                out.unwrap_or_else(|| Path::new("out").join(safe_dir_name(&engine.plan().name)));
            write_outputs(&dir, &engine, &report)?;
            let mut traced = write_traces(&dir, &engine, trace.as_deref(), vcd.as_deref())?;
            if let Some(path) = &snapshot {
                engine.snapshot()?.save(path)?;
                traced.push(path.clone());
            }
            match format {
                Format::Json => outln!("{}", report.to_json_pretty()),
                Format::Text => {
                    out!("{}", report.to_text());
                    outln!("  wrote {}", dir.join("report.json").display());
                    for path in &traced {
                        outln!("  wrote {}", path.display());
                    }
                }
            }
            if let Some(e) = &report.error {
                eprintln!("{e}");
            }
            Ok(outcome.exit_code())
        }
        Command::Check {
            scene,
            schedule,
            format,
            tables,
        } => {
            let (slots, symbols) = tables.parse()?;
            let loaded = Scene::load(&scene)?;
            let plan = tapwheel::Plan::compile_scheduled(
                &loaded,
                &Default::default(),
                schedule.map(ScheduleArg::spec).as_ref(),
            )?;
            print_warnings(&plan.warnings);
            // `check` validates what `run` would start with: every symbol delay needs a value.
            let inputs = tapwheel::slots::RunInputs::resolve(&plan, &slots, &symbols)
                .map_err(Error::Invalid)?;
            let refused = tapwheel::scene::refusals(&loaded.spec);
            if !refused.is_empty() {
                return Err(Error::Refused(refused));
            }
            match format {
                Format::Json => {
                    let v = serde_json::json!({
                        "scene": plan.name,
                        "plan_digest": plan.digest,
                        "device": plan.device.name(),
                        "nodes": plan.nodes.iter().map(|n| serde_json::json!({
                            "name": n.name, "kernel": n.kernel.kind(), "source": n.is_source,
                            "inputs": n.inputs.iter().map(|t| &t.name).collect::<Vec<_>>(),
                            "outputs": n.outputs.iter().map(|t| &t.name).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "channels": plan.channels.iter().zip(&inputs.delays).map(|(c, d)| serde_json::json!({
                            "name": c.name, "capacity": c.capacity, "delay": d,
                            "delay_symbol": c.delay_symbol,
                            "initial": c.initial.len(),
                        })).collect::<Vec<_>>(),
                        "slots": inputs.slots.iter().map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                        "symbols": inputs.symbols,
                        "schedule": {
                            "mode": plan.schedule.mode.as_str(),
                            "stages": plan.schedule.stages.iter().map(|st| st.cohorts.iter().map(|c| serde_json::json!({
                                "kind": c.kind,
                                "nodes": c.nodes.iter().map(|&n| &plan.nodes[n].name).collect::<Vec<_>>(),
                            })).collect::<Vec<_>>()).collect::<Vec<_>>(),
                        },
                        "gates": plan.gates.iter().map(|g| serde_json::json!({
                            "name": g.name,
                            "members": g.members.iter().map(|&n| &plan.nodes[n].name).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "warnings": plan.warnings.iter().map(|w| serde_json::json!({
                            "code": w.code, "message": w.message, "at": w.location_text(),
                        })).collect::<Vec<_>>(),
                    });
                    outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                Format::Text => {
                    outln!(
                        "{}: ok ({} nodes, {} channels)",
                        plan.name,
                        plan.nodes.len(),
                        plan.channels.len()
                    );
                    outln!("  plan_digest {}", plan.digest);
                    outln!("  schedule {}", plan.schedule.mode.as_str());
                    match &plan.device {
                        tapwheel::plan::PlanDevice::CycleSim {
                            profile,
                            profile_digest,
                            ..
                        } => outln!(
                            "  device CycleSim (profile {profile}, blake3 {})",
                            &profile_digest[..16.min(profile_digest.len())]
                        ),
                        d => outln!("  device {}", d.name()),
                    }
                    for (i, st) in plan.schedule.stages.iter().enumerate() {
                        let cohorts: Vec<String> = st
                            .cohorts
                            .iter()
                            .map(|c| {
                                let names: Vec<&str> = c
                                    .nodes
                                    .iter()
                                    .map(|&n| plan.nodes[n].name.as_str())
                                    .collect();
                                format!("{}[{}]", c.kind, names.join(" "))
                            })
                            .collect();
                        outln!("    stage {i}: {}", cohorts.join(", "));
                    }
                    for g in &plan.gates {
                        let names: Vec<&str> = g
                            .members
                            .iter()
                            .map(|&n| plan.nodes[n].name.as_str())
                            .collect();
                        outln!("  gate {}: {}", g.name, names.join(" "));
                    }
                    for (c, d) in plan.channels.iter().zip(&inputs.delays) {
                        let delay = match &c.delay_symbol {
                            Some(name) => format!("{d} (symbol {name})"),
                            None => d.to_string(),
                        };
                        outln!(
                            "  {}  capacity {}  delay {delay}  initial {}",
                            c.name,
                            c.capacity,
                            c.initial.len()
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::Resume {
            snapshot,
            until,
            out,
            save,
            format,
        } => {
            if let Some(path) = &save {
                check_snapshot_path(path)?;
            }
            let snap = tapwheel::snapshot::Snapshot::load(&snapshot)?;
            let mut engine = Engine::restore(&snap)?;
            if let Some(t) = until {
                engine.set_until(t).map_err(|e| match e {
                    Error::Invalid(mut d) => {
                        for x in &mut d {
                            x.location = tapwheel::Location::Argument("--until".into());
                        }
                        Error::Invalid(d)
                    }
                    other => other,
                })?;
            }
            let outcome = engine.run();
            let report = engine.report();
            let dir =
                out.unwrap_or_else(|| Path::new("out").join(safe_dir_name(&engine.plan().name)));
            write_outputs(&dir, &engine, &report)?;
            if let Some(path) = &save {
                engine.snapshot()?.save(path)?;
            }
            match format {
                Format::Json => outln!("{}", report.to_json_pretty()),
                Format::Text => {
                    outln!(
                        "resumed {} at step {} (tick {})",
                        snapshot.display(),
                        snap.steps(),
                        snap.next_instant().0
                    );
                    out!("{}", report.to_text());
                    outln!("  wrote {}", dir.join("report.json").display());
                    if let Some(path) = &save {
                        outln!("  wrote {}", path.display());
                    }
                }
            }
            if let Some(e) = &report.error {
                eprintln!("{e}");
            }
            Ok(outcome.exit_code())
        }
        Command::Analyze {
            scene,
            format,
            tables,
        } => {
            let (slots, symbols) = tables.parse()?;
            let loaded = Scene::load(&scene)?;
            let mut plan = tapwheel::Plan::compile(&loaded)?;
            // The analysis sees `Symbol` delays with their values, as a run would.
            tapwheel::slots::RunInputs::resolve(&plan, &slots, &symbols)
                .map_err(Error::Invalid)?
                .apply(&mut plan);
            let mut refused = tapwheel::scene::refusals(&loaded.spec);
            // The analysis models rates, latencies, delays and concurrency; a gate changes when
            // its members may fire, so a throughput computed without it would be wrong.
            for (g, gate) in plan.gates.iter().enumerate() {
                refused.push(Diagnostic::at(
                    "R353",
                    format!("gates[{g}]"),
                    format!(
                        "gate `{}` synchronises firings, which the SDF analysis does not model; run the scene to measure its throughput",
                        gate.name
                    ),
                ));
            }
            if !refused.is_empty() {
                return Err(Error::Refused(refused));
            }
            let analysis = tapwheel::sdf::analyze(&plan)?;
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&analysis.to_json()).unwrap_or_default()
                ),
                Format::Text => out!("{}", analysis.to_text()),
            }
            for r in &analysis.refusals {
                eprintln!(
                    "{}",
                    Diagnostic {
                        code: r.code,
                        message: r.message.clone(),
                        location: Location::ScenePath(r.path.clone()),
                    }
                );
            }
            Ok(if analysis.refusals.is_empty() { 0 } else { 4 })
        }
        Command::Package {
            scene,
            out,
            platform,
            runtime,
            format,
        } => {
            use tapwheel::device::package::{PackageOptions, write_package};
            let opts = PackageOptions::from_names(platform.as_deref(), runtime.as_deref())?;
            let written = write_package(&scene, &out, &opts)?;
            print_warnings(&written.warnings);
            if format == Format::Json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&written.to_json()).unwrap_or_default()
                );
                return Ok(0);
            }
            let m = &written.manifest;
            outln!(
                "{}: package written to {} ({} {}, {} kernels, {} files)",
                m.scene.name,
                written.dir.display(),
                m.platform.as_str(),
                m.runtime.as_str(),
                m.kernels.len(),
                m.files.len() + 1
            );
            outln!("  plan_digest {}", m.plan_digest);
            outln!("  manifest_digest {}", written.manifest_digest);
            Ok(0)
        }
        Command::Grad {
            scene,
            until,
            format,
            tables,
        } => {
            let opts = tables.run_options(until)?;
            let loaded = Scene::load(&scene)?;
            let g = tapwheel::tape::gradients(&loaded, opts)?;
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&g.to_json()).unwrap_or_default()
                ),
                Format::Text => {
                    outln!("{}: loss {}", loaded.spec.name, g.loss);
                    for (k, v) in &g.grads {
                        outln!("  d loss / d {k} = {v}");
                    }
                    for (ch, toks) in &g.initial {
                        for (i, t) in toks.iter().enumerate() {
                            outln!("  d loss / d {ch}.initial[{i}] = {t:?}");
                        }
                    }
                }
            }
            Ok(0)
        }
        Command::Fit {
            scene,
            steps,
            lr,
            fit,
            until,
            format,
            tables,
        } => {
            let run = tables.run_options(until)?;
            let loaded = Scene::load(&scene)?;
            let opts = tapwheel::fit::FitOptions {
                steps,
                lr,
                fit,
                run,
            };
            let text = format == Format::Text;
            let every = (steps / 10).max(1);
            let r = tapwheel::fit::fit(&loaded, &opts, |s| {
                if text && (s.step % every == 0 || s.step == steps) {
                    let ps: Vec<String> = s
                        .params
                        .iter()
                        .map(|(k, v)| format!("{k}={v:.6}"))
                        .collect();
                    outln!("step {:>5}  loss {:.9e}  {}", s.step, s.loss, ps.join(" "));
                }
            })?;
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "steps": steps,
                        "lr": lr,
                        "loss": r.history.iter().map(|h| h.1).collect::<Vec<_>>(),
                        "params": r.params,
                    }))
                    .unwrap_or_default()
                ),
                Format::Text => {
                    for (k, v) in &r.params {
                        outln!("  {k} = {v}");
                    }
                }
            }
            Ok(0)
        }
        Command::Plot {
            run_dir,
            out,
            probes,
            channels,
            width,
            panel_height,
            format,
        } => {
            let opts = tapwheel::plot::PlotOptions {
                probes,
                channels,
                width,
                panel_height,
            };
            let summary = tapwheel::plot::plot_run(&run_dir, &out, &opts)?;
            if !summary.omitted.is_empty() {
                eprintln!(
                    "note: plotted the first {} probes; left out {} (choose with --probe)",
                    summary.panels.len(),
                    summary.omitted.join(", ")
                );
            }
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&summary.to_json()).unwrap_or_default()
                ),
                Format::Text => {
                    let names: Vec<String> = summary
                        .panels
                        .iter()
                        .map(|p| format!("{} {}", p.kind.as_str(), p.name))
                        .collect();
                    outln!(
                        "wrote {} ({}x{} px): {}",
                        summary.file.display(),
                        summary.width,
                        summary.height,
                        names.join(", ")
                    );
                }
            }
            Ok(0)
        }
        Command::Inspect { scene, dot, format } => {
            let loaded = Scene::load(&scene)?;
            let plan = tapwheel::Plan::compile(&loaded)?;
            print_warnings(&plan.warnings);
            if dot {
                out!("{}", plan.to_dot());
            } else {
                match format {
                    Format::Json => outln!(
                        "{}",
                        serde_json::to_string_pretty(&tapwheel::inspect::summary_json(&plan))
                            .unwrap_or_default()
                    ),
                    Format::Text => out!("{}", tapwheel::inspect::summary_text(&plan)),
                }
            }
            Ok(0)
        }
        Command::Bench {
            quick,
            only,
            format,
        } => {
            let names = tapwheel::bench::select(&only)?;
            let start = std::time::Instant::now();
            let mut workloads = Vec::with_capacity(names.len());
            for name in names {
                if format == Format::Text && std::io::stderr().is_terminal() {
                    eprintln!("running {name} ...");
                }
                workloads.push(tapwheel::bench::run(name, quick)?);
            }
            let wall = start.elapsed().as_secs_f64();
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&tapwheel::bench::to_json(
                        &workloads, quick, wall
                    ))
                    .unwrap_or_default()
                ),
                Format::Text => {
                    out!("{}", tapwheel::bench::to_text(&workloads));
                    outln!(
                        "\n{} workload(s) in {wall:.1} s{}; machine {}",
                        workloads.len(),
                        if quick { " (--quick)" } else { "" },
                        tapwheel::bench::machine()
                    );
                }
            }
            Ok(0)
        }
    }
}

/// The scene name as one path component: anything but `[A-Za-z0-9_-]` becomes `_`, so a name
/// such as `../x` cannot escape `out/`.
fn safe_dir_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "scene".into() } else { s }
}

/// `--trace` / `--vcd` paths (relative to the working directory) are checked before the run:
/// not a directory, in a folder that exists, not the same file twice; `--trace-max-events` is
/// positive. Each problem is an E106 at its argument.
/// A `--snapshot` path must be writable before the run starts (E106), so a long run is not
/// lost to a typo.
fn check_snapshot_path(path: &Path) -> Result<(), Error> {
    let bad = |message: String| {
        Error::invalid(Diagnostic {
            code: "E106",
            message,
            location: Location::Argument("--snapshot".into()),
        })
    };
    if path.as_os_str().is_empty() || path.is_dir() {
        return Err(bad(format!(
            "`{}` is a directory; give a file name",
            path.display()
        )));
    }
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !folder.is_dir()
    {
        return Err(bad(format!(
            "cannot write `{}`: the folder `{}` does not exist",
            path.display(),
            folder.display()
        )));
    }
    Ok(())
}

fn check_trace_args(
    trace: Option<&Path>,
    vcd: Option<&Path>,
    max_events: usize,
) -> Result<(), Error> {
    let mut errors = Vec::new();
    let bad = |arg: &str, message: String| Diagnostic {
        code: "E106",
        message,
        location: Location::Argument(arg.into()),
    };
    for (arg, path) in [("--trace", trace), ("--vcd", vcd)] {
        let Some(path) = path else { continue };
        if path.as_os_str().is_empty() || path.is_dir() {
            errors.push(bad(
                arg,
                format!("`{}` is a directory; give a file name", path.display()),
            ));
            continue;
        }
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(folder) = folder
            && !folder.is_dir()
        {
            errors.push(bad(
                arg,
                format!(
                    "cannot write `{}`: the folder `{}` does not exist",
                    path.display(),
                    folder.display()
                ),
            ));
        }
    }
    if let (Some(t), Some(v)) = (trace, vcd)
        && t == v
    {
        errors.push(bad(
            "--vcd",
            format!("`{}` is also the --trace file; give two files", v.display()),
        ));
    }
    if max_events == 0 {
        errors.push(bad(
            "--trace-max-events",
            "the trace needs room for at least 1 event".into(),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Writes the recorded run: the Chrome trace, the VCD and `DIR/occupancy.csv`. An I/O failure
/// is exit 1, naming the file and its argument. Returns the files written.
fn write_traces(
    dir: &Path,
    engine: &Engine,
    trace: Option<&Path>,
    vcd: Option<&Path>,
) -> Result<Vec<PathBuf>, Error> {
    use std::io::Write as _;
    if trace.is_none() && vcd.is_none() {
        return Ok(Vec::new());
    }
    let view = engine.trace()?;
    if let Some(w) = view.warning() {
        eprintln!("{w}");
    }
    type Writer<'a> = &'a dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>;
    let write = |path: &Path, arg: &str, f: Writer<'_>| -> Result<(), Error> {
        let fail =
            |e: std::io::Error| Error::Internal(format!("writing {} ({arg}): {e}", path.display()));
        let file = std::fs::File::create(path).map_err(fail)?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w).map_err(fail)?;
        w.flush().map_err(fail)
    };
    let mut written = Vec::new();
    let csv = dir.join("occupancy.csv");
    write(&csv, "--out", &|w| view.write_occupancy_csv(w))?;
    written.push(csv);
    if let Some(path) = trace {
        write(path, "--trace", &|w| view.write_chrome_trace(w))?;
        written.push(path.to_path_buf());
    }
    if let Some(path) = vcd {
        write(path, "--vcd", &|w| view.write_vcd(w))?;
        written.push(path.to_path_buf());
    }
    Ok(written)
}

fn write_outputs(dir: &Path, engine: &Engine, report: &tapwheel::Report) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Internal(format!("writing {}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("probes")).map_err(io)?;
    std::fs::write(dir.join("report.json"), report.to_json_pretty()).map_err(io)?;
    for p in engine.probes() {
        std::fs::write(
            dir.join("probes").join(format!("{}.csv", p.name)),
            tapwheel::report::probe_csv(p),
        )
        .map_err(io)?;
    }
    Ok(())
}

/// Runs the engine with a progress bar on stderr (a terminal): ticks toward `until` when the run
/// has one, else a spinner with the tick and step count. The bar appears only once the run has
/// taken 300 ms and redraws at most every 100 ms; it is cleared before the summary prints. The
/// engine runs exactly as `Engine::run` (the observer only reads progress).
fn run_with_progress(engine: &mut Engine) -> tapwheel::Outcome {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    let until = engine.until();
    let (bar, template) = match until {
        Some(u) => (
            ProgressBar::with_draw_target(Some(u), ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} [{wide_bar}] tick {pos}/{len}  {steps} steps",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} tick {pos}  {steps} steps",
        ),
    };
    // Steps are shown through a key so that one `set_position` redraws everything once.
    let steps = Arc::new(AtomicU64::new(0));
    let shown_steps = Arc::clone(&steps);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> ").with_key(
            "steps",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", shown_steps.load(Ordering::Relaxed));
            },
        ));
    }
    let start = Instant::now();
    let mut last = start;
    let mut shown = false;
    let outcome = engine.run_observed(|p| {
        if p.steps % 16 != 0 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(last) < Duration::from_millis(100) {
            return;
        }
        last = now;
        if !shown {
            if now.duration_since(start) < Duration::from_millis(300) {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        steps.store(p.steps, Ordering::Relaxed);
        bar.set_position(until.map_or(p.tick, |u| p.tick.min(u)));
    });
    bar.finish_and_clear();
    outcome
}
