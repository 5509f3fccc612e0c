//! Thermal state (SPEC §14) against closed forms: constant work power
//! `T(t) = T_amb + P·R·(1 − e^{−t/RC})`, input-energy impulses decaying with `τ = R·C`, the
//! analytic two-node coupled solution (symmetric, and a general pair checked against an
//! independent 2×2 matrix exponential), energy bookkeeping, throttle timing by hand-computed
//! ticks, and temperature never touching token values.

mod common;
use common::*;
use serde_json::Value;
use tapwheel::scene::DeviceSpec;
use tapwheel::{Engine, Outcome, RunOptions, Scene};

fn report(e: &Engine) -> Value {
    serde_json::from_str(&e.report().to_json_pretty()).expect("report is JSON")
}

fn thermal(e: &Engine, node: &str, field: &str) -> f64 {
    report(e)["thermal"]["nodes"][node][field]
        .as_f64()
        .unwrap_or_else(|| panic!("thermal.nodes.{node}.{field} in {}", report(e)["thermal"]))
}

/// `|got − want| ≤ rel·scale`, with `scale` the size of the quantity (a temperature rise).
fn close(got: f64, want: f64, scale: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * scale.abs().max(1e-300),
        "{what}: got {got:.15}, want {want:.15} (diff {:e}, allowed {:e})",
        got - want,
        rel * scale.abs()
    );
}

/// One source firing at tick 0 into `w`, busy for `latency` ticks with 2 W; C = 0.5 J/K,
/// R = 20 K/W (τ = 10 s), 100 ticks per second. `clock` keeps the run going (to tick 100000)
/// so `until` decides where it ends and the report's `final` is read there.
fn one_long_firing() -> Scene {
    parse(
        r#"Scene(version: 1, name: "power", tick_hz: 100.0,
        nodes: [
            Node(name: "src", kernel: Const(value: 0.0), count: Some(1)),
            Node(name: "w", kernel: Gain(gain: 1.0), latency: 3000,
                 thermal: Some((capacity: 0.5, resistance: 20.0, ambient: 300.0, input_coeff: 0.0, work_power: 2.0))),
            Node(name: "out", kernel: Probe),
            Node(name: "clock", kernel: Const(value: 0.0), period: Some(100000), count: Some(2)),
            Node(name: "clk", kernel: Probe),
        ],
        edges: [Edge(from: "clock.out", to: "clk.in"), Edge(from: "src.out", to: "w.in"), Edge(from: "w.out", to: "out.in")])"#,
    )
}

#[test]
fn constant_work_power_follows_the_closed_form() {
    let scene = one_long_firing();
    // P·R = 40 K; τ = 10 s; the firing is busy for 30 s.
    let rise = |t: f64| 40.0 * (1.0 - (-t / 10.0).exp());
    for until in [1u64, 100, 500, 1000, 2500, 2999, 3000] {
        let (o, e) = run_until(&scene, until);
        assert_eq!(o, Outcome::LimitReached);
        let want = 300.0 + rise(until as f64 / 100.0);
        close(
            thermal(&e, "w", "final"),
            want,
            want - 300.0,
            1e-12,
            &format!("T({until})"),
        );
        // Heating is monotone: the peak is the final value.
        close(thermal(&e, "w", "peak"), want, want - 300.0, 1e-12, "peak");
        assert_eq!(e.temperature("w"), Some(thermal(&e, "w", "final")));
    }
    // After the work ends (30 s) the excess decays with τ: 20 s later e^{-2} of it is left.
    let (_, e) = run_until(&scene, 5000);
    let want = 300.0 + rise(30.0) * (-2.0f64).exp();
    close(
        thermal(&e, "w", "final"),
        want,
        want - 300.0,
        1e-12,
        "decay",
    );
    close(
        thermal(&e, "w", "peak"),
        300.0 + rise(30.0),
        rise(30.0),
        1e-12,
        "peak at the end of the work",
    );
    // Heat in = 2 W × 30 s.
    close(thermal(&e, "w", "heat_in_j"), 60.0, 60.0, 1e-12, "heat in");
}

#[test]
fn back_to_back_firings_publish_the_closed_form_on_the_temp_tap() {
    // Firings every 10 ticks (0.1 s), each busy 10 ticks: the work is continuous, so the k-th
    // firing (at 0.1·k s) publishes T_amb + P·R·(1 − e^{−0.1k/τ}) on `temp`, recorded when the
    // firing completes (tick 10k + 10).
    let scene = parse(
        r#"Scene(version: 1, name: "temp_tap", tick_hz: 100.0,
        nodes: [
            Node(name: "src", kernel: Const(value: 0.0), period: Some(10), count: Some(50)),
            Node(name: "w", kernel: Gain(gain: 1.0), latency: 10,
                 thermal: Some((capacity: 0.5, resistance: 20.0, ambient: 300.0, input_coeff: 0.0, work_power: 2.0))),
            Node(name: "out", kernel: Probe),
            Node(name: "temp", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "w.in"), Edge(from: "w.out", to: "out.in"),
                Edge(from: "w.temp", to: "temp.in", lane: Telemetry)])"#,
    );
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::Completed);
    let s = stream(&e, "temp");
    assert_eq!(s.len(), 50);
    for (k, &(tick, seq, v)) in s.iter().enumerate() {
        assert_eq!((tick, seq), (10 * k as u64 + 10, k as u64));
        let want = 300.0 + 40.0 * (1.0 - (-(k as f64) * 0.1 / 10.0).exp());
        // The token is f32: within half an ulp at 300 K (3e-5).
        assert!((f64::from(v) - want).abs() < 4e-5, "k={k}: {v} vs {want}");
    }
    // The run ends at tick 500, when the last firing completes: 5 s of continuous work.
    assert_eq!(e.report().end_tick, 500);
    let want = 300.0 + 40.0 * (1.0 - (-0.5f64).exp());
    close(
        thermal(&e, "w", "final"),
        want,
        want - 300.0,
        1e-12,
        "final",
    );
}

#[test]
fn input_energy_impulses_decay_with_tau_rc() {
    // x = 1, 2, 3, 4 at ticks 0, 7, 14, 21 (1 tick = 1 s); each firing deposits 0.5·x² J into
    // C = 2 J/K: a jump of x²/4 K, decaying with τ = R·C = 10 s.
    let scene = parse(
        r#"Scene(version: 1, name: "impulses",
        nodes: [
            Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(7), count: Some(4)),
            Node(name: "w", kernel: Gain(gain: 3.0),
                 thermal: Some((capacity: 2.0, resistance: 5.0, ambient: 290.0, input_coeff: 0.5, work_power: 0.0))),
            Node(name: "out", kernel: Probe),
            Node(name: "temp", kernel: Probe),
            Node(name: "clock", kernel: Const(value: 0.0), period: Some(100000), count: Some(2)),
            Node(name: "clk", kernel: Probe),
        ],
        edges: [Edge(from: "clock.out", to: "clk.in"), Edge(from: "src.out", to: "w.in"), Edge(from: "w.out", to: "out.in"),
                Edge(from: "w.temp", to: "temp.in")],
        run: (until: Some(40)))"#,
    );
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::LimitReached);
    let mut u = 0.0f64;
    let mut published = Vec::new();
    for k in 0..4 {
        if k > 0 {
            u *= (-7.0f64 / 10.0).exp();
        }
        let x = (k + 1) as f64;
        u += 0.5 * x * x / 2.0;
        published.push(290.0 + u);
    }
    let s = stream(&e, "temp");
    assert_eq!(
        s.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![0, 7, 14, 21]
    );
    for (got, want) in s.iter().zip(&published) {
        assert!((f64::from(got.2) - want).abs() < 4e-5, "{got:?} vs {want}");
    }
    // Peak just after the last deposit; final after 19 s more of decay.
    close(thermal(&e, "w", "peak"), published[3], u, 1e-12, "peak");
    let want = 290.0 + u * (-19.0f64 / 10.0).exp();
    close(
        thermal(&e, "w", "final"),
        want,
        want - 290.0,
        1e-12,
        "final",
    );
    // Heat in = 0.5·(1 + 4 + 9 + 16) J.
    close(thermal(&e, "w", "heat_in_j"), 15.0, 15.0, 1e-15, "heat in");
    // Token values are untouched: 3·x.
    assert_eq!(values(&e, "out"), vec![3.0, 6.0, 9.0, 12.0]);
}

/// `a` takes a 16 J impulse at tick 0; `b` (no heat of its own) is coupled to it by `g` W/K.
fn pair(extra_a: &str, extra_b: &str, g: f64, tick_hz: f64) -> Scene {
    parse(&format!(
        r#"Scene(version: 1, name: "pair", tick_hz: {tick_hz:?},
        nodes: [
            Node(name: "src", kernel: Const(value: 4.0), count: Some(1)),
            Node(name: "a", kernel: Gain(gain: 1.0), thermal: Some(({extra_a}))),
            Node(name: "b", kernel: Gain(gain: 1.0), thermal: Some(({extra_b}))),
            Node(name: "out", kernel: Probe),
            Node(name: "clock", kernel: Const(value: 0.0), period: Some(100000), count: Some(2)),
            Node(name: "clk", kernel: Probe),
        ],
        edges: [Edge(from: "clock.out", to: "clk.in"), Edge(from: "src.out", to: "a.in"), Edge(from: "a.out", to: "b.in"),
                Edge(from: "b.out", to: "out.in")],
        thermal_links: [ThermalLink(a: "a", b: "b", conductance: {g:?})])"#
    ))
}

#[test]
fn two_identical_coupled_nodes_match_the_analytic_solution() {
    // C = 1, R = 10, G = 0.3: the sum mode decays at 1/(RC) = 0.1/s, the difference mode at
    // (1 + 2GR)/(RC) = 0.7/s. With u_a(0) = 16, u_b(0) = 0:
    // u_a = 8(e^{−0.1t} + e^{−0.7t}), u_b = 8(e^{−0.1t} − e^{−0.7t}).
    let a = "capacity: 1.0, resistance: 10.0, ambient: 300.0, input_coeff: 1.0, work_power: 0.0";
    let b = "capacity: 1.0, resistance: 10.0, ambient: 300.0, input_coeff: 0.0, work_power: 0.0";
    let scene = pair(a, b, 0.3, 10.0);
    for until in [1u64, 5, 20, 32, 100, 400] {
        let (_, e) = run_until(&scene, until);
        let t = until as f64 / 10.0;
        let (s, d) = ((-0.1 * t).exp(), (-0.7 * t).exp());
        let (ua, ub) = (8.0 * (s + d), 8.0 * (s - d));
        close(thermal(&e, "a", "final") - 300.0, ua, ua, 1e-6, "u_a");
        close(thermal(&e, "b", "final") - 300.0, ub, ub, 1e-6, "u_b");
        // The method is exact, far inside the 1e-6 the spec asks for.
        close(
            thermal(&e, "a", "final") - 300.0,
            ua,
            ua,
            1e-12,
            "u_a exact",
        );
        close(
            thermal(&e, "b", "final") - 300.0,
            ub,
            ub,
            1e-12,
            "u_b exact",
        );
    }
    // b peaks between events, at t* = ln(0.7/0.1)/(0.7 − 0.1).
    let (_, e) = run_until(&scene, 1000);
    let t = 7.0f64.ln() / 0.6;
    let peak = 8.0 * ((-0.1 * t).exp() - (-0.7 * t).exp());
    close(
        thermal(&e, "b", "peak") - 300.0,
        peak,
        peak,
        1e-9,
        "b's peak",
    );
    close(thermal(&e, "a", "peak"), 316.0, 16.0, 1e-15, "a's peak");
    // Energy through the link is conserved.
    let ca = thermal(&e, "a", "coupled_in_j");
    let cb = thermal(&e, "b", "coupled_in_j");
    assert!(ca < 0.0 && cb > 0.0);
    close(ca + cb, 0.0, 16.0, 1e-12, "link conserves heat");
}

/// `e^{At}` of a 2×2 matrix with distinct real eigenvalues (Sylvester's formula), row-major.
fn expm2(a: [f64; 4], t: f64) -> [f64; 4] {
    let tr = a[0] + a[3];
    let det = a[0] * a[3] - a[1] * a[2];
    let disc = (tr * tr / 4.0 - det).sqrt();
    let (m1, m2) = (tr / 2.0 + disc, tr / 2.0 - disc);
    let (e1, e2) = ((m1 * t).exp(), (m2 * t).exp());
    let k = 1.0 / (m1 - m2);
    [
        k * (e1 * (a[0] - m2) - e2 * (a[0] - m1)),
        k * (e1 - e2) * a[1],
        k * (e1 - e2) * a[2],
        k * (e1 * (a[3] - m2) - e2 * (a[3] - m1)),
    ]
}

/// The state `u = T − T_amb` of the general pair after `t` seconds at constant powers `p`,
/// from `du/dt = A·u + c`, `A = −C⁻¹(D + K)`, `c = C⁻¹(P − K·T_amb)`.
fn pair_closed_form(
    c: [f64; 2],
    r: [f64; 2],
    amb: [f64; 2],
    g: f64,
    p: [f64; 2],
    u0: [f64; 2],
    t: f64,
) -> [f64; 2] {
    let a = [
        -(1.0 / r[0] + g) / c[0],
        g / c[0],
        g / c[1],
        -(1.0 / r[1] + g) / c[1],
    ];
    let kt = [g * (amb[0] - amb[1]), g * (amb[1] - amb[0])];
    let cv = [(p[0] - kt[0]) / c[0], (p[1] - kt[1]) / c[1]];
    // u∞ = −A⁻¹·c
    let det = a[0] * a[3] - a[1] * a[2];
    let inv = [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det];
    let uinf = [
        -(inv[0] * cv[0] + inv[1] * cv[1]),
        -(inv[2] * cv[0] + inv[3] * cv[1]),
    ];
    let e = expm2(a, t);
    let d = [u0[0] - uinf[0], u0[1] - uinf[1]];
    [
        uinf[0] + e[0] * d[0] + e[1] * d[1],
        uinf[1] + e[2] * d[0] + e[3] * d[1],
    ]
}

#[test]
fn a_general_coupled_pair_matches_an_independent_matrix_exponential() {
    // Unequal capacities, resistances and ambients; `a` also works at 3 W for 20 s (200 ticks
    // at 10 ticks/s) after a 16 J impulse. Checked against Sylvester's e^{At}, piecewise.
    let scene = parse(
        r#"Scene(version: 1, name: "pair2", tick_hz: 10.0,
        nodes: [
            Node(name: "src", kernel: Const(value: 4.0), count: Some(1)),
            Node(name: "a", kernel: Gain(gain: 1.0), latency: 200,
                 thermal: Some((capacity: 0.5, resistance: 20.0, ambient: 300.0, input_coeff: 1.0, work_power: 3.0))),
            Node(name: "b", kernel: Gain(gain: 1.0),
                 thermal: Some((capacity: 2.0, resistance: 5.0, ambient: 310.0, input_coeff: 0.0, work_power: 0.0))),
            Node(name: "out", kernel: Probe),
            Node(name: "clock", kernel: Const(value: 0.0), period: Some(100000), count: Some(2)),
            Node(name: "clk", kernel: Probe),
        ],
        edges: [Edge(from: "clock.out", to: "clk.in"), Edge(from: "src.out", to: "a.in"), Edge(from: "a.out", to: "b.in"),
                Edge(from: "b.out", to: "out.in")],
        thermal_links: [ThermalLink(a: "a", b: "b", conductance: 0.25)])"#,
    );
    let (c, r, amb, g) = ([0.5, 2.0], [20.0, 5.0], [300.0, 310.0], 0.25);
    let u0 = [16.0 / 0.5, 0.0];
    let at_end_of_work = pair_closed_form(c, r, amb, g, [3.0, 0.0], u0, 20.0);
    for until in [3u64, 50, 199, 200, 260, 900] {
        let (_, e) = run_until(&scene, until);
        let t = until as f64 / 10.0;
        let u = if t <= 20.0 {
            pair_closed_form(c, r, amb, g, [3.0, 0.0], u0, t)
        } else {
            pair_closed_form(c, r, amb, g, [0.0, 0.0], at_end_of_work, t - 20.0)
        };
        let scale = u[0].abs().max(u[1].abs());
        close(thermal(&e, "a", "final") - 300.0, u[0], scale, 1e-9, "u_a");
        close(thermal(&e, "b", "final") - 310.0, u[1], scale, 1e-9, "u_b");
    }
}

#[test]
fn energy_is_booked_exactly() {
    // Three coupled nodes with unequal ambients, impulses and work, plus an uncoupled one:
    // heat in = stored + dissipated over the network (and per node, with the links' flow).
    let scene = parse(
        r#"Scene(version: 1, name: "energy", tick_hz: 1000.0,
        nodes: [
            Node(name: "src", kernel: Sine(freq_hz: 3.0, amp: 2.0, phase: 0.25), period: Some(37), count: Some(60)),
            Node(name: "a", kernel: Gain(gain: 1.5), latency: 23,
                 thermal: Some((capacity: 0.2, resistance: 30.0, ambient: 295.0, input_coeff: 0.01, work_power: 1.5))),
            Node(name: "b", kernel: Map(op: Tanh), latency: 11,
                 thermal: Some((capacity: 0.7, resistance: 12.0, ambient: 300.0, input_coeff: 0.02, work_power: 0.8))),
            Node(name: "c", kernel: Gain(gain: -1.0), latency: 5,
                 thermal: Some((capacity: 1.3, resistance: 8.0, ambient: 305.0, input_coeff: 0.05, work_power: 2.5))),
            Node(name: "d", kernel: Gain(gain: 2.0), latency: 3,
                 thermal: Some((capacity: 0.05, resistance: 100.0, ambient: 300.0, input_coeff: 0.3, work_power: 0.4))),
            Node(name: "out", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "a.in"), Edge(from: "a.out", to: "b.in"),
                Edge(from: "b.out", to: "c.in"), Edge(from: "c.out", to: "d.in"),
                Edge(from: "d.out", to: "out.in")],
        thermal_links: [ThermalLink(a: "a", b: "b", conductance: 0.05),
                        ThermalLink(a: "b", b: "c", conductance: 0.02),
                        ThermalLink(a: "c", b: "a", conductance: 0.01)],
        run: (until: Some(4000)))"#,
    );
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::Completed);
    let j = report(&e);
    let total = &j["thermal"]["energy"];
    let (heat, stored, lost) = (
        total["heat_in_j"].as_f64().unwrap(),
        total["stored_j"].as_f64().unwrap(),
        total["dissipated_j"].as_f64().unwrap(),
    );
    assert!(heat > 1.0, "{heat}");
    close(stored + lost, heat, heat, 1e-9, "network balance");
    let mut link_sum = 0.0;
    for n in ["a", "b", "c", "d"] {
        let f = |k: &str| thermal(&e, n, k);
        close(
            f("stored_j") + f("dissipated_j"),
            f("heat_in_j") + f("coupled_in_j"),
            heat,
            1e-9,
            &format!("balance of {n}"),
        );
        link_sum += f("coupled_in_j");
    }
    assert_eq!(thermal(&e, "d", "coupled_in_j"), 0.0);
    close(link_sum, 0.0, heat, 1e-9, "links conserve heat");
    // `d` (uncoupled) took d.in = out/2 (exact in f32): input_coeff·Σx² plus 0.4 W for
    // 60 firings of 3 ms.
    let out: Vec<f64> = values(&e, "out").iter().map(|&v| f64::from(v)).collect();
    assert_eq!(out.len(), 60);
    let want = 0.3 * out.iter().map(|y| (y / 2.0) * (y / 2.0)).sum::<f64>() + 0.4 * 60.0 * 0.003;
    close(
        thermal(&e, "d", "heat_in_j"),
        want,
        want,
        1e-12,
        "d's heat in",
    );
}

/// The same graph with and without thermal state: identical token values and ticks.
#[test]
fn temperature_never_changes_token_values() {
    let body = |th: &str| {
        format!(
            r#"Scene(version: 1, name: "side", tick_hz: 48000.0,
            defaults: (shape: (batch: 1, channels: 1, frames: 16), capacity: 2),
            nodes: [
                Node(name: "osc", kernel: Sine(freq_hz: 440.0, amp: 0.9, phase: 0.0), period: Some(16), count: Some(64)),
                Node(name: "lp", kernel: Biquad(mode: Lowpass, cutoff_hz: 1000.0, q: 0.707, gain_db: 0.0), latency: 7{th}),
                Node(name: "sat", kernel: Map(op: Tanh), latency: 3{th}),
                Node(name: "out", kernel: Probe),
            ],
            edges: [Edge(from: "osc.out", to: "lp.in"), Edge(from: "lp.out", to: "sat.in"),
                    Edge(from: "sat.out", to: "out.in")])"#
        )
    };
    let hot = ", thermal: Some((capacity: 0.001, resistance: 1000.0, ambient: 300.0, input_coeff: 10.0, work_power: 50.0))";
    let (_, cold) = run(&parse(&body("")));
    let (_, warm) = run(&parse(&body(hot)));
    assert_eq!(stream(&cold, "out"), stream(&warm, "out"));
    assert_eq!(values(&cold, "out"), values(&warm, "out"));
    assert_eq!(cold.report().values_digest, warm.report().values_digest);
    // And it did get hot.
    assert!(
        thermal(&warm, "lp", "peak") > 400.0,
        "{}",
        report(&warm)["thermal"]
    );
    // Under an IPLS the cohorts fire batched: the same values and the same temperatures.
    let mut ipls = parse(&body(hot));
    ipls.spec.schedule = tapwheel::scene::ScheduleSpec::IplsAuto;
    let (_, staged) = run(&ipls);
    assert_eq!(values(&staged, "out"), values(&warm, "out"));
    for n in ["lp", "sat"] {
        for k in ["final", "peak", "heat_in_j"] {
            let w = thermal(&warm, n, k);
            close(
                thermal(&staged, n, k),
                w,
                w,
                1e-12,
                &format!("{n}.{k} under IPLS"),
            );
        }
    }
}

/// `w` (latency 4, throttle above 310 K by ×2) heats by x² = 9 K per firing (C = 1 J/K,
/// τ = 1000 s): fired at 0, 10, 20, 30.
fn throttled(extra: &str) -> Scene {
    parse(&format!(
        r#"Scene(version: 1, name: "throttle",
        nodes: [
            Node(name: "src", kernel: Const(value: 3.0), period: Some(10), count: Some(4)),
            Node(name: "w", kernel: Gain(gain: 1.0), latency: 4,
                 thermal: Some((capacity: 1.0, resistance: 1000.0, ambient: 300.0, input_coeff: 1.0, work_power: 0.0)),
                 throttle: Some((t_max: 310.0, factor: 2.0))),
            Node(name: "out", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "w.in"), Edge(from: "w.out", to: "out.in")]{extra})"#
    ))
}

#[test]
fn throttling_stretches_latency_while_hot() {
    // At issue: t=0 → 300 K; t=10 → 300 + 9e^{−0.01} = 308.91 K (≤ 310, latency 4);
    // t=20 → 300 + (8.9104 + 9)e^{−0.01} = 317.73 K (hot: latency 8); t=30 hot again.
    let (o, e) = run(&throttled(""));
    assert_eq!(o, Outcome::Completed);
    assert_eq!(ticks(&e, "out"), vec![4, 14, 28, 38]);
    assert_eq!(values(&e, "out"), vec![3.0; 4]);
    // With one dispatch domain costing 1 tick per issue, every task (the source's too) starts
    // at max(t, free) + 1: the source's token arrives at 10k + 1, `w` starts at 10k + 2 and is
    // judged at its issue tick 10k + 1 (308.91 K at 11, 317.73 K at 21): 6, 16, 30, 40.
    let (_, d) = run(&throttled(
        r#", dispatch: Some((domains: 1, policy: RoundRobin, dispatch_cost: 1, workers: None))"#,
    ));
    assert_eq!(ticks(&d, "out"), vec![6, 16, 30, 40]);
    // Without the throttle nothing moves.
    let mut cool = throttled("");
    cool.spec.nodes[1].throttle = None;
    let (_, c) = run(&cool);
    assert_eq!(ticks(&c, "out"), vec![4, 14, 24, 34]);
    // A fractional factor rounds the latency up: 4 × 1.3 = 5.2 → 6.
    let mut frac = throttled("");
    if let Some(t) = frac.spec.nodes[1].throttle.as_mut() {
        t.factor = 1.3;
    }
    let (_, f) = run(&frac);
    assert_eq!(ticks(&f, "out"), vec![4, 14, 26, 36]);
    // Always hot (ambient 400 K > 310 K): every firing takes 8 ticks and draws W / 2, the same
    // work energy as an unthrottled firing. With W = 0.5: 4·9 J of input plus 4 × 8 s × 0.25 W.
    let mut hot = throttled("");
    if let Some(t) = hot.spec.nodes[1].thermal.as_mut() {
        t.ambient = 400.0;
        t.work_power = 0.5;
    }
    let (_, h) = run(&hot);
    assert_eq!(ticks(&h, "out"), vec![8, 18, 28, 38]);
    close(
        thermal(&h, "w", "heat_in_j"),
        44.0,
        44.0,
        1e-12,
        "throttled heat",
    );
}

fn cyclesim() -> RunOptions {
    RunOptions {
        device: Some(DeviceSpec::CycleSim {
            profile: "builtin:a2a3".into(),
        }),
        ..RunOptions::default()
    }
}

/// The 64×64 vector Add of tests/devices.rs (busy 1238 cycles from cycle 250, seen at 1550),
/// one tick per cycle, with thermal state on the Add.
fn hot_add(ambient: f64, throttle: &str) -> Scene {
    parse(&format!(
        r#"Scene(version: 1, name: "hot_add", tick_hz: 1.8e9,
        defaults: (shape: (batch: 1, channels: 64, frames: 64), capacity: 2),
        nodes: [
            Node(name: "op", kernel: Add,
                 thermal: Some((capacity: 0.001, resistance: 1000.0, ambient: {ambient:?}, input_coeff: 0.0, work_power: 3.0)){throttle}),
            Node(name: "s0", kernel: Const(value: 1.0), count: Some(1)),
            Node(name: "s1", kernel: Const(value: 2.0), count: Some(1)),
            Node(name: "p", kernel: Probe),
        ],
        edges: [Edge(from: "s0.out", to: "op.a"), Edge(from: "s1.out", to: "op.b"),
                Edge(from: "op.out", to: "p.in")])"#
    ))
}

#[test]
fn work_heat_on_cyclesim_is_the_modelled_busy_time() {
    let mut e = Engine::from_scene(&hot_add(300.0, ""), cyclesim()).unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(ticks(&e, "p"), vec![1550]);
    // 3 W for 1238 cycles at 1.8 GHz.
    let want = 3.0 * 1238.0 / 1.8e9;
    close(
        thermal(&e, "op", "heat_in_j"),
        want,
        want,
        1e-12,
        "work heat",
    );
    // On the Reference device the Add has latency 0: no busy time, no work heat.
    let (_, r) = run(&hot_add(300.0, ""));
    assert_eq!(thermal(&r, "op", "heat_in_j"), 0.0);
}

#[test]
fn throttling_on_cyclesim_stretches_the_core_run() {
    // Ambient 400 K is above t_max 350 K: the task runs twice as long, 2476 cycles from 250 to
    // 2726, seen at the poll at 2800 plus the 50-cycle completion read.
    let scene = hot_add(400.0, ", throttle: Some((t_max: 350.0, factor: 2.0))");
    let mut e = Engine::from_scene(&scene, cyclesim()).unwrap();
    assert_eq!(e.run(), Outcome::Completed);
    assert_eq!(ticks(&e, "p"), vec![2850]);
    let j = report(&e);
    assert_eq!(
        j["device"]["per_core"][0]["busy_cycles"].as_u64(),
        Some(2476)
    );
    // The throttled core draws 3 W / 2 for its 2476 cycles: the unthrottled energy.
    let want = 1.5 * 2476.0 / 1.8e9;
    close(
        thermal(&e, "op", "heat_in_j"),
        want,
        want,
        1e-12,
        "throttled work heat",
    );
}

#[test]
fn bad_thermal_parameters_are_located_errors() {
    let node = |thermal: &str, throttle: &str| {
        format!(
            r#"Scene(version: 1, name: "bad",
            nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
                    Node(name: "w", kernel: Gain(gain: 1.0), thermal: {thermal}, throttle: {throttle}),
                    Node(name: "v", kernel: Gain(gain: 1.0), thermal: Some((capacity: 1.0, resistance: 1.0, ambient: 300.0))),
                    Node(name: "o", kernel: Probe)],
            edges: [Edge(from: "s.out", to: "w.in"), Edge(from: "w.out", to: "v.in"), Edge(from: "v.out", to: "o.in")])"#
        )
    };
    let ok = "Some((capacity: 1.0, resistance: 1.0, ambient: 300.0))";
    let cases = [
        (
            node(
                "Some((capacity: 0.0, resistance: 1.0, ambient: 300.0))",
                "None",
            ),
            "E390",
            "nodes[1].thermal.capacity",
        ),
        (
            node(
                "Some((capacity: 1.0, resistance: -2.0, ambient: 300.0))",
                "None",
            ),
            "E390",
            "nodes[1].thermal.resistance",
        ),
        (
            node(
                "Some((capacity: 1.0, resistance: 1.0, ambient: 300.0, work_power: inf))",
                "None",
            ),
            "E390",
            "nodes[1].thermal.work_power",
        ),
        (
            node(ok, "Some((t_max: 350.0, factor: 0.5))"),
            "E391",
            "nodes[1].throttle.factor",
        ),
        (
            node(ok, "Some((t_max: NaN, factor: 2.0))"),
            "E391",
            "nodes[1].throttle.t_max",
        ),
        (
            node("None", "Some((t_max: 350.0, factor: 2.0))"),
            "E392",
            "nodes[1].throttle",
        ),
    ];
    for (text, code, path) in cases {
        let err = Scene::parse(&text, "bad.ron", repo())
            .and_then(|s| Engine::from_scene(&s, RunOptions::default()))
            .err()
            .unwrap_or_else(|| panic!("{code} expected"));
        let d = err.diagnostics();
        assert!(
            d.iter()
                .any(|d| d.code == code && format!("{:?}", d.location).contains(path)),
            "{code} at {path}: {err}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    let links = |l: &str| {
        format!(
            r#"Scene(version: 1, name: "bad",
            nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
                    Node(name: "w", kernel: Gain(gain: 1.0), thermal: {ok}),
                    Node(name: "v", kernel: Gain(gain: 1.0), thermal: {ok}),
                    Node(name: "o", kernel: Probe)],
            edges: [Edge(from: "s.out", to: "w.in"), Edge(from: "w.out", to: "v.in"), Edge(from: "v.out", to: "o.in")],
            thermal_links: [{l}])"#
        )
    };
    for (l, code, path) in [
        (
            r#"ThermalLink(a: "w", b: "nope", conductance: 1.0)"#,
            "E393",
            "thermal_links[0].b",
        ),
        (
            r#"ThermalLink(a: "o", b: "w", conductance: 1.0)"#,
            "E393",
            "thermal_links[0].a",
        ),
        (
            r#"ThermalLink(a: "w", b: "w", conductance: 1.0)"#,
            "E394",
            "thermal_links[0]",
        ),
        (
            r#"ThermalLink(a: "w", b: "v", conductance: 1.0), ThermalLink(a: "v", b: "w", conductance: 2.0)"#,
            "E394",
            "thermal_links[1]",
        ),
        (
            r#"ThermalLink(a: "w", b: "v", conductance: 0.0)"#,
            "E395",
            "thermal_links[0].conductance",
        ),
    ] {
        let err = Scene::parse(&links(l), "bad.ron", repo())
            .and_then(|s| Engine::from_scene(&s, RunOptions::default()))
            .err()
            .unwrap_or_else(|| panic!("{code} expected"));
        assert!(
            err.diagnostics()
                .iter()
                .any(|d| d.code == code && format!("{:?}", d.location).contains(path)),
            "{code} at {path}: {err}"
        );
    }
    // `temp` exists only on nodes with thermal state.
    let no_temp = r#"Scene(version: 1, name: "bad",
        nodes: [Node(name: "s", kernel: Const(value: 1.0), count: Some(1)),
                Node(name: "w", kernel: Gain(gain: 1.0)), Node(name: "o", kernel: Probe)],
        edges: [Edge(from: "s.out", to: "w.in"), Edge(from: "w.temp", to: "o.in")])"#;
    let err = Scene::parse(no_temp, "bad.ron", repo())
        .and_then(|s| Engine::from_scene(&s, RunOptions::default()))
        .err()
        .expect("E232");
    assert!(err.to_string().contains("E232"), "{err}");
}

#[test]
fn a_coupled_group_too_large_is_refused() {
    // 257 nodes in one chain of links: refused (exit 4) with R308, never approximated.
    let n = 257;
    let mut nodes =
        vec![r#"Node(name: "s", kernel: Const(value: 1.0), count: Some(1))"#.to_string()];
    let mut edges = Vec::new();
    let mut links = Vec::new();
    let mut prev = "s".to_string();
    for i in 0..n {
        nodes.push(format!(
            r#"Node(name: "n{i}", kernel: Gain(gain: 1.0), thermal: Some((capacity: 1.0, resistance: 1.0, ambient: 300.0)))"#
        ));
        edges.push(format!(r#"Edge(from: "{prev}.out", to: "n{i}.in")"#));
        if i > 0 {
            links.push(format!(
                r#"ThermalLink(a: "n{}", b: "n{i}", conductance: 0.1)"#,
                i - 1
            ));
        }
        prev = format!("n{i}");
    }
    nodes.push(r#"Node(name: "o", kernel: Probe)"#.into());
    edges.push(format!(r#"Edge(from: "{prev}.out", to: "o.in")"#));
    let text = format!(
        r#"Scene(version: 1, name: "big", nodes: [{}], edges: [{}], thermal_links: [{}])"#,
        nodes.join(", "),
        edges.join(", "),
        links.join(", ")
    );
    let scene = Scene::parse(&text, "big.ron", repo()).unwrap();
    let err = Engine::from_scene(&scene, RunOptions::default())
        .err()
        .expect("R308");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("R308"), "{err}");
    assert!(err.to_string().contains("257"), "{err}");
    // 256 nodes is the largest group integrated exactly.
    let small = text.replace(
        r#", ThermalLink(a: "n255", b: "n256", conductance: 0.1)"#,
        "",
    );
    let scene = Scene::parse(&small, "big.ron", repo()).unwrap();
    let mut e = Engine::from_scene(&scene, RunOptions::default()).expect("256 nodes plan");
    assert_eq!(e.run(), Outcome::Completed);
}

#[test]
fn the_example_scene_throttles_and_publishes_its_temperatures() {
    let scene = scene("thermal_throttle");
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::Completed);
    // Throttling back-pressures the job stream: the last job completes at 36451 ms.
    assert_eq!(e.report().end_tick, 36451);
    let done = values(&e, "done");
    assert_eq!(done.len(), 3000);
    assert_eq!(&done[..3], &[0.0, 2.0, 4.0]);
    let temps = stream(&e, "core_temp");
    assert_eq!(temps.len(), 3000);
    // The first job finds the core at ambient; its temperature is recorded when it completes.
    assert_eq!(temps[0], (7, 0, 318.0));
    // The core holds around t_max = 358 K; it never settles far above it.
    let peak = thermal(&e, "core", "peak");
    assert!((358.0..358.5).contains(&peak), "{peak}");
    assert!(temps.iter().all(|t| t.2 < 358.5));
    // The coupled DMA engine is warmed but stays well below the core.
    let dma = thermal(&e, "dma", "final");
    assert!((330.0..345.0).contains(&dma), "{dma}");
    // Without the throttle the same jobs finish on time (29990 + 7 + 2).
    let mut free = scene.clone();
    free.spec.nodes[1].throttle = None;
    let (_, f) = run(&free);
    assert_eq!(f.report().end_tick, 29999);
    assert_eq!(values(&f, "done"), done);
}

#[test]
fn the_cli_runs_the_example_and_reports_temperatures() {
    let dir = out_dir("thermal_cli");
    let (code, stdout, stderr) = cli(&[
        "run",
        repo().join("scenes/thermal_throttle.ron").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("temperature: core="), "{stdout}");
    let r = read_json(&dir.join("report.json"));
    for n in ["core", "dma"] {
        for k in [
            "final",
            "peak",
            "heat_in_j",
            "stored_j",
            "dissipated_j",
            "coupled_in_j",
        ] {
            assert!(
                r["thermal"]["nodes"][n][k].is_f64(),
                "{n}.{k}: {}",
                r["thermal"]
            );
        }
    }
    let csv = std::fs::read_to_string(dir.join("probes/core_temp.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("tick,seq,batch,channel,frame,value"));
    assert_eq!(lines.next(), Some("7,0,0,0,0,318"));
    assert_eq!(csv.lines().count(), 3001);
}

#[test]
fn a_three_node_chain_matches_a_fine_runge_kutta_integration() {
    // a — b — c (C = 1, R = 10, G = 0.5 each link); a takes 16 J at t = 0. c rises and falls
    // between events: its peak is found inside the integration interval.
    let th = "capacity: 1.0, resistance: 10.0, ambient: 300.0, input_coeff: 0.0, work_power: 0.0";
    let scene = parse(&format!(
        r#"Scene(version: 1, name: "chain3", tick_hz: 10.0,
        nodes: [
            Node(name: "src", kernel: Const(value: 4.0), count: Some(1)),
            Node(name: "a", kernel: Gain(gain: 1.0),
                 thermal: Some((capacity: 1.0, resistance: 10.0, ambient: 300.0, input_coeff: 1.0, work_power: 0.0))),
            Node(name: "b", kernel: Gain(gain: 1.0), thermal: Some(({th}))),
            Node(name: "c", kernel: Gain(gain: 1.0), thermal: Some(({th}))),
            Node(name: "out", kernel: Probe),
            Node(name: "clock", kernel: Const(value: 0.0), period: Some(100000), count: Some(2)),
            Node(name: "clk", kernel: Probe),
        ],
        edges: [Edge(from: "clock.out", to: "clk.in"), Edge(from: "src.out", to: "a.in"),
                Edge(from: "a.out", to: "b.in"), Edge(from: "b.out", to: "c.in"),
                Edge(from: "c.out", to: "out.in")],
        thermal_links: [ThermalLink(a: "a", b: "b", conductance: 0.5),
                        ThermalLink(a: "b", b: "c", conductance: 0.5)])"#
    ));
    // RK4 on u' = −(D + K)·u with h = 1e-4 s, tracking c's maximum.
    let f = |u: [f64; 3]| -> [f64; 3] {
        [
            -0.1 * u[0] - 0.5 * (u[0] - u[1]),
            -0.1 * u[1] - 0.5 * (u[1] - u[0]) - 0.5 * (u[1] - u[2]),
            -0.1 * u[2] - 0.5 * (u[2] - u[1]),
        ]
    };
    let add =
        |u: [f64; 3], k: [f64; 3], s: f64| [u[0] + s * k[0], u[1] + s * k[1], u[2] + s * k[2]];
    let h = 1e-4;
    let mut u = [16.0, 0.0, 0.0];
    let mut peak_c = 0.0f64;
    let mut at_30s = u;
    for step in 1..=400_000 {
        let k1 = f(u);
        let k2 = f(add(u, k1, h / 2.0));
        let k3 = f(add(u, k2, h / 2.0));
        let k4 = f(add(u, k3, h));
        for i in 0..3 {
            u[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        peak_c = peak_c.max(u[2]);
        if step == 300_000 {
            at_30s = u;
        }
    }
    let (_, e) = run_until(&scene, 300);
    for (n, want) in ["a", "b", "c"].iter().zip(at_30s) {
        close(thermal(&e, n, "final") - 300.0, want, 16.0, 1e-9, n);
    }
    let (_, e) = run_until(&scene, 400);
    // The sampled RK4 maximum is within h²·u''/8 of the true one.
    close(
        thermal(&e, "c", "peak") - 300.0,
        peak_c,
        peak_c,
        1e-8,
        "c's peak",
    );
    assert!(thermal(&e, "c", "peak") > thermal(&e, "c", "final") + 1.0);
}

#[test]
fn integration_cost_follows_the_active_nodes_not_the_idle_ones() {
    // One active node (fired at 0, 10, …, 990, busy 3 ticks each) beside 1000 idle thermal
    // nodes. Firing 0 finds its group at tick 0; each later firing takes two closed-form steps
    // (to the end of the previous busy interval, then to its own tick): 2·99 = 198, whatever
    // the number of idle nodes or steps.
    let th = "thermal: Some((capacity: 1.0, resistance: 10.0, ambient: 300.0, input_coeff: 0.1, work_power: 1.0))";
    let mut nodes = vec![
        r#"Node(name: "src", kernel: Const(value: 1.0), period: Some(10), count: Some(100))"#
            .to_string(),
        format!(r#"Node(name: "hot", kernel: Gain(gain: 1.0), latency: 3, {th})"#),
        r#"Node(name: "out", kernel: Probe)"#.to_string(),
        r#"Node(name: "idle_src", kernel: Const(value: 1.0), count: Some(0))"#.to_string(),
    ];
    let mut edges = vec![
        r#"Edge(from: "src.out", to: "hot.in")"#.to_string(),
        r#"Edge(from: "hot.out", to: "out.in")"#.to_string(),
    ];
    let mut prev = "idle_src".to_string();
    for i in 0..1000 {
        nodes.push(format!(
            r#"Node(name: "i{i}", kernel: Gain(gain: 1.0), {th})"#
        ));
        edges.push(format!(r#"Edge(from: "{prev}.out", to: "i{i}.in")"#));
        prev = format!("i{i}");
    }
    nodes.push(r#"Node(name: "idle_out", kernel: Probe)"#.into());
    edges.push(format!(r#"Edge(from: "{prev}.out", to: "idle_out.in")"#));
    let scene = parse(&format!(
        r#"Scene(version: 1, name: "idle", nodes: [{}], edges: [{}])"#,
        nodes.join(", "),
        edges.join(", ")
    ));
    let (o, e) = run(&scene);
    assert_eq!(o, Outcome::Completed);
    let net = e.world().resource::<tapwheel::thermal::ThermalNet>();
    assert_eq!(net.steps(), 198);
    // The idle nodes stay at ambient; the active one ends 3 ticks after its last firing.
    assert_eq!(thermal(&e, "i500", "final"), 300.0);
    assert_eq!(e.report().end_tick, 993);
    assert!(thermal(&e, "hot", "peak") > 300.0);
}
