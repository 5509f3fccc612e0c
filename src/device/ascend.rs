//! The Ascend bridge (SPEC §12): runs a package's task graph on an Ascend NPU through the
//! pto-runtime host library, loaded at run time with `libloading` (cargo feature `ascend`, on by
//! default).
//!
//! The bridge binds one pinned API family, the flat host C API of pto-runtime as of March 2026
//! ([`PINNED_REPOSITORY`] at [`PINNED_COMMIT`], header [`PINNED_HEADER`]); `docs/devices-ascend.md`
//! gives the signatures, the call sequence and what is and is not verified without hardware.
//!
//! Values never come from here: every device yields the reference kernels' values (§12). The
//! bridge executes the package's task graph on the hardware and reports what the hardware reports
//! (the wall time of the launch, every call's return code). Whatever is missing — the feature, the
//! library, a symbol, the device — the request is *refused* with a typed [`BridgeRefusal`] (exit 4),
//! never served by another device.
//!
//! ```
//! use tapwheel::device::ascend::check_ascend;
//! let refused = check_ascend(std::path::Path::new("/nonexistent/libpto.so"), 0).unwrap_err();
//! if cfg!(feature = "ascend") {
//!     assert_eq!(refused.code(), "R360");
//!     assert!(refused.to_string().contains("/nonexistent/libpto.so"));
//! } else {
//!     assert_eq!(refused.code(), "R363"); // built without the bridge
//! }
//! ```

use crate::error::{Diagnostic, Error};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository whose header the bindings follow (pto-runtime is developed there).
pub const PINNED_REPOSITORY: &str = "hw-native-sys/simpler";
/// The commit whose `pto_runtime_c_api.h` (and onboard implementation) the bindings were read at.
pub const PINNED_COMMIT: &str = "f5cb8163c7b6b6406426542a078b047afce989c9";
/// The header, inside [`PINNED_REPOSITORY`], that declares the bound functions.
pub const PINNED_HEADER: &str = "src/a2a3/platform/include/host/pto_runtime_c_api.h";
/// The API family, in words (reports and refusals quote it).
pub const API_FAMILY: &str = "pto-runtime flat host C API of March 2026";

/// Every symbol the bridge needs, in the order it resolves them (the order of first use).
pub const REQUIRED_SYMBOLS: [&str; 9] = [
    "set_device",
    "get_runtime_size",
    "device_malloc",
    "copy_to_device",
    "init_runtime",
    "launch_runtime",
    "copy_from_device",
    "finalize_runtime",
    "device_free",
];

/// Symbols that only other pto-runtime API families export, whose functions share names with the
/// pinned family but not signatures: the TaskArg/round family (`init_runtime_round`,
/// `finalize_runtime_round`) and the device-context family (`create_device_context`,
/// `run_runtime`). A library exporting one is refused (R364) rather than called with the wrong
/// argument list. A best-effort guard: a C library carries no signatures to check.
pub const FOREIGN_FAMILY_MARKERS: [&str; 4] = [
    "init_runtime_round",
    "finalize_runtime_round",
    "create_device_context",
    "run_runtime",
];

/// The pto-runtime runtime variants; the host library is built for one of them. The flat API has
/// no call that names the variant, so the bridge cannot check it: the package records it and the
/// user points `library` at a build of the same variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeVariant {
    /// The task graph is built on the host by the orchestration function.
    HostBuildGraph,
    /// The task graph is built on an AICPU thread.
    AicpuBuildGraph,
    /// PTO2: tensor map and ring buffers, orchestration on device.
    TensormapAndRingbuffer,
}

impl RuntimeVariant {
    /// The variant's name as pto-runtime spells it (`src/a2a3/runtime/<name>/`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeVariant::HostBuildGraph => "host_build_graph",
            RuntimeVariant::AicpuBuildGraph => "aicpu_build_graph",
            RuntimeVariant::TensormapAndRingbuffer => "tensormap_and_ringbuffer",
        }
    }

    /// The inverse of [`RuntimeVariant::as_str`].
    pub fn parse(name: &str) -> Option<RuntimeVariant> {
        [
            RuntimeVariant::HostBuildGraph,
            RuntimeVariant::AicpuBuildGraph,
            RuntimeVariant::TensormapAndRingbuffer,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }
}

/// Why the Ascend device cannot be used: each is a refusal (exit 4) with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeRefusal {
    /// R360: the library path names no file.
    #[error(
        "the pto-runtime library `{}` was not found: the Ascend device needs the pto-runtime host library ({API_FAMILY}); no other device is used instead",
        .path.display()
    )]
    LibraryNotFound { path: PathBuf },
    /// R360: the file exists (or the bare name was searched for) but the loader refused it.
    #[error("the pto-runtime library `{}` cannot be loaded: {reason}", .path.display())]
    LibraryNotLoadable { path: PathBuf, reason: String },
    /// R361: required symbols are missing; the first missing one (in [`REQUIRED_SYMBOLS`] order)
    /// comes first.
    #[error(
        "the pto-runtime library `{}` lacks {}{} of the {API_FAMILY} ({PINNED_REPOSITORY}@{})",
        .library.display(),
        symbol_list(.missing),
        foreign_hint(.foreign),
        short(PINNED_COMMIT)
    )]
    SymbolsMissing {
        library: PathBuf,
        missing: Vec<&'static str>,
        foreign: Vec<&'static str>,
    },
    /// R362: `set_device` failed (or the id does not fit the C API's `int`).
    #[error("no Ascend device {device_id}: {reason}")]
    DeviceUnavailable { device_id: u32, reason: String },
    /// R363: this build was made without the `ascend` feature.
    #[error(
        "the Ascend device is not in this build: rebuild with the cargo feature `ascend` (a default feature; `--no-default-features` drops it)"
    )]
    FeatureNotBuilt,
    /// R364: the library exports symbols of another pto-runtime API family.
    #[error(
        "the pto-runtime library `{}` exports {} of a different pto-runtime C API family; this build binds the {API_FAMILY} ({PINNED_REPOSITORY}@{}), whose functions take other arguments",
        .library.display(),
        symbol_list(.foreign),
        short(PINNED_COMMIT)
    )]
    ForeignApiFamily {
        library: PathBuf,
        foreign: Vec<&'static str>,
    },
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn symbol_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let noun = if names.len() == 1 {
        "symbol"
    } else {
        "symbols"
    };
    format!("{noun} {}", quoted.join(", "))
}

fn foreign_hint(foreign: &[&str]) -> String {
    if foreign.is_empty() {
        String::new()
    } else {
        format!(
            " (it exports {} of a different pto-runtime API family)",
            symbol_list(foreign)
        )
    }
}

impl BridgeRefusal {
    /// The stable refusal code (`docs/errors.md`).
    pub fn code(&self) -> &'static str {
        match self {
            BridgeRefusal::LibraryNotFound { .. } | BridgeRefusal::LibraryNotLoadable { .. } => {
                "R360"
            }
            BridgeRefusal::SymbolsMissing { .. } => "R361",
            BridgeRefusal::DeviceUnavailable { .. } => "R362",
            BridgeRefusal::FeatureNotBuilt => "R363",
            BridgeRefusal::ForeignApiFamily { .. } => "R364",
        }
    }

    /// The refusal as a diagnostic located at a scene path (`device`) or an argument.
    pub fn diagnostic_at(&self, path: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.code(), path, self.to_string())
    }
}

impl From<BridgeRefusal> for Diagnostic {
    fn from(r: BridgeRefusal) -> Diagnostic {
        Diagnostic::nowhere(r.code(), r.to_string())
    }
}

impl From<BridgeRefusal> for Error {
    /// A refusal: exit 4.
    fn from(r: BridgeRefusal) -> Error {
        Error::refused(r.into())
    }
}

/// A failure while running a task graph on an opened bridge (the device exists and the library
/// is complete, but a call failed or the graph cannot be passed to it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AscendError {
    /// E430: a pto-runtime call returned a failure code.
    #[error("pto-runtime call `{call}` failed: it returned {rc}")]
    CallFailed { call: &'static str, rc: i32 },
    /// E430: `device_malloc` returned NULL.
    #[error(
        "pto-runtime call `device_malloc` failed: no device memory for {bytes} bytes (tensor {tensor})"
    )]
    OutOfDeviceMemory { tensor: usize, bytes: usize },
    /// E430: `get_runtime_size` returned 0 (the library cannot build a runtime).
    #[error("pto-runtime call `get_runtime_size` failed: it returned 0")]
    NoRuntimeSize,
    /// E431: the task graph cannot be expressed in the C API's arguments.
    #[error("the task graph cannot be passed to pto-runtime: {0}")]
    InvalidGraph(String),
}

impl AscendError {
    /// The stable error code (`docs/errors.md`).
    pub fn code(&self) -> &'static str {
        match self {
            AscendError::InvalidGraph(_) => "E431",
            _ => "E430",
        }
    }
}

impl From<AscendError> for Diagnostic {
    fn from(e: AscendError) -> Diagnostic {
        Diagnostic::nowhere(e.code(), e.to_string())
    }
}

/// One kernel binary of the package, registered under its `func_id`.
#[derive(Debug, Clone, Copy)]
pub struct KernelBinary<'a> {
    pub func_id: u32,
    pub binary: &'a [u8],
}

/// A package's task graph as the pinned C API takes it. The orchestration function (inside
/// `orchestration`, an ELF shared object) builds the graph in `init_runtime` from `func_args`:
/// for each tensor, in order, its device address and its length in bytes, then `scalars`.
#[derive(Debug, Clone, Copy)]
pub struct TaskGraph<'a> {
    /// The variant the package (and the library) were built for; recorded, not checkable.
    pub variant: RuntimeVariant,
    pub orchestration: &'a [u8],
    /// The orchestration function's exported name.
    pub orchestration_entry: &'a str,
    pub kernels: &'a [KernelBinary<'a>],
    /// The AICPU scheduler shared object.
    pub aicpu_binary: &'a [u8],
    /// The AICore executor object.
    pub aicore_binary: &'a [u8],
    /// AICPU scheduler threads (≥ 1).
    pub aicpu_thread_num: u32,
    /// Blocks of 1 AIC + 2 AIV (≥ 1).
    pub block_dim: u32,
    /// Orchestrator threads (1 unless the variant runs several).
    pub orch_thread_num: u32,
    pub scalars: &'a [u64],
}

/// A tensor the task graph reads or writes: host bytes the bridge copies to and from a device
/// buffer of the same length.
#[derive(Debug)]
pub enum Tensor<'a> {
    /// Copied to the device before `init_runtime`.
    Input(&'a [u8]),
    /// Copied back from the device after the launch.
    Output(&'a mut [u8]),
    /// Both.
    InOut(&'a mut [u8]),
}

impl Tensor<'_> {
    fn len(&self) -> usize {
        match self {
            Tensor::Input(b) => b.len(),
            Tensor::Output(b) | Tensor::InOut(b) => b.len(),
        }
    }
}

/// One C call the bridge made and what it returned (`rc` is `None` for calls that return no
/// status: `get_runtime_size`, `device_malloc`, `device_free`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: &'static str,
    pub rc: Option<i32>,
}

/// What the hardware reported for one task-graph run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AscendRun {
    /// `get_runtime_size()`: the bytes of the host-side runtime object.
    pub runtime_size: usize,
    /// Wall time of `launch_runtime`, which returns once the device has finished.
    pub launch_wall: Duration,
    /// Every call made, in order.
    pub calls: Vec<Call>,
}

/// An opened bridge: the library loaded, every required symbol resolved, the device set.
pub struct AscendBridge {
    inner: imp::Bridge,
}

impl std::fmt::Debug for AscendBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AscendBridge")
            .field("library", &self.library())
            .field("device_id", &self.device_id())
            .finish()
    }
}

impl AscendBridge {
    /// Loads `library`, resolves every symbol of [`REQUIRED_SYMBOLS`] up front, refuses libraries
    /// of another API family and calls `set_device(device_id)`.
    ///
    /// Loading a library runs its initialisers: name only libraries you trust.
    pub fn open(library: &Path, device_id: u32) -> Result<AscendBridge, BridgeRefusal> {
        imp::Bridge::open(library, device_id).map(|inner| AscendBridge { inner })
    }

    /// The library this bridge loaded.
    pub fn library(&self) -> &Path {
        self.inner.library()
    }

    /// The device this bridge set.
    pub fn device_id(&self) -> u32 {
        self.inner.device_id()
    }

    /// Runs `graph` on the device: `get_runtime_size`, a host buffer of that size,
    /// `device_malloc` for every tensor, `copy_to_device` for inputs, `init_runtime`,
    /// `launch_runtime` (timed), `copy_from_device` for outputs, `finalize_runtime`, and
    /// `device_free` for every buffer — also when a call fails. Every return code is checked; the
    /// first failure is returned, naming its call.
    pub fn run_task_graph(
        &mut self,
        graph: &TaskGraph<'_>,
        tensors: &mut [Tensor<'_>],
    ) -> Result<AscendRun, AscendError> {
        self.inner.run_task_graph(graph, tensors)
    }
}

/// Checks at run start that the Ascend device can be used: the feature is built, the library
/// loads, every symbol resolves and `set_device` succeeds. The library is unloaded again.
pub fn check_ascend(library: &Path, device_id: u32) -> Result<(), BridgeRefusal> {
    AscendBridge::open(library, device_id).map(drop)
}

/// The arguments of `init_runtime` derived from a graph and its tensors, checked to fit C `int`s.
#[cfg_attr(not(feature = "ascend"), allow(dead_code))]
struct Prepared {
    entry: std::ffi::CString,
    kernel_ids: Vec<std::os::raw::c_int>,
    kernel_ptrs: Vec<*const u8>,
    kernel_sizes: Vec<usize>,
    aicpu_thread_num: std::os::raw::c_int,
    block_dim: std::os::raw::c_int,
    orch_thread_num: std::os::raw::c_int,
}

#[cfg_attr(not(feature = "ascend"), allow(dead_code))]
fn prepare(graph: &TaskGraph<'_>, tensors: &[Tensor<'_>]) -> Result<Prepared, AscendError> {
    use std::os::raw::c_int;
    let bad = |m: String| AscendError::InvalidGraph(m);
    let int = |what: &str, v: u64| {
        c_int::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit a C int")))
    };
    let entry = std::ffi::CString::new(graph.orchestration_entry).map_err(|_| {
        bad(format!(
            "the orchestration entry `{}` contains a NUL byte",
            graph.orchestration_entry.escape_default()
        ))
    })?;
    if graph.aicpu_binary.is_empty() {
        return Err(bad("the AICPU binary is empty".into()));
    }
    if graph.aicore_binary.is_empty() {
        return Err(bad("the AICore binary is empty".into()));
    }
    if graph.aicpu_thread_num == 0 {
        return Err(bad("aicpu_thread_num is 0".into()));
    }
    if graph.block_dim == 0 {
        return Err(bad("block_dim is 0".into()));
    }
    if let Some(i) = tensors.iter().position(|t| t.len() == 0) {
        return Err(bad(format!("tensor {i} is empty")));
    }
    let args = (tensors.len() as u64)
        .saturating_mul(2)
        .saturating_add(graph.scalars.len() as u64);
    int("the argument count", args)?;
    int("the kernel count", graph.kernels.len() as u64)?;
    if let Some(k) = graph.kernels.iter().find(|k| k.binary.is_empty()) {
        return Err(bad(format!(
            "kernel func_id {} has an empty binary",
            k.func_id
        )));
    }
    let kernel_ids = graph
        .kernels
        .iter()
        .map(|k| int("kernel func_id", k.func_id.into()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared {
        entry,
        kernel_ids,
        kernel_ptrs: graph.kernels.iter().map(|k| k.binary.as_ptr()).collect(),
        kernel_sizes: graph.kernels.iter().map(|k| k.binary.len()).collect(),
        aicpu_thread_num: int("aicpu_thread_num", graph.aicpu_thread_num.into())?,
        block_dim: int("block_dim", graph.block_dim.into())?,
        orch_thread_num: int("orch_thread_num", graph.orch_thread_num.into())?,
    })
}

#[cfg(not(feature = "ascend"))]
mod imp {
    use super::*;

    /// Without the feature no bridge can exist: `open` always refuses.
    pub enum Bridge {}

    impl Bridge {
        pub fn open(_library: &Path, _device_id: u32) -> Result<Bridge, BridgeRefusal> {
            Err(BridgeRefusal::FeatureNotBuilt)
        }
        pub fn library(&self) -> &Path {
            match *self {}
        }
        pub fn device_id(&self) -> u32 {
            match *self {}
        }
        pub fn run_task_graph(
            &mut self,
            _graph: &TaskGraph<'_>,
            _tensors: &mut [Tensor<'_>],
        ) -> Result<AscendRun, AscendError> {
            match *self {}
        }
    }
}

#[cfg(feature = "ascend")]
mod imp {
    use super::*;
    use std::ffi::c_void;
    use std::os::raw::{c_char, c_int};
    use std::sync::Mutex;
    use std::time::Instant;

    // The signatures of the pinned header (see `docs/devices-ascend.md`). `size_t` is `usize` on
    // every target Rust supports.
    type SetDevice = unsafe extern "C" fn(device_id: c_int) -> c_int;
    type GetRuntimeSize = unsafe extern "C" fn() -> usize;
    type DeviceMalloc = unsafe extern "C" fn(size: usize) -> *mut c_void;
    type DeviceFree = unsafe extern "C" fn(dev_ptr: *mut c_void);
    type CopyToDevice =
        unsafe extern "C" fn(dev_ptr: *mut c_void, host_ptr: *const c_void, size: usize) -> c_int;
    type CopyFromDevice =
        unsafe extern "C" fn(host_ptr: *mut c_void, dev_ptr: *const c_void, size: usize) -> c_int;
    type InitRuntime = unsafe extern "C" fn(
        runtime: *mut c_void,
        orch_so_binary: *const u8,
        orch_so_size: usize,
        orch_func_name: *const c_char,
        func_args: *mut u64,
        func_args_count: c_int,
        arg_types: *mut c_int,
        arg_sizes: *mut u64,
        kernel_func_ids: *const c_int,
        kernel_binaries: *const *const u8,
        kernel_sizes: *const usize,
        kernel_count: c_int,
    ) -> c_int;
    type LaunchRuntime = unsafe extern "C" fn(
        runtime: *mut c_void,
        aicpu_thread_num: c_int,
        block_dim: c_int,
        device_id: c_int,
        aicpu_binary: *const u8,
        aicpu_size: usize,
        aicore_binary: *const u8,
        aicore_size: usize,
        orch_thread_num: c_int,
        round_idx: c_int,
    ) -> c_int;
    type FinalizeRuntime = unsafe extern "C" fn(runtime: *mut c_void) -> c_int;

    /// `ArgType::ARG_SCALAR`: the bridge owns the device buffers and passes their addresses as
    /// plain values, so the runtime neither allocates nor copies on its own.
    const ARG_SCALAR: c_int = 0;

    /// The host library keeps one process-wide device runner and is not thread-safe: every call
    /// sequence holds this lock.
    static CALLS: Mutex<()> = Mutex::new(());

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        CALLS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    struct Api {
        set_device: SetDevice,
        get_runtime_size: GetRuntimeSize,
        device_malloc: DeviceMalloc,
        copy_to_device: CopyToDevice,
        init_runtime: InitRuntime,
        launch_runtime: LaunchRuntime,
        copy_from_device: CopyFromDevice,
        finalize_runtime: FinalizeRuntime,
        device_free: DeviceFree,
    }

    pub struct Bridge {
        api: Api,
        device_id: u32,
        path: PathBuf,
        // Last: the function pointers above point into it and must not outlive it (they are
        // plain pointers, dropped before it either way).
        _library: libloading::Library,
    }

    /// The runtime object's host storage: `get_runtime_size()` bytes, 64-byte aligned for the
    /// C++ `Runtime` the library placement-constructs in it.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Block([u8; 64]);

    impl Bridge {
        pub fn open(library: &Path, device_id: u32) -> Result<Bridge, BridgeRefusal> {
            // A bare name is searched for by the loader; a path must name a file.
            let is_path = library.components().count() > 1 || library.is_absolute();
            if is_path && !library.is_file() {
                return Err(BridgeRefusal::LibraryNotFound {
                    path: library.to_path_buf(),
                });
            }
            let _calls = lock();
            // SAFETY: loading a shared object runs its initialisers, which Rust cannot check.
            // The library is the pto-runtime host library the user named (documented: name only
            // trusted libraries); pto-runtime's initialisers only construct static objects.
            let lib = unsafe { libloading::Library::new(library) }.map_err(|e| {
                BridgeRefusal::LibraryNotLoadable {
                    path: library.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            let has = |name: &str| {
                // SAFETY: the symbol is only looked up, as an untyped address, and never used.
                unsafe { lib.get::<*const c_void>(name) }.is_ok()
            };
            let missing: Vec<&'static str> = REQUIRED_SYMBOLS
                .iter()
                .copied()
                .filter(|s| !has(s))
                .collect();
            let foreign: Vec<&'static str> = FOREIGN_FAMILY_MARKERS
                .iter()
                .copied()
                .filter(|s| has(s))
                .collect();
            if !missing.is_empty() {
                return Err(BridgeRefusal::SymbolsMissing {
                    library: library.to_path_buf(),
                    missing,
                    foreign,
                });
            }
            if !foreign.is_empty() {
                return Err(BridgeRefusal::ForeignApiFamily {
                    library: library.to_path_buf(),
                    foreign,
                });
            }
            let api = resolve(&lib, library)?;
            let Ok(id) = c_int::try_from(device_id) else {
                return Err(BridgeRefusal::DeviceUnavailable {
                    device_id,
                    reason: "the id does not fit the C API's `int`".into(),
                });
            };
            // SAFETY: `set_device` has the pinned signature `int set_device(int)` (resolved above
            // from the library that stays loaded in `lib`); it takes a plain integer and catches
            // every C++ exception itself (`try { … } catch (...) { return -1; }` at the pin).
            let rc = unsafe { (api.set_device)(id) };
            if rc != 0 {
                return Err(BridgeRefusal::DeviceUnavailable {
                    device_id,
                    reason: format!("set_device returned {rc}"),
                });
            }
            Ok(Bridge {
                api,
                device_id,
                path: library.to_path_buf(),
                _library: lib,
            })
        }

        pub fn library(&self) -> &Path {
            &self.path
        }

        pub fn device_id(&self) -> u32 {
            self.device_id
        }

        pub fn run_task_graph(
            &mut self,
            graph: &TaskGraph<'_>,
            tensors: &mut [Tensor<'_>],
        ) -> Result<AscendRun, AscendError> {
            let prepared = prepare(graph, tensors)?;
            let _calls = lock();
            let mut calls = Vec::new();
            let mut buffers: Vec<*mut c_void> = Vec::with_capacity(tensors.len());
            let result = self.sequence(graph, tensors, &prepared, &mut buffers, &mut calls);
            // Every device buffer is freed, whatever happened above.
            for &p in buffers.iter().rev() {
                // SAFETY: `p` came from this library's `device_malloc`, is non-NULL, is freed
                // exactly once, and no runtime uses it any more (`finalize_runtime` has run, or
                // `init_runtime` failed and destroyed its runtime).
                unsafe { (self.api.device_free)(p) };
                calls.push(Call {
                    name: "device_free",
                    rc: None,
                });
            }
            let (runtime_size, launch_wall) = result?;
            Ok(AscendRun {
                runtime_size,
                launch_wall,
                calls,
            })
        }

        /// Everything up to (not including) freeing the device buffers, which the caller does.
        fn sequence(
            &self,
            graph: &TaskGraph<'_>,
            tensors: &mut [Tensor<'_>],
            p: &Prepared,
            buffers: &mut Vec<*mut c_void>,
            calls: &mut Vec<Call>,
        ) -> Result<(usize, Duration), AscendError> {
            let api = &self.api;
            fn checked(
                calls: &mut Vec<Call>,
                name: &'static str,
                rc: c_int,
            ) -> Result<(), AscendError> {
                calls.push(Call { name, rc: Some(rc) });
                if rc == 0 {
                    Ok(())
                } else {
                    Err(AscendError::CallFailed { call: name, rc })
                }
            }
            let no_status = |name: &'static str| Call { name, rc: None };

            // SAFETY: `get_runtime_size` takes nothing and returns `sizeof(Runtime)`.
            let size = unsafe { (api.get_runtime_size)() };
            calls.push(no_status("get_runtime_size"));
            if size == 0 {
                return Err(AscendError::NoRuntimeSize);
            }
            let mut runtime = vec![Block([0; 64]); size.div_ceil(64)];
            let rt = runtime.as_mut_ptr().cast::<c_void>();

            for (i, t) in tensors.iter().enumerate() {
                // SAFETY: `device_malloc(size_t)` takes a byte count; the result is checked.
                let d = unsafe { (api.device_malloc)(t.len()) };
                calls.push(no_status("device_malloc"));
                if d.is_null() {
                    return Err(AscendError::OutOfDeviceMemory {
                        tensor: i,
                        bytes: t.len(),
                    });
                }
                buffers.push(d);
            }
            for (t, &d) in tensors.iter().zip(buffers.iter()) {
                let src = match t {
                    Tensor::Input(b) => &b[..],
                    Tensor::InOut(b) => &b[..],
                    Tensor::Output(_) => continue,
                };
                // SAFETY: `d` is a device buffer of `src.len()` bytes from `device_malloc`;
                // `src` is a live host slice of that length, only read.
                let rc = unsafe { (api.copy_to_device)(d, src.as_ptr().cast(), src.len()) };
                checked(calls, "copy_to_device", rc)?;
            }

            let mut func_args: Vec<u64> = Vec::with_capacity(tensors.len() * 2);
            for (t, &d) in tensors.iter().zip(buffers.iter()) {
                func_args.push(d as u64);
                func_args.push(t.len() as u64);
            }
            func_args.extend_from_slice(graph.scalars);
            let mut arg_types = vec![ARG_SCALAR; func_args.len()];
            let mut arg_sizes = vec![0u64; func_args.len()];
            // `prepare` checked that the count fits an int.
            let nargs = c_int::try_from(func_args.len()).unwrap_or(c_int::MAX);
            let nkernels = c_int::try_from(p.kernel_ids.len()).unwrap_or(c_int::MAX);
            let null_if_empty = |v: &[u8]| {
                if v.is_empty() {
                    std::ptr::null()
                } else {
                    v.as_ptr()
                }
            };
            // SAFETY: the pinned `init_runtime` signature. `rt` points to `size` writable bytes,
            // 64-byte aligned, that outlive the runtime (it is finalized before `runtime` drops).
            // The orchestration bytes, entry name (NUL-terminated) and the argument arrays are
            // live for the call and hold exactly the counts passed; the kernel arrays have
            // `nkernels` entries, each pointing to a live binary of the given size. The library
            // copies what it keeps (kernels to device memory, the orchestration to a file it
            // dlopens) before returning.
            let rc = unsafe {
                (api.init_runtime)(
                    rt,
                    null_if_empty(graph.orchestration),
                    graph.orchestration.len(),
                    p.entry.as_ptr(),
                    func_args.as_mut_ptr(),
                    nargs,
                    arg_types.as_mut_ptr(),
                    arg_sizes.as_mut_ptr(),
                    if p.kernel_ids.is_empty() {
                        std::ptr::null()
                    } else {
                        p.kernel_ids.as_ptr()
                    },
                    if p.kernel_ptrs.is_empty() {
                        std::ptr::null()
                    } else {
                        p.kernel_ptrs.as_ptr()
                    },
                    if p.kernel_sizes.is_empty() {
                        std::ptr::null()
                    } else {
                        p.kernel_sizes.as_ptr()
                    },
                    nkernels,
                )
            };
            // A failed init_runtime destroys its own runtime: there is nothing to finalize.
            checked(calls, "init_runtime", rc)?;

            // From here on the runtime exists and must be finalized, also on failure.
            let id = c_int::try_from(self.device_id).unwrap_or(c_int::MAX);
            let start = Instant::now();
            // SAFETY: the pinned `launch_runtime` signature; `rt` holds the runtime that
            // `init_runtime` built; both binaries are live, non-empty (checked in `prepare`) and
            // only read; the library copies them before returning. It returns once the device
            // has finished (it synchronises its streams).
            let rc = unsafe {
                (api.launch_runtime)(
                    rt,
                    p.aicpu_thread_num,
                    p.block_dim,
                    id,
                    graph.aicpu_binary.as_ptr(),
                    graph.aicpu_binary.len(),
                    graph.aicore_binary.as_ptr(),
                    graph.aicore_binary.len(),
                    p.orch_thread_num,
                    0,
                )
            };
            let wall = start.elapsed();
            let mut outcome = checked(calls, "launch_runtime", rc);
            if outcome.is_ok() {
                for (t, &d) in tensors.iter_mut().zip(buffers.iter()) {
                    let dst = match t {
                        Tensor::Output(b) | Tensor::InOut(b) => &mut b[..],
                        Tensor::Input(_) => continue,
                    };
                    // SAFETY: `d` is a device buffer of `dst.len()` bytes; `dst` is a live,
                    // exclusively borrowed host slice of that length.
                    let rc =
                        unsafe { (api.copy_from_device)(dst.as_mut_ptr().cast(), d, dst.len()) };
                    outcome = checked(calls, "copy_from_device", rc);
                    if outcome.is_err() {
                        break;
                    }
                }
            }
            // SAFETY: `rt` holds a runtime built by `init_runtime` and not yet finalized; after
            // this call the library has run its destructor and `runtime` may be dropped.
            let rc = unsafe { (api.finalize_runtime)(rt) };
            let finalized = checked(calls, "finalize_runtime", rc);
            drop(runtime);
            // The first failure wins: a failed launch is reported even if finalize then failed.
            outcome.and(finalized)?;
            Ok((size, wall))
        }
    }

    /// Resolves every required symbol with its pinned signature.
    fn resolve(lib: &libloading::Library, path: &Path) -> Result<Api, BridgeRefusal> {
        fn get<T: Copy>(
            lib: &libloading::Library,
            path: &Path,
            name: &'static str,
        ) -> Result<T, BridgeRefusal> {
            // SAFETY: `T` is the function-pointer type of the pinned header's declaration of
            // `name` (a family guard ran before this); the pointer is only called while `lib`
            // stays loaded, which `Bridge` guarantees by owning it.
            unsafe { lib.get::<T>(name) }
                .map(|s| *s)
                .map_err(|_| BridgeRefusal::SymbolsMissing {
                    library: path.to_path_buf(),
                    missing: vec![name],
                    foreign: Vec::new(),
                })
        }
        Ok(Api {
            set_device: get(lib, path, "set_device")?,
            get_runtime_size: get(lib, path, "get_runtime_size")?,
            device_malloc: get(lib, path, "device_malloc")?,
            copy_to_device: get(lib, path, "copy_to_device")?,
            init_runtime: get(lib, path, "init_runtime")?,
            launch_runtime: get(lib, path, "launch_runtime")?,
            copy_from_device: get(lib, path, "copy_from_device")?,
            finalize_runtime: get(lib, path, "finalize_runtime")?,
            device_free: get(lib, path, "device_free")?,
        })
    }
}
