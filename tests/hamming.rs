//! Kahn & MacQueen's Hamming network (SCENE.md): ends `quiescent` with the 573 5-smooth numbers
//! 2 … 1953125 (OEIS A051037, ../shared/oracles/kpn) at the probe, in order, with queues that
//! start at capacity 1 and grow by Parks' rule.

mod common;
use common::*;
use tapwheel::Outcome;

fn oracle() -> Vec<f32> {
    std::fs::read_to_string(repo().join("tests/golden/hamming_2_to_1953125.txt"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<f32>().unwrap())
        .collect()
}

#[test]
fn hamming_matches_the_oracle_and_ends_quiescent() {
    let (o, e) = run(&scene("hamming"));
    assert_eq!(o, Outcome::Quiescent);
    let want = oracle();
    assert_eq!(want.len(), 573);
    assert_eq!(values(&e, "out"), want);
    let p = e.probe("out").unwrap();
    assert_eq!(p.seqs, (0..573).collect::<Vec<u64>>());
    assert!(
        p.ticks.iter().all(|&t| t == 0),
        "all zero-time: every token at tick 0"
    );
    let r = e.report();
    assert_eq!(r.end_tick, 0);
    // Parks: every growth doubles a channel that started at 1, so capacities are powers of two.
    let growths = r.json["growths"].as_array().unwrap();
    assert!(!growths.is_empty());
    for g in growths {
        assert_eq!(g["to"].as_u64().unwrap(), 2 * g["from"].as_u64().unwrap());
    }
    // 650 candidates reach `cap` before the network quiesces (the rest wait in merge heads);
    // an independent unbounded-FIFO Kahn simulation gives the same count. 573 pass, 77 exceed.
    assert_eq!(r.json["firings"]["cap"], 650);
    assert_eq!(r.json["firings"]["out"], 573);
}

#[test]
fn hamming_is_deterministic() {
    let (_, a) = run(&scene("hamming"));
    let (_, b) = run(&scene("hamming"));
    assert_eq!(a.report().output_digest, b.report().output_digest);
    assert_eq!(a.report().json["growths"], b.report().json["growths"]);
}

#[test]
fn hamming_under_strict_is_a_deadlock() {
    let text = std::fs::read_to_string(repo().join("scenes/hamming.ron"))
        .unwrap()
        .replace(
            "memory: Parks(max_capacity: 65536),",
            "memory: Parks(max_capacity: 65536), strict: true,",
        );
    let (o, e) = run(&parse(&text));
    assert_eq!(o, Outcome::Deadlock);
    assert_eq!(e.report().deadlock.unwrap().kind, "strict");
    assert_eq!(values(&e, "out"), oracle());
}
