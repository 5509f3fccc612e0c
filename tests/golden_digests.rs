//! Determinism guard (SPEC §18): every example scene's `plan_digest`, `output_digest` and
//! `values_digest` are committed in `tests/golden/digests.json`, and a run with 1 or 2 engine
//! threads, under `Kpn` or `IplsAuto` where the scene has no schedule of its own, gives exactly
//! the committed digests. A change to them must be deliberate: re-bless with
//! `TAPWHEEL_BLESS=1 cargo test --release --test golden_digests` and say why in the commit.

mod common;
use common::*;
use serde_json::{Map, Value, json};
use tapwheel::{Engine, RunOptions, Scene};

fn example_scenes() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["scenes", "scenes/pto", "scenes/sdf3"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "ron") {
                out.push(format!(
                    "{dir}/{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

fn digests(scene: &Scene, threads: usize) -> Value {
    let mut e = Engine::from_scene(
        scene,
        RunOptions {
            threads: Some(threads),
            ..RunOptions::default()
        },
    )
    .expect("example scene plans");
    e.run();
    let r = e.report();
    json!({
        "outcome": r.json["outcome"],
        "plan_digest": r.plan_digest,
        "output_digest": r.output_digest,
        "values_digest": r.values_digest,
        "end_tick": r.end_tick,
    })
}

#[test]
fn example_scene_digests_match_the_committed_goldens_with_one_and_two_threads() {
    let path = repo().join("tests/golden/digests.json");
    let mut now = Map::new();
    for name in example_scenes() {
        let scene = Scene::load(repo().join(&name)).expect("example scene loads");
        let one = digests(&scene, 1);
        let two = digests(&scene, 2);
        assert_eq!(one, two, "{name}: 1 and 2 threads differ");
        now.insert(name, one);
    }
    assert!(now.len() >= 30, "{} example scenes", now.len());
    let now = Value::Object(now);
    if std::env::var_os("TAPWHEEL_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&now).unwrap() + "\n";
        std::fs::write(&path, text).expect("write the goldens");
        return;
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("tests/golden/digests.json exists"),
    )
    .expect("goldens are JSON");
    let (Value::Object(g), Value::Object(n)) = (&golden, &now) else {
        panic!("goldens are an object");
    };
    let mut changed = Vec::new();
    for (name, d) in n {
        match g.get(name) {
            Some(want) if want == d => {}
            Some(want) => changed.push(format!("{name}: committed {want}, now {d}")),
            None => changed.push(format!("{name}: no committed digests (re-bless)")),
        }
    }
    for name in g.keys() {
        if !n.contains_key(name) {
            changed.push(format!("{name}: committed but no longer an example scene"));
        }
    }
    assert!(
        changed.is_empty(),
        "digests changed (re-bless deliberately with TAPWHEEL_BLESS=1):\n{}",
        changed.join("\n")
    );
}

#[test]
fn the_committed_goldens_are_not_trivial() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/golden/digests.json")).unwrap(),
    )
    .unwrap();
    let hello = &golden["scenes/hello.ron"];
    assert_eq!(hello["outcome"], "completed");
    assert_eq!(hello["end_tick"], 15);
    // The scenes that record something have distinct output digests (SDF3 graphs without
    // probes share the empty one): 23 of 35 at the time of blessing.
    let outputs: std::collections::BTreeSet<&str> = golden
        .as_object()
        .unwrap()
        .values()
        .filter_map(|d| d["output_digest"].as_str())
        .collect();
    assert!(outputs.len() >= 20, "{}", outputs.len());
}
