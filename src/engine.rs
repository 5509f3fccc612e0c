//! The engine: spawns a plan into a `bevy_ecs` world and drives the step schedule through
//! superdense time (SPEC §2), deciding termination (§4) when no instant has work.

use crate::arena::TokenArena;
use crate::device::{ActiveDevice, Device};
use crate::diag::{self, DeadlockReport};
use crate::ecs::*;
use crate::error::{Diagnostic, Error, Result};
use crate::kernels::{self, KernelRegistry};
use crate::plan::{Plan, PlanNode};
use crate::report::{Growth, Outcome, Report};
use crate::scene::{MemorySpec, Policy, Scene, ScheduleSpec};
use crate::slots::RunInputs;
use crate::time::Instant;
use bevy_ecs::prelude::*;
use std::sync::Arc;

mod host;
pub(crate) use host::JournalEntry;
pub use host::ProbeToken;

/// Default byte limit of the token arena (payload + metadata): 4 GiB.
pub const DEFAULT_ARENA_LIMIT: usize = 4 << 30;

/// The default limit of deltas per tick ([`RunOptions::max_deltas`]).
pub const DEFAULT_MAX_DELTAS: u64 = 1 << 20;

/// The default limit of memory the probe streams may hold ([`RunOptions::max_probe_bytes`]):
/// 1 GiB.
pub const DEFAULT_PROBE_LIMIT: usize = 1 << 30;

/// The largest engine thread pool (`--threads`); more is a located error, not a thread storm.
pub const MAX_THREADS: usize = 256;

/// Options a run takes beside the scene.
///
/// `slots` and `symbols` are run inputs (§11), not part of the plan: they override the scene's
/// `slots` / `symbols` (which `Plan` keeps outside its digest). A host changes them between runs
/// without re-planning by building a new engine from the same plan — `plan_digest` stays equal:
///
/// ```
/// use tapwheel::{Engine, Plan, RunOptions, Scene};
/// let scene = Scene::parse(r#"Scene(version: 1, name: "sym",
///     nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "p", kernel: Probe)],
///     edges: [Edge(from: "a.out", to: "p.in", delay: Symbol("link"))],
///     symbols: {"link": 2})"#, "sym.ron", ".".into()).unwrap();
/// let plan = Plan::compile(&scene).unwrap();
/// let mut ticks = Vec::new();
/// for link in [2, 50] {
///     let opts = RunOptions { symbols: [("link".to_string(), link)].into(), ..Default::default() };
///     let mut e = Engine::new(plan.clone(), opts).unwrap();
///     e.run();
///     assert_eq!(e.report().plan_digest, plan.digest);
///     ticks.push(e.probe("p").unwrap().ticks[0]);
/// }
/// assert_eq!(ticks, vec![2, 50]);
/// ```
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the scene's `run.until` (last tick processed, inclusive).
    pub until: Option<u64>,
    /// Overrides the scene's `run.max_steps`.
    pub max_steps: Option<u64>,
    /// Byte limit of the token arena.
    pub max_arena_bytes: usize,
    /// Runs the scene under this schedule instead of its own (`--schedule`).
    pub schedule: Option<ScheduleSpec>,
    /// Runs the scene on this device instead of its own (`--device`).
    pub device: Option<crate::scene::DeviceSpec>,
    /// Threads of the engine's own rayon pool for cohort parallelism (`--threads`); `None`
    /// uses the pool the caller runs in. Results never depend on it.
    pub threads: Option<usize>,
    /// Initial slot values, over the scene's `slots` (`--slot N=VALUE`); indices 0..=255.
    pub slots: std::collections::BTreeMap<u32, u64>,
    /// Symbol values, over the scene's `symbols` (`--symbol NAME=VALUE`); read at run start.
    pub symbols: std::collections::BTreeMap<String, u64>,
    /// Kernel parameter values `"node.param" → value` over the scene's (`--param`); set on the
    /// kernels at build time, validated like the scene's (E455). The plan is unchanged.
    pub params: std::collections::BTreeMap<String, f64>,
    /// Records the gradient tape during the run, for [`Engine::gradients`] (§17). Off, the
    /// engine holds no tape and records nothing.
    pub gradients: bool,
    /// The most deltas one tick may take (`--max-deltas`): zero-time work that never settles
    /// (a feedback loop carried by an initial token with no delay or latency) ends the run
    /// `failed` with E403 instead of hanging at one tick.
    pub max_deltas: u64,
    /// Records the run (firings, stalls, channel occupancy, temperatures) for
    /// [`Engine::trace`]: Chrome trace JSON, VCD, occupancy CSV (`--trace`, `--vcd`). Off
    /// (`None`), the engine holds no log and records nothing.
    pub record: Option<crate::trace::RecordOptions>,
    /// The most bytes the probe streams may hold together (`--max-probe-bytes`; values, ticks
    /// and sequence numbers: 4 bytes per value and 16 per token). A step that takes them past
    /// it ends the run `failed` with E404; what was recorded before stays readable.
    pub max_probe_bytes: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            until: None,
            max_steps: None,
            max_arena_bytes: DEFAULT_ARENA_LIMIT,
            schedule: None,
            device: None,
            threads: None,
            slots: Default::default(),
            symbols: Default::default(),
            params: Default::default(),
            gradients: false,
            max_deltas: DEFAULT_MAX_DELTAS,
            record: None,
            max_probe_bytes: DEFAULT_PROBE_LIMIT,
        }
    }
}

/// What one call to [`Engine::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// The instant was processed; more instants follow.
    Running,
    /// The run has ended with this outcome.
    Ended(Outcome),
}

/// Where a run stands ([`Engine::progress`], [`Engine::run_observed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps (instants) processed so far.
    pub steps: u64,
    /// The last tick processed (0 before the first step).
    pub tick: u64,
    /// The last tick the run will process, when the run has a limit.
    pub until: Option<u64>,
}

/// A loaded scene, spawned and ready to run.
pub struct Engine {
    world: World,
    schedule: bevy_ecs::schedule::Schedule,
    plan: Arc<Plan>,
    until: Option<u64>,
    max_steps: Option<u64>,
    max_deltas: u64,
    max_probe_bytes: usize,
    steps: u64,
    /// The instant the next step will process.
    next: Instant,
    last_processed: Option<Instant>,
    outcome: Option<Outcome>,
    growths: Vec<Growth>,
    deadlock: Option<DeadlockReport>,
    failure: Option<Diagnostic>,
    /// IPLS steps after the first delta of a tick that fired something (§5 extra deltas).
    extra_deltas: u64,
    pool: Option<Arc<rayon::ThreadPool>>,
    cancel: CancelHandle,
    /// `cancel_at(T)`: the last tick processed before the run ends `cancelled`.
    cancel_at: Option<u64>,
    /// Sources cancelled with [`Engine::cancel_sources`]: a natural end becomes `cancelled`.
    sources_cancelled: bool,
    /// The instant the run was cancelled at (after its last processed instant).
    cancelled_at: Option<Instant>,
    /// The end tick of a cancelled run.
    cancel_end: Option<u64>,
    /// What the engine was built from, so a new run (`reset`, `set_symbol`, …) needs no
    /// re-planning and a snapshot can rebuild it (§20).
    origin: host::Origin,
    /// An open input is still open and nothing else has work: the engine waits for the host
    /// (`inject`, `close_input`, `run_until`) instead of deciding termination.
    awaiting_host: bool,
    /// The last tick `run_until` has passed through: the host may not inject at or before it.
    horizon: Option<u64>,
    /// Host actions of this run, each with the step count it came at, for snapshots.
    journal: Vec<host::JournalEntry>,
}

/// A thread-safe handle that cancels a running engine (§20 cancellation): the run ends
/// `cancelled` before its next instant; nothing after the last processed instant reaches a
/// probe.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<std::sync::atomic::AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Engine {
    /// Loads a scene file, refuses unsupported fields (exit 4), validates and plans it (exit 2).
    pub fn load(path: impl AsRef<std::path::Path>, opts: RunOptions) -> Result<Engine> {
        let scene = Scene::load(path)?;
        Engine::from_scene_owned(scene, opts)
    }

    /// Builds an engine from a parsed scene.
    pub fn from_scene(scene: &Scene, opts: RunOptions) -> Result<Engine> {
        Engine::from_scene_with(scene, opts, &KernelRegistry::default())
    }

    /// [`Engine::from_scene`] with custom kernels from `registry` (scenes name them with
    /// `Custom(kind: …)`).
    pub fn from_scene_with(
        scene: &Scene,
        opts: RunOptions,
        registry: &KernelRegistry,
    ) -> Result<Engine> {
        Engine::from_scene_owned_with(scene.clone(), opts, registry)
    }

    /// [`Engine::from_scene`] taking the scene: the engine keeps it (for snapshots) without a
    /// copy, which at a million nodes is a sizeable part of loading. `Engine::load` and
    /// `tapwheel run` take this path.
    pub fn from_scene_owned(scene: Scene, opts: RunOptions) -> Result<Engine> {
        Engine::from_scene_owned_with(scene, opts, &KernelRegistry::default())
    }

    /// [`Engine::from_scene_owned`] with custom kernels from `registry`.
    pub fn from_scene_owned_with(
        scene: Scene,
        opts: RunOptions,
        registry: &KernelRegistry,
    ) -> Result<Engine> {
        let mut scene = scene;
        if let Some(d) = &opts.device {
            scene.spec.device = d.clone();
        }
        let plan = Plan::compile_scheduled(&scene, registry, opts.schedule.as_ref())?;
        // Run inputs are invalid input (exit 2), which wins over a refusal.
        RunInputs::resolve(&plan, &opts.slots, &opts.symbols).map_err(Error::Invalid)?;
        let refused = crate::scene::refusals(&scene.spec);
        if !refused.is_empty() {
            return Err(Error::Refused(refused));
        }
        Engine::spawn(host::Origin {
            plan: Arc::new(plan),
            scene: Some(Arc::new(scene)),
            registry: registry.clone(),
            opts,
        })
    }

    /// Spawns a frozen plan: node, tap and channel entities in canonical (plan) order.
    pub fn new(plan: Plan, opts: RunOptions) -> Result<Engine> {
        Engine::new_with(plan, opts, &KernelRegistry::default())
    }

    /// [`Engine::new`] with custom kernels from `registry`.
    pub fn new_with(plan: Plan, opts: RunOptions, registry: &KernelRegistry) -> Result<Engine> {
        Engine::spawn(host::Origin {
            plan: Arc::new(plan),
            scene: None,
            registry: registry.clone(),
            opts,
        })
    }

    /// Builds a fresh run of `origin` (tick 0, nothing processed).
    fn spawn(origin: host::Origin) -> Result<Engine> {
        let opts = origin.opts.clone();
        let registry = origin.registry.clone();
        // §11: slots and symbols at run start; `Symbol` delays take their values now.
        let inputs =
            RunInputs::resolve(&origin.plan, &opts.slots, &opts.symbols).map_err(Error::Invalid)?;
        let plan = if origin
            .plan
            .channels
            .iter()
            .any(|c| c.delay_symbol.is_some())
        {
            let mut plan = (*origin.plan).clone();
            inputs.apply(&mut plan);
            Arc::new(plan)
        } else {
            origin.plan.clone()
        };
        let mut world = World::new();
        let mut arena = TokenArena::new(opts.max_arena_bytes);
        for (ci, ch) in plan.channels.iter().enumerate() {
            let idx = arena
                .add_channel(ch.capacity, ch.shape.elements() as usize)
                .map_err(|e| {
                    Error::refused(Diagnostic::at(
                        "R330",
                        format!("edges[{ci}]"),
                        e.to_string(),
                    ))
                })?;
            for tok in &ch.initial {
                arena.write(idx, tok, Instant::ZERO).map_err(|e| {
                    Error::refused(Diagnostic::at(
                        "R330",
                        format!("edges[{ci}].initial"),
                        e.to_string(),
                    ))
                })?;
            }
            arena.set_rules(idx, ch.rules());
        }
        let mut order = Vec::with_capacity(plan.nodes.len());
        let mut probes = Probes {
            streams: Vec::with_capacity(plan.nodes.iter().filter(|n| n.is_probe).count()),
            by_node: vec![None; plan.nodes.len()],
            bytes: 0,
        };
        let mut events = crate::time::EventQueue::default();
        let mut costs = Vec::with_capacity(plan.nodes.len());
        let mut state_lens = Vec::with_capacity(plan.nodes.len());
        // Every `--param` names a node of the scene.
        for key in opts.params.keys() {
            let known = key
                .split_once('.')
                .is_some_and(|(node, _)| plan.node_index(node).is_some());
            if !known {
                return Err(Error::invalid(Diagnostic {
                    code: "E455",
                    message: format!(
                        "`{key}` names no parameter of a node in the scene (write `node.param`)"
                    ),
                    location: crate::error::Location::Argument("--param".into()),
                }));
            }
        }
        let mut node_bundle = |i: usize, n: &PlanNode| -> Result<_> {
            let sig = n.signature();
            let ctx = kernels::BuildCtx {
                sig: &sig,
                tick_hz: plan.tick_hz,
                file: n.file.as_ref(),
                registry: &registry,
            };
            let kernel = kernels::instantiate(&n.kernel, &ctx).ok_or_else(|| {
                Error::refused(Diagnostic::at(
                    "R320",
                    format!("nodes[{i}].kernel"),
                    format!(
                        "kernel `{}` is not supported by this build yet",
                        n.kernel.kind()
                    ),
                ))
            })?;
            let mut kernel = kernel;
            for (key, &value) in &opts.params {
                let Some((node, param)) = key.split_once('.') else {
                    continue;
                };
                if node == n.name {
                    kernel.set_param(param, value).map_err(|e| {
                        Error::invalid(Diagnostic {
                            code: "E455",
                            message: format!("`{key}`: {e}"),
                            location: crate::error::Location::Argument("--param".into()),
                        })
                    })?;
                }
            }
            state_lens.push(kernel.state_len());
            costs.push(kernel.cost(&sig));
            let wiring = NodeWiring {
                inputs: n
                    .inputs
                    .iter()
                    .map(|t| InputPort {
                        channel: t.channel(),
                        channels: t.channels.clone(),
                        channel_shapes: t
                            .channels
                            .iter()
                            .map(|&c| plan.channels[c].shape)
                            .collect(),
                        adapter: t.adapter,
                        shape: t.shape,
                        optional: t.optional,
                        hold_last: t.hold_last,
                        default: t.default as f32,
                        token_len: t.shape.elements() as usize,
                    })
                    .collect(),
                outputs: n
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(k, t)| OutputPort {
                        channels: t
                            .channels
                            .iter()
                            .enumerate()
                            .map(|(part, &c)| OutChannel {
                                channel: c,
                                delay: plan.channels[c].delay,
                                part,
                            })
                            .collect(),
                        // The engine's `temp` tap carries one token per firing (§14).
                        max_production: if Some(k) == n.temp_tap() {
                            1
                        } else {
                            kernel.max_production(k)
                        },
                        token_len: t.shape.elements() as usize,
                        shape: t.shape,
                        split: t.adapter,
                    })
                    .collect(),
                is_source: n.is_source,
                is_probe: n.is_probe,
                concurrency: n.concurrency,
                period: n.period,
                latency: n.latency,
                lane: n.lane,
                timed: n.timing == crate::scene::Timing::Measure || n.measured_latency,
                measured_latency: n.measured_latency,
                tick_hz: plan.tick_hz,
                rendezvous_out: n
                    .outputs
                    .iter()
                    .flat_map(|t| &t.channels)
                    .any(|&c| plan.channels[c].capacity == 0),
                kernel_outputs: n.kernel_outputs().len(),
                // An unconnected `temp` tap is not computed.
                temp_port: n
                    .temp_tap()
                    .filter(|&k| n.outputs.get(k).is_some_and(|t| !t.channels.is_empty())),
                host_fed: matches!(n.kernel, crate::scene::KernelSpec::Inject),
            };
            let host_fed = matches!(n.kernel, crate::scene::KernelSpec::Inject);
            let runtime = NodeRuntime {
                // An open input is due only once the host queues a token.
                next_due: if host_fed { u64::MAX } else { n.offset },
                remaining: if n.is_source { n.count } else { None },
                ..Default::default()
            };
            if n.is_source && n.offset > 0 && n.count != Some(0) {
                events.push_wake(n.offset);
            }
            if n.is_probe {
                probes.by_node[i] = Some(probes.streams.len());
                probes.streams.push(ProbeStream {
                    name: n.name.clone(),
                    node: i,
                    token_len: n.inputs.first().map_or(1, |t| t.shape.elements() as usize),
                    batch: n.inputs.first().map_or(1, |t| t.shape.batch),
                    channels: n.inputs.first().map_or(1, |t| t.shape.channels),
                    frames: n.inputs.first().map_or(1, |t| t.shape.frames),
                    ..Default::default()
                });
            }
            Ok((NodeIx(i as u32), NodeKernel(kernel), wiring, runtime))
        };
        // One batch: the ECS reserves its table rows once instead of growing them (and copying
        // every node's components) a doubling at a time.
        let mut failed = None;
        order.extend(
            world.spawn_batch(
                plan.nodes
                    .iter()
                    .enumerate()
                    .map_while(|(i, n)| node_bundle(i, n).map_err(|e| failed = Some(e)).ok()),
            ),
        );
        if let Some(e) = failed {
            return Err(e);
        }
        // Tap entities (each node's inputs, then its outputs), then channel entities, in plan
        // order; a node's taps start at `tap_base[node]` in `taps`.
        let mut tap_base = Vec::with_capacity(plan.nodes.len());
        let mut tap_count = 0;
        for n in &plan.nodes {
            tap_base.push(tap_count);
            tap_count += n.inputs.len() + n.outputs.len();
        }
        let taps: Vec<Entity> = world
            .spawn_batch(
                plan.nodes
                    .iter()
                    .zip(&order)
                    .flat_map(|(n, &node)| {
                        let tap = move |name: &String, input: bool, rate: u32| Tap {
                            node,
                            name: name.clone(),
                            input,
                            rate,
                        };
                        (n.inputs.iter().map(move |t| tap(&t.name, true, t.rate)))
                            .chain(n.outputs.iter().map(move |t| tap(&t.name, false, t.rate)))
                    })
                    // `take` gives the batch its size, so the tap table is reserved once.
                    .take(tap_count),
            )
            .collect();
        world.spawn_batch(
            plan.channels
                .iter()
                .enumerate()
                .map(|(ci, ch)| ChannelContract {
                    index: ci,
                    name: ch.name.clone(),
                    from: taps[tap_base[ch.from_node]
                        + plan.nodes[ch.from_node].inputs.len()
                        + ch.from_tap],
                    to: taps[tap_base[ch.to_node] + ch.to_tap],
                    delay: ch.delay,
                    initial_capacity: ch.capacity,
                    lane: ch.lane,
                }),
        );
        world.insert_resource(arena);
        world.insert_resource(NodeOrder(order));
        world.insert_resource(Clock::default());
        world.insert_resource(Events(events));
        world.insert_resource(PlanRes(plan.clone()));
        world.insert_resource(StepState::default());
        world.insert_resource(Stats::new(plan.nodes.len()));
        world.insert_resource(probes);
        world.insert_resource(Scratch::default());
        world.insert_resource(Staging::new(&plan, &world.resource::<NodeOrder>().0));
        let (device, dispatch_cfg) = build_device(&plan, &registry, &costs)?;
        world.insert_resource(ActiveDevice(device));
        world.insert_resource(crate::device::Timeline::default());
        world.insert_resource(build_thermal(&plan)?);
        if opts.gradients {
            world.insert_resource(crate::tape::Tape::new(&plan, &state_lens));
        }
        if let Some(rec) = opts.record {
            let log = crate::trace::RunLog::new(
                plan.nodes.len(),
                crate::trace::occupancy_of(world.resource::<TokenArena>()),
                rec,
            );
            world.insert_resource(log);
        }
        match dispatch_cfg {
            Some(cfg) => {
                let statics = plan.nodes.iter().map(|n| n.domain).collect();
                let mut d = crate::dispatch::Dispatcher::new(cfg, statics);
                d.name_hash = plan
                    .nodes
                    .iter()
                    .map(|n| crate::dispatch::fnv1a64(n.name.as_bytes()))
                    .collect();
                world.insert_resource(d);
            }
            None if plan.dispatch.is_some() => {
                return Err(Error::invalid(Diagnostic::at(
                    "E272",
                    "dispatch.policy",
                    "the dispatch hook this plan names is not registered with the engine's registry",
                )));
            }
            None => {}
        }
        world.insert_resource(Registry(registry));
        world.insert_resource(Slots {
            table: crate::slots::SlotTable::new(&inputs.slots),
            symbols: inputs.symbols,
        });
        world.resource_mut::<Stats>().gate_openings = vec![0; plan.gates.len()];
        let pool = match opts.threads {
            Some(n) if n == 0 || n > MAX_THREADS => {
                return Err(Error::invalid(Diagnostic {
                    code: "E106",
                    message: format!("threads must be between 1 and {MAX_THREADS}, got {n}"),
                    location: crate::error::Location::Argument("--threads".into()),
                }));
            }
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Internal(format!("thread pool: {e}")))?,
            )),
            None => None,
        };
        let until = opts.until.or(plan.run.until);
        let max_steps = opts.max_steps.or(plan.run.max_steps);
        Ok(Engine {
            world,
            schedule: crate::systems::build_schedule_for(
                !plan.gates.is_empty(),
                plan.nodes.iter().any(|n| n.thermal.is_some()),
            ),
            plan,
            until,
            max_steps,
            // Deltas count in u32: the limit never lets them wrap.
            max_deltas: opts.max_deltas.clamp(1, u64::from(u32::MAX)),
            max_probe_bytes: opts.max_probe_bytes,
            steps: 0,
            next: Instant::ZERO,
            last_processed: None,
            outcome: None,
            growths: Vec::new(),
            deadlock: None,
            failure: None,
            extra_deltas: 0,
            pool,
            cancel: CancelHandle::default(),
            cancel_at: None,
            sources_cancelled: false,
            cancelled_at: None,
            cancel_end: None,
            origin,
            awaiting_host: false,
            horizon: None,
            journal: Vec::new(),
        })
    }

    /// A handle another thread can use to cancel this engine's run.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Cancels the run now: it ends `cancelled` at the last processed instant; firings in flight
    /// never complete and no later token reaches a probe. Returns the (one) terminal outcome.
    pub fn cancel(&mut self) -> Outcome {
        if let Some(o) = self.outcome {
            return o;
        }
        self.note(host::HostAction::Cancel);
        self.cancelled_at = Some(self.next);
        self.cancel_end = Some(self.last_processed.map_or(0, |i| i.tick));
        match self.end(Outcome::Cancelled) {
            StepStatus::Ended(o) => o,
            StepStatus::Running => Outcome::Cancelled,
        }
    }

    /// Cancels the run at tick `t`: every instant with tick ≤ `t` is processed, then the run ends
    /// `cancelled` (unless it ended before).
    pub fn cancel_at(&mut self, t: u64) {
        self.note(host::HostAction::CancelAt { tick: t });
        self.cancel_at = Some(t);
    }

    /// Cancels a subgraph's sources now: they fire no more, outputs of their firings still in
    /// flight are fenced off (discarded and counted, never delivered), and they finish, closing
    /// their channels so the rest of the graph drains. The run's natural end (`completed` or
    /// `quiescent`) is then reported as `cancelled`. Unknown or non-source names are errors.
    pub fn cancel_sources(&mut self, names: &[&str]) -> Result<()> {
        let mut targets = Vec::new();
        for name in names {
            match self.plan.node_index(name) {
                Some(i) if self.plan.nodes[i].is_source => targets.push(i),
                Some(_) => {
                    return Err(Error::invalid(Diagnostic::nowhere(
                        "E402",
                        format!("`{name}` is not a source; only sources can be cancelled"),
                    )));
                }
                None => {
                    return Err(Error::invalid(Diagnostic::nowhere(
                        "E402",
                        format!("no node named `{name}`"),
                    )));
                }
            }
        }
        self.note(host::HostAction::CancelSources {
            names: names.iter().map(|n| n.to_string()).collect(),
        });
        let order = self.world.resource::<NodeOrder>().0.clone();
        for i in targets {
            if let Some(mut rt) = self.world.get_mut::<NodeRuntime>(order[i]) {
                rt.remaining = Some(0);
                rt.fenced = true;
            }
        }
        self.sources_cancelled = true;
        Ok(())
    }

    /// Replaces the step schedule's build settings, e.g. to turn ambiguity detection up to
    /// `Error` or (with bevy's `debug` feature) to shuffle unconstrained system order with
    /// `shuffle_seed`. Results must never depend on either (§4 Kahn determinism); the tests
    /// prove it. Fails when the rebuilt schedule is invalid (an ambiguity under `Error`).
    pub fn set_schedule_settings(
        &mut self,
        settings: bevy_ecs::schedule::ScheduleBuildSettings,
    ) -> Result<()> {
        self.schedule.set_build_settings(settings);
        self.schedule
            .initialize(&mut self.world)
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("step schedule: {e}")))
    }

    /// The number of stages a step runs (1 under `Kpn`).
    pub fn stages(&self) -> usize {
        self.world.resource::<Staging>().stages.len()
    }

    /// The plan as run: like the compiled plan (same `digest`), with every `Symbol` delay
    /// holding the value it took at run start.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Slot `n` (§11) as a read at the next instant would see it — after the run, the final
    /// value, with every write of the last tick applied. `None` for `n ≥ 256`.
    pub fn slot(&self, n: u32) -> Option<u64> {
        if n as usize >= crate::slots::SLOT_COUNT {
            return None;
        }
        let at = match self.outcome {
            Some(o) => self.end_tick_for(o).saturating_add(1),
            None => self.next.tick,
        };
        Some(self.world.resource::<Slots>().table.peek(n, at))
    }

    /// The ECS world (read access for embedders and tests).
    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// The instant the next step will process.
    pub fn next_instant(&self) -> Instant {
        self.next
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Runs until the run ends; returns its outcome. Open inputs (`Inject` nodes) are closed
    /// first — the host injects nothing more; tokens already queued are still delivered.
    pub fn run(&mut self) -> Outcome {
        self.close_inputs();
        match self.pool.clone() {
            Some(pool) => pool.install(|| self.run_here()),
            None => self.run_here(),
        }
    }

    fn run_here(&mut self) -> Outcome {
        loop {
            if let StepStatus::Ended(o) = self.step() {
                return o;
            }
        }
    }

    /// The last tick the run processes (`--until` or the scene's `run.until`), if any.
    pub fn until(&self) -> Option<u64> {
        self.until
    }

    /// Where the run stands: steps taken and the last tick processed.
    pub fn progress(&self) -> Progress {
        Progress {
            steps: self.steps,
            tick: self.last_processed.map_or(0, |i| i.tick),
            until: self.until,
        }
    }

    /// [`Engine::run`], calling `observe` after every step with [`Engine::progress`] — for
    /// progress displays. The observer gets a copy and cannot touch the engine, so the run and
    /// its results are exactly those of `run()`; it should be cheap (rate-limit any drawing).
    ///
    /// ```
    /// use tapwheel::{Engine, RunOptions, Scene, Outcome};
    /// let scene = Scene::parse(r#"Scene(version: 1, name: "p",
    ///     nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(10), count: Some(5)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "src.out", to: "out.in")])"#, "p.ron", ".".into()).unwrap();
    /// let mut e = Engine::from_scene(&scene, RunOptions { until: Some(25), ..Default::default() }).unwrap();
    /// let mut seen = Vec::new();
    /// assert_eq!(e.run_observed(|p| seen.push((p.steps, p.tick))), Outcome::LimitReached);
    /// // Ticks 0, 10 and 20 take three steps each: the source fires (delta 0), the probe takes
    /// // the token (delta 1), and a step that changes nothing moves on to the next event.
    /// assert_eq!(seen, vec![(1, 0), (2, 0), (3, 0), (4, 10), (5, 10), (6, 10), (7, 20), (8, 20)]);
    /// assert_eq!(e.progress().until, Some(25));
    /// ```
    pub fn run_observed(&mut self, mut observe: impl FnMut(Progress) + Send) -> Outcome {
        self.close_inputs();
        let mut go = move |e: &mut Engine| loop {
            let status = e.step();
            if let StepStatus::Ended(o) = status {
                return o;
            }
            observe(e.progress());
        };
        match self.pool.clone() {
            Some(pool) => pool.install(|| go(self)),
            None => go(self),
        }
    }

    /// Processes one instant (one run of the step schedule) and decides what comes next.
    pub fn step(&mut self) -> StepStatus {
        if let Some(o) = self.outcome {
            return StepStatus::Ended(o);
        }
        // `cancel_at` and `until` are both fences; the earlier one ends the run (a tie cancels).
        let due = self
            .cancel_at
            .filter(|&t| self.next.tick > t && self.until.is_none_or(|u| t <= u));
        if self.cancel.is_cancelled() || due.is_some() {
            if due.is_none() {
                self.note(host::HostAction::Cancel);
            }
            self.cancelled_at = Some(self.next);
            self.cancel_end = Some(due.unwrap_or(self.last_processed.map_or(0, |i| i.tick)));
            return self.end(Outcome::Cancelled);
        }
        if let Some(max) = self.max_steps
            && self.steps >= max
        {
            return self.end(Outcome::LimitReached);
        }
        if let Some(until) = self.until
            && self.next.tick > until
        {
            return self.end(Outcome::LimitReached);
        }
        if self.awaiting_host {
            // Only the host can give an open input work: nothing to process until it does.
            return StepStatus::Running;
        }
        let now = self.next;
        self.world.resource_mut::<Clock>().now = now;
        // Arena changes are stamped with the step they happen in (readiness skips on them).
        self.world
            .resource_mut::<TokenArena>()
            .set_stamp(self.steps.saturating_add(1));
        // One pass of the step schedule per stage (one under `Kpn`), §5.
        let (stages, ipls) = {
            let st = self.world.resource::<Staging>();
            (st.stages.len().max(1), st.ipls())
        };
        for stage in 0..stages {
            self.world.resource_mut::<Staging>().current = stage;
            self.schedule.run(&mut self.world);
            if self.world.resource::<StepState>().failure.is_some() {
                break;
            }
        }
        self.steps += 1;
        self.last_processed = Some(now);
        #[cfg(feature = "tracy")]
        self.profile_step(now.tick);
        let (changed, mut pending, fired, failure) = {
            let mut st = self.world.resource_mut::<StepState>();
            (st.changed, st.pending, st.fired, st.failure.take())
        };
        // Window slots and workers freed at the next step are work for the next delta.
        if let Some(d) = self.world.get_resource::<crate::dispatch::Dispatcher>()
            && d.has_deferred()
        {
            pending = true;
        }
        if let Some(f) = failure {
            self.failure = Some(f);
            return self.end(Outcome::Failed);
        }
        let probe_bytes = self.world.resource::<Probes>().bytes;
        if probe_bytes > self.max_probe_bytes {
            self.failure = Some(Diagnostic::nowhere(
                "E404",
                format!(
                    "the probe streams hold {probe_bytes} bytes after tick {}, more than the limit of {} (--max-probe-bytes): record less (fewer or shorter runs, `until`) or raise the limit",
                    now.tick, self.max_probe_bytes
                ),
            ));
            return self.end(Outcome::Failed);
        }
        if ipls && fired && now.delta > 0 {
            self.extra_deltas += 1;
        }
        // Under an IPLS a step that left no zero-time work goes straight to the next event;
        // otherwise (and always under `Kpn`) a change means another delta. Termination is only
        // ever decided after a step that changed nothing, so every node's readiness is fresh.
        let next_event = self.world.resource::<Events>().0.next_tick();
        // An event at this very tick (only a delay or latency saturating at the last tick makes
        // one) is taken in the next delta, never by processing delta 0 again.
        let at_this_tick = next_event.is_some_and(|t| t <= now.tick);
        if (changed && (!ipls || pending || next_event.is_none())) || at_this_tick {
            if u64::from(now.delta) + 1 >= self.max_deltas {
                self.failure = Some(Diagnostic::nowhere(
                    "E403",
                    format!(
                        "tick {} took {} deltas and its zero-time work still does not settle: a feedback loop carried by an initial token with no delay or latency? Give the loop a delay, or raise --max-deltas",
                        now.tick,
                        u64::from(now.delta) + 1
                    ),
                ));
                return self.end(Outcome::Failed);
            }
            self.next = now.next_delta();
            return StepStatus::Running;
        }
        if self.all_finished() {
            return self.end(Outcome::Completed);
        }
        if let Some(t) = self.world.resource::<Events>().0.next_tick() {
            self.next = crate::time::Instant::new(t, 0);
            if self.until.is_some_and(|u| t > u) || self.cancel_at.is_some_and(|c| t > c) {
                // The next event lies past a fence: let the fence checks above decide.
                return self.step();
            }
            return StepStatus::Running;
        }
        if self.has_open_inputs() {
            self.awaiting_host = true;
            self.next = Instant::new(now.tick.saturating_add(1), 0);
            return StepStatus::Running;
        }
        self.decide_termination(now)
    }

    /// Tracy: a frame mark per step, and plots of the arena's bytes and the temperatures.
    #[cfg(feature = "tracy")]
    fn profile_step(&self, tick: u64) {
        crate::profile::frame_mark();
        crate::profile::plot(
            "arena bytes",
            self.world.resource::<TokenArena>().bytes() as f64,
        );
        if let Some(t) = self.world.get_resource::<crate::thermal::ThermalNet>() {
            for (i, n) in self.plan.nodes.iter().enumerate() {
                if let Some(k) = t.temperature(i, tick) {
                    crate::profile::plot(&format!("T {} (K)", n.name), k);
                }
            }
        }
    }

    fn all_finished(&mut self) -> bool {
        let mut q = self.world.query::<&NodeRuntime>();
        q.iter(&self.world).all(|r| r.finished())
    }

    /// §4 termination, in order: Parks growth, then quiescence / strict deadlock.
    fn decide_termination(&mut self, now: Instant) -> StepStatus {
        let order = self.world.resource::<NodeOrder>().0.clone();
        let mut candidates: Vec<usize> = Vec::new();
        for &e in &order {
            if let Some(rt) = self.world.get::<NodeRuntime>(e)
                && !rt.finished()
                && rt.idle()
                && rt.readiness.blocked_only_by_room()
            {
                candidates.extend(rt.readiness.lacking_outputs.iter().copied());
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        if !candidates.is_empty() {
            let arena = self.world.resource::<TokenArena>();
            let growable: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&c| {
                    // Growth cannot relieve a Data watermark (crate::overflow).
                    self.plan.channels[c].policy == Policy::Block
                        && arena.ring(c).capacity > 0
                        && !arena.ring(c).watermark_blocks()
                })
                .collect();
            let pick = growable
                .iter()
                .copied()
                .min_by_key(|&c| (arena.ring(c).capacity, c));
            if let (MemorySpec::Parks { max_capacity }, Some(c)) = (self.plan.memory, pick) {
                let cap = arena.ring(c).capacity;
                if cap < max_capacity {
                    let to = cap.saturating_mul(2).min(max_capacity);
                    let grown = self.world.resource_mut::<TokenArena>().set_capacity(c, to);
                    if let Err(e) = grown {
                        self.failure = Some(Diagnostic::nowhere("R330", e.to_string()));
                        return self.end(Outcome::Failed);
                    }
                    self.growths.push(Growth {
                        tick: now.tick,
                        delta: now.delta,
                        channel: self.plan.channels[c].name.clone(),
                        from: cap,
                        to,
                    });
                    self.next = now.next_delta();
                    return StepStatus::Running;
                }
            }
            self.deadlock = Some(diag::artificial(&self.world, &self.plan, &candidates));
            return self.end(Outcome::Deadlock);
        }
        if let Some(report) = diag::resource(&self.world, &self.plan) {
            self.deadlock = Some(report);
            return self.end(Outcome::Deadlock);
        }
        if let Some(report) = diag::gate(&self.world, &self.plan) {
            self.deadlock = Some(report);
            return self.end(Outcome::Deadlock);
        }
        if self.plan.strict {
            self.deadlock = Some(diag::strict(&self.world, &self.plan));
            return self.end(Outcome::Deadlock);
        }
        self.end(Outcome::Quiescent)
    }

    fn end(&mut self, outcome: Outcome) -> StepStatus {
        // Cancelled sources turn a natural end into `cancelled` (one terminal outcome).
        let outcome = match outcome {
            Outcome::Completed | Outcome::Quiescent if self.sources_cancelled => Outcome::Cancelled,
            o => o,
        };
        let end_tick = self.end_tick_for(outcome);
        let n = self.plan.nodes.len();
        let mut stats = self.world.resource_mut::<Stats>();
        stats.settle_instants();
        for i in 0..n {
            stats.close_stall(i, end_tick);
        }
        self.outcome = Some(outcome);
        StepStatus::Ended(outcome)
    }

    fn end_tick_for(&self, outcome: Outcome) -> u64 {
        match (outcome, self.until) {
            (Outcome::LimitReached, Some(u)) if self.max_steps.is_none_or(|m| self.steps < m) => u,
            (Outcome::Cancelled, _) if self.cancel_end.is_some() => self.cancel_end.unwrap_or(0),
            _ => self.last_processed.map_or(0, |i| i.tick),
        }
    }

    /// A probe's recorded stream.
    pub fn probe(&self, name: &str) -> Option<&ProbeStream> {
        self.world
            .resource::<Probes>()
            .streams
            .iter()
            .find(|p| p.name == name)
    }

    /// The bytes the probe streams hold: 4 per value, 16 per token (tick and sequence number).
    pub fn probe_bytes(&self) -> usize {
        self.probes()
            .iter()
            .map(ProbeStream::bytes)
            .fold(0, usize::saturating_add)
    }

    /// Every probe stream, in plan order.
    pub fn probes(&self) -> &[ProbeStream] {
        &self.world.resource::<Probes>().streams
    }

    /// The temperature of node `name` (kelvin, §14) at the report's end tick: the last
    /// processed tick while running, `end_tick` once the run has ended. `None` for a node
    /// without `thermal`.
    pub fn temperature(&self, name: &str) -> Option<f64> {
        let end_tick = match self.outcome {
            Some(o) => self.end_tick_for(o),
            None => self.last_processed.map_or(0, |i| i.tick),
        };
        let node = self.plan.node_index(name)?;
        self.world
            .get_resource::<crate::thermal::ThermalNet>()?
            .temperature(node, end_tick)
    }

    /// Every float kernel parameter as the kernels hold it now, `"node.param" → value`.
    pub fn params(&self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for (i, &e) in self.world.resource::<NodeOrder>().0.iter().enumerate() {
            if let (Some(k), Some(n)) = (self.world.get::<NodeKernel>(e), self.plan.nodes.get(i)) {
                for p in k.0.params() {
                    out.insert(format!("{}.{}", n.name, p.name), p.value);
                }
            }
        }
        out
    }

    /// The scene's loss (§17) over what its probe has recorded so far, and `dL/d(value)` per
    /// recorded element. `Ok(None)` without a `loss`; a target of another length is E453.
    pub fn loss(&self) -> Result<Option<(f64, Vec<f64>)>> {
        let Some(loss) = &self.plan.loss else {
            return Ok(None);
        };
        let probes = self.world.resource::<Probes>();
        let values: Vec<f64> = probes
            .by_node
            .get(loss.probe)
            .copied()
            .flatten()
            .and_then(|p| probes.streams.get(p))
            .map(|p| p.values.iter().map(|&v| f64::from(v)).collect())
            .unwrap_or_default();
        loss.evaluate(&values)
            .map(Some)
            .map_err(|e| Error::invalid(Diagnostic::at("E453", "loss.Mse.target", e.to_string())))
    }

    /// The gradients of the scene's loss with respect to every float kernel parameter and every
    /// initial token (§17): the `backward` schedule walks the tape recorded by this run. Needs
    /// `RunOptions::gradients` (E456 otherwise), a scene `loss` (E454) and an ended run (E457).
    /// A kernel without an adjoint on the loss's path is refused (R311, exit 4).
    pub fn gradients(&mut self) -> Result<crate::tape::Gradients> {
        if self.outcome.is_none() {
            return Err(Error::invalid(Diagnostic::nowhere(
                "E457",
                "gradients need a finished run: call `run()` first",
            )));
        }
        if !self.world.contains_resource::<crate::tape::Tape>() {
            return Err(Error::invalid(Diagnostic::nowhere(
                "E456",
                "this run recorded no tape: build the engine with `RunOptions { gradients: true, .. }`",
            )));
        }
        let Some((loss, dl)) = self.loss()? else {
            return Err(Error::invalid(Diagnostic::at(
                "E454",
                "loss",
                "the scene has no `loss` to differentiate: add `loss: Some(Sum(probe: \"…\"))` or `Some(Mse(probe: \"…\", target: \"….csv\"))`",
            )));
        };
        let probe_stream = self.plan.loss.as_ref().and_then(|l| {
            self.world
                .resource::<Probes>()
                .by_node
                .get(l.probe)
                .copied()
                .flatten()
        });
        let streams = self.world.resource::<Probes>().streams.len();
        let mut loss_grad = vec![Vec::new(); streams];
        if let Some(p) = probe_stream {
            loss_grad[p] = dl;
        }
        self.world
            .insert_resource(crate::systems::backward::LossGradient(loss_grad));
        let mut schedule = crate::systems::backward::build_schedule();
        schedule.run(&mut self.world);
        let raw = self
            .world
            .remove_resource::<crate::systems::backward::BackwardResult>()
            .map(|r| r.0)
            .unwrap_or_else(|| {
                Err(Error::Internal(
                    "the backward schedule produced nothing".into(),
                ))
            })?;
        let mut grads = std::collections::BTreeMap::new();
        let mut q = self.world.query::<(&NodeIx, &NodeKernel)>();
        for (ix, k) in q.iter(&self.world) {
            let i = ix.0 as usize;
            let name = &self.plan.nodes[i].name;
            for (p, g) in
                k.0.params()
                    .iter()
                    .zip(raw.params.get(i).into_iter().flatten())
            {
                grads.insert(format!("{name}.{}", p.name), *g);
            }
        }
        let mut initial = std::collections::BTreeMap::new();
        for (c, ch) in self.plan.channels.iter().enumerate() {
            if ch.initial.is_empty() {
                continue;
            }
            let len = (ch.shape.elements() as usize).max(1);
            let g = raw.initial.get(c).cloned().unwrap_or_default();
            initial.insert(
                ch.name.clone(),
                g.chunks(len).map(<[f64]>::to_vec).collect(),
            );
        }
        Ok(crate::tape::Gradients {
            loss,
            grads,
            initial,
        })
    }

    /// The recorded run, ready to export as Chrome trace JSON, VCD or an occupancy CSV
    /// ([`crate::trace`]); valid at any time, complete once the run has ended. E460 for an
    /// engine built without `RunOptions::record`.
    ///
    /// ```
    /// use tapwheel::{Engine, RunOptions, Scene};
    /// let scene = Scene::parse(r#"Scene(version: 1, name: "t", tick_hz: 1000.0,
    ///     nodes: [Node(name: "a", kernel: Const(value: 2.0), period: Some(5), count: Some(2), latency: 1),
    ///             Node(name: "p", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "p.in")])"#, "t.ron", ".".into()).unwrap();
    /// let opts = RunOptions { record: Some(Default::default()), ..Default::default() };
    /// let mut e = Engine::from_scene(&scene, opts).unwrap();
    /// e.run();
    /// let t = e.trace().unwrap();
    /// let a: Vec<_> = t.log.firings.iter().filter(|f| f.node == 0).map(|f| (f.issue, f.complete)).collect();
    /// assert_eq!(a, vec![(0, 1), (5, 6)]);
    /// let mut vcd = Vec::new();
    /// t.write_vcd(&mut vcd).unwrap();
    /// let vcd = String::from_utf8(vcd).unwrap();
    /// // The probe sees 2 at tick 1 (and again at 6: no change, so nothing in the dump).
    /// assert!(vcd.contains("$timescale 1 ms $end") && vcd.contains("#1\nr2 !"));
    /// ```
    pub fn trace(&self) -> Result<crate::trace::TraceView<'_>> {
        let Some(log) = self.world.get_resource::<crate::trace::RunLog>() else {
            return Err(Error::invalid(Diagnostic::nowhere(
                "E460",
                "this run recorded nothing to trace: build the engine with `RunOptions { record: Some(RecordOptions::default()), .. }` (the CLI's --trace / --vcd)",
            )));
        };
        let end_tick = match self.outcome {
            Some(o) => self.end_tick_for(o),
            None => self.last_processed.map_or(0, |i| i.tick),
        };
        let probes = &self.world.resource::<Probes>().streams;
        let (output_digest, _) = crate::report::digests(probes);
        let device = self.world.resource::<ActiveDevice>();
        let mut core_labels = std::collections::BTreeMap::new();
        for f in &log.firings {
            if let Some(c) = f.core {
                core_labels.entry(c.core).or_insert_with(|| {
                    device
                        .0
                        .core_label(c.core)
                        .unwrap_or_else(|| format!("core {}", c.core))
                });
            }
        }
        let net = self.world.get_resource::<crate::thermal::ThermalNet>();
        let thermal = self
            .plan
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                n.thermal.map(|spec| crate::trace::ThermalTrack {
                    node: i as u32,
                    ambient: spec.ambient,
                    final_kelvin: net.and_then(|t| t.temperature(i, end_tick)),
                })
            })
            .collect();
        let meta = crate::trace::TraceMeta {
            scene: self.plan.name.clone(),
            tick_hz: self.plan.tick_hz,
            device: device.name().to_string(),
            outcome: self.outcome.map(|o| o.as_str().to_string()),
            end_tick,
            plan_digest: self.plan.digest.clone(),
            output_digest,
            nodes: self.plan.nodes.iter().map(|n| n.name.clone()).collect(),
            channels: self.plan.channels.iter().map(|c| c.name.clone()).collect(),
            gates: self.plan.gates.iter().map(|g| g.name.clone()).collect(),
            core_labels,
            thermal,
        };
        Ok(crate::trace::TraceView { log, meta, probes })
    }

    /// The run report (§19). Valid at any time; final once the run has ended.
    pub fn report(&self) -> Report {
        let outcome = self.outcome;
        let end_tick = match outcome {
            Some(o) => self.end_tick_for(o),
            None => self.last_processed.map_or(0, |i| i.tick),
        };
        let mut report = Report::build(
            &self.world,
            &self.plan,
            outcome,
            end_tick,
            self.steps,
            &self.growths,
            self.deadlock.clone(),
            self.failure.clone(),
            self.extra_deltas,
        );
        if let Some(obj) = report.json.as_object_mut() {
            obj.insert(
                "cancelled_at".into(),
                // The fence: nothing after this tick was processed.
                match (self.cancel_end, self.cancelled_at) {
                    (Some(t), Some(next)) => serde_json::json!({
                        "tick": t,
                        "next_instant": {"tick": next.tick, "delta": next.delta},
                    }),
                    _ => serde_json::Value::Null,
                },
            );
            obj.insert(
                "sources_cancelled".into(),
                serde_json::Value::Bool(self.sources_cancelled),
            );
            // §17: the scene's loss over what its probe recorded (null without a `loss`).
            obj.insert(
                "loss".into(),
                match self.loss() {
                    Ok(Some((l, _))) => serde_json::json!(l),
                    Ok(None) => serde_json::Value::Null,
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                },
            );
            // With recording: how much the run log holds, and whether its cap truncated it.
            if let Some(log) = self.world.get_resource::<crate::trace::RunLog>() {
                obj.insert(
                    "trace".into(),
                    serde_json::json!({
                        "events": log.events(),
                        "max_events": log.max_events(),
                        "truncated_at": log.truncated_at(),
                        "dropped": log.dropped(),
                    }),
                );
            }
        }
        report
    }
}

/// The run's thermal network (§14); a coupled group too large to integrate exactly is refused.
fn build_thermal(plan: &Plan) -> Result<crate::thermal::ThermalNet> {
    let nodes: Vec<crate::thermal::ThermalNode> = plan
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            n.thermal.map(|spec| crate::thermal::ThermalNode {
                node: i as u32,
                spec,
                throttle: n.throttle,
            })
        })
        .collect();
    crate::thermal::ThermalNet::new(plan.tick_hz, plan.nodes.len(), &nodes, &plan.thermal_links)
        .map_err(|crate::thermal::ThermalError::GroupTooLarge { first, size }| {
            Error::refused(Diagnostic::at(
                "R308",
                "thermal_links",
                format!(
                    "the thermal_links group of `{}` couples {size} nodes; tapwheel integrates groups of at most {} nodes exactly",
                    plan.nodes.get(first as usize).map_or("", |n| n.name.as_str()),
                    crate::thermal::MAX_COUPLED_GROUP
                ),
            ))
        })
}

/// The run's device and its dispatch configuration (§12): a device that owns the workers
/// (CycleSim) always dispatches, over the scene's domains or the profile's schedulers.
fn build_device(
    plan: &Plan,
    registry: &KernelRegistry,
    costs: &[crate::kernels::Cost],
) -> Result<(Box<dyn Device>, Option<crate::dispatch::DispatchConfig>)> {
    use crate::plan::PlanDevice;
    let cfg = crate::dispatch::DispatchConfig::from_plan(plan, registry);
    match &plan.device {
        PlanDevice::Reference => Ok((
            Box::new(crate::device::Reference::new(
                plan.nodes.iter().map(|n| n.latency).collect(),
            )),
            cfg,
        )),
        PlanDevice::CycleSim { loaded, .. } => {
            let cfg = match cfg {
                Some(c) if plan.dispatch.is_some() => c,
                other => crate::dispatch::DispatchConfig {
                    domains: loaded.schedulers,
                    policy: crate::dispatch::Policy::RoundRobin,
                    dispatch_cost: 0,
                    workers: None,
                    window: other.and_then(|c| c.window),
                },
            };
            let nodes: Vec<_> = plan
                .nodes
                .iter()
                .zip(costs)
                .map(|(n, c)| (n.name.clone(), n.core, *c, n.latency, n.is_probe))
                .collect();
            let sim = crate::device::cyclesim::CycleSim::for_plan(
                (**loaded).clone(),
                plan.tick_hz,
                cfg.domains,
                &nodes,
            )
            .map_err(|errs| {
                if errs.iter().all(|e| e.code.starts_with('R')) {
                    Error::Refused(errs)
                } else {
                    Error::Invalid(errs)
                }
            })?;
            Ok((Box::new(sim), Some(cfg)))
        }
        PlanDevice::Ascend { .. } => Err(Error::refused(Diagnostic::at(
            "R305",
            "device",
            "the Ascend device is not supported by this build yet",
        ))),
    }
}
