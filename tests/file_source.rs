//! `File(path)` sources: CSV and WAV (hound), column → channel mapping, zero padding, and the
//! source ending with its data.

mod common;
use common::*;
use tapwheel::{Outcome, Scene};

fn scene_in(dir: &std::path::Path, text: &str) -> Scene {
    let p = dir.join("scene.ron");
    std::fs::write(&p, text).unwrap();
    Scene::load(&p).unwrap()
}

#[test]
fn csv_frames_fill_tokens_and_the_last_is_zero_padded() {
    let dir = out_dir("file_csv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("x.csv"),
        "# left,right\nl,r\n1,10\n2,20\n3,30\n4,40\n5,50\n",
    )
    .unwrap();
    let s = scene_in(
        &dir,
        r#"Scene(version: 1, name: "f",
        defaults: (shape: (batch: 1, channels: 2, frames: 2)),
        nodes: [
            Node(name: "src", kernel: File(path: "x.csv"), period: Some(10)),
            Node(name: "out", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(
        values(&e, "out"),
        vec![
            1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0, 5.0, 0.0, 50.0, 0.0
        ]
    );
    assert_eq!(
        ticks(&e, "out"),
        vec![0, 10, 20],
        "3 tokens, then the source ends"
    );
    assert_eq!(e.report().json["firings"]["src"], 3);
}

#[test]
fn wav_samples_are_scaled_and_feed_every_channel_from_one_column() {
    let dir = out_dir("file_wav");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.join("x.wav"), spec).unwrap();
    for v in [16384i16, -32768, 8192] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let s = scene_in(
        &dir,
        r#"Scene(version: 1, name: "w",
        defaults: (shape: (batch: 1, channels: 2, frames: 3)),
        nodes: [
            Node(name: "src", kernel: File(path: "x.wav")),
            Node(name: "out", kernel: Probe),
        ],
        edges: [Edge(from: "src.out", to: "out.in")])"#,
    );
    let (o, e) = run(&s);
    assert_eq!(o, Outcome::Completed);
    assert_eq!(values(&e, "out"), vec![0.5, -1.0, 0.25, 0.5, -1.0, 0.25]);
}

#[test]
fn changing_the_file_changes_the_plan_digest() {
    let dir = out_dir("file_digest");
    std::fs::create_dir_all(&dir).unwrap();
    let text = r#"Scene(version: 1, name: "d",
        nodes: [Node(name: "src", kernel: File(path: "x.csv"), period: Some(1)),
                Node(name: "out", kernel: Probe)],
        edges: [Edge(from: "src.out", to: "out.in")])"#;
    std::fs::write(dir.join("x.csv"), "1\n2\n").unwrap();
    let a = tapwheel::plan::Plan::compile(&scene_in(&dir, text))
        .unwrap()
        .digest;
    std::fs::write(dir.join("x.csv"), "1\n3\n").unwrap();
    let b = tapwheel::plan::Plan::compile(&scene_in(&dir, text))
        .unwrap()
        .digest;
    assert_ne!(a, b);
}
