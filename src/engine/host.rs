//! The host side of an engine (SPEC §20): pausing at a tick, open inputs, new runs with other
//! run inputs, probe reads by token — what an embedding program drives a simulation with.

use super::{Engine, StepStatus};
use crate::ecs::{NodeKernel, NodeOrder, NodeRuntime, Probes};
use crate::error::{Diagnostic, Error, Location, Result};
use crate::kernels::KernelRegistry;
use crate::plan::Plan;
use crate::scene::{KernelSpec, Scene};
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What an engine was built from: enough to start a new run without re-planning.
#[derive(Clone)]
pub(crate) struct Origin {
    /// The compiled plan, before run inputs resolved its `Symbol` delays.
    pub plan: Arc<Plan>,
    /// The scene, when the engine was built from one (snapshots need it).
    pub scene: Option<Arc<Scene>>,
    pub registry: KernelRegistry,
    pub opts: super::RunOptions,
}

/// One thing the host did to a run, in the order it did it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum HostAction {
    Inject {
        node: String,
        tick: u64,
        values: Vec<f32>,
    },
    Close {
        node: String,
    },
    Pause {
        tick: u64,
    },
    Cancel,
    CancelAt {
        tick: u64,
    },
    CancelSources {
        names: Vec<String>,
    },
}

/// A host action and the number of steps the run had taken when it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub steps: u64,
    pub action: HostAction,
}

/// One token a probe recorded ([`Engine::probe_token`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeToken<'a> {
    /// The tick the token became visible to the probe.
    pub tick: u64,
    /// Its sequence number on the probe's channel.
    pub seq: u64,
    /// Its `batch·channels·frames` values, row-major.
    pub values: &'a [f32],
}

fn host_error(code: &'static str, at: &str, message: impl Into<String>) -> Error {
    Error::invalid(Diagnostic {
        code,
        message: message.into(),
        location: Location::Argument(at.to_string()),
    })
}

impl Engine {
    /// Builds an engine from scene text in RON (relative file paths resolve against the
    /// current directory). Errors are located like a scene file's, with origin `<string>`.
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "s",
    ///     nodes: [Node(name: "a", kernel: Const(value: 3.0), count: Some(1)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "out.in", delay: 4)])"#, RunOptions::default()).unwrap();
    /// assert_eq!(e.run(), Outcome::Completed);
    /// assert_eq!(e.probe("out").unwrap().ticks, vec![4]);
    /// assert_eq!(Engine::from_ron("Scene(", RunOptions::default()).err().unwrap().diagnostics()[0].code, "E100");
    /// ```
    pub fn from_ron(text: &str, opts: super::RunOptions) -> Result<Engine> {
        let scene = Scene::parse(text, "<string>", ".".into())?;
        Engine::from_scene_owned(scene, opts)
    }

    pub(crate) fn note(&mut self, action: HostAction) {
        // The host changed node state behind the channels' backs: check every node next step.
        self.world.resource_mut::<crate::ecs::StepState>().full_scan = true;
        self.journal.push(JournalEntry {
            steps: self.steps,
            action,
        });
    }

    /// Processes every instant up to and including tick `tick`, then pauses: the run goes on
    /// with the next `step`, `run_until` or `run`. Returns `Running` when paused, or the outcome
    /// when the run ended first (by its own rules, `until` included). Pausing never changes
    /// results: `run_until(a)` then `run()` gives exactly what `run()` gives.
    ///
    /// While an open input (`Inject` node) is open and nothing else has work, the engine waits
    /// for the host rather than deciding termination; `run_until` then passes through `tick`,
    /// after which the host may inject at any later tick.
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions, StepStatus};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "r",
    ///     nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(10), count: Some(4)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "src.out", to: "out.in")])"#, RunOptions::default()).unwrap();
    /// assert_eq!(e.run_until(15), StepStatus::Running);
    /// assert_eq!(e.probe("out").unwrap().values, vec![0.0, 1.0]); // read while running
    /// assert_eq!(e.run_until(1000), StepStatus::Ended(Outcome::Completed));
    /// assert_eq!(e.probe("out").unwrap().ticks, vec![0, 10, 20, 30]);
    /// ```
    pub fn run_until(&mut self, tick: u64) -> StepStatus {
        let go = |e: &mut Engine| loop {
            if let Some(o) = e.outcome {
                return StepStatus::Ended(o);
            }
            if e.awaiting_host || e.next.tick > tick {
                e.pause(tick);
                return StepStatus::Running;
            }
            if let StepStatus::Ended(o) = e.step() {
                return StepStatus::Ended(o);
            }
        };
        match self.pool.clone() {
            Some(pool) => pool.install(|| go(self)),
            None => go(self),
        }
    }

    /// Marks ticks ≤ `tick` as passed; a waiting engine resumes no earlier than `tick + 1`.
    fn pause(&mut self, tick: u64) {
        if self.horizon.is_some_and(|h| h >= tick) {
            return;
        }
        self.note(HostAction::Pause { tick });
        self.horizon = Some(tick);
        if self.awaiting_host && self.next.tick <= tick {
            self.next = Instant::new(tick.saturating_add(1), 0);
        }
    }

    /// The earliest tick the host may still inject at: after the last processed tick and
    /// after every tick `run_until` has passed through.
    pub fn earliest_injection(&self) -> u64 {
        let after_processed = self.last_processed.map_or(0, |i| i.tick.saturating_add(1));
        let after_pause = self.horizon.map_or(0, |h| h.saturating_add(1));
        after_processed.max(after_pause)
    }

    /// The names of the open inputs (`Inject` nodes) the host has not closed, in plan order.
    pub fn open_inputs(&self) -> Vec<&str> {
        let order = &self.world.resource::<NodeOrder>().0;
        self.plan
            .nodes
            .iter()
            .zip(order)
            .filter(|(n, e)| {
                matches!(n.kernel, KernelSpec::Inject)
                    && self
                        .world
                        .get::<NodeRuntime>(**e)
                        .is_some_and(|rt| !rt.host_closed)
            })
            .map(|(n, _)| n.name.as_str())
            .collect()
    }

    pub(crate) fn has_open_inputs(&self) -> bool {
        !self.open_inputs().is_empty()
    }

    /// Queues one token on the open input `node` (an `Inject` node), written at tick `tick`
    /// (visible downstream after the channel's delay, like any source's token). `values` holds
    /// one token: `batch·channels·frames` numbers of the node's shape.
    ///
    /// Errors (exit 2, nothing changes): E481 `node` is not an `Inject` node, E482 a token of
    /// another length, E483 a tick before [`Engine::earliest_injection`] or before the input's
    /// previous injection, E484 the input is closed or the run has ended.
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "i",
    ///     nodes: [Node(name: "cc", kernel: Inject), Node(name: "g", kernel: Gain(gain: 2.0)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "cc.out", to: "g.in", delay: 3), Edge(from: "g.out", to: "out.in")])"#,
    ///     RunOptions::default()).unwrap();
    /// e.inject("cc", 5, &[1.5]).unwrap();
    /// e.run_until(10);
    /// assert_eq!(e.probe("out").unwrap().ticks, vec![8]);
    /// e.inject("cc", 20, &[4.0]).unwrap();
    /// assert!(e.inject("cc", 7, &[0.0]).is_err()); // tick 7 has passed
    /// assert!(e.inject("g", 30, &[0.0]).is_err()); // not an open input
    /// assert_eq!(e.run(), Outcome::Completed); // run() closes the open inputs
    /// assert_eq!(e.probe("out").unwrap().values, vec![3.0, 8.0]);
    /// ```
    pub fn inject(&mut self, node: &str, tick: u64, values: &[f32]) -> Result<()> {
        let (i, entity) = self.open_input(node)?;
        let earliest = self.earliest_injection();
        if tick < earliest {
            return Err(host_error(
                "E483",
                node,
                format!(
                    "cannot inject at tick {tick}: the run has passed it (the earliest tick is {earliest})"
                ),
            ));
        }
        let token_len = self.plan.nodes[i]
            .outputs
            .first()
            .map_or(1, |t| t.shape.elements() as usize);
        if values.len() != token_len {
            return Err(host_error(
                "E482",
                node,
                format!(
                    "a token of `{node}` has {token_len} values, got {}",
                    values.len()
                ),
            ));
        }
        if let Some(rt) = self.world.get::<NodeRuntime>(entity)
            && let Some(&last) = rt.host_due.back()
            && tick < last
        {
            return Err(host_error(
                "E483",
                node,
                format!(
                    "cannot inject at tick {tick}: `{node}` already has a token queued at tick {last} (inject in tick order)"
                ),
            ));
        }
        self.note(HostAction::Inject {
            node: node.to_string(),
            tick,
            values: values.to_vec(),
        });
        self.queue_injection(entity, tick, values.to_vec());
        Ok(())
    }

    fn queue_injection(&mut self, entity: bevy_ecs::entity::Entity, tick: u64, values: Vec<f32>) {
        if let Some(mut k) = self.world.get_mut::<NodeKernel>(entity)
            && let Some(inject) =
                k.0.as_any_mut()
                    .downcast_mut::<crate::kernels::sources::Inject>()
        {
            inject.queue(values);
        }
        let first = match self.world.get_mut::<NodeRuntime>(entity) {
            Some(mut rt) => {
                rt.host_due.push_back(tick);
                if rt.host_due.len() == 1 {
                    rt.next_due = tick;
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if first {
            self.world
                .resource_mut::<crate::ecs::Events>()
                .0
                .push_wake(tick);
        }
        if self.awaiting_host || tick < self.next.tick {
            self.awaiting_host = false;
            self.next = Instant::new(tick, 0);
        }
    }

    /// Closes the open input `node`: the host injects nothing more. Its queued tokens are
    /// still written; then it finishes and closes its channel (§4), so the graph can end.
    /// Closing a closed input does nothing. E481 for a node that is not an `Inject` node, E484
    /// once the run has ended.
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions, StepStatus};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "c",
    ///     nodes: [Node(name: "in", kernel: Inject), Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "in.out", to: "out.in")])"#, RunOptions::default()).unwrap();
    /// e.inject("in", 3, &[7.0]).unwrap();
    /// // Open and idle after tick 3: the engine waits for the host instead of ending.
    /// assert_eq!(e.run_until(50), StepStatus::Running);
    /// e.close_input("in").unwrap();
    /// assert_eq!(e.open_inputs(), Vec::<&str>::new());
    /// assert_eq!(e.run_until(60), StepStatus::Ended(Outcome::Completed));
    /// assert_eq!(e.report().end_tick, 51); // closed at the first tick after the pause
    /// ```
    pub fn close_input(&mut self, node: &str) -> Result<()> {
        let entity = match self.open_input(node) {
            Ok((_, e)) => e,
            Err(e) if e.diagnostics().first().is_some_and(|d| d.code == "E484") => {
                if self.outcome.is_some() {
                    return Err(e);
                }
                return Ok(()); // closed already
            }
            Err(e) => return Err(e),
        };
        self.note(HostAction::Close {
            node: node.to_string(),
        });
        self.close_entity(entity);
        Ok(())
    }

    fn close_entity(&mut self, entity: bevy_ecs::entity::Entity) {
        if let Some(mut rt) = self.world.get_mut::<NodeRuntime>(entity) {
            rt.host_closed = true;
            if rt.host_due.is_empty() {
                rt.remaining = Some(0);
            }
        }
        if self.awaiting_host {
            // The node finishes at the earliest tick the run has not passed.
            self.awaiting_host = false;
            let at = self.earliest_injection();
            if self.next.tick < at {
                self.next = Instant::new(at, 0);
            }
        }
    }

    /// Closes every open input ([`Engine::close_input`]); `run()` does this first.
    pub fn close_inputs(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let open: Vec<String> = self.open_inputs().iter().map(|s| s.to_string()).collect();
        for name in open {
            let _ = self.close_input(&name);
        }
    }

    /// The node index and entity of the open input `node`, or the error an injection gets.
    fn open_input(&self, node: &str) -> Result<(usize, bevy_ecs::entity::Entity)> {
        let Some(i) = self.plan.node_index(node) else {
            return Err(host_error(
                "E481",
                node,
                format!(
                    "no node named `{node}` (open inputs: {:?})",
                    self.open_inputs()
                ),
            ));
        };
        if !matches!(self.plan.nodes[i].kernel, KernelSpec::Inject) {
            return Err(host_error(
                "E481",
                node,
                format!(
                    "`{node}` is not an open input (a `{}` node); only `Inject` nodes take tokens from the host",
                    self.plan.nodes[i].kernel.kind()
                ),
            ));
        }
        let entity = self.world.resource::<NodeOrder>().0[i];
        let closed = self
            .world
            .get::<NodeRuntime>(entity)
            .is_none_or(|rt| rt.host_closed);
        if self.outcome.is_some() || closed {
            return Err(host_error(
                "E484",
                node,
                if self.outcome.is_some() {
                    format!("the run has ended; `{node}` takes no more tokens")
                } else {
                    format!("`{node}` is closed; it takes no more tokens")
                },
            ));
        }
        Ok((i, entity))
    }

    /// Token `index` of probe `probe` as recorded so far (readable while the run goes on).
    /// E485 for an unknown probe, E486 for an index at or past the tokens recorded.
    ///
    /// ```
    /// use tapwheel::{Engine, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "t",
    ///     nodes: [Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(5), count: Some(2)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "out.in")])"#, RunOptions::default()).unwrap();
    /// e.run();
    /// let t = e.probe_token("out", 1).unwrap();
    /// assert_eq!((t.tick, t.seq, t.values), (5, 1, &[2.0f32][..]));
    /// assert_eq!(e.probe_token("out", 2).err().unwrap().diagnostics()[0].code, "E486");
    /// assert_eq!(e.probe_token("nope", 0).err().unwrap().diagnostics()[0].code, "E485");
    /// ```
    pub fn probe_token(&self, probe: &str, index: usize) -> Result<ProbeToken<'_>> {
        let probes = self.world.resource::<Probes>();
        let Some(p) = probes.streams.iter().find(|p| p.name == probe) else {
            let names: Vec<&str> = probes.streams.iter().map(|p| p.name.as_str()).collect();
            return Err(host_error(
                "E485",
                probe,
                format!("no probe named `{probe}` (probes: {names:?})"),
            ));
        };
        let start = index.checked_mul(p.token_len);
        let values = start
            .and_then(|s| Some(s..s.checked_add(p.token_len)?))
            .and_then(|r| p.values.get(r));
        match (p.ticks.get(index), p.seqs.get(index), values) {
            (Some(&tick), Some(&seq), Some(values)) => Ok(ProbeToken { tick, seq, values }),
            _ => Err(host_error(
                "E486",
                probe,
                format!(
                    "probe `{probe}` has recorded {} tokens; token {index} does not exist (yet)",
                    p.len()
                ),
            )),
        }
    }

    /// The options this engine's runs use (with every `set_*` applied).
    pub fn run_options(&self) -> &super::RunOptions {
        &self.origin.opts
    }

    /// Starts a new run from tick 0 with the same plan and options: probes, statistics, kernel
    /// state and the clock start over; parameters, slots and symbols set with `set_*` stay.
    /// The plan is not recompiled (`plan_digest` is unchanged).
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "r",
    ///     nodes: [Node(name: "a", kernel: Ramp(start: 1.0, step: 1.0), period: Some(2), count: Some(3)),
    ///             Node(name: "g", kernel: Gain(gain: 1.0)), Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "g.in"), Edge(from: "g.out", to: "out.in")])"#,
    ///     RunOptions::default()).unwrap();
    /// e.set_param("g.gain", 3.0).unwrap(); // a new run with gain 3
    /// e.run();
    /// e.reset().unwrap();                   // again from tick 0, still with gain 3
    /// assert_eq!(e.probe("out").unwrap().len(), 0);
    /// assert_eq!(e.run(), Outcome::Completed);
    /// assert_eq!(e.probe("out").unwrap().values, vec![3.0, 6.0, 9.0]);
    /// assert_eq!(e.set_slot(300, 1).err().unwrap().diagnostics()[0].code, "E106");
    /// ```
    pub fn reset(&mut self) -> Result<()> {
        self.with_options(|_| Ok(()))
    }

    /// Sets symbol `name` (§11) and starts a new run ([`Engine::reset`]): symbols are read at
    /// run start. The plan is not recompiled. On error the engine is unchanged.
    ///
    /// ```
    /// use tapwheel::{Engine, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "s",
    ///     nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "p", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "p.in", delay: Symbol("link"))], symbols: {"link": 2})"#,
    ///     RunOptions::default()).unwrap();
    /// e.run();
    /// let digest = e.report().plan_digest;
    /// e.set_symbol("link", 40).unwrap();
    /// e.run();
    /// assert_eq!(e.probe("p").unwrap().ticks, vec![40]);
    /// assert_eq!(e.report().plan_digest, digest);
    /// ```
    pub fn set_symbol(&mut self, name: &str, value: u64) -> Result<()> {
        self.with_options(|o| {
            o.symbols.insert(name.to_string(), value);
            Ok(())
        })
    }

    /// Sets slot `slot`'s initial value (§11; slots 0..=255) and starts a new run. E106 for a
    /// slot ≥ 256; on error the engine is unchanged.
    pub fn set_slot(&mut self, slot: u32, value: u64) -> Result<()> {
        self.with_options(|o| {
            o.slots.insert(slot, value);
            Ok(())
        })
    }

    /// Sets kernel parameter `key` (`"node.param"`, as `--param` and `Engine::params` name
    /// it) and starts a new run. E455 for an unknown parameter or an invalid value; on error
    /// the engine is unchanged.
    pub fn set_param(&mut self, key: &str, value: f64) -> Result<()> {
        self.with_options(|o| {
            o.params.insert(key.to_string(), value);
            Ok(())
        })
    }

    /// Changes the run options and starts a new run with them; on error nothing changes.
    pub fn with_options(
        &mut self,
        change: impl FnOnce(&mut super::RunOptions) -> Result<()>,
    ) -> Result<()> {
        let mut origin = self.origin.clone();
        change(&mut origin.opts)?;
        let mut fresh = Engine::spawn(origin)?;
        // A cancel handle handed out before stays valid for the new run.
        fresh.cancel = self.cancel.clone();
        fresh
            .cancel
            .0
            .store(false, std::sync::atomic::Ordering::SeqCst);
        *self = fresh;
        Ok(())
    }

    /// Moves the run's last tick (`until`) to `tick`: a paused or restored run then goes on
    /// to it. E484 once the run has ended, E483 before the last processed tick.
    ///
    /// ```
    /// use tapwheel::{Engine, Outcome, RunOptions};
    /// let mut e = Engine::from_ron(r#"Scene(version: 1, name: "u",
    ///     nodes: [Node(name: "a", kernel: Const(value: 1.0), period: Some(10)),
    ///             Node(name: "out", kernel: Probe)],
    ///     edges: [Edge(from: "a.out", to: "out.in")])"#,
    ///     RunOptions { until: Some(25), ..Default::default() }).unwrap();
    /// e.run_until(12);
    /// e.set_until(45).unwrap();
    /// assert_eq!(e.run(), Outcome::LimitReached);
    /// assert_eq!(e.probe("out").unwrap().ticks, vec![0, 10, 20, 30, 40]);
    /// ```
    pub fn set_until(&mut self, tick: u64) -> Result<()> {
        if self.outcome.is_some() {
            return Err(host_error(
                "E484",
                "until",
                "the run has ended; start a new one (reset) to run it further",
            ));
        }
        if let Some(last) = self.last_processed
            && tick < last.tick
        {
            return Err(host_error(
                "E483",
                "until",
                format!(
                    "the run has processed tick {}; it cannot end at tick {tick}",
                    last.tick
                ),
            ));
        }
        self.until = Some(tick);
        self.origin.opts.until = Some(tick);
        Ok(())
    }

    pub(crate) fn lift_until(&mut self) {
        self.until = None;
    }

    pub(crate) fn restore_until(&mut self, until: Option<u64>) {
        self.until = until;
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    pub(crate) fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// A digest of the run's state at this point: the clock, the firing counts and every
    /// probe token. Snapshots check a restored engine against it.
    pub(crate) fn state_digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&self.steps.to_le_bytes());
        h.update(&self.next.tick.to_le_bytes());
        h.update(&self.next.delta.to_le_bytes());
        if let Some(l) = self.last_processed {
            h.update(&l.tick.to_le_bytes());
            h.update(&l.delta.to_le_bytes());
        }
        let stats = self.world.resource::<crate::ecs::Stats>();
        for (f, c) in stats.firings.iter().zip(&stats.completed) {
            h.update(&f.to_le_bytes());
            h.update(&c.to_le_bytes());
        }
        for p in self.probes() {
            h.update(p.name.as_bytes());
            for (s, t) in p.seqs.iter().zip(&p.ticks) {
                h.update(&s.to_le_bytes());
                h.update(&t.to_le_bytes());
            }
            for v in &p.values {
                h.update(&v.to_bits().to_le_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }

    /// Steps until the run has taken `steps` steps; `Err(steps taken)` when it cannot.
    pub(crate) fn replay_steps(&mut self, steps: u64) -> std::result::Result<(), u64> {
        while self.steps < steps {
            if self.outcome.is_some() || self.awaiting_host {
                return Err(self.steps);
            }
            self.step();
        }
        if self.steps == steps {
            Ok(())
        } else {
            Err(self.steps)
        }
    }

    /// Does a journaled host action again.
    pub(crate) fn replay(&mut self, action: &HostAction) -> Result<()> {
        match action {
            HostAction::Inject { node, tick, values } => self.inject(node, *tick, values),
            HostAction::Close { node } => self.close_input(node),
            HostAction::Pause { tick } => {
                self.pause(*tick);
                Ok(())
            }
            HostAction::Cancel => {
                self.cancel();
                Ok(())
            }
            HostAction::CancelAt { tick } => {
                self.cancel_at(*tick);
                Ok(())
            }
            HostAction::CancelSources { names } => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self.cancel_sources(&names)
            }
        }
    }
}
