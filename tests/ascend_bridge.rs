//! The Ascend bridge (§12, `src/device/ascend.rs`): every way the device can be missing is a
//! typed refusal naming what is missing, and against a mock pto-runtime library (built here from
//! `tests/mock_pto/mock_pto.c` with the system C compiler) the bridge makes the pinned C API's
//! calls in the documented order, checks every return code and copies the results back.

mod common;

use std::path::Path;
use tapwheel::device::ascend::{BridgeRefusal, check_ascend};

/// A scene on the Ascend device with the given library and device id.
fn ascend_scene(library: &Path, device_id: u32) -> String {
    format!(
        r#"Scene(version: 1, name: "on_ascend",
  nodes: [
    Node(name: "src", kernel: Ramp(start: 0.0, step: 1.0), period: Some(1), count: Some(2)),
    Node(name: "out", kernel: Probe),
  ],
  edges: [Edge(from: "src.out", to: "out.in")],
  device: Ascend(library: "{}", device_id: {device_id}),
)"#,
        library.display()
    )
}

/// Runs `tapwheel run` on a scene written to a temporary file.
fn run_scene_text(name: &str, text: &str) -> (i32, String, String) {
    let dir = common::out_dir(name);
    std::fs::create_dir_all(&dir).expect("test dir");
    let scene = dir.join("scene.ron");
    std::fs::write(&scene, text).expect("scene written");
    let out = dir.join("out");
    common::cli(&[
        "run",
        scene.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ])
}

#[test]
fn a_missing_library_is_refused_naming_the_path() {
    let path = Path::new("/nonexistent/libpto.so");
    let refused = check_ascend(path, 0).unwrap_err();
    if cfg!(not(feature = "ascend")) {
        assert_eq!(refused, BridgeRefusal::FeatureNotBuilt);
        return;
    }
    assert_eq!(
        refused,
        BridgeRefusal::LibraryNotFound {
            path: path.to_path_buf()
        }
    );
    assert_eq!(refused.code(), "R360");
    let text = refused.diagnostic_at("device").to_string();
    assert!(
        text.starts_with(
            "refused[R360]: the pto-runtime library `/nonexistent/libpto.so` was not found"
        ),
        "{text}"
    );
    assert!(text.contains("--> device"), "{text}");
    // A refusal is an exit-4 error.
    assert_eq!(tapwheel::Error::from(refused).exit_code(), 4);
}

#[test]
fn the_cli_refuses_a_scene_whose_library_is_missing() {
    let (code, stdout, stderr) = run_scene_text(
        "ascend_missing_library",
        &ascend_scene(Path::new("/nonexistent/libpto.so"), 0),
    );
    assert_eq!(code, 4, "{stdout}{stderr}");
    let expected = if cfg!(feature = "ascend") {
        "refused[R360]: the pto-runtime library `/nonexistent/libpto.so` was not found"
    } else {
        "refused[R363]: the Ascend device is not in this build"
    };
    assert!(stderr.contains(expected), "{stderr}");
    assert!(stderr.contains("--> device"), "{stderr}");
    assert!(
        !stderr.contains("R305"),
        "the bridge's reason, not the generic one: {stderr}"
    );
}

#[cfg(not(feature = "ascend"))]
#[test]
fn without_the_feature_the_device_is_refused_naming_the_feature() {
    let refused = check_ascend(Path::new("/any/libpto.so"), 0).unwrap_err();
    assert_eq!(refused.code(), "R363");
    assert!(refused.to_string().contains("cargo feature `ascend`"));
}

#[cfg(feature = "ascend")]
mod with_the_bridge {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use tapwheel::device::ascend::{
        AscendBridge, AscendError, Call, KernelBinary, REQUIRED_SYMBOLS, RuntimeVariant, TaskGraph,
        Tensor,
    };

    fn c_compiler() -> String {
        std::env::var("CC").unwrap_or_else(|_| "cc".into())
    }

    fn have_c_compiler() -> bool {
        Command::new(c_compiler())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Builds the mock library into a file of its own (`name` unique per test), so every test
    /// loads its own instance with its own call log. `None` (with a printed note) without a C
    /// compiler; `c_compiler_is_available` makes that a failure where one is expected.
    fn mock(name: &str, defines: &[&str]) -> Option<PathBuf> {
        if !have_c_compiler() {
            eprintln!(
                "NOTE: skipping {name}: no C compiler (`{}`) to build the mock pto-runtime library",
                c_compiler()
            );
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mock_pto");
        std::fs::create_dir_all(&dir).expect("mock dir");
        let out = dir.join(format!("lib{name}_{}.so", std::process::id()));
        let src = common::repo().join("tests/mock_pto/mock_pto.c");
        let status = Command::new(c_compiler())
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .args(defines)
            .status()
            .expect("the C compiler runs");
        assert!(status.success(), "building the mock failed");
        Some(out)
    }

    /// The mock's own view: its call log and live allocations, read through its test hooks.
    struct MockView {
        lib: libloading::Library,
    }

    impl MockView {
        fn open(path: &Path) -> MockView {
            // SAFETY: the mock library built above; its initialisers do nothing.
            let lib = unsafe { libloading::Library::new(path) }.expect("mock loads");
            MockView { lib }
        }

        fn log(&self) -> Vec<String> {
            type Log = unsafe extern "C" fn(*mut std::os::raw::c_char, usize) -> usize;
            // SAFETY: `mock_call_log(char*, size_t) -> size_t` as defined in mock_pto.c.
            let f = unsafe { self.lib.get::<Log>("mock_call_log") }.expect("hook");
            let mut buf = vec![0u8; 16384];
            // SAFETY: `buf` is writable for its whole length, which is passed as the capacity.
            let n = unsafe { f(buf.as_mut_ptr().cast(), buf.len()) };
            buf.truncate(n.min(buf.len() - 1));
            String::from_utf8(buf)
                .expect("ASCII log")
                .lines()
                .map(str::to_string)
                .collect()
        }

        fn fail(&self, call: &str, rc: i32) {
            type Fail = unsafe extern "C" fn(*const std::os::raw::c_char, std::os::raw::c_int);
            let name = std::ffi::CString::new(call).expect("no NUL");
            // SAFETY: `mock_fail(const char*, int)` as defined in mock_pto.c; `name` is a live
            // NUL-terminated string that the mock copies.
            unsafe {
                let f = self.lib.get::<Fail>("mock_fail").expect("hook");
                f(name.as_ptr(), rc)
            }
        }

        fn live_allocations(&self) -> std::os::raw::c_long {
            type Live = unsafe extern "C" fn() -> std::os::raw::c_long;
            // SAFETY: `mock_live_allocations(void) -> long` as defined in mock_pto.c.
            unsafe {
                let f = self.lib.get::<Live>("mock_live_allocations").expect("hook");
                f()
            }
        }
    }

    const ORCH: &[u8] = b"ORCH";
    const KERNEL_ADD: &[u8] = b"kernel-add";
    const KERNEL_MUL: &[u8] = b"kmul";

    fn graph<'a>(kernels: &'a [KernelBinary<'a>]) -> TaskGraph<'a> {
        TaskGraph {
            variant: RuntimeVariant::HostBuildGraph,
            orchestration: ORCH,
            orchestration_entry: "build_tapwheel_graph",
            kernels,
            aicpu_binary: b"AICP",
            aicore_binary: b"AICOR",
            aicpu_thread_num: 3,
            block_dim: 2,
            orch_thread_num: 1,
            scalars: &[42],
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    const KERNELS: [KernelBinary<'static>; 2] = [
        KernelBinary {
            func_id: 0,
            binary: KERNEL_ADD,
        },
        KernelBinary {
            func_id: 1,
            binary: KERNEL_MUL,
        },
    ];

    /// The calls made before any failure, as the mock logs them.
    const PROLOGUE: [&str; 6] = [
        "set_device(0)",
        "get_runtime_size",
        "device_malloc(16)",
        "device_malloc(16)",
        "device_malloc(16)",
        "copy_to_device(16)",
    ];

    #[test]
    fn c_compiler_is_available() {
        // The mock tests skip (with a note) without a C compiler; on the project's machines
        // (and CI) there is one, so its absence is an error unless explicitly waived.
        if std::env::var_os("TAPWHEEL_NO_CC").is_some() {
            eprintln!("NOTE: TAPWHEEL_NO_CC is set: the mock pto-runtime tests may skip");
            return;
        }
        assert!(
            have_c_compiler(),
            "no C compiler `{}`: the Ascend bridge tests need one to build their mock library (set TAPWHEEL_NO_CC=1 to let them skip)",
            c_compiler()
        );
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused_as_not_loadable() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mock_pto");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("libgarbage_{}.so", std::process::id()));
        std::fs::write(&path, b"this is not an ELF file").expect("written");
        let refused = AscendBridge::open(&path, 0).unwrap_err();
        assert!(
            matches!(&refused, BridgeRefusal::LibraryNotLoadable { path: p, .. } if *p == path),
            "{refused:?}"
        );
        assert_eq!(refused.code(), "R360");
        assert!(
            refused.to_string().contains("cannot be loaded"),
            "{refused}"
        );
    }

    #[test]
    fn a_library_missing_symbols_is_refused_naming_the_first_missing_one() {
        let Some(lib) = mock("partial", &["-DMOCK_PARTIAL"]) else {
            return;
        };
        let view = MockView::open(&lib);
        let refused = AscendBridge::open(&lib, 0).unwrap_err();
        let BridgeRefusal::SymbolsMissing {
            library,
            missing,
            foreign,
        } = &refused
        else {
            panic!("expected SymbolsMissing, got {refused:?}");
        };
        assert_eq!(library, &lib);
        // In the order the bridge needs them: `copy_to_device` is the first one absent.
        assert_eq!(
            missing,
            &[
                "copy_to_device",
                "init_runtime",
                "launch_runtime",
                "copy_from_device",
                "finalize_runtime"
            ]
        );
        assert!(foreign.is_empty());
        assert_eq!(refused.code(), "R361");
        let text = refused.to_string();
        assert!(
            text.starts_with(&format!(
                "the pto-runtime library `{}` lacks symbols `copy_to_device`, ",
                lib.display()
            )),
            "{text}"
        );
        assert!(
            text.contains("hw-native-sys/simpler@f5cb8163c7b6"),
            "{text}"
        );
        // Nothing was called: the symbols are resolved before the device is touched.
        assert!(view.log().is_empty());
    }

    #[test]
    fn a_library_of_a_later_api_family_is_refused() {
        let Some(lib) = mock("later_family", &["-DMOCK_LATER_FAMILY"]) else {
            return;
        };
        let view = MockView::open(&lib);
        let refused = AscendBridge::open(&lib, 0).unwrap_err();
        assert_eq!(
            refused,
            BridgeRefusal::ForeignApiFamily {
                library: lib.clone(),
                foreign: vec!["run_runtime"],
            }
        );
        assert_eq!(refused.code(), "R364");
        assert!(view.log().is_empty(), "never called");
    }

    #[test]
    fn an_unavailable_device_is_refused_with_the_return_code() {
        let Some(lib) = mock("device7", &[]) else {
            return;
        };
        // Held open throughout: the mock's log lives as long as the library stays loaded.
        let view = MockView::open(&lib);
        let refused = AscendBridge::open(&lib, 7).unwrap_err();
        assert_eq!(refused.code(), "R362");
        assert_eq!(
            refused.to_string(),
            "no Ascend device 7: set_device returned -7"
        );
        assert_eq!(check_ascend(&lib, 7).unwrap_err(), refused);
        assert_eq!(view.log(), ["set_device(7)", "set_device(7)"]);
        // An id the C API's `int` cannot carry is refused before any call.
        let refused = AscendBridge::open(&lib, u32::MAX).unwrap_err();
        assert_eq!(refused.code(), "R362");
        assert_eq!(view.log().len(), 2);
    }

    #[test]
    fn the_full_call_sequence_runs_in_order_and_copies_the_results_back() {
        let Some(lib) = mock("full", &[]) else {
            return;
        };
        let view = MockView::open(&lib);
        let mut bridge = AscendBridge::open(&lib, 0).expect("the mock opens on device 0");
        assert_eq!(bridge.library(), lib);
        assert_eq!(bridge.device_id(), 0);
        let a = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
        let b = f32_bytes(&[10.0, 20.0, 30.0, 40.5]);
        let mut out = vec![0u8; 16];
        let run = bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&b),
                    Tensor::Output(&mut out),
                ],
            )
            .expect("the run succeeds");
        let mut expected: Vec<&str> = PROLOGUE.to_vec();
        expected.extend([
            "copy_to_device(16)",
            // 3 tensors × (address, length) + 1 scalar, all passed as ARG_SCALAR.
            "init_runtime(orch=4:ORCH,entry=build_tapwheel_graph,args=7,scalar_types=1,kernels=[0:10,1:4])",
            "launch_runtime(aicpu_threads=3,block_dim=2,device=0,aicpu=4,aicore=5,orch_threads=1,round=0)",
            "copy_from_device(16)",
            "finalize_runtime",
            "device_free",
            "device_free",
            "device_free",
        ]);
        assert_eq!(view.log(), expected);
        assert_eq!(view.live_allocations(), 0, "every device buffer freed");
        // The bytes copied back are the mock device's a + b.
        assert_eq!(out, f32_bytes(&[11.0, 22.0, 33.0, 44.5]));
        // The bridge's own record: the same calls (after set_device) with their return codes.
        assert_eq!(run.runtime_size, 1000);
        let names: Vec<&str> = run.calls.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "get_runtime_size",
                "device_malloc",
                "device_malloc",
                "device_malloc",
                "copy_to_device",
                "copy_to_device",
                "init_runtime",
                "launch_runtime",
                "copy_from_device",
                "finalize_runtime",
                "device_free",
                "device_free",
                "device_free"
            ]
        );
        assert!(run.calls.iter().all(|c| c.rc.is_none_or(|rc| rc == 0)));
        assert!(run.calls.contains(&Call {
            name: "launch_runtime",
            rc: Some(0)
        }));
        // Every required symbol was used.
        for s in REQUIRED_SYMBOLS {
            assert!(
                s == "set_device" || names.contains(&s),
                "{s} not called in {names:?}"
            );
        }

        // The bridge runs again on the same device (a new runtime each time).
        let mut inout = f32_bytes(&[0.5; 4]);
        bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&b),
                    Tensor::InOut(&mut inout),
                ],
            )
            .expect("second run");
        assert_eq!(inout, f32_bytes(&[11.0, 22.0, 33.0, 44.5]));
        assert_eq!(view.live_allocations(), 0);
    }

    #[test]
    fn a_failed_launch_names_the_call_and_still_finalizes_and_frees() {
        let Some(lib) = mock("launch_fails", &[]) else {
            return;
        };
        let view = MockView::open(&lib);
        let mut bridge = AscendBridge::open(&lib, 0).expect("opens");
        view.fail("launch_runtime", -3);
        let a = f32_bytes(&[1.0; 4]);
        let mut out = vec![7u8; 16];
        let err = bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&a),
                    Tensor::Output(&mut out),
                ],
            )
            .unwrap_err();
        assert_eq!(
            err,
            AscendError::CallFailed {
                call: "launch_runtime",
                rc: -3
            }
        );
        assert_eq!(err.code(), "E430");
        assert_eq!(
            err.to_string(),
            "pto-runtime call `launch_runtime` failed: it returned -3"
        );
        let log = view.log();
        let tail: Vec<&str> = log.iter().rev().take(4).rev().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "finalize_runtime",
                "device_free",
                "device_free",
                "device_free"
            ]
        );
        assert!(!log.iter().any(|l| l.starts_with("copy_from_device")));
        assert_eq!(out, vec![7u8; 16], "nothing copied back");
        assert_eq!(view.live_allocations(), 0);
    }

    #[test]
    fn a_failed_init_is_not_finalized_but_its_buffers_are_freed() {
        let Some(lib) = mock("init_fails", &[]) else {
            return;
        };
        let view = MockView::open(&lib);
        let mut bridge = AscendBridge::open(&lib, 0).expect("opens");
        view.fail("init_runtime", -1);
        let a = f32_bytes(&[1.0; 4]);
        let mut out = vec![0u8; 16];
        let err = bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&a),
                    Tensor::Output(&mut out),
                ],
            )
            .unwrap_err();
        assert_eq!(
            err,
            AscendError::CallFailed {
                call: "init_runtime",
                rc: -1
            }
        );
        let log = view.log();
        assert!(!log.iter().any(|l| l == "finalize_runtime"), "{log:?}");
        assert_eq!(log.iter().filter(|l| *l == "device_free").count(), 3);
        assert_eq!(view.live_allocations(), 0);
    }

    #[test]
    fn device_memory_exhaustion_and_a_failed_copy_back_are_errors_naming_the_call() {
        let Some(lib) = mock("malloc_fails", &[]) else {
            return;
        };
        let view = MockView::open(&lib);
        let mut bridge = AscendBridge::open(&lib, 0).expect("opens");
        let a = f32_bytes(&[1.0; 4]);
        let mut out = vec![0u8; 16];

        view.fail("device_malloc", 1);
        let err = bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&a),
                    Tensor::Output(&mut out),
                ],
            )
            .unwrap_err();
        assert_eq!(
            err,
            AscendError::OutOfDeviceMemory {
                tensor: 0,
                bytes: 16
            }
        );
        assert_eq!(err.code(), "E430");
        assert_eq!(
            view.log(),
            ["set_device(0)", "get_runtime_size", "device_malloc(16)"]
        );

        view.fail("copy_from_device", -9);
        let err = bridge
            .run_task_graph(
                &graph(&KERNELS),
                &mut [
                    Tensor::Input(&a),
                    Tensor::Input(&a),
                    Tensor::Output(&mut out),
                ],
            )
            .unwrap_err();
        assert_eq!(
            err,
            AscendError::CallFailed {
                call: "copy_from_device",
                rc: -9
            }
        );
        let log = view.log();
        assert_eq!(log.last().map(String::as_str), Some("device_free"));
        assert!(log.iter().any(|l| l == "finalize_runtime"));
        assert_eq!(view.live_allocations(), 0);
    }

    #[test]
    fn a_graph_the_c_api_cannot_take_is_refused_before_any_call() {
        let Some(lib) = mock("invalid_graph", &[]) else {
            return;
        };
        let view = MockView::open(&lib);
        let mut bridge = AscendBridge::open(&lib, 0).expect("opens");
        let a = f32_bytes(&[1.0; 4]);
        let mut g = graph(&KERNELS);
        g.aicpu_binary = b"";
        let err = bridge
            .run_task_graph(&g, &mut [Tensor::Input(&a)])
            .unwrap_err();
        assert_eq!(err.code(), "E431");
        assert_eq!(
            err.to_string(),
            "the task graph cannot be passed to pto-runtime: the AICPU binary is empty"
        );
        let mut g = graph(&KERNELS);
        g.orchestration_entry = "bad\0name";
        let err = bridge
            .run_task_graph(&g, &mut [Tensor::Input(&a)])
            .unwrap_err();
        assert_eq!(err.code(), "E431");
        let err = bridge
            .run_task_graph(&graph(&KERNELS), &mut [Tensor::Input(&[])])
            .unwrap_err();
        assert_eq!(err, AscendError::InvalidGraph("tensor 0 is empty".into()));
        assert_eq!(view.log(), ["set_device(0)"]);
    }

    #[test]
    fn the_cli_refuses_an_unavailable_device_and_an_unwired_available_one() {
        let Some(lib) = mock("cli_device", &[]) else {
            return;
        };
        let (code, _, stderr) = run_scene_text("ascend_device_7", &ascend_scene(&lib, 7));
        assert_eq!(code, 4, "{stderr}");
        assert!(
            stderr.contains("refused[R362]: no Ascend device 7: set_device returned -7"),
            "{stderr}"
        );
        // With a device the bridge opens, the scene is still refused — running a scene on
        // Ascend needs its package — and never run on another device instead.
        let (code, stdout, stderr) = run_scene_text("ascend_device_0", &ascend_scene(&lib, 0));
        assert_eq!(code, 4, "{stdout}{stderr}");
        assert!(
            stderr.contains("refused[R305]: Ascend device 0 is available"),
            "{stderr}"
        );
        assert!(!stdout.contains("completed"), "{stdout}");
    }

    #[test]
    fn runtime_variants_round_trip() {
        for v in [
            RuntimeVariant::HostBuildGraph,
            RuntimeVariant::AicpuBuildGraph,
            RuntimeVariant::TensormapAndRingbuffer,
        ] {
            assert_eq!(RuntimeVariant::parse(v.as_str()), Some(v));
        }
        assert_eq!(RuntimeVariant::parse("tensormap"), None);
    }
}
