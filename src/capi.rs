//! # The C ABI (SPEC §20)
//!
//! The same crate that holds the Rust API builds a C shared library (`crate-type = ["rlib",
//! "cdylib"]`): `cargo build --release --lib` writes `target/release/libtapwheel.so`
//! (`libtapwheel.dylib` on macOS, `tapwheel.dll` on Windows). Its interface is the hand-written
//! header `include/tapwheel.h`; this module is its implementation, one `extern "C"` function per
//! prototype (a test keeps the two lists equal and checks the library exports each symbol).
//!
//! ## Building and linking
//!
//! ```text
//! cargo build --release --lib
//! cc -std=c99 -Wall -Wextra -I include my_host.c \
//!    -L target/release -ltapwheel -Wl,-rpath,$PWD/target/release -o my_host
//! ```
//!
//! `examples/c/embed.c` is a complete program (load, run, read a probe, change a symbol, run
//! again); `examples/c/README.md` shows how to build and run it.
//!
//! ## The error model
//!
//! No function unwinds across the C boundary: every body runs inside
//! [`std::panic::catch_unwind`], and a panic (always a bug) becomes return code 1 with the message
//! `internal error: <panic message>` (Rust's panic hook also prints the panic on stderr, as it
//! does for the CLI). Every `int` function returns a code; 0 is success and the others are the
//! CLI's exit codes (§19):
//!
//! | code | constant | meaning |
//! |---|---|---|
//! | 0 | `TW_OK` | success; for `tw_engine_run_until`, also a run that paused at the tick, and a run that ended `completed`, `quiescent`, `limit` or `cancelled` |
//! | 1 | `TW_INTERNAL` | a bug (a caught panic) or an environment failure; after a panic the engine is *poisoned*: every later call on it returns 1 until `tw_engine_reset` succeeds |
//! | 2 | `TW_INVALID` | invalid input: a NULL pointer (E490), a string that is not UTF-8 (E491), a probe buffer too small (E492), an invalid or unreadable scene (E1xx, E2xx), an unknown probe (E485), a token past the end (E486), an injection the engine refuses (E481 not an open `Inject` input, E482–E484), a bad symbol, slot (E106) or parameter (E455) |
//! | 3 | `TW_DEADLOCK` | the run ended in a deadlock (the message is the deadlock report) |
//! | 4 | `TW_REFUSED` | a refusal (`R3xx`, exit 4), or the run ended `failed` (e.g. E403) |
//!
//! Run functions return the [`Outcome::exit_code`](crate::Outcome::exit_code) of the run once it
//! has ended (and again on every later run call), 0 while it is paused.
//!
//! A failed call leaves a message, every diagnostic exactly as the CLI prints it (the
//! [`Error`]'s `Display`: `error[E105]: …` followed by a `  --> location` line):
//! - `tw_engine_last_error(e)` is the message of the last call on `e`: every call taking `e`
//!   (except `tw_engine_last_error` itself and `tw_engine_free`) clears it first and sets it
//!   when it fails (returns non-zero, or 0 tokens for an unknown probe). NULL when that call
//!   succeeded. The pointer stays valid until the next call taking `e`.
//! - `tw_last_error()` is the thread's message of the last failed call that had no engine to
//!   record it on: a failed `tw_engine_load` / `tw_engine_load_ron` (`*out` is then NULL) or
//!   any call given a NULL engine. The load functions clear it first. The pointer stays valid
//!   until the next call into the library on the same thread.
//!
//! ## Thread safety
//!
//! A handle is not synchronised: use it from one thread at a time (it may move between threads;
//! `tw_engine` is `Send`). Distinct handles are independent and may run on different threads at
//! once. The `const tw_engine *` functions only read the engine, but they still record their
//! error in the handle (behind a [`Mutex`], so concurrent readers cannot corrupt memory — yet
//! one reader's call invalidates the message pointer another obtained). Runs use the calling
//! thread (and the global rayon pool for cohort parallelism).
//!
//! ## From Rust
//!
//! The functions are ordinary `unsafe extern "C" fn`s, callable from Rust too;
//! [`tw_engine::into_raw`] hands an [`Engine`] built in Rust (with custom kernels, say) to C code.
//!
//! ```
//! use std::ffi::CStr;
//! use tapwheel::capi::*;
//! let scene = c"Scene(version: 1, name: \"c\",
//!     nodes: [Node(name: \"a\", kernel: Const(value: 3.0), count: Some(1)),
//!             Node(name: \"out\", kernel: Probe)],
//!     edges: [Edge(from: \"a.out\", to: \"out.in\", delay: 4)])";
//! let mut e = std::ptr::null_mut();
//! // SAFETY: a NUL-terminated string and a writable handle slot; `e` is freed below.
//! unsafe {
//!     assert_eq!(tw_engine_load_ron(scene.as_ptr(), &mut e), TW_OK);
//!     assert_eq!(tw_engine_run(e), TW_OK);
//!     assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 1);
//!     let (mut tick, mut values, mut len) = (0u64, [0f32; 4], 0usize);
//!     let code = tw_engine_probe_read(e, c"out".as_ptr(), 0, &mut tick, values.as_mut_ptr(), 4, &mut len);
//!     assert_eq!((code, tick, len, values[0]), (TW_OK, 4, 1, 3.0));
//!     assert_eq!(tw_engine_probe_tokens(e, c"nope".as_ptr()), 0);
//!     let msg = CStr::from_ptr(tw_engine_last_error(e)).to_str().unwrap();
//!     assert!(msg.starts_with("error[E485]: no probe named `nope`"));
//!     tw_engine_free(e);
//! }
//! ```

use crate::engine::{Engine, RunOptions, StepStatus};
use crate::error::{Diagnostic, Error, Location};
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Mutex, PoisonError};

/// Return code: success (or a paused run, or a run that ended without a problem).
pub const TW_OK: c_int = 0;
/// Return code: an internal error — a caught panic (a bug) or an environment failure.
pub const TW_INTERNAL: c_int = 1;
/// Return code: invalid input (NULL pointer, bad string, bad scene, unknown name, …).
pub const TW_INVALID: c_int = 2;
/// Return code: the run ended in a deadlock.
pub const TW_DEADLOCK: c_int = 3;
/// Return code: a refusal, or a run that ended `failed`.
pub const TW_REFUSED: c_int = 4;

/// An engine owned by C code: what `tw_engine_load` hands out and `tw_engine_free` takes back.
///
/// Opaque to C (`typedef struct tw_engine tw_engine;`). It holds the [`Engine`] and the message
/// of the last failed call on it (interior mutability, so calls taking `const tw_engine *` can
/// record theirs too).
#[allow(non_camel_case_types)]
pub struct tw_engine {
    engine: Engine,
    /// The message `tw_engine_last_error` returns; `None` after a successful call.
    last_error: Mutex<Option<CString>>,
    /// A call panicked while it could change the engine: its state is unknown until a reset.
    poisoned: bool,
}

// A handle may move between threads (one user at a time, as the module documents).
const _: () = {
    const fn send<T: Send>() {}
    send::<tw_engine>();
};

impl tw_engine {
    /// Boxes `engine` into a handle for C code; the caller owns it and releases it with
    /// [`tw_engine_free`]. For Rust hosts that build the engine themselves (custom kernels,
    /// run options) and pass it to a C component.
    pub fn into_raw(engine: Engine) -> *mut tw_engine {
        Box::into_raw(Box::new(tw_engine {
            engine,
            last_error: Mutex::new(None),
            poisoned: false,
        }))
    }

    /// The engine behind the handle.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Replaces the recorded message.
    fn record(&self, message: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = message.map(c_string);
    }

    /// Records `f` and returns its code.
    fn fail(&self, f: Failure) -> c_int {
        self.record(Some(f.message));
        f.code
    }
}

/// Why a call failed: its return code and message.
#[derive(Debug)]
struct Failure {
    code: c_int,
    message: String,
    /// The call panicked (the message says so; the engine may be half-changed).
    panicked: bool,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
            panicked: false,
        }
    }
}

impl Failure {
    /// A caught panic: internal error, with the panic's message.
    fn panic(payload: &(dyn Any + Send)) -> Failure {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a payload that is not text".to_string());
        Failure {
            panicked: true,
            ..Error::Internal(what).into()
        }
    }
}

/// An invalid argument (exit 2), located at the parameter's name.
fn invalid(code: &'static str, param: &str, message: String) -> Failure {
    Error::invalid(Diagnostic {
        code,
        message,
        location: Location::Argument(param.to_string()),
    })
    .into()
}

/// E490: a NULL pointer where `func` needs one.
fn null(func: &str, param: &str) -> Failure {
    invalid("E490", param, format!("{func}: `{param}` is NULL"))
}

/// A message as a C string (a NUL inside it is written `\0`).
fn c_string(message: String) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

thread_local! {
    /// `tw_last_error`: the last failure with no engine to record it on, per thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Sets (or clears) the thread's engine-less message.
fn record_global(message: Option<String>) {
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message.map(c_string);
        }
    });
}

/// Records `f` as the thread's engine-less message and returns its code.
fn fail_global(f: Failure) -> c_int {
    record_global(Some(f.message));
    f.code
}

/// Runs `body`, turning a panic into an internal-error [`Failure`].
fn catch<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(Failure::panic(&*payload)))
}

/// The outermost guard of every exported function: a panic that escapes the inner handling
/// (it should not) is recorded as the thread's message and `on_panic` is returned.
fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        record_global(Some(Failure::panic(&*payload).message));
        on_panic
    })
}

/// The string `p` points to.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
unsafe fn text<'a>(func: &str, param: &str, p: *const c_char) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(null(func, param));
    }
    // SAFETY: `p` is not NULL, and the caller guarantees it is a valid NUL-terminated string
    // for `'a`.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        invalid(
            "E491",
            param,
            format!(
                "{func}: `{param}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// The return of a run call: 0 while the run goes on (or ended well), else its outcome's exit
/// code with the deadlock report or the failure as the message.
fn run_status(engine: &Engine, status: StepStatus) -> Result<(), Failure> {
    let outcome = match status {
        StepStatus::Running => return Ok(()),
        StepStatus::Ended(o) => o,
    };
    let code = outcome.exit_code();
    if code == TW_OK {
        return Ok(());
    }
    let report = engine.report();
    let message = match (&report.error, &report.deadlock) {
        (Some(d), _) => d.to_string(),
        (None, Some(d)) => d.to_text().trim_end().to_string(),
        (None, None) => format!("the run ended {}", outcome.as_str()),
    };
    Err(Failure {
        code,
        message,
        panicked: false,
    })
}

/// The message of a call on a poisoned engine.
fn poisoned(func: &str) -> Failure {
    Error::Internal(format!(
        "{func}: an earlier call on this engine panicked and left it in an unknown state; \
         tw_engine_reset starts a new run, or free it with tw_engine_free"
    ))
    .into()
}

/// Runs `body` on the engine behind `e` and returns its code; the failure is recorded on the
/// handle (on the thread for a NULL `e`). A panic poisons the handle; `recovers` marks a
/// body (reset) that may run on a poisoned engine and clears the poison when it succeeds.
///
/// # Safety
/// `e` is NULL or a live handle that no other thread uses during the call.
unsafe fn on_engine_mut(
    func: &str,
    e: *mut tw_engine,
    recovers: bool,
    body: impl FnOnce(&mut Engine) -> Result<(), Failure>,
) -> c_int {
    boundary(TW_INTERNAL, || {
        // SAFETY: the caller guarantees `e` is NULL or a live, exclusively used handle.
        let Some(h) = (unsafe { e.as_mut() }) else {
            return fail_global(null(func, "e"));
        };
        h.record(None);
        if h.poisoned && !recovers {
            return h.fail(poisoned(func));
        }
        match catch(|| body(&mut h.engine)) {
            Ok(()) => {
                h.poisoned = false;
                TW_OK
            }
            Err(f) => {
                h.poisoned |= f.panicked;
                h.fail(f)
            }
        }
    })
}

/// Runs `body` on the engine behind `e` (read only); `Err(code)` after recording the failure
/// on the handle (on the thread for a NULL `e`).
///
/// # Safety
/// `e` is NULL or a live handle that no other thread changes during the call.
unsafe fn on_engine<T>(
    func: &str,
    e: *const tw_engine,
    body: impl FnOnce(&Engine) -> Result<T, Failure>,
) -> Result<T, c_int> {
    boundary(Err(TW_INTERNAL), || {
        // SAFETY: the caller guarantees `e` is NULL or a live handle nobody changes meanwhile.
        let Some(h) = (unsafe { e.as_ref() }) else {
            return Err(fail_global(null(func, "e")));
        };
        h.record(None);
        if h.poisoned {
            return Err(h.fail(poisoned(func)));
        }
        catch(|| body(&h.engine)).map_err(|f| h.fail(f))
    })
}

/// Builds an engine from the string `arg` and stores it in `*out`.
///
/// # Safety
/// `arg` is NULL or a valid NUL-terminated string; `out` is NULL or valid for writing a pointer.
unsafe fn load(
    func: &str,
    param: &str,
    arg: *const c_char,
    out: *mut *mut tw_engine,
    build: impl FnOnce(&str) -> crate::error::Result<Engine>,
) -> c_int {
    boundary(TW_INTERNAL, || {
        record_global(None);
        if out.is_null() {
            return fail_global(null(func, "out"));
        }
        // SAFETY: `out` is not NULL and the caller guarantees it is valid for a pointer write.
        unsafe { out.write(ptr::null_mut()) };
        let built = catch(|| {
            // SAFETY: the caller guarantees `arg` is NULL or a valid NUL-terminated string.
            let arg = unsafe { text(func, param, arg) }?;
            Ok(build(arg)?)
        });
        match built {
            Ok(engine) => {
                // SAFETY: as above, `out` is valid for a pointer write.
                unsafe { out.write(tw_engine::into_raw(engine)) };
                TW_OK
            }
            Err(f) => fail_global(f),
        }
    })
}

/// Loads the scene file `scene_path`, validates and plans it, and stores a new engine in
/// `*out` (SPEC §20). Returns 0, or the CLI's exit code: 2 for an unreadable (E105) or invalid
/// scene (every diagnostic in the message), 4 for a refusal; `*out` is then NULL and
/// [`tw_last_error`] holds the message. The engine runs with the scene's own settings.
///
/// # Safety
/// `scene_path` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a
/// pointer. The engine stored in `*out` must be released with [`tw_engine_free`], once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_load(
    scene_path: *const c_char,
    out: *mut *mut tw_engine,
) -> c_int {
    // SAFETY: the caller's guarantees are `load`'s.
    unsafe {
        load("tw_engine_load", "scene_path", scene_path, out, |path| {
            Engine::load(path, RunOptions::default())
        })
    }
}

/// Extension: like [`tw_engine_load`], from scene text in RON (relative file paths resolve
/// against the working directory; errors are located in `<string>`).
///
/// # Safety
/// As [`tw_engine_load`], with `ron_text` in place of `scene_path`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_load_ron(
    ron_text: *const c_char,
    out: *mut *mut tw_engine,
) -> c_int {
    // SAFETY: the caller's guarantees are `load`'s.
    unsafe {
        load("tw_engine_load_ron", "ron_text", ron_text, out, |text| {
            Engine::from_ron(text, RunOptions::default())
        })
    }
}

/// Processes every instant up to and including tick `tick`, then pauses ([`Engine::run_until`]).
/// Returns 0 when paused or when the run ended well; once the run has ended, its outcome's exit
/// code: 3 deadlock, 4 failed (with the report as the message).
///
/// # Safety
/// `e` is NULL or a live handle from [`tw_engine_load`], used by no other thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_run_until(e: *mut tw_engine, tick: u64) -> c_int {
    let body = |engine: &mut Engine| {
        let status = engine.run_until(tick);
        run_status(engine, status)
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut("tw_engine_run_until", e, false, body) }
}

/// Extension: runs to the end ([`Engine::run`]: open inputs are closed first) and returns the
/// outcome's exit code (0 completed, quiescent, limit or cancelled; 3 deadlock; 4 failed).
///
/// # Safety
/// As [`tw_engine_run_until`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_run(e: *mut tw_engine) -> c_int {
    let body = |engine: &mut Engine| {
        let outcome = engine.run();
        run_status(engine, StepStatus::Ended(outcome))
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut("tw_engine_run", e, false, body) }
}

/// Sets symbol `name` (§11) and starts a new run from tick 0 ([`Engine::set_symbol`]): probes,
/// statistics and the clock start over; the plan is not recompiled. On error the engine is
/// unchanged.
///
/// # Safety
/// As [`tw_engine_run_until`]; `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_set_symbol(
    e: *mut tw_engine,
    name: *const c_char,
    value: u64,
) -> c_int {
    const F: &str = "tw_engine_set_symbol";
    let body = |engine: &mut Engine| {
        // SAFETY: the caller guarantees `name` is NULL or a valid string.
        let name = unsafe { text(F, "name", name) }?;
        Ok(engine.set_symbol(name, value)?)
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut(F, e, false, body) }
}

/// Extension: sets slot `slot`'s initial value (0..=255; E106 beyond) and starts a new run
/// ([`Engine::set_slot`]). On error the engine is unchanged.
///
/// # Safety
/// As [`tw_engine_run_until`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_set_slot(e: *mut tw_engine, slot: u32, value: u64) -> c_int {
    let body = |engine: &mut Engine| Ok(engine.set_slot(slot, value)?);
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut("tw_engine_set_slot", e, false, body) }
}

/// Extension: sets kernel parameter `key` (`"node.param"`) and starts a new run
/// ([`Engine::set_param`]; E455 for an unknown parameter or a refused value). On error the
/// engine is unchanged.
///
/// # Safety
/// As [`tw_engine_run_until`]; `key` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_set_param(
    e: *mut tw_engine,
    key: *const c_char,
    value: f64,
) -> c_int {
    const F: &str = "tw_engine_set_param";
    let body = |engine: &mut Engine| {
        // SAFETY: the caller guarantees `key` is NULL or a valid string.
        let key = unsafe { text(F, "key", key) }?;
        Ok(engine.set_param(key, value)?)
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut(F, e, false, body) }
}

/// Extension: starts a new run from tick 0 with the same plan and settings ([`Engine::reset`]).
/// The one call accepted by a poisoned engine (after a panic); success clears the poison.
///
/// # Safety
/// As [`tw_engine_run_until`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_reset(e: *mut tw_engine) -> c_int {
    let body = |engine: &mut Engine| Ok(engine.reset()?);
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut("tw_engine_reset", e, true, body) }
}

/// Extension: queues one token of `len` values on the open input `node` (an `Inject` node),
/// written at tick `tick` ([`Engine::inject`]). 2 with E481 for a node that is not an open
/// input, E482 a token of another length, E483 a tick the run has passed, E484 a closed input
/// or an ended run. The values are copied.
///
/// # Safety
/// As [`tw_engine_run_until`]; `node` is NULL or a NUL-terminated string; `values` is NULL or
/// valid for reading `len` floats (NULL is accepted only with `len` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_inject(
    e: *mut tw_engine,
    node: *const c_char,
    tick: u64,
    values: *const f32,
    len: usize,
) -> c_int {
    const F: &str = "tw_engine_inject";
    let body = |engine: &mut Engine| {
        // SAFETY: the caller guarantees `node` is NULL or a valid string.
        let node = unsafe { text(F, "node", node) }?;
        let values: &[f32] = match (values.is_null(), len) {
            (_, 0) => &[],
            (true, _) => return Err(null(F, "values")),
            // SAFETY: not NULL, and the caller guarantees `len` readable floats.
            (false, _) => unsafe { std::slice::from_raw_parts(values, len) },
        };
        Ok(engine.inject(node, tick, values)?)
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut(F, e, false, body) }
}

/// Extension: closes the open input `node`: the host injects nothing more
/// ([`Engine::close_input`]). Closing a closed input does nothing; E481 for a node that is not
/// an `Inject` node, E484 once the run has ended.
///
/// # Safety
/// As [`tw_engine_run_until`]; `node` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_close_input(e: *mut tw_engine, node: *const c_char) -> c_int {
    const F: &str = "tw_engine_close_input";
    let body = |engine: &mut Engine| {
        // SAFETY: the caller guarantees `node` is NULL or a valid string.
        let node = unsafe { text(F, "node", node) }?;
        Ok(engine.close_input(node)?)
    };
    // SAFETY: the caller's guarantee is `on_engine_mut`'s.
    unsafe { on_engine_mut(F, e, false, body) }
}

/// The number of tokens probe `probe` has recorded so far (readable while the run is paused).
/// 0 for a NULL `e` or `probe` and for an unknown probe (E485), with the message recorded; a
/// known probe with no tokens yet also gives 0, with no message.
///
/// # Safety
/// `e` is NULL or a live handle nobody changes during the call; `probe` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_probe_tokens(
    e: *const tw_engine,
    probe: *const c_char,
) -> usize {
    const F: &str = "tw_engine_probe_tokens";
    let body = |engine: &Engine| {
        // SAFETY: the caller guarantees `probe` is NULL or a valid string.
        let name = unsafe { text(F, "probe", probe) }?;
        match engine.probe(name) {
            Some(p) => Ok(p.len()),
            // The unknown-probe error (E485), worded as `Engine::probe_token` words it.
            None => Err(engine.probe_token(name, 0).err().map_or_else(
                || Error::Internal(format!("probe `{name}` vanished")).into(),
                Failure::from,
            )),
        }
    };
    // SAFETY: the caller's guarantee is `on_engine`'s.
    unsafe { on_engine(F, e, body) }.unwrap_or(0)
}

/// Reads token `token` of probe `probe`: stores its visible tick in `*tick`, its values in
/// `values[0..len]` and its value count in `*len`.
///
/// `values = NULL, capacity = 0` asks only for the size: `*tick` and `*len` are stored and 0 is
/// returned. Otherwise a `capacity` below the token's value count writes nothing but `*len`
/// and returns 2 (E492, naming the capacity needed). 2 also for a NULL `tick`, `len` or
/// `probe` (or `values` with a non-zero capacity) (E490), an unknown probe (E485) and a token
/// at or past the number recorded (E486); nothing is written then.
///
/// # Safety
/// `e` is NULL or a live handle nobody changes during the call; `probe` is NULL or a
/// NUL-terminated string; `tick` and `len` are NULL or valid for one write; `values` is NULL or
/// valid for writing `capacity` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_probe_read(
    e: *const tw_engine,
    probe: *const c_char,
    token: usize,
    tick: *mut u64,
    values: *mut f32,
    capacity: usize,
    len: *mut usize,
) -> c_int {
    const F: &str = "tw_engine_probe_read";
    let body = |engine: &Engine| {
        if tick.is_null() {
            return Err(null(F, "tick"));
        }
        if len.is_null() {
            return Err(null(F, "len"));
        }
        // SAFETY: the caller guarantees `probe` is NULL or a valid string.
        let name = unsafe { text(F, "probe", probe) }?;
        let t = engine.probe_token(name, token)?;
        let n = t.values.len();
        let size_only = values.is_null() && capacity == 0;
        if values.is_null() && !size_only {
            return Err(null(F, "values"));
        }
        if !size_only && capacity < n {
            // SAFETY: `len` is not NULL and the caller guarantees it is writable.
            unsafe { len.write(n) };
            return Err(invalid(
                "E492",
                "capacity",
                format!(
                    "{F}: token {token} of probe `{name}` has {n} values but `capacity` is \
                     {capacity}: pass a buffer of at least {n} floats"
                ),
            ));
        }
        // SAFETY: `tick` and `len` are not NULL and the caller guarantees them writable.
        unsafe {
            tick.write(t.tick);
            len.write(n);
        }
        if !size_only {
            // SAFETY: `values` is not NULL and writable for `capacity ≥ n` floats (the
            // caller's guarantee); the source is the engine's own memory, which a C buffer
            // cannot overlap.
            unsafe { ptr::copy_nonoverlapping(t.values.as_ptr(), values, n) };
        }
        Ok(())
    };
    // SAFETY: the caller's guarantee is `on_engine`'s.
    let read = unsafe { on_engine(F, e, body) };
    read.map_or_else(|code| code, |()| TW_OK)
}

/// The message of the last call on `e` when it failed, NULL when it succeeded (or `e` is
/// NULL). Every diagnostic as the CLI prints it (`error[CODE]: message`, then `  --> location`),
/// one per line pair. The string belongs to the handle: valid until the next call taking `e`.
///
/// # Safety
/// `e` is NULL or a live handle nobody changes during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_last_error(e: *const tw_engine) -> *const c_char {
    boundary(ptr::null(), || {
        // SAFETY: the caller guarantees `e` is NULL or a live handle.
        let Some(h) = (unsafe { e.as_ref() }) else {
            return ptr::null();
        };
        h.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(ptr::null(), |m| m.as_ptr())
    })
}

/// Releases an engine from [`tw_engine_load`] / [`tw_engine_load_ron`]. NULL does nothing.
///
/// # Safety
/// `e` is NULL or a live handle, not used again afterwards (no double free).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tw_engine_free(e: *mut tw_engine) {
    if e.is_null() {
        return;
    }
    boundary((), || {
        // SAFETY: `e` came from `Box::into_raw` (`tw_engine::into_raw`) and the caller gives it
        // up with this call.
        drop(unsafe { Box::from_raw(e) });
    });
}

/// Extension: the calling thread's message of the last failed call that had no engine to
/// record it on — a failed `tw_engine_load` / `tw_engine_load_ron` (which clear it first), or
/// a call given a NULL engine. NULL when there is none. Valid until the next call into the
/// library on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn tw_last_error() -> *const c_char {
    boundary(ptr::null(), || {
        LAST_ERROR
            .try_with(|slot| {
                slot.try_borrow()
                    .ok()
                    .and_then(|m| m.as_ref().map(|m| m.as_ptr()))
                    .unwrap_or(ptr::null())
            })
            .unwrap_or(ptr::null())
    })
}

/// The library's version (`CARGO_PKG_VERSION`, e.g. `"0.1.0"`), a static string.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };

/// Extension: the library's version, e.g. `"0.1.0"`: a static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn tw_version() -> *const c_char {
    boundary(ptr::null(), || VERSION.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> Option<String> {
        let p = tw_last_error();
        // SAFETY: `tw_last_error` returns NULL or a NUL-terminated string valid until the next
        // call on this thread; it is copied at once.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    #[test]
    fn catch_turns_a_panic_into_an_internal_error() {
        let f = catch(|| -> Result<(), Failure> { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!((f.code, f.panicked), (TW_INTERNAL, true));
        assert_eq!(f.message, "internal error: boom 7");
        let f = catch(|| -> Result<(), Failure> { std::panic::panic_any(42u8) }).unwrap_err();
        assert_eq!(
            f.message,
            "internal error: a panic with a payload that is not text"
        );
        assert_eq!(catch(|| Ok(5)).ok(), Some(5));
    }

    #[test]
    fn the_boundary_records_a_stray_panic_on_the_thread() {
        record_global(None);
        assert_eq!(boundary(TW_OK, || panic!("stray")), TW_OK);
        assert_eq!(global().as_deref(), Some("internal error: stray"));
        assert_eq!(boundary(3, || 9), 9);
    }

    #[test]
    fn a_panic_poisons_the_handle_until_a_reset() {
        let engine = Engine::from_ron(
            r#"Scene(version: 1, name: "p",
                nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)),
                        Node(name: "out", kernel: Probe)],
                edges: [Edge(from: "a.out", to: "out.in")])"#,
            RunOptions::default(),
        )
        .unwrap();
        let e = tw_engine::into_raw(engine);
        let message = |e| {
            // SAFETY: `e` is live; the message is copied at once.
            let p = unsafe { tw_engine_last_error(e) };
            // SAFETY: NULL or a NUL-terminated string owned by the handle.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        // SAFETY: `e` is a live handle used only by this thread; freed at the end.
        unsafe {
            let code = on_engine_mut("test", e, false, |_| panic!("kernel bug"));
            assert_eq!(code, TW_INTERNAL);
            assert_eq!(message(e).as_deref(), Some("internal error: kernel bug"));
            assert_eq!(tw_engine_run(e), TW_INTERNAL);
            assert!(
                message(e)
                    .unwrap()
                    .contains("tw_engine_run: an earlier call")
            );
            assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 0);
            assert!(message(e).unwrap().starts_with("internal error: "));
            assert_eq!(tw_engine_reset(e), TW_OK);
            assert_eq!(message(e), None);
            assert_eq!(tw_engine_run(e), TW_OK);
            assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 1);
            tw_engine_free(e);
        }
    }

    #[test]
    fn messages_with_a_nul_stay_whole() {
        assert_eq!(c_string("a\0b".into()).as_bytes(), b"a\\0b");
    }

    #[test]
    fn the_version_is_the_package_version() {
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(tw_version()) };
        assert_eq!(v.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
    }
}
