//! Engine snapshots (SPEC §20, §18): save a run at any step and restore it later — in this
//! process or another — to exactly the state it had.
//!
//! **What a snapshot holds.** The engine is deterministic (§18), so its state at step `n` is a
//! function of what it was built from and of what the host did before step `n`. A snapshot
//! therefore stores exactly that: the scene (as RON, [`crate::Scene::to_ron`]), the run options,
//! the journal of host actions (injections, closed inputs, pauses, cancellations) with the step
//! each came at, and the step count — plus a digest of the state at the cut (probe streams,
//! firing counts, clock). Restoring rebuilds the engine, replays the journal to the cut and
//! checks the digest: a restored engine is at the same instant with the same arena, kernel and
//! node state, statistics, thermal state, dispatcher state, device timeline and tape, because it
//! computed them the same way. This covers every piece of state — including custom kernels and
//! the cycle-level device model — without a serializer per component; the price is that
//! restoring costs the time the run took to reach the cut.
//!
//! **File format.** One header line `TAPWHEEL-SNAPSHOT <version> <blake3 of the body>`, then the
//! body as JSON. A file without the header is foreign, another version is refused, a body whose
//! digest differs is corrupt: all E487, exit 2. A snapshot whose replay does not reach the
//! recorded state (the scene's data files changed, another build computes differently) is
//! E488.
//!
//! **What cannot be snapshotted** (R341, exit 4): an engine built from a bare [`crate::Plan`]
//! (no scene to store), and a run with `latency: Measured`, whose timing is wall-clock and so
//! cannot be replayed.
//!
//! ```
//! use tapwheel::{Engine, RunOptions, StepStatus};
//! use tapwheel::snapshot::Snapshot;
//! let text = r#"Scene(version: 1, name: "s",
//!     nodes: [Node(name: "a", kernel: Ramp(start: 0.0, step: 1.0), period: Some(3), count: Some(6)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "a.out", to: "out.in", delay: 5)])"#;
//! let mut whole = Engine::from_ron(text, RunOptions::default()).unwrap();
//! whole.run();
//! let mut e = Engine::from_ron(text, RunOptions::default()).unwrap();
//! assert_eq!(e.run_until(7), StepStatus::Running); // tokens are in their delay now
//! let bytes = e.snapshot().unwrap().to_bytes();
//! let mut back = Engine::restore(&Snapshot::from_bytes(&bytes).unwrap()).unwrap();
//! assert_eq!(back.next_instant(), e.next_instant());
//! back.run();
//! assert_eq!(back.report().output_digest, whole.report().output_digest);
//! assert_eq!(back.probe("out").unwrap().ticks, vec![5, 8, 11, 14, 17, 20]);
//! ```

use crate::engine::{Engine, RunOptions};
use crate::error::{Diagnostic, Error, Location, Result};
use crate::kernels::KernelRegistry;
use crate::scene::{DeviceSpec, Scene, ScheduleSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The first word of every snapshot file.
pub const SNAPSHOT_MAGIC: &str = "TAPWHEEL-SNAPSHOT";

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The largest snapshot file [`Snapshot::load`] reads (1 GiB): a larger file is refused before
/// it is read into memory.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// A saved run ([`Engine::snapshot`], [`Engine::restore`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The version of tapwheel that wrote it.
    pub(crate) engine: String,
    pub(crate) scene: String,
    pub(crate) origin: String,
    pub(crate) base_dir: String,
    pub(crate) options: SavedOptions,
    pub(crate) journal: Vec<crate::engine::JournalEntry>,
    pub(crate) steps: u64,
    pub(crate) next: (u64, u32),
    pub(crate) state: String,
}

/// [`RunOptions`] as a snapshot stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedOptions {
    until: Option<u64>,
    max_steps: Option<u64>,
    max_arena_bytes: u64,
    schedule: Option<ScheduleSpec>,
    device: Option<DeviceSpec>,
    threads: Option<usize>,
    slots: BTreeMap<u32, u64>,
    symbols: BTreeMap<String, u64>,
    params: BTreeMap<String, f64>,
    gradients: bool,
    max_deltas: u64,
    record: Option<usize>,
    max_probe_bytes: u64,
}

impl SavedOptions {
    pub(crate) fn of(o: &RunOptions) -> SavedOptions {
        SavedOptions {
            until: o.until,
            max_steps: o.max_steps,
            max_arena_bytes: o.max_arena_bytes as u64,
            schedule: o.schedule.clone(),
            device: o.device.clone(),
            threads: o.threads,
            slots: o.slots.clone(),
            symbols: o.symbols.clone(),
            params: o.params.clone(),
            gradients: o.gradients,
            max_deltas: o.max_deltas,
            record: o.record.map(|r| r.max_events),
            max_probe_bytes: o.max_probe_bytes as u64,
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            until: self.until,
            max_steps: self.max_steps,
            max_arena_bytes: usize::try_from(self.max_arena_bytes).unwrap_or(usize::MAX),
            schedule: self.schedule.clone(),
            device: self.device.clone(),
            threads: self.threads,
            slots: self.slots.clone(),
            symbols: self.symbols.clone(),
            params: self.params.clone(),
            gradients: self.gradients,
            max_deltas: self.max_deltas,
            record: self
                .record
                .map(|max_events| crate::trace::RecordOptions { max_events }),
            max_probe_bytes: usize::try_from(self.max_probe_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// The digest a snapshot header gives for `body`: BLAKE3, lowercase hex.
pub fn body_digest(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

fn corrupt(message: impl Into<String>) -> Error {
    Error::invalid(Diagnostic {
        code: "E487",
        message: message.into(),
        location: Location::Argument("snapshot".into()),
    })
}

impl Snapshot {
    /// The number of steps the saved run had taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The instant the saved run would process next, `(tick, delta)`.
    pub fn next_instant(&self) -> (u64, u32) {
        self.next
    }

    /// The saved scene, as RON text.
    pub fn scene_ron(&self) -> &str {
        &self.scene
    }

    /// The run options the saved run used (with every `set_*` the host made).
    pub fn run_options(&self) -> RunOptions {
        self.options.options()
    }

    /// The file form: the header line, then the JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        let digest = body_digest(&body);
        let mut out = format!("{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION} {digest}\n").into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Reads the file form. E487 for a foreign file, another format version or a corrupted body.
    ///
    /// ```
    /// use tapwheel::snapshot::Snapshot;
    /// let e = Snapshot::from_bytes(b"PK\x03\x04 not a snapshot").unwrap_err();
    /// assert_eq!(e.diagnostics()[0].code, "E487");
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot> {
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .filter(|&n| n <= 256)
            .ok_or_else(|| corrupt("not a tapwheel snapshot (no header line)"))?;
        let header = std::str::from_utf8(&bytes[..newline])
            .map_err(|_| corrupt("not a tapwheel snapshot (the header is not text)"))?;
        let mut words = header.split(' ');
        if words.next() != Some(SNAPSHOT_MAGIC) {
            return Err(corrupt(format!(
                "not a tapwheel snapshot (it does not start with `{SNAPSHOT_MAGIC}`)"
            )));
        }
        let version = words.next().unwrap_or_default();
        if version != SNAPSHOT_VERSION.to_string() {
            return Err(corrupt(format!(
                "snapshot format version `{version}` is not supported (this build reads version {SNAPSHOT_VERSION})"
            )));
        }
        let digest = words.next().unwrap_or_default();
        let body = &bytes[newline + 1..];
        if body_digest(body) != digest {
            return Err(corrupt(
                "the snapshot is corrupted: its body does not match the digest in its header",
            ));
        }
        serde_json::from_slice(body)
            .map_err(|e| corrupt(format!("the snapshot body is malformed: {e}")))
    }

    /// Writes the snapshot to `path`; E489 when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|e| {
            Error::invalid(Diagnostic {
                code: "E489",
                message: format!("cannot write snapshot `{}`: {e}", path.display()),
                location: Location::Argument(path.display().to_string()),
            })
        })
    }

    /// Reads a snapshot file: E105 when it cannot be read, E487 as [`Snapshot::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref();
        let unreadable = |e: String| {
            Error::invalid(Diagnostic {
                code: "E105",
                message: format!("cannot read snapshot file: {e}"),
                location: Location::Argument(path.display().to_string()),
            })
        };
        let len = std::fs::metadata(path)
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        if len > MAX_SNAPSHOT_BYTES {
            return Err(corrupt(format!(
                "the snapshot is {len} bytes, more than the {MAX_SNAPSHOT_BYTES} this build reads"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        Snapshot::from_bytes(&bytes)
    }
}

impl Engine {
    /// Saves the run as it stands (see [`crate::snapshot`]). R341 for an engine built from a
    /// bare plan or a run with `latency: Measured`.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let origin = self.origin();
        let Some(scene) = origin.scene.as_ref() else {
            return Err(Error::refused(Diagnostic::nowhere(
                "R341",
                "this engine was built from a bare plan: build it from a scene (Engine::load, from_ron, from_scene) to snapshot it",
            )));
        };
        if let Some(n) = self.plan().nodes.iter().find(|n| n.measured_latency) {
            return Err(Error::refused(Diagnostic::nowhere(
                "R341",
                format!(
                    "node `{}` has `latency: Measured`: its timing is wall-clock, so the run cannot be replayed from a snapshot",
                    n.name
                ),
            )));
        }
        let next = self.next_instant();
        Ok(Snapshot {
            engine: env!("CARGO_PKG_VERSION").to_string(),
            scene: scene.to_ron(),
            origin: scene.origin.clone(),
            base_dir: scene.base_dir.display().to_string(),
            options: SavedOptions::of(&origin.opts),
            journal: self.journal().to_vec(),
            steps: self.steps(),
            next: (next.tick, next.delta),
            state: self.state_digest(),
        })
    }

    /// Rebuilds the saved run (see [`crate::snapshot`]): the engine is at the saved step, in
    /// the saved state, and goes on exactly as the saved run would have. A run that ended at
    /// its `until` comes back paused at that limit, so [`Engine::set_until`] can take it
    /// further. E487/E488 when the snapshot is unusable; the scene's own errors as when it was
    /// first loaded.
    pub fn restore(snapshot: &Snapshot) -> Result<Engine> {
        Engine::restore_with(snapshot, &KernelRegistry::default())
    }

    /// [`Engine::restore`] for a run that used custom kernels or dispatch hooks: `registry`
    /// must provide them again.
    pub fn restore_with(snapshot: &Snapshot, registry: &KernelRegistry) -> Result<Engine> {
        let scene = Scene::parse(
            &snapshot.scene,
            &snapshot.origin,
            snapshot.base_dir.clone().into(),
        )?;
        let mut engine = Engine::from_scene_with(&scene, snapshot.options.options(), registry)?;
        let diverged = |what: String| {
            Error::invalid(Diagnostic {
                code: "E488",
                message: format!("the snapshot does not replay to its saved state: {what}"),
                location: Location::Argument("snapshot".into()),
            })
        };
        // A run that ended at its `until` is restored paused at the limit (so `set_until` can
        // take it further; `run()` ends it there again): the fence is lifted while replaying,
        // which changes nothing before it.
        let until = engine.until();
        engine.lift_until();
        for entry in &snapshot.journal {
            engine
                .replay_steps(entry.steps)
                .map_err(|at| diverged(format!("the run stopped at step {at}")))?;
            engine
                .replay(&entry.action)
                .map_err(|e| diverged(format!("a host action failed: {e}")))?;
        }
        engine
            .replay_steps(snapshot.steps)
            .map_err(|at| diverged(format!("the run stopped at step {at}")))?;
        engine.restore_until(until);
        let next = engine.next_instant();
        if engine.state_digest() != snapshot.state || (next.tick, next.delta) != snapshot.next {
            return Err(diverged(
                "its state differs (the scene's data files or this build changed since it was saved)"
                    .into(),
            ));
        }
        Ok(engine)
    }
}
