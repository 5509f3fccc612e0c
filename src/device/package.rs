//! Versioned packages (SPEC §16): `tapwheel package SCENE -o DIR` writes `manifest.json` and its
//! payload files; `tapwheel run DIR` loads, verifies and runs them.
//!
//! A package is a directory:
//!
//! - `manifest.json` — the [`Manifest`]: `abi`, `platform`, `runtime`, the kernel registry
//!   (`func_id`, core, name, argument signature, content hash), the orchestration payload, the
//!   schedule, CSP and slot payloads, `plan_digest`, and the BLAKE3 digest of every other file;
//! - `scene.ron` — the scene, byte for byte;
//! - every file the scene references (`File` sources, a `loss` target, a `CycleSim` profile named
//!   by path), at the same path relative to the scene as in the scene's folder, so `scene.ron`
//!   resolves them unchanged;
//! - `tasks.json` — the task graph ([`TaskGraph`]): nodes with `func_id`, core and taps, channels.
//!
//! The same scene (and the same files) always gives a byte-identical package.
//!
//! **Loading checks everything before anything runs.** The ABI first (an unknown major fails
//! fast, E292), then every listed file against its digest (a missing file is E296, a changed one
//! E297, each naming the file), then the plan of `scene.ron` against `plan_digest` (E298). Every
//! failure is invalid input (exit 2):
//!
//! ```
//! use tapwheel::device::package::{load_package, write_package, PackageOptions};
//! let dir = std::env::temp_dir().join(format!("tapwheel-pkg-doc-{}", std::process::id()));
//! let _ = std::fs::remove_dir_all(&dir);
//! std::fs::create_dir_all(&dir).unwrap();
//! let scene = dir.join("ramp.ron");
//! std::fs::write(&scene, r#"Scene(version: 1, name: "ramp",
//!     nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(2), count: Some(3)),
//!             Node(name: "g", kernel: Gain(gain: 2.0)), Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in", delay: 1)])"#).unwrap();
//! let pkg = dir.join("pkg");
//! let written = write_package(&scene, &pkg, &PackageOptions::default()).unwrap();
//! assert_eq!(written.manifest.abi, "tapwheel-pkg/1");
//! // Probes are not tasks (§4), so they have no func_id: Ramp → 0, Gain → 1.
//! let names: Vec<_> = written.manifest.kernels.iter().map(|k| (k.func_id, k.name.as_str())).collect();
//! assert_eq!(names, vec![(0, "Ramp"), (1, "Gain")]);
//! let loaded = load_package(&pkg).unwrap();
//! assert_eq!(loaded.plan.digest, written.manifest.plan_digest);
//!
//! // One byte more in a payload file: loading fails and names the file.
//! let mut bytes = std::fs::read(pkg.join("scene.ron")).unwrap();
//! bytes.push(b'\n');
//! std::fs::write(pkg.join("scene.ron"), bytes).unwrap();
//! let err = load_package(&pkg).unwrap_err();
//! assert_eq!((err.exit_code(), err.diagnostics()[0].code), (2, "E297"));
//! assert!(err.to_string().contains("package file `scene.ron` does not match its digest"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! Writing never clobbers: `-o` may name a missing or empty directory, or an existing package
//! (whose listed files are replaced); anything else is E290.

use crate::error::{Diagnostic, Error, Location, Result};
use crate::kernels::{self, BuildCtx, KernelRegistry, Signature, TapSig};
use crate::plan::Plan;
use crate::scene::{
    CoreType, DeviceSpec, DispatchPolicy, KernelSpec, Lane, LossSpec, MemorySpec, Policy, Scene,
    WindowMode, WindowScope,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The ABI this build writes.
pub const ABI: &str = "tapwheel-pkg/1";
/// The ABI major this build reads.
pub const ABI_MAJOR: u32 = 1;
const ABI_PREFIX: &str = "tapwheel-pkg/";
/// The manifest's file name at the package root.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The scene's file name in the package.
pub const SCENE_FILE: &str = "scene.ron";
/// The orchestration payload's file name.
pub const TASKS_FILE: &str = "tasks.json";
/// The orchestration payload kind this build writes (a JSON task graph, [`TaskGraph`]).
pub const ORCHESTRATION_KIND: &str = "task_graph/json";
/// The format tag inside `tasks.json`.
pub const TASKS_FORMAT: &str = "tapwheel-tasks/1";
/// The element type of every argument (SPEC §3: tokens are `f32`).
pub const DTYPE: &str = "f32";

/// The top-level manifest fields every package of ABI major 1 carries.
pub const REQUIRED_FIELDS: &[&str] = &[
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
    "files",
];

/// The major version of an ABI string `tapwheel-pkg/<major>` (or `tapwheel-pkg/<major>.<minor>`),
/// `None` when the string is malformed.
///
/// ```
/// use tapwheel::device::package::abi_major;
/// assert_eq!(abi_major("tapwheel-pkg/1"), Some(1));
/// assert_eq!(abi_major("tapwheel-pkg/2"), Some(2));      // well-formed, but an unknown major
/// assert_eq!(abi_major("tapwheel-pkg/1.3"), Some(1));    // a minor revision of major 1
/// assert_eq!(abi_major("tapwheel-pkg/"), None);
/// assert_eq!(abi_major("tapwheel-pkg/x"), None);
/// assert_eq!(abi_major("pto-pkg/1"), None);
/// ```
pub fn abi_major(abi: &str) -> Option<u32> {
    let rest = abi.strip_prefix(ABI_PREFIX)?;
    let (major, minor) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || minor.is_some_and(|m| !digits(m)) {
        return None;
    }
    major.parse().ok()
}

/// The platform a package targets (§16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Ascend A2/A3 hardware through the pto-runtime host library.
    A2a3,
    /// pto-runtime's A2/A3 simulator.
    A2a3sim,
    /// tapwheel's cycle-level model (`CycleSim`).
    Cyclesim,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::A2a3, Platform::A2a3sim, Platform::Cyclesim];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::A2a3 => "a2a3",
            Platform::A2a3sim => "a2a3sim",
            Platform::Cyclesim => "cyclesim",
        }
    }

    /// The platform of a name, exactly as [`Platform::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The default platform of a scene's `device:`: `Ascend` → `a2a3`, otherwise `cyclesim`.
    ///
    /// ```
    /// use tapwheel::device::package::Platform;
    /// use tapwheel::scene::DeviceSpec;
    /// assert_eq!(Platform::for_device(&DeviceSpec::Reference), Platform::Cyclesim);
    /// let ascend = DeviceSpec::Ascend { library: "libpto.so".into(), device_id: 0 };
    /// assert_eq!(Platform::for_device(&ascend), Platform::A2a3);
    /// ```
    pub fn for_device(device: &DeviceSpec) -> Platform {
        match device {
            DeviceSpec::Ascend { .. } => Platform::A2a3,
            DeviceSpec::Reference | DeviceSpec::CycleSim { .. } => Platform::Cyclesim,
        }
    }
}

/// The pto-runtime runtime flavour a package asks for (§16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Runtime {
    /// The host builds the task graph (pto-runtime's default).
    #[default]
    HostBuildGraph,
    /// The AICPU builds the task graph.
    AicpuBuildGraph,
    /// Tensor map and ring buffer (PTO2).
    TensormapAndRingbuffer,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [
        Runtime::HostBuildGraph,
        Runtime::AicpuBuildGraph,
        Runtime::TensormapAndRingbuffer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::HostBuildGraph => "host_build_graph",
            Runtime::AicpuBuildGraph => "aicpu_build_graph",
            Runtime::TensormapAndRingbuffer => "tensormap_and_ringbuffer",
        }
    }

    /// The flavour of a name, exactly as [`Runtime::as_str`] spells it.
    ///
    /// ```
    /// use tapwheel::device::package::Runtime;
    /// assert_eq!(Runtime::parse("aicpu_build_graph"), Some(Runtime::AicpuBuildGraph));
    /// assert_eq!(Runtime::parse("host-build-graph"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

macro_rules! name_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                <$t>::parse(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", $what, " `{}`"), name))
                })
            }
        }
    };
}
name_serde!(Platform, "platform");
name_serde!(Runtime, "runtime flavour");

/// What `tapwheel package` takes beside the scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageOptions {
    /// `None`: the scene's device decides ([`Platform::for_device`]).
    pub platform: Option<Platform>,
    pub runtime: Runtime,
}

impl PackageOptions {
    /// Options from command-line names (`--platform`, `--runtime`); an unknown name is E294 /
    /// E295 located at its argument (both reported when both are wrong).
    ///
    /// ```
    /// use tapwheel::device::package::{PackageOptions, Platform, Runtime};
    /// let o = PackageOptions::from_names(Some("a2a3sim"), None).unwrap();
    /// assert_eq!((o.platform, o.runtime), (Some(Platform::A2a3sim), Runtime::HostBuildGraph));
    /// let e = PackageOptions::from_names(Some("gpu"), Some("fast")).unwrap_err();
    /// let codes: Vec<_> = e.diagnostics().iter().map(|d| d.code).collect();
    /// assert_eq!(codes, vec!["E294", "E295"]);
    /// ```
    pub fn from_names(platform: Option<&str>, runtime: Option<&str>) -> Result<PackageOptions> {
        let mut errors = Vec::new();
        let mut opts = PackageOptions::default();
        if let Some(name) = platform {
            match Platform::parse(name) {
                Some(p) => opts.platform = Some(p),
                None => errors.push(Diagnostic {
                    code: "E294",
                    message: format!(
                        "unknown platform `{name}` (one of {})",
                        list(Platform::ALL.iter().map(|p| p.as_str()))
                    ),
                    location: Location::Argument("--platform".into()),
                }),
            }
        }
        if let Some(name) = runtime {
            match Runtime::parse(name) {
                Some(r) => opts.runtime = r,
                None => errors.push(Diagnostic {
                    code: "E295",
                    message: format!(
                        "unknown runtime flavour `{name}` (one of {})",
                        list(Runtime::ALL.iter().map(|r| r.as_str()))
                    ),
                    location: Location::Argument("--runtime".into()),
                }),
            }
        }
        if errors.is_empty() {
            Ok(opts)
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `manifest.json` (ABI major 1). Unknown fields are ignored when reading, so a later minor
/// revision may add optional fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `tapwheel-pkg/1`.
    pub abi: String,
    /// The scene's name and its file in the package.
    pub scene: SceneEntry,
    pub platform: Platform,
    pub runtime: Runtime,
    /// The `plan_digest` of `scene.ron` under its own schedule (§18).
    pub plan_digest: String,
    /// The kernel registry, by `func_id`.
    pub kernels: Vec<KernelEntry>,
    /// The orchestration payload (the task graph).
    pub orchestration: Orchestration,
    pub schedule: SchedulePayload,
    pub csp: CspPayload,
    pub slots: SlotSchema,
    /// BLAKE3 (lowercase hex) of every file of the package but `manifest.json`, by relative
    /// path (`/`-separated), in path order.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneEntry {
    pub name: String,
    pub file: String,
}

/// One kernel function: nodes with the same kernel spec (kind and parameters), core type and
/// argument signature share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelEntry {
    /// Dense, from 0, in the order of first use by canonical node order.
    pub func_id: u32,
    /// The kernel kind (`Gain`, `MatMul`, or a custom kind).
    pub name: String,
    /// The node's `core:`, else the kernel's own cost declaration.
    pub core: CoreType,
    pub signature: ArgSignature,
    /// BLAKE3 of the kernel spec's canonical serialization ([`kernel_content_hash`]).
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSignature {
    pub inputs: Vec<Arg>,
    pub outputs: Vec<Arg>,
}

/// One argument (tap) of a kernel: tokens per firing, token shape, element type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    pub name: String,
    pub rate: u32,
    /// `[batch, channels, frames]`.
    pub shape: [u32; 3],
    pub dtype: String,
}

impl ArgSignature {
    fn of(sig: &Signature) -> ArgSignature {
        let args = |taps: &[TapSig]| {
            taps.iter()
                .map(|t| Arg {
                    name: t.name.clone(),
                    rate: t.rate,
                    shape: [t.shape.batch, t.shape.channels, t.shape.frames],
                    dtype: DTYPE.into(),
                })
                .collect()
        };
        ArgSignature {
            inputs: args(&sig.inputs),
            outputs: args(&sig.outputs),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orchestration {
    /// `task_graph/json`.
    pub kind: String,
    /// The payload file (`tasks.json`).
    pub file: String,
}

/// How tasks are scheduled and issued (§5, §6, §9). Without `dispatch:` in the scene the
/// effective values are written: one domain, `RoundRobin`, cost 0, unlimited workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePayload {
    /// `kpn`, `ipls-auto` or `ipls`.
    pub mode: String,
    /// IPLS stages: each a list of cohorts (empty under `kpn`).
    pub stages: Vec<Vec<CohortEntry>>,
    pub gates: Vec<GateEntry>,
    pub domains: u32,
    pub policy: PolicyEntry,
    pub dispatch_cost: u64,
    /// Workers per domain; `null` = unlimited.
    pub workers: Option<u32>,
    pub task_window: Option<WindowEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortEntry {
    pub kind: String,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateEntry {
    pub name: String,
    pub members: Vec<String>,
}

/// A dispatch policy: `kind` is `RoundRobin`, `Affinity`, `LeastLoaded`, `Hash` (with `arg` the
/// key) or `Hook` (with `arg` the hook's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowEntry {
    pub size: u32,
    pub mode: WindowMode,
    pub scope: WindowScope,
}

/// Channels with their CSP semantics (§3, §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CspPayload {
    pub memory: MemoryEntry,
    pub channels: Vec<CspChannel>,
}

/// `Parks` (with `max_capacity`) or `Fixed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub kind: String,
    #[serde(default)]
    pub max_capacity: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CspChannel {
    /// The edge's index in the scene.
    pub index: usize,
    /// `from.tap->to.tap`.
    pub name: String,
    pub from: String,
    pub to: String,
    pub capacity: u32,
    /// `capacity: 0`.
    pub rendezvous: bool,
    /// The channel's `delay` in ticks (§10: its latency); 0 for a symbol delay.
    pub latency: u64,
    /// The symbol a `delay: Symbol("name")` reads at run start.
    pub latency_symbol: Option<String>,
    pub lane: Lane,
    pub policy: Policy,
    /// Initial tokens.
    pub initial: usize,
    /// `[high, low]`.
    pub watermarks: Option<[u32; 2]>,
}

/// The slots and symbols a run of the package uses (§11). Their values are run inputs, not part
/// of the package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotSchema {
    /// Slots per run (256).
    pub count: u32,
    /// Slots named by `SlotLoad` (writers) and `Select` (readers), by index.
    pub slots: Vec<SlotUse>,
    /// Symbols named by channel delays, by name.
    pub symbols: Vec<SymbolUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotUse {
    pub index: u32,
    pub written_by: Vec<String>,
    pub read_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolUse {
    pub name: String,
    /// FNV-1a-64 of the name, `0x` and 16 hex digits.
    pub id: String,
    /// The channels whose delay it is.
    pub channels: Vec<String>,
}

/// `tasks.json`: the task graph in canonical node order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGraph {
    /// `tapwheel-tasks/1`.
    pub format: String,
    pub scene: String,
    pub nodes: Vec<TaskNode>,
    pub channels: Vec<TaskChannel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskNode {
    pub index: usize,
    pub name: String,
    pub kind: String,
    /// Firings are tasks (false for probes, §4).
    pub task: bool,
    /// The kernel registry entry (`null` for probes).
    pub func_id: Option<u32>,
    pub core: Option<CoreType>,
    /// Reference-device latency in ticks.
    pub latency: u64,
    /// Firings in flight at once; `null` = unlimited.
    pub concurrency: Option<u32>,
    pub lane: Lane,
    pub domain: Option<u32>,
    pub gate: Option<String>,
    /// Sources only.
    pub source: Option<SourceEntry>,
    pub inputs: Vec<TaskTap>,
    pub outputs: Vec<TaskTap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub period: Option<u64>,
    pub offset: u64,
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTap {
    pub name: String,
    pub rate: u32,
    /// `[batch, channels, frames]`.
    pub shape: [u32; 3],
    /// Channel indices (several: fan-out on an output, a gather adapter on an input).
    pub channels: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChannel {
    pub index: usize,
    /// `node.tap`.
    pub from: String,
    pub to: String,
}

/// BLAKE3 (hex) of a kernel spec's canonical serialization: `tapwheel-kernel/1\0` followed by the
/// spec as compact JSON (serde's externally tagged form, fields in declaration order, custom
/// parameters in name order).
///
/// ```
/// use tapwheel::device::package::kernel_content_hash;
/// use tapwheel::scene::KernelSpec;
/// let a = kernel_content_hash(&KernelSpec::Gain { gain: 2.0 });
/// assert_eq!(a, kernel_content_hash(&KernelSpec::Gain { gain: 2.0 }));
/// assert_ne!(a, kernel_content_hash(&KernelSpec::Gain { gain: 3.0 }));
/// assert_eq!(a.len(), 64);
/// ```
pub fn kernel_content_hash(spec: &KernelSpec) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"tapwheel-kernel/1\0");
    // A KernelSpec holds numbers, strings, lists and string-keyed maps: JSON always accepts it.
    h.update(&serde_json::to_vec(spec).unwrap_or_default());
    h.finalize().to_hex().to_string()
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A manifest diagnostic located at `FILE (field)`.
fn at_field(code: &'static str, manifest: &str, field: &str, message: String) -> Diagnostic {
    Diagnostic {
        code,
        message,
        location: Location::ScenePath(if field.is_empty() {
            manifest.to_string()
        } else {
            format!("{manifest} ({field})")
        }),
    }
}

impl Manifest {
    /// The manifest as written: pretty JSON, fields in declaration order, a final newline.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool, list or string-keyed map.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads `manifest.json` text; `origin` names it in diagnostics. The ABI is checked first
    /// (E292: malformed, or a major other than 1); then the required fields (E293), the platform
    /// (E294) and the runtime flavour (E295). Unknown fields are ignored.
    ///
    /// ```
    /// use tapwheel::device::package::Manifest;
    /// let e = Manifest::from_json(br#"{"abi": "tapwheel-pkg/2"}"#, "manifest.json").unwrap_err();
    /// assert_eq!(e.diagnostics()[0].code, "E292");
    /// assert!(e.to_string().contains("manifest.json (abi)"));
    /// let e = Manifest::from_json(br#"{"abi": "tapwheel-pkg/1"}"#, "manifest.json").unwrap_err();
    /// assert_eq!(e.diagnostics()[0].code, "E293"); // `scene`, `platform`, … are missing
    /// ```
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Manifest> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(at_field(
                "E291",
                origin,
                "",
                format!("`{MANIFEST_FILE}` is not valid JSON: {e}"),
            ))
        })?;
        let Some(obj) = value.as_object() else {
            return Err(Error::invalid(at_field(
                "E291",
                origin,
                "",
                format!("`{MANIFEST_FILE}` must hold a JSON object"),
            )));
        };
        let abi = obj.get("abi").and_then(|a| a.as_str());
        match abi.map(|a| (a, abi_major(a))) {
            None => {
                return Err(Error::invalid(at_field(
                    "E292",
                    origin,
                    "abi",
                    format!("`{MANIFEST_FILE}` has no `abi` string (expected `{ABI}`)"),
                )));
            }
            Some((a, None)) => {
                return Err(Error::invalid(at_field(
                    "E292",
                    origin,
                    "abi",
                    format!(
                        "malformed package ABI `{a}` in `{MANIFEST_FILE}` (expected `{ABI_PREFIX}<major>`)"
                    ),
                )));
            }
            Some((a, Some(major))) if major != ABI_MAJOR => {
                return Err(Error::invalid(at_field(
                    "E292",
                    origin,
                    "abi",
                    format!(
                        "package ABI `{a}` in `{MANIFEST_FILE}` is not supported: this build reads major {ABI_MAJOR} (`{ABI}`)"
                    ),
                )));
            }
            Some(_) => {}
        }
        let mut errors: Vec<Diagnostic> = REQUIRED_FIELDS
            .iter()
            .filter(|f| !obj.contains_key(**f))
            .map(|f| {
                at_field(
                    "E293",
                    origin,
                    f,
                    format!("`{MANIFEST_FILE}` lacks the required field `{f}`"),
                )
            })
            .collect();
        if let Some(p) = obj.get("platform").and_then(|p| p.as_str())
            && Platform::parse(p).is_none()
        {
            errors.push(at_field(
                "E294",
                origin,
                "platform",
                format!(
                    "unknown platform `{p}` (one of {})",
                    list(Platform::ALL.iter().map(|p| p.as_str()))
                ),
            ));
        }
        if let Some(r) = obj.get("runtime").and_then(|r| r.as_str())
            && Runtime::parse(r).is_none()
        {
            errors.push(at_field(
                "E295",
                origin,
                "runtime",
                format!(
                    "unknown runtime flavour `{r}` (one of {})",
                    list(Runtime::ALL.iter().map(|r| r.as_str()))
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let m: Manifest = serde_json::from_value(value.clone()).map_err(|e| {
            Error::invalid(at_field(
                "E293",
                origin,
                "",
                format!("`{MANIFEST_FILE}` has a field of the wrong shape: {e}"),
            ))
        })?;
        // Every path must stay inside the package; the payloads must be listed.
        for (rel, digest) in &m.files {
            if safe_relative(rel).is_none() || rel == MANIFEST_FILE {
                errors.push(at_field(
                    "E293",
                    origin,
                    "files",
                    format!("package file `{rel}` is not a relative path inside the package"),
                ));
            } else if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                errors.push(at_field(
                    "E293",
                    origin,
                    "files",
                    format!("the digest of `{rel}` is not 64 hex digits (BLAKE3)"),
                ));
            }
        }
        for (field, file) in [
            ("scene.file", &m.scene.file),
            ("orchestration.file", &m.orchestration.file),
        ] {
            if !m.files.contains_key(file) {
                errors.push(at_field(
                    "E293",
                    origin,
                    field,
                    format!("`{file}` ({field}) is not listed in `files`"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(m)
    }
}

/// A relative path made only of normal components, as a `/`-separated string; `None` for an
/// absolute path, `..`, an empty path or a non-UTF-8 component.
fn safe_relative(p: &str) -> Option<String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() || p.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// The manifest and task graph of a planned scene (no `files` yet).
fn describe(
    scene: &Scene,
    plan: &Plan,
    registry: &KernelRegistry,
    opts: &PackageOptions,
) -> Result<(Manifest, TaskGraph)> {
    let mut kernels_out: Vec<KernelEntry> = Vec::new();
    let mut funcs: Vec<Option<(u32, CoreType)>> = Vec::with_capacity(plan.nodes.len());
    for (i, n) in plan.nodes.iter().enumerate() {
        if n.is_probe {
            funcs.push(None);
            continue;
        }
        let sig = n.signature();
        let core = match n.core {
            Some(c) => c,
            None => {
                let ctx = BuildCtx {
                    sig: &sig,
                    tick_hz: plan.tick_hz,
                    file: n.file.as_ref(),
                    registry,
                };
                let k = kernels::instantiate(&n.kernel, &ctx).ok_or_else(|| {
                    Error::refused(Diagnostic::at(
                        "R320",
                        format!("nodes[{i}].kernel"),
                        format!("kernel `{}` cannot be instantiated", n.kernel.kind()),
                    ))
                })?;
                k.cost(&sig).core
            }
        };
        let signature = ArgSignature::of(&sig);
        let content_hash = kernel_content_hash(&n.kernel);
        let id = match kernels_out
            .iter()
            .find(|e| e.content_hash == content_hash && e.core == core && e.signature == signature)
        {
            Some(e) => e.func_id,
            None => {
                let id = kernels_out.len() as u32;
                kernels_out.push(KernelEntry {
                    func_id: id,
                    name: n.kernel.kind().to_string(),
                    core,
                    signature,
                    content_hash,
                });
                id
            }
        };
        funcs.push(Some((id, core)));
    }

    let node_name = |i: usize| plan.nodes.get(i).map_or("", |n| n.name.as_str());
    let tap_name = |node: usize, tap: usize, out: bool| -> String {
        let n = plan.nodes.get(node);
        let t = n.and_then(|n| {
            if out {
                n.outputs.get(tap).map(|t| t.name.as_str())
            } else {
                n.inputs.get(tap).map(|t| t.name.as_str())
            }
        });
        format!("{}.{}", node_name(node), t.unwrap_or(""))
    };

    let (domains, policy, dispatch_cost, workers) = match &plan.dispatch {
        Some(d) => (
            d.domains,
            policy_entry(&d.policy),
            d.dispatch_cost,
            d.workers,
        ),
        None => (1, policy_entry(&DispatchPolicy::RoundRobin), 0, None),
    };
    let schedule = SchedulePayload {
        mode: plan.schedule.mode.as_str().to_string(),
        stages: plan
            .schedule
            .stages
            .iter()
            .map(|st| {
                st.cohorts
                    .iter()
                    .map(|c| CohortEntry {
                        kind: c.kind.clone(),
                        nodes: c.nodes.iter().map(|&n| node_name(n).to_string()).collect(),
                    })
                    .collect()
            })
            .collect(),
        gates: plan
            .gates
            .iter()
            .map(|g| GateEntry {
                name: g.name.clone(),
                members: g
                    .members
                    .iter()
                    .map(|&n| node_name(n).to_string())
                    .collect(),
            })
            .collect(),
        domains,
        policy,
        dispatch_cost,
        workers,
        task_window: plan.task_window.as_ref().map(|w| WindowEntry {
            size: w.size,
            mode: w.mode,
            scope: w.scope,
        }),
    };

    let csp = CspPayload {
        memory: match plan.memory {
            MemorySpec::Parks { max_capacity } => MemoryEntry {
                kind: "Parks".into(),
                max_capacity: Some(max_capacity),
            },
            MemorySpec::Fixed => MemoryEntry {
                kind: "Fixed".into(),
                max_capacity: None,
            },
        },
        channels: plan
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| CspChannel {
                index: i,
                name: c.name.clone(),
                from: tap_name(c.from_node, c.from_tap, true),
                to: tap_name(c.to_node, c.to_tap, false),
                capacity: c.capacity,
                rendezvous: c.capacity == 0,
                latency: c.delay,
                latency_symbol: c.delay_symbol.clone(),
                lane: c.lane,
                policy: c.policy,
                initial: c.initial.len(),
                watermarks: c.watermarks.map(|(h, l)| [h, l]),
            })
            .collect(),
    };

    let mut slot_uses: BTreeMap<u32, SlotUse> = BTreeMap::new();
    for n in &plan.nodes {
        let (slot, write) = match &n.kernel {
            KernelSpec::SlotLoad { slot, .. } => (*slot, true),
            KernelSpec::Select { slot } => (*slot, false),
            _ => continue,
        };
        let u = slot_uses.entry(slot).or_insert_with(|| SlotUse {
            index: slot,
            written_by: Vec::new(),
            read_by: Vec::new(),
        });
        if write {
            u.written_by.push(n.name.clone());
        } else {
            u.read_by.push(n.name.clone());
        }
    }
    let mut symbol_uses: BTreeMap<String, SymbolUse> = BTreeMap::new();
    for c in &plan.channels {
        if let Some(s) = &c.delay_symbol {
            symbol_uses
                .entry(s.clone())
                .or_insert_with(|| SymbolUse {
                    name: s.clone(),
                    id: format!("{:#018x}", crate::slots::symbol_id(s)),
                    channels: Vec::new(),
                })
                .channels
                .push(c.name.clone());
        }
    }
    let slots = SlotSchema {
        count: crate::slots::SLOT_COUNT as u32,
        slots: slot_uses.into_values().collect(),
        symbols: symbol_uses.into_values().collect(),
    };

    let mut gate_of: BTreeMap<usize, String> = BTreeMap::new();
    for g in &plan.gates {
        for &m in &g.members {
            gate_of.insert(m, g.name.clone());
        }
    }
    let shape3 = |s: &crate::scene::Shape| [s.batch, s.channels, s.frames];
    let tasks = TaskGraph {
        format: TASKS_FORMAT.into(),
        scene: plan.name.clone(),
        nodes: plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| TaskNode {
                index: i,
                name: n.name.clone(),
                kind: n.kernel.kind().to_string(),
                task: !n.is_probe,
                func_id: funcs.get(i).copied().flatten().map(|f| f.0),
                core: funcs.get(i).copied().flatten().map(|f| f.1),
                latency: n.latency,
                concurrency: n.concurrency,
                lane: n.lane,
                domain: n.domain,
                gate: gate_of.get(&i).cloned(),
                source: n.is_source.then_some(SourceEntry {
                    period: n.period,
                    offset: n.offset,
                    count: n.count,
                }),
                inputs: n
                    .inputs
                    .iter()
                    .map(|t| TaskTap {
                        name: t.name.clone(),
                        rate: t.rate,
                        shape: shape3(&t.shape),
                        channels: t.channels.clone(),
                    })
                    .collect(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|t| TaskTap {
                        name: t.name.clone(),
                        rate: t.rate,
                        shape: shape3(&t.shape),
                        channels: t.channels.clone(),
                    })
                    .collect(),
            })
            .collect(),
        channels: plan
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| TaskChannel {
                index: i,
                from: tap_name(c.from_node, c.from_tap, true),
                to: tap_name(c.to_node, c.to_tap, false),
            })
            .collect(),
    };

    let manifest = Manifest {
        abi: ABI.into(),
        scene: SceneEntry {
            name: plan.name.clone(),
            file: SCENE_FILE.into(),
        },
        platform: opts
            .platform
            .unwrap_or_else(|| Platform::for_device(&scene.spec.device)),
        runtime: opts.runtime,
        plan_digest: plan.digest.clone(),
        kernels: kernels_out,
        orchestration: Orchestration {
            kind: ORCHESTRATION_KIND.into(),
            file: TASKS_FILE.into(),
        },
        schedule,
        csp,
        slots,
        files: BTreeMap::new(),
    };
    Ok((manifest, tasks))
}

fn policy_entry(p: &DispatchPolicy) -> PolicyEntry {
    let (kind, arg) = match p {
        DispatchPolicy::RoundRobin => ("RoundRobin", None),
        DispatchPolicy::Affinity => ("Affinity", None),
        DispatchPolicy::LeastLoaded => ("LeastLoaded", None),
        DispatchPolicy::Hash(k) => ("Hash", Some(k.clone())),
        DispatchPolicy::Hook(h) => ("Hook", Some(h.clone())),
    };
    PolicyEntry {
        kind: kind.into(),
        arg,
    }
}

/// What [`write_package`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// BLAKE3 (hex) of `manifest.json`'s bytes: the package's identity.
    pub manifest_digest: String,
    /// Planner warnings of the scene (`W…`).
    pub warnings: Vec<Diagnostic>,
}

impl Written {
    /// What `tapwheel package --format json` prints: `scene`, `dir`, `platform`, `runtime`,
    /// `plan_digest`, `manifest_digest`, `kernels` (kind names by `func_id`), `files` (every file
    /// written, `manifest.json` included, sorted) and `warnings`.
    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.manifest;
        let mut files: Vec<&str> = m.files.keys().map(String::as_str).collect();
        files.push(MANIFEST_FILE);
        files.sort_unstable();
        serde_json::json!({
            "scene": m.scene.name,
            "dir": self.dir.display().to_string(),
            "platform": m.platform.as_str(),
            "runtime": m.runtime.as_str(),
            "plan_digest": m.plan_digest,
            "manifest_digest": self.manifest_digest,
            "kernels": m.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            "files": files,
            "warnings": self.warnings.iter().map(|w| serde_json::json!({
                "code": w.code, "message": w.message, "at": w.location_text(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A verified package, ready to run: build an engine from `scene` as for any scene file
/// (`Engine::from_scene(&package.scene, options)`).
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// `scene.ron`, resolving its files inside the package.
    pub scene: Scene,
    /// Its plan under its own schedule; `plan.digest == manifest.plan_digest`.
    pub plan: Plan,
}

fn io_internal(what: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("writing {}: {e}", what.display()))
}

/// Writes the package of the scene file `scene_path` into `dir` (SPEC §16).
pub fn write_package(scene_path: &Path, dir: &Path, opts: &PackageOptions) -> Result<Written> {
    write_package_with(scene_path, dir, opts, &KernelRegistry::default())
}

/// [`write_package`] for scenes with custom kernels from `registry`.
///
/// Scene errors are reported as by `tapwheel check` (exit 2); a file the scene references that
/// cannot be packaged is E299; a `dir` that is neither missing, empty nor a package is E290.
/// Fields a run would refuse (§12 devices, …) are packaged as written: refusing them is the
/// run's business.
pub fn write_package_with(
    scene_path: &Path,
    dir: &Path,
    opts: &PackageOptions,
    registry: &KernelRegistry,
) -> Result<Written> {
    let unreadable = |e: String| {
        Error::invalid(Diagnostic {
            code: "E105",
            message: format!("cannot read scene file: {e}"),
            location: Location::Argument(scene_path.display().to_string()),
        })
    };
    let scene_bytes = std::fs::read(scene_path).map_err(|e| unreadable(e.to_string()))?;
    let text = std::str::from_utf8(&scene_bytes)
        .map_err(|_| unreadable("stream did not contain valid UTF-8".into()))?;
    let base_dir = scene_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let scene = Scene::parse(text, &scene_path.display().to_string(), base_dir.clone())?;
    let plan = Plan::compile_with(&scene, registry)?;

    // Every payload file, read before the output directory is touched (so re-packaging a
    // package into itself works).
    let mut payload: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut errors = Vec::new();
    let reserved = [MANIFEST_FILE, SCENE_FILE, TASKS_FILE];
    let reference = |payload: &mut BTreeMap<String, Vec<u8>>,
                     errors: &mut Vec<Diagnostic>,
                     at: String,
                     rel: &str,
                     expect: Option<&str>| {
        let Some(key) = safe_relative(rel) else {
            errors.push(Diagnostic::at(
                "E299",
                at,
                format!(
                    "file `{rel}` must be a relative path inside the scene's folder to be packaged"
                ),
            ));
            return;
        };
        if reserved.contains(&key.as_str()) {
            errors.push(Diagnostic::at(
                "E299",
                at,
                format!("file `{rel}` has the name of a package file of its own; rename it"),
            ));
            return;
        }
        match std::fs::read(base_dir.join(&key)) {
            Ok(bytes) => {
                if let Some(d) = expect
                    && blake3_hex(&bytes) != d
                {
                    errors.push(Diagnostic::at(
                        "E299",
                        at,
                        format!("file `{rel}` changed while it was being packaged"),
                    ));
                    return;
                }
                payload.insert(key, bytes);
            }
            Err(e) => errors.push(Diagnostic::at(
                "E299",
                at,
                format!("file `{rel}` cannot be read: {e}"),
            )),
        }
    };
    for (i, n) in plan.nodes.iter().enumerate() {
        if let KernelSpec::File { path } = &n.kernel {
            reference(
                &mut payload,
                &mut errors,
                format!("nodes[{i}].kernel.path"),
                path,
                n.file_digest.as_deref(),
            );
        }
    }
    if let Some(LossSpec::Mse { target, .. }) = &scene.spec.loss {
        reference(
            &mut payload,
            &mut errors,
            "loss.target".into(),
            target,
            None,
        );
    }
    // A CycleSim profile named by path travels like a referenced file, at its path relative to
    // the scene, so the package's `scene.ron` resolves it unchanged from the package folder. It
    // must be the very file the plan loaded (its digest is in `plan_digest`): one outside the
    // scene's folder, or found only relative to the working directory, is E299 (rewriting the
    // path would change `scene.ron` and the plan digest).
    if let crate::plan::PlanDevice::CycleSim {
        profile,
        profile_digest,
        ..
    } = &plan.device
        && !profile.starts_with("builtin:")
    {
        let at = "device.profile".to_string();
        match safe_relative(profile) {
            Some(key) if !base_dir.join(&key).is_file() => errors.push(Diagnostic::at(
                "E299",
                at,
                format!(
                    "profile `{profile}` is not in the scene's folder (it was found relative to \
                     the working directory); copy it next to the scene, or use `builtin:a2a3`"
                ),
            )),
            _ => reference(
                &mut payload,
                &mut errors,
                at,
                profile,
                Some(profile_digest.as_str()),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let (mut manifest, tasks) = describe(&scene, &plan, registry, opts)?;
    let mut tasks_json = serde_json::to_string_pretty(&tasks)
        .map_err(|e| Error::Internal(format!("task graph serialisation failed: {e}")))?;
    tasks_json.push('\n');
    payload.insert(SCENE_FILE.into(), scene_bytes);
    payload.insert(TASKS_FILE.into(), tasks_json.into_bytes());
    manifest.files = payload
        .iter()
        .map(|(k, v)| (k.clone(), blake3_hex(v)))
        .collect();
    let manifest_text = manifest.to_json();

    prepare_dir(dir)?;
    for (rel, bytes) in &payload {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_internal(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io_internal(&path, e))?;
    }
    // The manifest last: a directory without it is not (yet) a package.
    let mpath = dir.join(MANIFEST_FILE);
    std::fs::write(&mpath, &manifest_text).map_err(|e| io_internal(&mpath, e))?;
    Ok(Written {
        dir: dir.to_path_buf(),
        manifest_digest: blake3_hex(manifest_text.as_bytes()),
        manifest,
        warnings: plan.warnings.clone(),
    })
}

/// Makes `dir` ready for a package: created when missing, left alone when empty, cleared of the
/// files its manifest lists when it holds a package; anything else is E290.
fn prepare_dir(dir: &Path) -> Result<()> {
    let refuse = |msg: String| {
        Error::invalid(Diagnostic {
            code: "E290",
            message: msg,
            location: Location::Argument("-o".into()),
        })
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(dir).map_err(|e| io_internal(dir, e));
        }
        Err(e) => return Err(io_internal(dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(refuse(format!(
                "`{}` exists and is not a directory; a package is a directory",
                dir.display()
            )));
        }
        Ok(_) => {}
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| io_internal(dir, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let old = std::fs::read(dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| {
            v.get("abi")
                .and_then(|a| a.as_str())
                .is_some_and(|a| a.starts_with(ABI_PREFIX))
        });
    let Some(old) = old else {
        return Err(refuse(format!(
            "`{}` is a non-empty directory that is not a package (no tapwheel `{MANIFEST_FILE}`); refusing to overwrite it — choose a new or empty directory",
            dir.display()
        )));
    };
    // Replace the old package: remove exactly the files it lists (paths inside it only), then
    // the directories that became empty, deepest first.
    let mut subdirs = std::collections::BTreeSet::new();
    if let Some(files) = old.get("files").and_then(|f| f.as_object()) {
        for rel in files.keys().filter_map(|k| safe_relative(k)) {
            let path = dir.join(&rel);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_internal(&path, e)),
            }
            let mut p = Path::new(&rel).parent();
            while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                subdirs.insert(d.to_path_buf());
                p = d.parent();
            }
        }
    }
    for d in subdirs.iter().rev() {
        // Only empty directories go; others hold files the old package did not list.
        let _ = std::fs::remove_dir(dir.join(d));
    }
    let mpath = dir.join(MANIFEST_FILE);
    std::fs::remove_file(&mpath).map_err(|e| io_internal(&mpath, e))
}

/// Whether `path` is a package directory: a directory holding `manifest.json` (which
/// [`load_package`] then verifies). `tapwheel run` takes such a path as a package and any other
/// path as a scene file.
pub fn is_package(path: &Path) -> bool {
    path.is_dir() && path.join(MANIFEST_FILE).exists()
}

/// Loads and verifies the package in `dir` (SPEC §16).
pub fn load_package(dir: &Path) -> Result<Package> {
    load_package_with(dir, &KernelRegistry::default())
}

/// [`load_package`] for packages whose scene uses custom kernels from `registry`.
///
/// Checks, in order, each failing with exit 2: `manifest.json` readable JSON (E291); its ABI
/// (E292); its required fields (E293), platform (E294) and runtime (E295); every listed file
/// present (E296) and matching its digest (E297), all reported at once; `scene.ron` valid (the
/// usual scene and plan errors) with the manifest's `plan_digest` (E298). Files in `dir` that
/// the manifest does not list are ignored.
pub fn load_package_with(dir: &Path, registry: &KernelRegistry) -> Result<Package> {
    let mpath = dir.join(MANIFEST_FILE);
    let origin = mpath.display().to_string();
    let bytes = std::fs::read(&mpath).map_err(|e| {
        Error::invalid(at_field(
            "E291",
            &origin,
            "",
            if dir.is_dir() {
                format!(
                    "`{}` is not a package: cannot read `{MANIFEST_FILE}`: {e}",
                    dir.display()
                )
            } else {
                format!("`{}` is not a package directory", dir.display())
            },
        ))
    })?;
    let manifest = Manifest::from_json(&bytes, &origin)?;

    let mut errors = Vec::new();
    let mut scene_bytes = None;
    for (rel, digest) in &manifest.files {
        let path = dir.join(rel);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => errors.push(Diagnostic {
                code: "E296",
                message: format!("package file `{rel}` is missing"),
                location: Location::ScenePath(path.display().to_string()),
            }),
            Err(e) => errors.push(Diagnostic {
                code: "E296",
                message: format!("package file `{rel}` cannot be read: {e}"),
                location: Location::ScenePath(path.display().to_string()),
            }),
            Ok(b) => {
                let actual = blake3_hex(&b);
                if !actual.eq_ignore_ascii_case(digest) {
                    errors.push(Diagnostic {
                        code: "E297",
                        message: format!(
                            "package file `{rel}` does not match its digest (manifest {digest}, file {actual})"
                        ),
                        location: Location::ScenePath(path.display().to_string()),
                    });
                } else if *rel == manifest.scene.file {
                    scene_bytes = Some(b);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let spath = dir.join(&manifest.scene.file);
    let Some(scene_bytes) = scene_bytes else {
        return Err(Error::Internal("verified scene file vanished".into()));
    };
    let text = std::str::from_utf8(&scene_bytes).map_err(|_| {
        Error::invalid(Diagnostic {
            code: "E105",
            message: "cannot read scene file: stream did not contain valid UTF-8".into(),
            location: Location::Argument(spath.display().to_string()),
        })
    })?;
    let base_dir = spath
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    let scene = Scene::parse(text, &spath.display().to_string(), base_dir)?;
    let plan = Plan::compile_with(&scene, registry)?;
    if plan.digest != manifest.plan_digest {
        return Err(Error::invalid(at_field(
            "E298",
            &origin,
            "plan_digest",
            format!(
                "the plan of `{}` has digest {}, but `{MANIFEST_FILE}` says {} (made by another tapwheel version, or edited)",
                manifest.scene.file, plan.digest, manifest.plan_digest
            ),
        )));
    }
    Ok(Package {
        dir: dir.to_path_buf(),
        manifest,
        scene,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_relative_paths() {
        assert_eq!(safe_relative("a/b.csv").as_deref(), Some("a/b.csv"));
        assert_eq!(safe_relative("./a//b.csv").as_deref(), Some("a/b.csv"));
        for bad in ["", ".", "/etc/passwd", "../x", "a/../../x", "a\\b"] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn platform_and_runtime_names_round_trip() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
        }
        for r in Runtime::ALL {
            assert_eq!(Runtime::parse(r.as_str()), Some(r));
        }
    }
}
