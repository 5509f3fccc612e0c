//! §4 termination: Parks' bounded growth under `memory: Parks`, artificial deadlock under
//! `memory: Fixed`, and `strict`.

mod common;
use common::*;
use tapwheel::Outcome;

#[test]
fn parks_grows_the_smallest_blocking_channel_by_doubling() {
    let (o, e) = run(&scene("parks_growth"));
    assert_eq!(o, Outcome::Completed);
    let r = e.report();
    assert_eq!(
        r.json["growths"],
        serde_json::json!([
            {"tick": 0, "delta": 0, "channel": "src.out->out.in", "from": 1, "to": 2},
            {"tick": 0, "delta": 1, "channel": "src.out->out.in", "from": 2, "to": 4},
        ])
    );
    assert_eq!(r.json["channels"]["src.out->out.in"]["capacity"], 4);
    assert_eq!(r.json["channels"]["src.out->out.in"]["high_water"], 3);
    assert_eq!(
        stream(&e, "out"),
        vec![
            (0, 0, 0.0),
            (0, 1, 1.0),
            (0, 2, 2.0),
            (1, 3, 3.0),
            (1, 4, 4.0),
            (1, 5, 5.0)
        ]
    );
    assert_eq!(r.end_tick, 1);
}

#[test]
fn parks_growth_stops_at_max_capacity() {
    let text = std::fs::read_to_string(repo().join("scenes/parks_growth.ron"))
        .unwrap()
        .replace("Parks(max_capacity: 64)", "Parks(max_capacity: 2)");
    let (o, e) = run(&parse(&text));
    assert_eq!(o, Outcome::Deadlock);
    let r = e.report();
    assert_eq!(r.json["growths"].as_array().unwrap().len(), 1);
    let d = r.deadlock.unwrap();
    assert_eq!(d.kind, "artificial");
    assert!(
        d.mitigations
            .iter()
            .any(|m| m.contains("max_capacity) above 2"))
    );
    assert!(
        d.mitigations
            .contains(&"raise capacity of src.out->out.in to at least 3".to_string())
    );
}

#[test]
fn parks_picks_the_smallest_capacity_then_the_lowest_edge() {
    // Both outputs of src need room for 2 tokens; b's channel (capacity 1) grows before a's (3),
    // … and with equal capacities the lower edge index goes first.
    let s = parse(
        r#"Scene(version: 1, name: "pick", nodes: [
            Node(name: "src", kernel: Const(value: 1.0), count: 1, taps: {"out": (rate: 2)}),
            Node(name: "a", kernel: Probe), Node(name: "b", kernel: Probe), Node(name: "c", kernel: Probe)],
          edges: [Edge(from: "src.out", to: "a.in", capacity: 1),
                  Edge(from: "src.out", to: "b.in", capacity: 1),
                  Edge(from: "src.out", to: "c.in", capacity: 3)])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    let g: Vec<(String, u64, u64)> = e.report().json["growths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["channel"].as_str().unwrap().to_string(),
                g["from"].as_u64().unwrap(),
                g["to"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        g,
        vec![
            ("src.out->a.in".to_string(), 1, 2),
            ("src.out->b.in".to_string(), 1, 2)
        ]
    );
    assert_eq!(values(&e, "c"), vec![1.0, 1.0]);
}

#[test]
fn fixed_memory_ends_in_an_artificial_deadlock_with_exit_3() {
    let dir = out_dir("parks_fixed");
    let (code, stdout, _) = cli(&[
        "run",
        "scenes/parks_fixed.ron",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("deadlock (artificial)"));
    let r = read_json(&dir.join("report.json"));
    assert_eq!(r["outcome"], "deadlock");
    let d = &r["deadlock"];
    assert_eq!(d["kind"], "artificial");
    assert_eq!(
        d["blocked"][0],
        serde_json::json!({"node": "src", "reason": "CHANNEL_FULL_WAIT", "channels": ["src.out->out.in"]})
    );
    assert_eq!(
        d["channels"][0],
        serde_json::json!({"channel": "src.out->out.in", "tokens": 0, "reserved": 0,
                           "occupancy": 0, "capacity": 1, "closed": false})
    );
    assert_eq!(
        d["mitigations"],
        serde_json::json!(["raise capacity of src.out->out.in to at least 3"])
    );
    assert!(d["basis"].as_str().unwrap().contains("memory is Fixed"));
    assert_eq!(r["end_tick"], 0);
}

#[test]
fn strict_turns_a_quiescent_end_into_a_deadlock() {
    let dir = out_dir("strict");
    let (code, _, _) = cli(&[
        "run",
        "scenes/strict_quiescent.ron",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    let r = read_json(&dir.join("report.json"));
    assert_eq!(r["outcome"], "deadlock");
    assert_eq!(r["deadlock"]["kind"], "strict");
    let blocked = r["deadlock"]["blocked"].as_array().unwrap();
    assert!(blocked.contains(&serde_json::json!(
        {"node": "acc", "reason": "CHANNEL_EMPTY_WAIT", "channels": ["fb.out->acc.b"]}
    )));
    assert_eq!(r["end_tick"], 1);

    let relaxed = std::fs::read_to_string(repo().join("scenes/strict_quiescent.ron"))
        .unwrap()
        .replace("strict: true", "strict: false");
    let (o, e) = run(&parse(&relaxed));
    assert_eq!(o, Outcome::Quiescent);
    assert!(e.report().deadlock.is_none());
    // acc holds both source tokens, never fired.
    assert_eq!(e.report().json["firings"]["acc"], 0);
    assert_eq!(
        e.report().json["channels"]["src.out->acc.a"]["occupancy"],
        2
    );
}
