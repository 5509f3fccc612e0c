//! The open kernel registry: embedders add kernels that scenes name with
//! `Custom(kind: "…", params: {…})`, and the planner and engine treat them like built-ins.
//!
//! ```
//! use std::collections::BTreeMap;
//! use tapwheel::kernels::*;
//!
//! /// `y = x³`, elementwise.
//! struct Cube;
//! impl Kernel for Cube {
//!     fn kind(&self) -> &str { "Cube" }
//!     fn demand(&self, _: &[InputView], d: &mut [u32]) { d.fill(1) }
//!     fn max_production(&self, _: usize) -> u32 { 1 }
//!     fn fire(&mut self, io: &mut FireIo<'_>) {
//!         let out = &mut io.outputs[0].values;
//!         out.extend(io.inputs[0].values.iter().map(|x| x * x * x));
//!     }
//! }
//! struct CubeFactory;
//! impl KernelFactory for CubeFactory {
//!     fn kind(&self) -> &str { "Cube" }
//!     fn build(&self, _: &BTreeMap<String, f64>, _: &Signature) -> Box<dyn Kernel> { Box::new(Cube) }
//! }
//! let mut reg = KernelRegistry::new();
//! reg.register(CubeFactory).unwrap();
//! assert!(reg.register(CubeFactory).is_err()); // one factory per kind
//! let scene = tapwheel::Scene::parse(r#"Scene(version: 1, name: "c",
//!     nodes: [Node(name: "s", kernel: Const(value: 2.0), count: Some(1)),
//!             Node(name: "k", kernel: Custom(kind: "Cube")),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "s.out", to: "k.in"), Edge(from: "k.out", to: "out.in")])"#,
//!     "<doc>", ".".into()).unwrap();
//! let mut e = tapwheel::Engine::from_scene_with(&scene, Default::default(), &reg).unwrap();
//! e.run();
//! assert_eq!(e.probe("out").unwrap().values, vec![8.0]);
//! ```

use super::{CohortFn, Kernel, RateRule, Signature};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds kernels of one custom kind.
pub trait KernelFactory: Send + Sync + 'static {
    /// The kind name scenes use in `Custom(kind: …)`; must not be a built-in kind.
    fn kind(&self) -> &str;
    /// Input tap names (default: `in`).
    fn inputs(&self, params: &BTreeMap<String, f64>) -> Vec<String> {
        let _ = params;
        vec!["in".into()]
    }
    /// Output tap names (default: `out`).
    fn outputs(&self, params: &BTreeMap<String, f64>) -> Vec<String> {
        let _ = params;
        vec!["out".into()]
    }
    /// How the kernel treats tap rates (default: one rate shared by all taps).
    fn rate_rule(&self) -> RateRule {
        RateRule::Uniform
    }
    /// Whether every tap keeps one token shape (default: yes).
    fn preserves_shape(&self) -> bool {
        true
    }
    /// Checks the parameters at plan time; an `Err` is a located plan error (E220).
    fn validate(&self, params: &BTreeMap<String, f64>) -> Result<(), String> {
        let _ = params;
        Ok(())
    }
    /// Builds one node's kernel.
    fn build(&self, params: &BTreeMap<String, f64>, sig: &Signature) -> Box<dyn Kernel>;
    /// The batched form over a cohort of this kind (default: one by one).
    fn cohort(&self) -> Option<CohortFn> {
        None
    }
}

/// Why a factory could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("kernel kind `{0}` is built in")]
    BuiltIn(String),
    #[error("kernel kind `{0}` is already registered")]
    Duplicate(String),
    #[error("kernel kind `{0}` is not a valid name ([A-Za-z0-9_]+)")]
    BadName(String),
}

/// The kernels an engine knows beyond the built-ins.
#[derive(Clone, Default)]
pub struct KernelRegistry {
    custom: BTreeMap<String, Arc<dyn KernelFactory>>,
    hooks: BTreeMap<String, Arc<dyn crate::dispatch::DispatchHook>>,
}

impl std::fmt::Debug for KernelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRegistry")
            .field("custom", &self.custom.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KernelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a custom kernel kind.
    pub fn register(&mut self, factory: impl KernelFactory) -> Result<(), RegistryError> {
        let kind = factory.kind().to_string();
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RegistryError::BadName(kind));
        }
        if super::BUILTIN_KINDS.contains(&kind.as_str()) {
            return Err(RegistryError::BuiltIn(kind));
        }
        if self.custom.contains_key(&kind) {
            return Err(RegistryError::Duplicate(kind));
        }
        self.custom.insert(kind, Arc::new(factory));
        Ok(())
    }

    /// Registers a dispatch hook that scenes name with `policy: Hook("name")` (§9). The hook is
    /// called for every task without a static domain, with the domains' loads, and returns the
    /// domain (a domain out of range ends the run `failed`, E401).
    pub fn register_hook(
        &mut self,
        name: &str,
        hook: impl crate::dispatch::DispatchHook,
    ) -> Result<(), RegistryError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RegistryError::BadName(name.to_string()));
        }
        if self.hooks.contains_key(name) {
            return Err(RegistryError::Duplicate(name.to_string()));
        }
        self.hooks.insert(name.to_string(), Arc::new(hook));
        Ok(())
    }

    /// A registered dispatch hook.
    pub fn hook(&self, name: &str) -> Option<&Arc<dyn crate::dispatch::DispatchHook>> {
        self.hooks.get(name)
    }

    /// The factory of a custom kind.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn KernelFactory>> {
        self.custom.get(kind)
    }

    /// Every kind this registry can build: built-ins, then custom kinds in name order.
    pub fn kinds(&self) -> Vec<String> {
        super::BUILTIN_KINDS
            .iter()
            .map(|s| s.to_string())
            .chain(self.custom.keys().cloned())
            .collect()
    }

    /// The batched form of a kind, built-in or custom.
    pub fn cohort_fn(&self, kind: &str) -> Option<CohortFn> {
        match self.custom.get(kind) {
            Some(f) => f.cohort(),
            None => super::builtin_cohort_fn(kind),
        }
    }
}
