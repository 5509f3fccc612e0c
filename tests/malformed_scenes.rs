//! The malformed-scene catalogue: every `tests/malformed/*.ron` is run through the release binary as
//! `tapwheel check FILE` and `tapwheel run FILE --out DIR`, and each must be rejected exactly as its
//! header says (SPEC §13: exit 2, every error listed as `error[E…]` with its location, never a panic).
//!
//! Header of a catalogue file (leading `//` lines):
//!
//! ```text
//! // expect: E231 edges[1].to        first line, required: code and location
//! // also: E202 nodes[2].name        further expected diagnostics (multi-error scenes)
//! // message: unknown node `ghost`   a substring stderr must contain
//! // engine-bug: …                   the engine currently misbehaves on this scene (see below)
//! ```
//!
//! A location of the form `LINE:COL` (syntax/type errors) must equal the diagnostic's location
//! `FILE:LINE:COL` exactly; any other location (a scene path such as `edges[3].to`) must be a
//! substring of the diagnostic's `-->` line. The listed diagnostics must be *all* the diagnostics
//! printed: no more, no fewer, and no refusals.
//!
//! Files marked `// engine-bug:` record a defect of the engine found by this catalogue. They are
//! checked with exactly the same assertions, in their own test
//! (`malformed_scenes_exposing_engine_bugs`), which therefore fails until the engine is fixed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tapwheel");

/// No single invocation may take longer than this (a hang is a failure, not a stuck test run).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Address-space cap for every invocation, so a scene that makes the engine allocate without bound
/// fails fast instead of exhausting the machine running the tests.
const MEMORY_LIMIT_KIB: u64 = 8 * 1024 * 1024;

/// The catalogue must hold at least this many scenes.
const MIN_CASES: usize = 30;

fn catalogue_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("malformed")
}

fn out_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("malformed_scenes")
}

#[derive(Debug, Clone)]
struct Expected {
    code: String,
    location: String,
}

#[derive(Debug)]
struct Case {
    path: PathBuf,
    name: String,
    expected: Vec<Expected>,
    messages: Vec<String>,
    engine_bug: Option<String>,
}

fn parse_expected(text: &str, file: &str) -> Expected {
    let mut parts = text.trim().splitn(2, char::is_whitespace);
    let code = parts.next().unwrap_or_default().to_string();
    let location = parts.next().unwrap_or_default().trim().to_string();
    assert!(
        code.len() == 4
            && (code.starts_with('E') || code.starts_with('R'))
            && code[1..].chars().all(|c| c.is_ascii_digit()),
        "{file}: bad expected code `{code}` in header"
    );
    assert!(
        !location.is_empty(),
        "{file}: the expectation `{text}` names no location"
    );
    Expected { code, location }
}

fn parse_case(path: &Path) -> Case {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    // Lossy: one catalogue entry is deliberately not UTF-8 after its header.
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let Some(rest) = first.strip_prefix("// expect:") else {
        panic!("{name}: the first line must be `// expect: CODE LOCATION`, found `{first}`");
    };
    let mut case = Case {
        path: path.to_path_buf(),
        name: name.clone(),
        expected: vec![parse_expected(rest, &name)],
        messages: Vec::new(),
        engine_bug: None,
    };
    for line in lines.take_while(|l| l.starts_with("//")) {
        let body = line.trim_start_matches('/').trim();
        if let Some(rest) = body.strip_prefix("also:") {
            case.expected.push(parse_expected(rest, &name));
        } else if let Some(rest) = body.strip_prefix("message:") {
            case.messages.push(rest.trim().to_string());
        } else if let Some(rest) = body.strip_prefix("engine-bug:") {
            case.engine_bug = Some(rest.trim().to_string());
        } else if body.starts_with("expect:") {
            panic!("{name}: only the first line may be `// expect:`; use `// also:`");
        }
    }
    case
}

fn catalogue() -> Vec<Case> {
    let dir = catalogue_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    paths.sort();
    paths.iter().map(|p| parse_case(p)).collect()
}

struct Outcome {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe_status(&self) -> String {
        match self.status {
            None => format!("timed out after {TIMEOUT:?} (killed)"),
            Some(s) => {
                if let Some(code) = s.code() {
                    return format!("exit code {code}");
                }
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(sig) = s.signal() {
                        return format!("killed by signal {sig}");
                    }
                }
                format!("{s}")
            }
        }
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs the release binary with `args` under a memory cap and a timeout.
fn tapwheel(args: &[&std::ffi::OsStr]) -> Outcome {
    let mut cmd = if cfg!(unix) {
        // `exec` keeps the binary's own exit status (and pid, for the timeout kill).
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "ulimit -v {MEMORY_LIMIT_KIB} 2>/dev/null; exec \"$0\" \"$@\""
            ))
            .arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    let mut child = cmd
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {BIN}: {e}"));
    let out = spawn_reader(child.stdout.take().expect("stdout pipe"));
    let err = spawn_reader(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait().expect("waiting for tapwheel") {
            Some(s) => break Some(s),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    Outcome {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// One `error[CODE]: message` / `refused[CODE]: message` block of stderr.
#[derive(Debug)]
struct Diag {
    head: String,
    code: String,
    location: Option<String>,
}

fn diagnostics(stderr: &str) -> Vec<Diag> {
    let mut out: Vec<Diag> = Vec::new();
    for line in stderr.lines() {
        if let Some(loc) = line.strip_prefix("  --> ") {
            if let Some(d) = out.last_mut() {
                d.location = Some(loc.to_string());
            }
            continue;
        }
        for head in ["error", "refused"] {
            if let Some(rest) = line.strip_prefix(head).and_then(|r| r.strip_prefix('['))
                && let Some((code, _)) = rest.split_once("]:")
            {
                out.push(Diag {
                    head: head.to_string(),
                    code: code.to_string(),
                    location: None,
                });
            }
        }
    }
    out
}

/// `LINE:COL`, the location form of syntax and type errors.
fn is_line_col(s: &str) -> bool {
    s.split_once(':').is_some_and(|(l, c)| {
        !l.is_empty()
            && !c.is_empty()
            && l.chars().all(|x| x.is_ascii_digit())
            && c.chars().all(|x| x.is_ascii_digit())
    })
}

fn location_matches(diag_loc: &str, expected: &str, scene: &Path) -> bool {
    if is_line_col(expected) {
        diag_loc == format!("{}:{expected}", scene.display())
    } else {
        diag_loc.contains(expected)
    }
}

/// Every way `outcome` differs from what `case` expects (empty = as expected).
fn problems(case: &Case, scene: &Path, outcome: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    let stderr = &outcome.stderr;
    if outcome.status.and_then(|s| s.code()) != Some(2) {
        p.push(format!(
            "expected exit code 2, got {}",
            outcome.describe_status()
        ));
    }
    if stderr.contains("panicked") {
        p.push("stderr reports a panic".to_string());
    }
    let diags = diagnostics(stderr);
    for e in &case.expected {
        if !stderr.contains(&format!("error[{}]", e.code)) {
            p.push(format!("stderr lacks `error[{}]`", e.code));
        }
        let shown = if is_line_col(&e.location) {
            format!("{}:{}", scene.display(), e.location)
        } else {
            e.location.clone()
        };
        if !stderr.contains(&shown) {
            p.push(format!("stderr lacks the location `{shown}`"));
        }
        let paired = diags.iter().any(|d| {
            d.head == "error"
                && d.code == e.code
                && d.location
                    .as_deref()
                    .is_some_and(|l| location_matches(l, &e.location, scene))
        });
        if !paired {
            p.push(format!(
                "no diagnostic `error[{}]` located at `{shown}`",
                e.code
            ));
        }
    }
    if diags.len() != case.expected.len() {
        p.push(format!(
            "expected exactly {} diagnostic(s), got {}: {:?}",
            case.expected.len(),
            diags.len(),
            diags
                .iter()
                .map(|d| format!(
                    "{}[{}] at {}",
                    d.head,
                    d.code,
                    d.location.as_deref().unwrap_or("<none>")
                ))
                .collect::<Vec<_>>()
        ));
    }
    for m in &case.messages {
        if !stderr.contains(m.as_str()) {
            p.push(format!("stderr lacks the message text `{m}`"));
        }
    }
    p
}

/// Runs `check` and `run` on one case; returns a failure report, or `None` when both behave.
fn exercise(case: &Case, scene: &Path) -> Option<String> {
    let mut report = String::new();
    let check = tapwheel(&["check".as_ref(), scene.as_os_str()]);
    let stem = scene
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scene".into());
    let out_dir = out_root().join(stem);
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = tapwheel(&[
        "run".as_ref(),
        scene.as_os_str(),
        "--out".as_ref(),
        out_dir.as_os_str(),
    ]);
    for (what, outcome) in [("check", &check), ("run", &run)] {
        let mut p = problems(case, scene, outcome);
        if what == "run" && out_dir.join("report.json").exists() {
            p.push(format!(
                "an invalid scene still wrote {}",
                out_dir.join("report.json").display()
            ));
        }
        if !p.is_empty() {
            report.push_str(&format!(
                "  `tapwheel {what} {}{}`: {}\n",
                scene.display(),
                if what == "run" {
                    format!(" --out {}", out_dir.display())
                } else {
                    String::new()
                },
                outcome.describe_status()
            ));
            for x in p {
                report.push_str(&format!("    - {x}\n"));
            }
            report.push_str(&format!(
                "    stderr:\n{}\n",
                indent(&truncate(&outcome.stderr, 2000))
            ));
            if !outcome.stdout.is_empty() {
                report.push_str(&format!(
                    "    stdout:\n{}\n",
                    indent(&truncate(&outcome.stdout, 500))
                ));
            }
        }
    }
    (!report.is_empty()).then_some(report)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &s[..end], s.len() - end)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("      | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn expectation_text(case: &Case) -> String {
    case.expected
        .iter()
        .map(|e| format!("{} {}", e.code, e.location))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs every selected case and panics with one report listing every failure.
fn run_catalogue(select: impl Fn(&Case) -> bool, title: &str) -> usize {
    let cases: Vec<Case> = catalogue().into_iter().filter(|c| select(c)).collect();
    let mut failures = Vec::new();
    for case in &cases {
        if let Some(report) = exercise(case, &case.path) {
            let bug = case
                .engine_bug
                .as_deref()
                .map(|b| format!("  ENGINE BUG (recorded in the file): {b}\n"))
                .unwrap_or_default();
            failures.push(format!(
                "{} (expected {}):\n{bug}{report}",
                case.name,
                expectation_text(case)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{title}: {} of {} malformed scene(s) not rejected as expected:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn catalogue_is_complete_and_well_formed() {
    let cases = catalogue();
    assert!(
        cases.len() >= MIN_CASES,
        "the catalogue holds {} scenes; at least {MIN_CASES} are required",
        cases.len()
    );
    let multi = cases.iter().filter(|c| c.expected.len() >= 3).count();
    assert!(
        multi >= 3,
        "at least three scenes must carry several errors"
    );
    // Every error family the catalogue promises to cover appears at least once.
    let codes: std::collections::BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.expected.iter().map(|e| e.code.as_str()))
        .collect();
    for code in [
        "E100", "E101", "E102", "E103", "E104", "E105", "E110", "E111", "E201", "E202", "E210",
        "E211", "E212", "E213", "E214", "E215", "E216", "E217", "E218", "E220", "E231", "E232",
        "E233", "E234", "E235", "E236", "E237", "E240",
    ] {
        assert!(codes.contains(code), "no catalogue scene expects {code}");
    }
    for c in &cases {
        for e in &c.expected {
            // Syntax and type errors are located `file:line:col`; everything else by scene path.
            let file_located = matches!(e.code.as_str(), "E100" | "E101" | "E102" | "E103");
            assert_eq!(
                is_line_col(&e.location),
                file_located,
                "{}: {} must be located {}",
                c.name,
                e.code,
                if file_located {
                    "LINE:COL"
                } else {
                    "by scene path"
                }
            );
        }
    }
}

#[test]
fn malformed_scenes_are_rejected_with_located_errors() {
    let n = run_catalogue(|_| true, "malformed scenes");
    assert!(
        n >= MIN_CASES,
        "only {n} scenes without a recorded engine bug"
    );
}

/// Scenes marked `// engine-bug:` record a defect found by the catalogue; none remain, and a
/// marked scene would still be checked by the catalogue test above (never skipped).
#[test]
fn no_scene_is_marked_as_a_known_engine_bug() {
    let marked: Vec<String> = catalogue()
        .into_iter()
        .filter(|c| c.engine_bug.is_some())
        .map(|c| c.name)
        .collect();
    assert!(marked.is_empty(), "fix these engine bugs: {marked:?}");
}

#[test]
fn nonexistent_scene_file_is_e105() {
    let missing = catalogue_dir().join("no_such_scene_file.ron");
    assert!(!missing.exists(), "{} must not exist", missing.display());
    let case = Case {
        path: missing.clone(),
        name: "no_such_scene_file.ron".into(),
        expected: vec![Expected {
            code: "E105".into(),
            location: missing.display().to_string(),
        }],
        messages: vec!["cannot read scene file".into()],
        engine_bug: None,
    };
    if let Some(report) = exercise(&case, &missing) {
        panic!("a nonexistent scene file:\n{report}");
    }
}

#[test]
fn a_directory_is_not_a_scene_file_e105() {
    let dir = catalogue_dir();
    let case = Case {
        path: dir.clone(),
        name: "tests/malformed/ (a directory)".into(),
        expected: vec![Expected {
            code: "E105".into(),
            location: dir.display().to_string(),
        }],
        messages: vec!["cannot read scene file".into()],
        engine_bug: None,
    };
    if let Some(report) = exercise(&case, &dir) {
        panic!("a directory given as the scene:\n{report}");
    }
}
