//! pto-runtime's published example results, run as tapwheel scenes (issue 3): the vector
//! diamond gives 42, its PTO2 variant 47, and the matmul diamond e² in every element of a
//! 128×128 tile.

mod common;
use common::*;
use tapwheel::Outcome;

fn tile(name: &str) -> Vec<f32> {
    let (o, e) = run(&scene(name));
    assert_eq!(o, Outcome::Completed, "{name}");
    let p = e.probe("out").expect("probe out");
    assert_eq!(p.len(), 1, "{name}: one tile");
    assert_eq!((p.batch, p.channels, p.frames), (1, 128, 128));
    p.values.clone()
}

#[test]
fn vector_diamond_gives_42_everywhere() {
    let v = tile("pto_vector_diamond");
    assert_eq!(v.len(), 128 * 128);
    assert!(v.iter().all(|&x| x == 42.0), "every element is exactly 42");
}

#[test]
fn pto2_vector_diamond_gives_47_everywhere() {
    let v = tile("pto2_vector_diamond");
    assert_eq!(v.len(), 128 * 128);
    assert!(v.iter().all(|&x| x == 47.0), "every element is exactly 47");
}

#[test]
fn matmul_diamond_gives_e_squared_everywhere() {
    let v = tile("pto_matmul_diamond");
    assert_eq!(v.len(), 128 * 128);
    let e2 = std::f64::consts::E.powi(2);
    for (i, &x) in v.iter().enumerate() {
        assert!(
            ((x as f64) - e2).abs() < 2e-5,
            "element {i}: {x} vs e² = {e2}"
        );
    }
    // The published figure, to the digits pto-runtime prints.
    assert_eq!(format!("{:.6}", v[0]), "7.389056");
}
