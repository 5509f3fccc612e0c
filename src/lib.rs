//! # tapwheel
//!
//! A deterministic, data-oriented simulation engine for timed dataflow process networks.
//!
//! A scene (RON) is parsed ([`scene`]), compiled into a frozen [`plan::Plan`], spawned into a
//! `bevy_ecs` world ([`ecs`]) and advanced by the ordered [`systems`] through superdense time
//! ([`time`]). Token payloads live in one [`arena::TokenArena`].
//!
//! ```
//! use tapwheel::{Engine, RunOptions, Scene, Outcome};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "doc",
//!     nodes: [Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(2), count: Some(3)),
//!             Node(name: "g", kernel: Gain(gain: 10.0)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in", delay: 5), Edge(from: "g.out", to: "out.in")])"#,
//!     "doc.ron", ".".into()).unwrap();
//! let mut engine = Engine::from_scene(&scene, RunOptions::default()).unwrap();
//! assert_eq!(engine.run(), Outcome::Completed);
//! let out = engine.probe("out").unwrap();
//! assert_eq!(out.values, vec![10.0, 20.0, 30.0]);
//! // src fires at 0 and 2; at 4 its channel (default capacity 2) is full of tokens still in
//! // their 5-tick delay, so it waits until g consumes at 5 and fires at (5, 1): visible at 10.
//! assert_eq!(out.ticks, vec![5, 7, 10]);
//! ```

pub mod adapters;
pub mod arena;
pub mod bench;
pub mod capi;
pub mod device;
pub mod diag;
pub mod dispatch;
pub mod ecs;
pub mod engine;
pub mod error;
pub mod fit;
pub mod inspect;
pub mod kernels;
pub mod loss;
pub mod overflow;
pub mod plan;
pub mod plot;
pub mod profile;
pub mod report;
pub mod scene;
pub mod schedule;
pub mod sdf;
pub mod slots;
pub mod snapshot;
pub mod tape;
pub mod thermal;
pub mod time;
pub mod trace;

#[path = "../systems/mod.rs"]
pub mod systems;

pub use engine::{Engine, Progress, RunOptions, StepStatus};
pub use error::{Diagnostic, Error, Location};
pub use kernels::Kernel;
pub use plan::Plan;
pub use report::{Outcome, Report};
pub use scene::{Scene, SceneBuilder};
