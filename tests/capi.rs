//! The C ABI (SPEC §20): `include/tapwheel.h` and `src/capi.rs` list the same functions, the
//! shared library exports each of them, the C example prints exact ticks and values before and
//! after a symbol change, and misuse — from C and from Rust — gets exact return codes and the
//! error codes in the messages, never a crash.
//!
//! The shared library is the `cdylib` cargo builds with the library for these tests: it lies
//! next to this test's executable (`<target>/<profile>/deps/libtapwheel.so`). The C compiler is
//! `$CC` or `cc`; without one the C tests fail (they do not skip).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use tapwheel::capi::*;
use tapwheel::{Engine, RunOptions};

/// Every function of the C ABI with its prototype, whitespace normalised: the seven of SPEC §20
/// word for word, then the extensions.
const PROTOTYPES: [&str; 16] = [
    "int tw_engine_load(const char *scene_path, tw_engine **out)",
    "int tw_engine_run_until(tw_engine *e, uint64_t tick)",
    "int tw_engine_set_symbol(tw_engine *e, const char *name, uint64_t value)",
    "size_t tw_engine_probe_tokens(const tw_engine *e, const char *probe)",
    "int tw_engine_probe_read(const tw_engine *e, const char *probe, size_t token, uint64_t *tick, float *values, size_t capacity, size_t *len)",
    "const char *tw_engine_last_error(const tw_engine *e)",
    "void tw_engine_free(tw_engine *e)",
    "int tw_engine_load_ron(const char *ron_text, tw_engine **out)",
    "int tw_engine_run(tw_engine *e)",
    "int tw_engine_set_slot(tw_engine *e, uint32_t slot, uint64_t value)",
    "int tw_engine_set_param(tw_engine *e, const char *key, double value)",
    "int tw_engine_reset(tw_engine *e)",
    "int tw_engine_inject(tw_engine *e, const char *node, uint64_t tick, const float *values, size_t len)",
    "int tw_engine_close_input(tw_engine *e, const char *node)",
    "const char *tw_last_error(void)",
    "const char *tw_version(void)",
];

/// An open input `cc` (tokens of 2 values) through a 3-tick delay into `g` (gain 2) and `out`.
const INJECT_SCENE: &str = r#"Scene(version: 1, name: "i", defaults: (shape: (batch: 1, channels: 1, frames: 2)), nodes: [Node(name: "cc", kernel: Inject), Node(name: "g", kernel: Gain(gain: 2.0)), Node(name: "out", kernel: Probe)], edges: [Edge(from: "cc.out", to: "g.in", delay: 3), Edge(from: "g.out", to: "out.in")])"#;

/// `out` needs 3 tokens per firing but the Data watermark stops the source at 2: an artificial
/// deadlock (tests/channel_policies.rs).
const DEADLOCK_SCENE: &str = r#"Scene(version: 1, name: "wm_deadlock", nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: 1, count: 6), Node(name: "out", kernel: Probe, taps: {"in": (rate: 3)})], edges: [Edge(from: "src.out", to: "out.in", capacity: 4, watermarks: Some((2, 1)))])"#;

/// A task window in `Abort` mode: refused with R304 (exit 4).
const REFUSED_SCENE: &str = r#"Scene(version: 1, name: "r", nodes: [Node(name: "src", kernel: Const(value: 1.0), count: 1), Node(name: "out", kernel: Probe)], edges: [Edge(from: "src.out", to: "out.in")], task_window: Some((size: 4, mode: Abort)))"#;

/// Two edges naming unknown nodes: E231 twice (exit 2).
const BAD_SCENE: &str = r#"Scene(version: 1, name: "bad",
    nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "out", kernel: Probe)],
    edges: [Edge(from: "a.out", to: "nope.in"), Edge(from: "ghost.out", to: "out.in")])"#;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The folder holding `libtapwheel.so`: cargo builds the library (rlib and cdylib) for this test
/// and writes both next to the test executable, in `deps/`; the profile folder above it has the
/// uplifted copy after a `cargo build`.
fn lib_dir() -> PathBuf {
    let name = format!(
        "{}tapwheel{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's folder");
    let candidates = [Some(deps), deps.parent()];
    for dir in candidates.into_iter().flatten() {
        if dir.join(&name).is_file() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "the shared library `{name}` is neither in {} nor in its parent: Cargo.toml's [lib] must \
         have crate-type = [\"rlib\", \"cdylib\"]",
        deps.display()
    );
}

fn lib_path() -> PathBuf {
    lib_dir().join(format!(
        "{}tapwheel{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("capi")
        .join(format!("{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch folder");
    d
}

/// Compiles the C program `src` against the header and the shared library. Fails (never skips)
/// without a C compiler: `$CC` (a program and its arguments) or `cc`.
fn compile_c(src: &Path, exe: &Path) {
    let cc = std::env::var("CC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cc".to_string());
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("cc");
    let lib = lib_dir();
    let output = Command::new(program)
        .args(words)
        .args(["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(common::repo().join("include"))
        .arg(src)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(&lib)
        .arg("-ltapwheel")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "no C compiler: `{cc}` cannot be run ({e}). These tests build C programs against \
                 include/tapwheel.h and libtapwheel; install a C compiler or set CC"
            )
        });
    assert!(
        output.status.success(),
        "`{cc}` failed to build {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a program from the repository root: (exit code, stdout, stderr).
fn run_program(exe: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exe)
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("the compiled program runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A C string the library returned (NULL → `None`), copied.
fn owned(p: *const c_char) -> Option<String> {
    // SAFETY: the library returns NULL or a NUL-terminated string valid until the next call;
    // it is copied at once.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn engine_error(e: *const tw_engine) -> Option<String> {
    // SAFETY: `e` is NULL or a live handle of the calling test.
    owned(unsafe { tw_engine_last_error(e) })
}

fn thread_error() -> Option<String> {
    owned(tw_last_error())
}

/// Asserts a message holds every piece.
#[track_caller]
fn assert_has(message: Option<String>, pieces: &[&str]) {
    let m = message.expect("a message");
    for p in pieces {
        assert!(m.contains(p), "`{p}` not in the message:\n{m}");
    }
}

/// Loads scene text into a handle, asserting success.
fn load_ron(text: &str) -> *mut tw_engine {
    let text = CString::new(text).expect("no NUL in scene text");
    let mut e = ptr::null_mut();
    // SAFETY: a valid string and a writable handle slot.
    let code = unsafe { tw_engine_load_ron(text.as_ptr(), &mut e) };
    assert_eq!(code, TW_OK, "{:?}", thread_error());
    assert!(!e.is_null());
    e
}

/// `tw_engine_probe_read` with a buffer of `capacity`: (code, tick, values written, len).
fn read(
    e: *const tw_engine,
    probe: &CStr,
    token: usize,
    capacity: usize,
) -> (c_int, u64, Vec<f32>, usize) {
    let mut tick = u64::MAX;
    let mut len = usize::MAX;
    let mut values = vec![-99.0f32; capacity];
    // SAFETY: `tick`, `len` writable, `values` writable for `capacity` floats.
    let code = unsafe {
        tw_engine_probe_read(
            e,
            probe.as_ptr(),
            token,
            &mut tick,
            values.as_mut_ptr(),
            capacity,
            &mut len,
        )
    };
    (code, tick, values, len)
}

// ---------------------------------------------------------------------------------------------
// The header, the Rust exports and the shared library agree

/// The header without comments and preprocessor lines: its declarations, whitespace collapsed.
fn header_declarations() -> Vec<String> {
    let text = std::fs::read_to_string(common::repo().join("include/tapwheel.h")).expect("header");
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("closed comment") + start + 2;
        rest = &rest[end..];
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("extern \"C\" {", "")
        .replace('}', "");
    code.split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty())
        .collect()
}

fn header_functions() -> BTreeSet<String> {
    header_declarations()
        .iter()
        .filter_map(|d| {
            let name = d.split('(').next()?.rsplit([' ', '*']).next()?;
            d.contains('(').then(|| name.to_string())
        })
        .collect()
}

/// The names of the `#[unsafe(no_mangle)]` functions of src/capi.rs.
fn exported_functions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(common::repo().join("src/capi.rs")).expect("src/capi.rs");
    let lines: Vec<&str> = text.lines().collect();
    let mut names = BTreeSet::new();
    let mut attributes = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[unsafe(no_mangle)]" {
            continue;
        }
        attributes += 1;
        let decl = lines[i + 1..]
            .iter()
            .find(|l| l.contains("extern \"C\" fn "))
            .expect("a function after #[unsafe(no_mangle)]");
        let after = decl.split("extern \"C\" fn ").nth(1).unwrap_or("");
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    assert_eq!(
        text.matches("no_mangle").count(),
        attributes,
        "every `no_mangle` in src/capi.rs is a `#[unsafe(no_mangle)]` line before a function"
    );
    names
}

#[test]
fn the_header_declares_exactly_the_exported_functions_with_the_spec_prototypes() {
    let from_header = header_functions();
    let from_rust = exported_functions();
    assert_eq!(
        from_header, from_rust,
        "include/tapwheel.h and src/capi.rs drifted apart"
    );
    let expected: BTreeSet<String> = PROTOTYPES
        .iter()
        .map(|p| {
            p.split('(')
                .next()
                .unwrap()
                .rsplit([' ', '*'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(from_header, expected);
    // Every prototype word for word (the first seven are SPEC §20's).
    let declarations = header_declarations();
    for p in PROTOTYPES {
        assert!(
            declarations.iter().any(|d| d == p),
            "the header lacks `{p};`\n{declarations:#?}"
        );
    }
    assert!(
        declarations
            .iter()
            .any(|d| d == "typedef struct tw_engine tw_engine")
    );
    // The return-code macros are the Rust constants.
    let text = std::fs::read_to_string(common::repo().join("include/tapwheel.h")).unwrap();
    let defines: BTreeMap<&str, i32> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "#define").then_some(())?;
            let name = w.next()?;
            Some((name, w.next()?.parse().ok()?))
        })
        .collect();
    let rust: BTreeMap<&str, i32> = [
        ("TW_OK", TW_OK),
        ("TW_INTERNAL", TW_INTERNAL),
        ("TW_INVALID", TW_INVALID),
        ("TW_DEADLOCK", TW_DEADLOCK),
        ("TW_REFUSED", TW_REFUSED),
    ]
    .into();
    assert_eq!(defines, rust);
    assert_eq!(
        (TW_OK, TW_INTERNAL, TW_INVALID, TW_DEADLOCK, TW_REFUSED),
        (0, 1, 2, 3, 4)
    );
}

/// The Rust functions have the header's C types (a compile-time check: each coerces to the
/// function-pointer type its prototype spells).
#[test]
fn the_rust_signatures_are_the_header_prototypes() {
    type Handle = *mut tw_engine;
    type ConstHandle = *const tw_engine;
    type Str = *const c_char;
    let _: unsafe extern "C" fn(Str, *mut Handle) -> c_int = tw_engine_load;
    let _: unsafe extern "C" fn(Str, *mut Handle) -> c_int = tw_engine_load_ron;
    let _: unsafe extern "C" fn(Handle, u64) -> c_int = tw_engine_run_until;
    let _: unsafe extern "C" fn(Handle) -> c_int = tw_engine_run;
    let _: unsafe extern "C" fn(Handle, Str, u64) -> c_int = tw_engine_set_symbol;
    let _: unsafe extern "C" fn(Handle, u32, u64) -> c_int = tw_engine_set_slot;
    let _: unsafe extern "C" fn(Handle, Str, f64) -> c_int = tw_engine_set_param;
    let _: unsafe extern "C" fn(Handle) -> c_int = tw_engine_reset;
    let _: unsafe extern "C" fn(Handle, Str, u64, *const f32, usize) -> c_int = tw_engine_inject;
    let _: unsafe extern "C" fn(Handle, Str) -> c_int = tw_engine_close_input;
    let _: unsafe extern "C" fn(ConstHandle, Str) -> usize = tw_engine_probe_tokens;
    let _: unsafe extern "C" fn(
        ConstHandle,
        Str,
        usize,
        *mut u64,
        *mut f32,
        usize,
        *mut usize,
    ) -> c_int = tw_engine_probe_read;
    let _: unsafe extern "C" fn(ConstHandle) -> Str = tw_engine_last_error;
    let _: unsafe extern "C" fn(Handle) = tw_engine_free;
    let _: extern "C" fn() -> Str = tw_last_error;
    let _: extern "C" fn() -> Str = tw_version;
}

#[test]
fn the_shared_library_exports_every_header_function() {
    let path = lib_path();
    // SAFETY: the crate's own cdylib; loading it runs no initialisers of ours.
    let lib = unsafe { libloading::Library::new(&path) }
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
    let names = header_functions();
    assert_eq!(names.len(), PROTOTYPES.len());
    for name in &names {
        // SAFETY: only the symbol's address is looked up; it is not called.
        let symbol = unsafe { lib.get::<*const ()>(name.as_bytes()) };
        assert!(
            symbol.is_ok(),
            "{} does not export `{name}`",
            path.display()
        );
    }
    // One call through the loaded library: its version is this crate's.
    // SAFETY: `tw_version` is `const char *tw_version(void)`, as the header declares.
    let version = unsafe { lib.get::<extern "C" fn() -> *const c_char>(b"tw_version") }.unwrap();
    assert_eq!(owned(version()).as_deref(), Some(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------------------------
// C programs

#[test]
fn the_c_example_prints_the_probe_before_and_after_the_symbol_change() {
    let dir = scratch("embed");
    let exe = dir.join("embed");
    compile_c(&common::repo().join("examples/c/embed.c"), &exe);
    let (code, stdout, stderr) = run_program(&exe, &["examples/c/symbol_delay.ron"]);
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    // link = 2: the saw's tokens at 0, 10, 20 arrive 2 ticks later; link = 7: 7 ticks later.
    assert_eq!(
        stdout,
        "paused after tick 15 (link = 2)
probe out: 2 tokens
  token 0 at tick 2: 0 -1.5 -1
  token 1 at tick 12: -0.5 0 0.5
ended (link = 2)
probe out: 3 tokens
  token 0 at tick 2: 0 -1.5 -1
  token 1 at tick 12: -0.5 0 0.5
  token 2 at tick 22: 1 1.5 0
ended (link = 7)
probe out: 3 tokens
  token 0 at tick 7: 0 -1.5 -1
  token 1 at tick 17: -0.5 0 0.5
  token 2 at tick 27: 1 1.5 0
"
    );
    // A missing scene: the example exits with the load's code and prints its message.
    let (code, stdout, stderr) = run_program(&exe, &["examples/c/missing.ron"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.starts_with("tw_engine_load returned 2\nerror[E105]: cannot read scene file")
            && stderr.contains("--> examples/c/missing.ron"),
        "{stderr}"
    );
}

/// Misuse from C: every call prints `label|value|message` (newlines in the message as ` / `).
const MISUSE_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include "tapwheel.h"

static void line(const char *label, long long value, const char *message) {
    printf("%s|%lld|", label, value);
    if (message == NULL) {
        printf("NULL");
    } else {
        for (const char *p = message; *p != '\0'; p++) {
            if (*p == '\n') {
                fputs(" / ", stdout);
            } else {
                putchar(*p);
            }
        }
    }
    putchar('\n');
}

/* The call first, then the message: C leaves the order of a call's arguments open. */
#define CHECK(label, call, message)          \
    do {                                     \
        long long value_ = (long long)(call); \
        line(label, value_, (message));      \
    } while (0)

static char dummy;

int main(int argc, char **argv) {
    if (argc != 6) {
        return 99;
    }
    const char *bad_path = argv[1], *missing_path = argv[2];
    const char *inject_scene = argv[3], *deadlock_scene = argv[4], *refused_scene = argv[5];
    tw_engine *const garbage = (tw_engine *)(void *)&dummy;
    tw_engine *e = garbage;
    int rc;

    /* Loading. */
    rc = tw_engine_load(NULL, &e);
    line("load_null_path", rc, tw_last_error());
    line("load_null_path_out_is_null", e == NULL, NULL);
    rc = tw_engine_load(bad_path, NULL);
    line("load_null_out", rc, tw_last_error());
    rc = tw_engine_load_ron(NULL, NULL);
    line("load_ron_null_out", rc, tw_last_error());
    e = garbage;
    rc = tw_engine_load("\xff\xfe.ron", &e);
    line("load_not_utf8", rc, tw_last_error());
    line("load_not_utf8_out_is_null", e == NULL, NULL);
    e = garbage;
    rc = tw_engine_load(missing_path, &e);
    line("load_missing", rc, tw_last_error());
    line("load_missing_out_is_null", e == NULL, NULL);
    rc = tw_engine_load(bad_path, &e);
    line("load_bad", rc, tw_last_error());
    rc = tw_engine_load_ron("Scene(", &e);
    line("load_ron_syntax", rc, tw_last_error());
    rc = tw_engine_load_ron(refused_scene, &e);
    line("load_refused", rc, tw_last_error());
    line("load_refused_out_is_null", e == NULL, NULL);

    /* A NULL engine: code 2, the message on the thread. */
    CHECK("run_until_null", tw_engine_run_until(NULL, 5), tw_last_error());
    CHECK("run_null", tw_engine_run(NULL), tw_last_error());
    CHECK("set_symbol_null", tw_engine_set_symbol(NULL, "link", 1), tw_last_error());
    CHECK("set_slot_null", tw_engine_set_slot(NULL, 0, 1), tw_last_error());
    CHECK("set_param_null", tw_engine_set_param(NULL, "g.gain", 1.0), tw_last_error());
    CHECK("reset_null", tw_engine_reset(NULL), tw_last_error());
    CHECK("inject_null", tw_engine_inject(NULL, "cc", 0, NULL, 0), tw_last_error());
    CHECK("close_input_null", tw_engine_close_input(NULL, "cc"), tw_last_error());
    CHECK("probe_tokens_null", (long long)tw_engine_probe_tokens(NULL, "out"), tw_last_error());
    uint64_t tick = 0;
    size_t len = 0;
    float values[4] = {-99.0f, -99.0f, -99.0f, -99.0f};
    CHECK("probe_read_null", tw_engine_probe_read(NULL, "out", 0, &tick, values, 4, &len), tw_last_error());
    line("last_error_null", tw_engine_last_error(NULL) == NULL, NULL);
    tw_engine_free(NULL);
    line("free_null", 0, NULL);

    /* An engine with an open input. A successful load clears the thread's message. */
    rc = tw_engine_load_ron(inject_scene, &e);
    line("load_inject", rc, tw_last_error());
    CHECK("probe_tokens_null_probe", (long long)tw_engine_probe_tokens(e, NULL), tw_engine_last_error(e));
    CHECK("probe_tokens_unknown", (long long)tw_engine_probe_tokens(e, "nope"), tw_engine_last_error(e));
    CHECK("probe_tokens_empty", (long long)tw_engine_probe_tokens(e, "out"), tw_engine_last_error(e));
    CHECK("probe_read_null_tick", tw_engine_probe_read(e, "out", 0, NULL, values, 4, &len), tw_engine_last_error(e));
    CHECK("probe_read_null_len", tw_engine_probe_read(e, "out", 0, &tick, values, 4, NULL), tw_engine_last_error(e));
    CHECK("probe_read_null_probe", tw_engine_probe_read(e, NULL, 0, &tick, values, 4, &len), tw_engine_last_error(e));
    CHECK("probe_read_unknown", tw_engine_probe_read(e, "nope", 0, &tick, values, 4, &len), tw_engine_last_error(e));
    CHECK("probe_read_empty", tw_engine_probe_read(e, "out", 0, &tick, values, 4, &len), tw_engine_last_error(e));
    const float token[2] = {1.5f, -2.0f};
    CHECK("inject_not_open", tw_engine_inject(e, "g", 5, token, 2), tw_engine_last_error(e));
    CHECK("inject_unknown", tw_engine_inject(e, "ghost", 5, token, 2), tw_engine_last_error(e));
    CHECK("inject_null_values", tw_engine_inject(e, "cc", 5, NULL, 2), tw_engine_last_error(e));
    CHECK("inject_null_node", tw_engine_inject(e, NULL, 5, token, 2), tw_engine_last_error(e));
    CHECK("inject_short", tw_engine_inject(e, "cc", 5, token, 1), tw_engine_last_error(e));
    CHECK("inject", tw_engine_inject(e, "cc", 5, token, 2), tw_engine_last_error(e));
    CHECK("run_until_10", tw_engine_run_until(e, 10), tw_engine_last_error(e));
    CHECK("probe_tokens_1", (long long)tw_engine_probe_tokens(e, "out"), tw_engine_last_error(e));
    len = 0;
    tick = 0;
    CHECK("probe_read_size", tw_engine_probe_read(e, "out", 0, &tick, NULL, 0, &len), tw_engine_last_error(e));
    line("probe_read_size_tick", (long long)tick, NULL);
    line("probe_read_size_len", (long long)len, NULL);
    len = 0;
    tick = 0;
    rc = tw_engine_probe_read(e, "out", 0, &tick, values, 1, &len);
    line("probe_read_small", rc, tw_engine_last_error(e));
    line("probe_read_small_len", (long long)len, NULL);
    line("probe_read_small_tick_untouched", (long long)tick, NULL);
    line("probe_read_small_values_untouched", values[0] == -99.0f, NULL);
    CHECK("probe_read_null_values", tw_engine_probe_read(e, "out", 0, &tick, NULL, 4, &len), tw_engine_last_error(e));
    rc = tw_engine_probe_read(e, "out", 0, &tick, values, 4, &len);
    char text[64];
    snprintf(text, sizeof text, "%g %g %g", (double)values[0], (double)values[1], (double)values[2]);
    line("probe_read", rc, tw_engine_last_error(e));
    line("probe_read_tick", (long long)tick, NULL);
    line("probe_read_len", (long long)len, NULL);
    line("probe_read_values", 0, text);
    CHECK("probe_read_past_end", tw_engine_probe_read(e, "out", 1, &tick, values, 4, &len), tw_engine_last_error(e));
    CHECK("inject_passed_tick", tw_engine_inject(e, "cc", 7, token, 2), tw_engine_last_error(e));
    CHECK("close_input_not_open", tw_engine_close_input(e, "g"), tw_engine_last_error(e));
    CHECK("close_input", tw_engine_close_input(e, "cc"), tw_engine_last_error(e));
    CHECK("inject_closed", tw_engine_inject(e, "cc", 20, token, 2), tw_engine_last_error(e));
    CHECK("run", tw_engine_run(e), tw_engine_last_error(e));
    CHECK("run_again", tw_engine_run_until(e, 100), tw_engine_last_error(e));
    CHECK("set_slot_out_of_range", tw_engine_set_slot(e, 300, 1), tw_engine_last_error(e));
    CHECK("set_param_unknown", tw_engine_set_param(e, "g.nope", 1.0), tw_engine_last_error(e));
    CHECK("set_symbol_null_name", tw_engine_set_symbol(e, NULL, 1), tw_engine_last_error(e));
    /* A parameter starts a new run: the injections are gone; inject again. */
    CHECK("set_param", tw_engine_set_param(e, "g.gain", 3.0), tw_engine_last_error(e));
    CHECK("probe_tokens_after_set_param", (long long)tw_engine_probe_tokens(e, "out"), tw_engine_last_error(e));
    CHECK("inject_after_set_param", tw_engine_inject(e, "cc", 1, token, 2), tw_engine_last_error(e));
    CHECK("run_after_set_param", tw_engine_run(e), tw_engine_last_error(e));
    rc = tw_engine_probe_read(e, "out", 0, &tick, values, 4, &len);
    snprintf(text, sizeof text, "%g %g", (double)values[0], (double)values[1]);
    line("read_after_set_param", rc, tw_engine_last_error(e));
    line("read_after_set_param_tick", (long long)tick, text);
    CHECK("reset", tw_engine_reset(e), tw_engine_last_error(e));
    CHECK("probe_tokens_after_reset", (long long)tw_engine_probe_tokens(e, "out"), tw_engine_last_error(e));
    tw_engine_free(e);

    /* A deadlock: code 3 with the report, on every later run call too. */
    rc = tw_engine_load_ron(deadlock_scene, &e);
    line("load_deadlock", rc, tw_last_error());
    CHECK("run_deadlock", tw_engine_run(e), tw_engine_last_error(e));
    CHECK("run_until_deadlock", tw_engine_run_until(e, 1000), tw_engine_last_error(e));
    CHECK("probe_tokens_deadlock", (long long)tw_engine_probe_tokens(e, "out"), tw_engine_last_error(e));
    tw_engine_free(e);
    line("version", 0, tw_version());
    return 0;
}
"#;

#[test]
fn misuse_from_c_gets_exact_codes_and_messages() {
    let dir = scratch("misuse");
    let src = dir.join("misuse.c");
    std::fs::write(&src, MISUSE_C).unwrap();
    let exe = dir.join("misuse");
    compile_c(&src, &exe);
    let bad = dir.join("bad.ron");
    std::fs::write(&bad, BAD_SCENE).unwrap();
    let missing = dir.join("missing.ron");
    let (code, stdout, stderr) = run_program(
        &exe,
        &[
            bad.to_str().unwrap(),
            missing.to_str().unwrap(),
            INJECT_SCENE,
            DEADLOCK_SCENE,
            REFUSED_SCENE,
        ],
    );
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    let mut lines: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for l in stdout.lines() {
        let mut parts = l.splitn(3, '|');
        let (Some(label), Some(value), Some(message)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("malformed line `{l}`");
        };
        let value = value.parse().unwrap_or_else(|_| panic!("value in `{l}`"));
        assert!(
            lines.insert(label, (value, message)).is_none(),
            "label `{label}` twice"
        );
    }
    let mut checked = BTreeSet::new();
    let mut check = |label: &'static str, value: i64, pieces: &[&str]| {
        let (v, m) = *lines
            .get(label)
            .unwrap_or_else(|| panic!("no line `{label}` in\n{stdout}"));
        assert_eq!(v, value, "{label}: {m}");
        if pieces.is_empty() {
            assert_eq!(m, "NULL", "{label} should leave no message");
        }
        for p in pieces {
            assert!(m.contains(p), "{label}: `{p}` not in `{m}`");
        }
        checked.insert(label);
    };
    let loc = |s: &str| format!("--> {s}");
    // Loading.
    check(
        "load_null_path",
        2,
        &[
            "error[E490]: tw_engine_load: `scene_path` is NULL",
            &loc("scene_path"),
        ],
    );
    check("load_null_path_out_is_null", 1, &[]);
    check(
        "load_null_out",
        2,
        &["error[E490]: tw_engine_load: `out` is NULL", &loc("out")],
    );
    check(
        "load_ron_null_out",
        2,
        &["error[E490]: tw_engine_load_ron: `out` is NULL"],
    );
    check(
        "load_not_utf8",
        2,
        &["error[E491]: tw_engine_load: `scene_path` is not valid UTF-8"],
    );
    check("load_not_utf8_out_is_null", 1, &[]);
    check(
        "load_missing",
        2,
        &[
            "error[E105]: cannot read scene file",
            &loc(missing.to_str().unwrap()),
        ],
    );
    check("load_missing_out_is_null", 1, &[]);
    // Every diagnostic of the bad scene, as the CLI prints them.
    check(
        "load_bad",
        2,
        &[
            "error[E231]: unknown node `nope` /   --> edges[0].to / error[E231]: unknown node `ghost` /   --> edges[1].from",
        ],
    );
    check("load_ron_syntax", 2, &["error[E100]: ", "--> <string>:1:"]);
    check(
        "load_refused",
        4,
        &["refused[R304]", &loc("task_window.mode")],
    );
    check("load_refused_out_is_null", 1, &[]);
    // A NULL engine.
    let null_e = |f: &str| format!("error[E490]: {f}: `e` is NULL /   --> e");
    for (label, f) in [
        ("run_until_null", "tw_engine_run_until"),
        ("run_null", "tw_engine_run"),
        ("set_symbol_null", "tw_engine_set_symbol"),
        ("set_slot_null", "tw_engine_set_slot"),
        ("set_param_null", "tw_engine_set_param"),
        ("reset_null", "tw_engine_reset"),
        ("inject_null", "tw_engine_inject"),
        ("close_input_null", "tw_engine_close_input"),
        ("probe_read_null", "tw_engine_probe_read"),
    ] {
        check(label, 2, &[&null_e(f)]);
    }
    check("probe_tokens_null", 0, &[&null_e("tw_engine_probe_tokens")]);
    check("last_error_null", 1, &[]);
    check("free_null", 0, &[]);
    // The open-input engine.
    check("load_inject", 0, &[]);
    check(
        "probe_tokens_null_probe",
        0,
        &["error[E490]: tw_engine_probe_tokens: `probe` is NULL"],
    );
    check(
        "probe_tokens_unknown",
        0,
        &[
            "error[E485]: no probe named `nope` (probes: [\"out\"])",
            &loc("nope"),
        ],
    );
    check("probe_tokens_empty", 0, &[]);
    check(
        "probe_read_null_tick",
        2,
        &["error[E490]: tw_engine_probe_read: `tick` is NULL"],
    );
    check(
        "probe_read_null_len",
        2,
        &["error[E490]: tw_engine_probe_read: `len` is NULL"],
    );
    check(
        "probe_read_null_probe",
        2,
        &["error[E490]: tw_engine_probe_read: `probe` is NULL"],
    );
    check(
        "probe_read_unknown",
        2,
        &["error[E485]: no probe named `nope`"],
    );
    check(
        "probe_read_empty",
        2,
        &["error[E486]: probe `out` has recorded 0 tokens; token 0 does not exist"],
    );
    check(
        "inject_not_open",
        2,
        &[
            "error[E481]: `g` is not an open input (a `Gain` node)",
            &loc("g"),
        ],
    );
    check(
        "inject_unknown",
        2,
        &["error[E481]: no node named `ghost` (open inputs: [\"cc\"])"],
    );
    check(
        "inject_null_values",
        2,
        &["error[E490]: tw_engine_inject: `values` is NULL"],
    );
    check(
        "inject_null_node",
        2,
        &["error[E490]: tw_engine_inject: `node` is NULL"],
    );
    check(
        "inject_short",
        2,
        &["error[E482]: a token of `cc` has 2 values, got 1"],
    );
    check("inject", 0, &[]);
    check("run_until_10", 0, &[]);
    check("probe_tokens_1", 1, &[]);
    // Injected at 5, 3 ticks of delay: visible at 8, doubled.
    check("probe_read_size", 0, &[]);
    check("probe_read_size_tick", 8, &[]);
    check("probe_read_size_len", 2, &[]);
    check(
        "probe_read_small",
        2,
        &[
            "error[E492]: tw_engine_probe_read: token 0 of probe `out` has 2 values but `capacity` is 1: pass a buffer of at least 2 floats",
            &loc("capacity"),
        ],
    );
    check("probe_read_small_len", 2, &[]);
    check("probe_read_small_tick_untouched", 0, &[]);
    check("probe_read_small_values_untouched", 1, &[]);
    check(
        "probe_read_null_values",
        2,
        &["error[E490]: tw_engine_probe_read: `values` is NULL"],
    );
    check("probe_read", 0, &[]);
    check("probe_read_tick", 8, &[]);
    check("probe_read_len", 2, &[]);
    check("probe_read_values", 0, &["3 -4 -99"]);
    check(
        "probe_read_past_end",
        2,
        &["error[E486]: probe `out` has recorded 1 tokens; token 1 does not exist"],
    );
    check(
        "inject_passed_tick",
        2,
        &["error[E483]: cannot inject at tick 7: the run has passed it (the earliest tick is 11)"],
    );
    check(
        "close_input_not_open",
        2,
        &["error[E481]: `g` is not an open input"],
    );
    check("close_input", 0, &[]);
    check("inject_closed", 2, &["error[E484]: `cc` is closed"]);
    check("run", 0, &[]);
    check("run_again", 0, &[]);
    check("set_slot_out_of_range", 2, &["error[E106]"]);
    check("set_param_unknown", 2, &["error[E455]"]);
    check(
        "set_symbol_null_name",
        2,
        &["error[E490]: tw_engine_set_symbol: `name` is NULL"],
    );
    check("set_param", 0, &[]);
    check("probe_tokens_after_set_param", 0, &[]);
    check("inject_after_set_param", 0, &[]);
    check("run_after_set_param", 0, &[]);
    check("read_after_set_param", 0, &[]);
    check("read_after_set_param_tick", 4, &["4.5 -6"]);
    check("reset", 0, &[]);
    check("probe_tokens_after_reset", 0, &[]);
    // The deadlock.
    check("load_deadlock", 0, &[]);
    check("run_deadlock", 3, &["deadlock (artificial)", "mitigation"]);
    check("run_until_deadlock", 3, &["deadlock (artificial)"]);
    // The probe is readable after the deadlock (out took one firing of 3 tokens? no: none).
    check("probe_tokens_deadlock", 0, &[]);
    check("version", 0, &[env!("CARGO_PKG_VERSION")]);
    assert_eq!(checked.len(), lines.len(), "unchecked lines in\n{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Rust calling the extern functions

#[test]
fn null_pointers_from_rust_are_code_2_never_a_crash() {
    let mut e: *mut tw_engine = ptr::null_mut();
    // SAFETY: every pointer is NULL or valid; NULL is what is under test.
    unsafe {
        assert_eq!(tw_engine_load(ptr::null(), &mut e), TW_INVALID);
        assert!(e.is_null());
        assert_has(
            thread_error(),
            &["error[E490]: tw_engine_load: `scene_path` is NULL"],
        );
        assert_eq!(
            tw_engine_load(c"x.ron".as_ptr(), ptr::null_mut()),
            TW_INVALID
        );
        assert_has(thread_error(), &["`out` is NULL"]);
        assert_eq!(tw_engine_run_until(ptr::null_mut(), 3), TW_INVALID);
        assert_has(
            thread_error(),
            &["error[E490]: tw_engine_run_until: `e` is NULL", "--> e"],
        );
        assert_eq!(tw_engine_probe_tokens(ptr::null(), c"out".as_ptr()), 0);
        assert_has(thread_error(), &["tw_engine_probe_tokens: `e` is NULL"]);
        assert!(tw_engine_last_error(ptr::null()).is_null());
        tw_engine_free(ptr::null_mut());
    }
    let e = load_ron(INJECT_SCENE);
    assert_eq!(
        thread_error(),
        None,
        "a successful load clears the thread's message"
    );
    let mut tick = 0u64;
    let mut len = 0usize;
    // SAFETY: `e` is live; the NULLs are under test; `tick`/`len` are writable.
    unsafe {
        assert_eq!(
            tw_engine_probe_read(
                e,
                c"out".as_ptr(),
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                &mut len
            ),
            TW_INVALID
        );
        assert_has(engine_error(e), &["`tick` is NULL"]);
        assert_eq!(
            tw_engine_probe_read(
                e,
                c"out".as_ptr(),
                0,
                &mut tick,
                ptr::null_mut(),
                0,
                ptr::null_mut()
            ),
            TW_INVALID
        );
        assert_has(engine_error(e), &["`len` is NULL"]);
        assert_eq!(
            tw_engine_inject(e, ptr::null(), 0, ptr::null(), 0),
            TW_INVALID
        );
        assert_has(engine_error(e), &["tw_engine_inject: `node` is NULL"]);
        assert_eq!(tw_engine_set_param(e, ptr::null(), 1.0), TW_INVALID);
        assert_has(engine_error(e), &["tw_engine_set_param: `key` is NULL"]);
        assert_eq!(tw_engine_close_input(e, ptr::null()), TW_INVALID);
        assert_has(engine_error(e), &["tw_engine_close_input: `node` is NULL"]);
        tw_engine_free(e);
    }
}

#[test]
fn bad_strings_and_scenes_from_rust_carry_their_codes() {
    let not_utf8 = CString::new(vec![b'S', 0xff, b'(']).unwrap();
    let mut e = ptr::null_mut();
    let bad_file = scratch("bad_scene").join("bad.ron");
    std::fs::write(&bad_file, BAD_SCENE).unwrap();
    let bad_path = CString::new(bad_file.to_str().unwrap()).unwrap();
    let refused = CString::new(REFUSED_SCENE).unwrap();
    // SAFETY: valid strings and a writable handle slot.
    unsafe {
        assert_eq!(tw_engine_load_ron(not_utf8.as_ptr(), &mut e), TW_INVALID);
        assert_has(
            thread_error(),
            &[
                "error[E491]: tw_engine_load_ron: `ron_text` is not valid UTF-8 (invalid byte at offset 1)",
                "--> ron_text",
            ],
        );
        assert_eq!(tw_engine_load(bad_path.as_ptr(), &mut e), TW_INVALID);
        assert!(e.is_null());
        let m = thread_error().unwrap();
        // All diagnostics, exactly as `tapwheel run` prints them on stderr.
        assert_eq!(
            m,
            "error[E231]: unknown node `nope`\n  --> edges[0].to\nerror[E231]: unknown node `ghost`\n  --> edges[1].from"
        );
        let cli_error = Engine::load(&bad_file, RunOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert_eq!(m, cli_error);
        assert_eq!(
            tw_engine_load(c"/nonexistent/scene.ron".as_ptr(), &mut e),
            TW_INVALID
        );
        assert_has(
            thread_error(),
            &["error[E105]", "--> /nonexistent/scene.ron"],
        );
        assert_eq!(tw_engine_load_ron(refused.as_ptr(), &mut e), TW_REFUSED);
        assert_has(thread_error(), &["refused[R304]"]);
        assert!(e.is_null());
    }
}

#[test]
fn probes_from_rust_unknown_past_the_end_and_too_small() {
    let e = load_ron(INJECT_SCENE);
    // SAFETY: `e` is live and used by this thread only; freed at the end.
    unsafe {
        assert_eq!(tw_engine_probe_tokens(e, c"nope".as_ptr()), 0);
        assert_has(engine_error(e), &["error[E485]"]);
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 0);
        assert_eq!(
            engine_error(e),
            None,
            "a known probe without tokens is no error"
        );
        assert_eq!(
            tw_engine_inject(e, c"cc".as_ptr(), 2, [0.25f32, 8.0].as_ptr(), 2),
            TW_OK
        );
        assert_eq!(
            tw_engine_inject(e, c"cc".as_ptr(), 4, [1.0f32, 2.0].as_ptr(), 2),
            TW_OK
        );
        assert_eq!(tw_engine_run(e), TW_OK);
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 2);
    }
    assert_eq!(read(e, c"out", 0, 2), (TW_OK, 5, vec![0.5, 16.0], 2));
    assert_eq!(read(e, c"out", 1, 3), (TW_OK, 7, vec![2.0, 4.0, -99.0], 2));
    // Too small: only `len` is written.
    assert_eq!(
        read(e, c"out", 1, 1),
        (TW_INVALID, u64::MAX, vec![-99.0], 2)
    );
    assert_has(engine_error(e), &["error[E492]", "at least 2 floats"]);
    // Past the end and unknown: nothing is written.
    assert_eq!(
        read(e, c"out", 2, 2),
        (TW_INVALID, u64::MAX, vec![-99.0, -99.0], usize::MAX)
    );
    assert_has(
        engine_error(e),
        &["error[E486]: probe `out` has recorded 2 tokens; token 2 does not exist (yet)"],
    );
    assert_eq!(read(e, c"gone", 0, 2).0, TW_INVALID);
    assert_has(engine_error(e), &["error[E485]: no probe named `gone`"]);
    // Injecting into a node that is not an open input, and after the run ended.
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            tw_engine_inject(e, c"out".as_ptr(), 50, [1.0f32, 2.0].as_ptr(), 2),
            TW_INVALID
        );
        assert_has(
            engine_error(e),
            &["error[E481]: `out` is not an open input"],
        );
        assert_eq!(
            tw_engine_inject(e, c"cc".as_ptr(), 50, [1.0f32, 2.0].as_ptr(), 2),
            TW_INVALID
        );
        assert_has(engine_error(e), &["error[E484]: the run has ended"]);
        // The next successful call clears the message.
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 2);
        assert_eq!(engine_error(e), None);
        tw_engine_free(e);
    }
}

#[test]
fn symbols_slots_and_params_start_a_new_run() {
    let scene = CString::new(
        common::repo()
            .join("examples/c/symbol_delay.ron")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let mut e = ptr::null_mut();
    // SAFETY: a valid path string and handle slot; `e` is freed at the end.
    unsafe {
        assert_eq!(tw_engine_load(scene.as_ptr(), &mut e), TW_OK);
        assert_eq!(tw_engine_run_until(e, 15), TW_OK);
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 2);
        assert_eq!(tw_engine_set_symbol(e, c"link".as_ptr(), 40), TW_OK);
        assert_eq!(
            tw_engine_probe_tokens(e, c"out".as_ptr()),
            0,
            "a new run from tick 0"
        );
        assert_eq!(tw_engine_run(e), TW_OK);
    }
    // Tokens written at 0 and 10 arrive at 40 and 50. The third waits: at 20 both places of
    // the channel (default capacity 2) hold tokens in their 40-tick delay, so `half` fires when
    // `out` takes the first, at 40, and its token arrives at 80.
    let ticks: Vec<u64> = (0..3).map(|i| read(e, c"out", i, 3).1).collect();
    assert_eq!(ticks, vec![40, 50, 80]);
    assert_eq!(read(e, c"out", 2, 3).2, vec![1.0, 1.5, 0.0]);
    // SAFETY: as above.
    unsafe {
        assert_eq!(tw_engine_set_param(e, c"half.gain".as_ptr(), 2.0), TW_OK);
        assert_eq!(tw_engine_run(e), TW_OK);
        assert_eq!(read(e, c"out", 2, 3).2, vec![4.0, 6.0, 0.0]);
        assert_eq!(read(e, c"out", 2, 3).1, 80, "the symbol stays set");
        assert_eq!(tw_engine_set_slot(e, 256, 1), TW_INVALID);
        assert_has(engine_error(e), &["error[E106]"]);
        assert_eq!(tw_engine_set_slot(e, 255, 1), TW_OK);
        assert_eq!(
            tw_engine_set_param(e, c"half.gain".as_ptr(), f64::NAN),
            TW_INVALID
        );
        assert_has(engine_error(e), &["error[E455]"]);
        tw_engine_free(e);
    }
}

#[test]
fn a_deadlock_is_3_and_a_failed_run_is_4_with_their_reports() {
    let e = load_ron(DEADLOCK_SCENE);
    // SAFETY: `e` is live; freed below.
    unsafe {
        assert_eq!(
            tw_engine_run_until(e, 0),
            TW_OK,
            "paused before the deadlock shows"
        );
        assert_eq!(tw_engine_run(e), TW_DEADLOCK);
        let m = engine_error(e).unwrap();
        assert!(m.starts_with("deadlock (artificial): "), "{m}");
        assert_eq!(
            tw_engine_run(e),
            TW_DEADLOCK,
            "an ended run answers with its outcome again"
        );
        tw_engine_free(e);
    }
    // A zero-time loop that never settles ends `failed` with E403: built in Rust with a small
    // `max_deltas`, handed over with `tw_engine::into_raw`.
    let spin = Engine::from_ron(
        r#"Scene(version: 1, name: "spin",
            nodes: [Node(name: "g", kernel: Gain(gain: 1.0)), Node(name: "h", kernel: Gain(gain: 1.0))],
            edges: [Edge(from: "g.out", to: "h.in"), Edge(from: "h.out", to: "g.in", initial: [1.0])])"#,
        RunOptions { max_deltas: 1000, ..RunOptions::default() },
    )
    .unwrap();
    let e = tw_engine::into_raw(spin);
    // SAFETY: `e` is live; freed below.
    unsafe {
        assert_eq!(tw_engine_run_until(e, 0), TW_REFUSED);
        assert_has(engine_error(e), &["error[E403]: tick 0 took 1000 deltas"]);
        tw_engine_free(e);
    }
}

/// A custom kernel that panics when it fires: a bug the boundary must contain.
struct Boom;
impl tapwheel::kernels::Kernel for Boom {
    fn kind(&self) -> &str {
        "Boom"
    }
    fn demand(&self, _: &[tapwheel::kernels::InputView], d: &mut [u32]) {
        d.fill(1)
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, _: &mut tapwheel::kernels::FireIo<'_>) {
        panic!("Boom fired");
    }
}
struct BoomFactory;
impl tapwheel::kernels::KernelFactory for BoomFactory {
    fn kind(&self) -> &str {
        "Boom"
    }
    fn build(
        &self,
        _: &BTreeMap<String, f64>,
        _: &tapwheel::kernels::Signature,
    ) -> Box<dyn tapwheel::kernels::Kernel> {
        Box::new(Boom)
    }
}

#[test]
fn a_panic_is_internal_error_1_and_poisons_the_engine_until_reset() {
    let mut registry = tapwheel::kernels::KernelRegistry::new();
    registry.register(BoomFactory).unwrap();
    let scene = tapwheel::Scene::parse(
        r#"Scene(version: 1, name: "boom",
            nodes: [Node(name: "s", kernel: Const(value: 2.0), period: Some(5), count: Some(2)),
                    Node(name: "k", kernel: Custom(kind: "Boom")),
                    Node(name: "out", kernel: Probe)],
            edges: [Edge(from: "s.out", to: "k.in", delay: 3), Edge(from: "k.out", to: "out.in")])"#,
        "<test>",
        ".".into(),
    )
    .unwrap();
    let engine = Engine::from_scene_with(&scene, RunOptions::default(), &registry).unwrap();
    let e = tw_engine::into_raw(engine);
    // SAFETY: `e` is live and used by this thread only; freed at the end.
    unsafe {
        assert_eq!(
            tw_engine_run_until(e, 2),
            TW_OK,
            "nothing reaches `k` before tick 3"
        );
        assert_eq!(tw_engine_run(e), TW_INTERNAL);
        assert_has(engine_error(e), &["internal error: ", "Boom fired"]);
        // Poisoned: every call but reset and free answers 1.
        assert_eq!(tw_engine_run_until(e, 100), TW_INTERNAL);
        assert_has(
            engine_error(e),
            &["internal error: tw_engine_run_until: an earlier call on this engine panicked"],
        );
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 0);
        assert_has(
            engine_error(e),
            &["internal error: tw_engine_probe_tokens: an earlier call"],
        );
        assert_eq!(tw_engine_set_symbol(e, c"x".as_ptr(), 1), TW_INTERNAL);
        assert_eq!(tw_engine_reset(e), TW_OK);
        assert_eq!(engine_error(e), None);
        assert_eq!(
            tw_engine_run_until(e, 2),
            TW_OK,
            "usable again after the reset"
        );
        assert_eq!(tw_engine_probe_tokens(e, c"out".as_ptr()), 0);
        tw_engine_free(e);
    }
}

#[test]
fn the_thread_message_belongs_to_the_thread() {
    let mut e = ptr::null_mut();
    // SAFETY: a valid string and a writable handle slot.
    assert_eq!(
        unsafe { tw_engine_load_ron(c"Scene(".as_ptr(), &mut e) },
        TW_INVALID
    );
    assert_has(thread_error(), &["error[E100]"]);
    let other = std::thread::spawn(thread_error).join().unwrap();
    assert_eq!(other, None);
    assert_has(thread_error(), &["error[E100]"]);
}

#[test]
fn a_handle_can_move_to_another_thread() {
    struct Handle(*mut tw_engine);
    // SAFETY: `tw_engine` is `Send` (src/capi.rs asserts it); the raw pointer is handed over,
    // and only the receiving thread uses it.
    unsafe impl Send for Handle {}
    let h = Handle(load_ron(DEADLOCK_SCENE));
    let code = std::thread::spawn(move || {
        let h = h;
        // SAFETY: the handle is live and only this thread uses it; freed here.
        unsafe {
            let code = tw_engine_run(h.0);
            tw_engine_free(h.0);
            code
        }
    })
    .join()
    .unwrap();
    assert_eq!(code, TW_DEADLOCK);
}
