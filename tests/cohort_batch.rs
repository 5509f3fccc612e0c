//! The batched (cohort) form of a kernel kind is bit-identical to firing the members one by one.
//!
//! Two identical sets of kernels are built; set A fires member by member with `Kernel::fire`,
//! set B through `fire_cohort` (Biquad's lane-interleaved form, the unary elementwise form), for
//! three consecutive firings so state carries over. After every firing the outputs and the saved
//! states (`save_state`) must agree bit for bit (`to_bits`). Both output protocols are run:
//! fresh output blocks every firing, and blocks that keep accumulating across firings (so a
//! firing writes behind values already there).

use tapwheel::kernels::dsp::biquad_cohort;
use tapwheel::kernels::elementwise::unary_cohort;
use tapwheel::kernels::{
    BuildCtx, CohortMember, FireIo, InputBlock, Kernel, KernelRegistry, OutputBlock, Signature,
    TapSig, fire_cohort, instantiate,
};
use tapwheel::scene::{BiquadMode, KernelSpec, MapOp, Shape};

const FIRINGS: u64 = 3;

/// A 64-bit linear congruential generator, high bits out.
struct Lcg(u64);

impl Lcg {
    fn next_u31(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * f64::from(self.next_u31()) / f64::from(1u32 << 31)) as f32
    }
}

/// One node: its kernel spec and its one-input, one-output signature.
#[derive(Clone)]
struct Node {
    spec: KernelSpec,
    sig: Signature,
}

fn node(spec: KernelSpec, rate: u32, (batch, channels, frames): (u32, u32, u32)) -> Node {
    let shape = Shape {
        batch,
        channels,
        frames,
    };
    let tap = |name: &str| TapSig {
        name: name.into(),
        rate,
        token_len: shape.elements() as usize,
        shape,
    };
    Node {
        spec,
        sig: Signature {
            inputs: vec![tap("in")],
            outputs: vec![tap("out")],
        },
    }
}

impl Node {
    fn build(&self) -> Box<dyn Kernel> {
        let registry = KernelRegistry::default();
        instantiate(
            &self.spec,
            &BuildCtx {
                sig: &self.sig,
                tick_hz: 48_000.0,
                file: None,
                registry: &registry,
            },
        )
        .expect("built-in kernel")
    }
    fn token_len(&self) -> usize {
        self.sig.inputs[0].token_len
    }
    /// Values consumed per firing.
    fn block_len(&self) -> usize {
        self.sig.inputs[0].rate as usize * self.token_len()
    }
}

/// 19 Biquads of every mode over shapes (1,1,64), (2,3,16), (1,2,1) at rates 1 and 2: the rows
/// fall into lane groups of 64, 128, 16, 32, 1 and 2 samples, several of them partial chunks
/// (e.g. three (2,3,16) rate-1 members give 18 lanes of 16 samples: chunks of 8, 8 and 2).
fn biquads() -> Vec<Node> {
    let modes = [
        BiquadMode::Lowpass,
        BiquadMode::Highpass,
        BiquadMode::Bandpass,
        BiquadMode::Notch,
        BiquadMode::Peak,
        BiquadMode::LowShelf,
        BiquadMode::HighShelf,
    ];
    let shapes = [(1, 1, 64), (2, 3, 16), (1, 2, 1)];
    (0..19)
        .map(|i| {
            let spec = KernelSpec::Biquad {
                mode: modes[i % 7],
                cutoff_hz: 150.0 + 1130.0 * i as f64,
                q: 0.5 + 0.13 * i as f64,
                gain_db: -6.0 + 1.1 * i as f64,
            };
            node(spec, 1 + (i as u32 / 3) % 2, shapes[i % 3])
        })
        .collect()
}

/// Every unary elementwise kind with a batched form, in two shapes and rates each.
fn unaries() -> Vec<Node> {
    let mut specs = vec![
        KernelSpec::Gain { gain: -1.7 },
        KernelSpec::MulScalar { value: 0.3 },
        KernelSpec::Offset { value: 0.25 },
        KernelSpec::AddScalar { value: -3.5 },
        KernelSpec::Copy,
    ];
    specs.extend(
        [
            MapOp::Neg,
            MapOp::Abs,
            MapOp::Square,
            MapOp::Sqrt,
            MapOp::Exp,
            MapOp::Log,
            MapOp::Tanh,
            MapOp::Relu,
        ]
        .map(|op| KernelSpec::Map { op }),
    );
    specs
        .into_iter()
        .flat_map(|s| [node(s.clone(), 1, (1, 1, 37)), node(s, 2, (2, 3, 5))])
        .collect()
}

/// The inputs of every node for one firing. Unary inputs include signed zeros, a subnormal,
/// huge values, infinities and a NaN, so every op's edge cases are compared bit for bit too.
fn inputs(nodes: &[Node], firing: u64, special: bool) -> Vec<Vec<f32>> {
    let mut rng = Lcg(0x5EED ^ firing.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let specials = [
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.5,
    ];
    nodes
        .iter()
        .map(|n| {
            let mut v: Vec<f32> = (0..n.block_len()).map(|_| rng.uniform(-2.0, 2.0)).collect();
            if special {
                for (d, s) in v.iter_mut().zip(specials) {
                    *d = s;
                }
            }
            v
        })
        .collect()
}

/// How the members of set B are handed to the batched form.
#[derive(Clone, Copy, Debug)]
enum Batch {
    /// `fire_cohort` over every member at once.
    All,
    /// `fire_cohort` once per kind (members of one kind together).
    PerKind,
    /// The Biquad cohort function called directly (non-Biquad members take its fallback).
    BiquadFn,
    /// The unary cohort function called directly (other members take its fallback).
    UnaryFn,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn saved(k: &dyn Kernel) -> Vec<u32> {
    let mut s = Vec::new();
    k.save_state(&mut s);
    bits(&s)
}

/// Fires set A one by one and set B batched for [`FIRINGS`] firings and compares outputs and
/// states bit for bit after every firing.
fn compare(nodes: &[Node], batch: Batch, accumulate: bool, special: bool) {
    let registry = KernelRegistry::default();
    let mut a: Vec<Box<dyn Kernel>> = nodes.iter().map(Node::build).collect();
    let mut b: Vec<Box<dyn Kernel>> = nodes.iter().map(Node::build).collect();
    let fresh = || -> Vec<OutputBlock> {
        nodes
            .iter()
            .map(|n| OutputBlock {
                values: Vec::new(),
                token_len: n.token_len(),
            })
            .collect()
    };
    let (mut out_a, mut out_b) = (fresh(), fresh());
    for firing in 0..FIRINGS {
        if !accumulate {
            (out_a, out_b) = (fresh(), fresh());
        }
        let ins = inputs(nodes, firing, special);
        let blocks: Vec<[InputBlock<'_>; 1]> = ins
            .iter()
            .zip(nodes)
            .map(|(v, n)| {
                [InputBlock {
                    values: v,
                    token_len: n.token_len(),
                }]
            })
            .collect();

        // Set A: one by one.
        for ((k, blk), out) in a.iter_mut().zip(&blocks).zip(out_a.iter_mut()) {
            k.fire(&mut FireIo {
                firing,
                tick: 7 * firing,
                inputs: blk,
                outputs: std::slice::from_mut(out),
                ..Default::default()
            });
        }

        // Set B: batched.
        let mut members: Vec<CohortMember<'_, '_>> = b
            .iter_mut()
            .zip(&blocks)
            .zip(out_b.iter_mut())
            .map(|((k, blk), out)| CohortMember {
                kernel: k.as_mut(),
                io: FireIo {
                    firing,
                    tick: 7 * firing,
                    inputs: blk,
                    outputs: std::slice::from_mut(out),
                    ..Default::default()
                },
            })
            .collect();
        match batch {
            Batch::All => fire_cohort(&registry, &mut members),
            Batch::PerKind => {
                // Stable partition by kind, then one cohort call per run of one kind.
                members.sort_by(|x, y| x.kernel.kind().cmp(y.kernel.kind()));
                for group in members.chunk_by_mut(|x, y| x.kernel.kind() == y.kernel.kind()) {
                    fire_cohort(&registry, group);
                }
            }
            Batch::BiquadFn => biquad_cohort(&mut members),
            Batch::UnaryFn => unary_cohort(&mut members),
        }
        drop(members);

        for (i, n) in nodes.iter().enumerate() {
            let what = || {
                format!(
                    "member {i} ({:?}, rate {}, shape {:?}), firing {firing}, {batch:?}, \
                     accumulate {accumulate}",
                    n.spec, n.sig.inputs[0].rate, n.sig.inputs[0].shape
                )
            };
            assert_eq!(
                out_b[i].values.len(),
                out_a[i].values.len(),
                "output length: {}",
                what()
            );
            let expected = (firing as usize + 1) * n.block_len();
            let have = out_a[i].values.len();
            assert_eq!(
                have,
                if accumulate { expected } else { n.block_len() },
                "one-by-one output length: {}",
                what()
            );
            if let Some(j) =
                (0..have).find(|&j| out_a[i].values[j].to_bits() != out_b[i].values[j].to_bits())
            {
                panic!(
                    "outputs differ at element {j}: one by one {:e} ({:#010x}), batched {:e} \
                     ({:#010x}): {}",
                    out_a[i].values[j],
                    out_a[i].values[j].to_bits(),
                    out_b[i].values[j],
                    out_b[i].values[j].to_bits(),
                    what()
                );
            }
            assert_eq!(
                saved(a[i].as_ref()),
                saved(b[i].as_ref()),
                "state: {}",
                what()
            );
        }
    }
}

#[test]
fn the_batched_forms_are_registered() {
    let registry = KernelRegistry::default();
    for kind in [
        "Biquad",
        "Gain",
        "MulScalar",
        "Offset",
        "AddScalar",
        "Map",
        "Copy",
    ] {
        assert!(
            registry.cohort_fn(kind).is_some(),
            "{kind} has no batched form"
        );
    }
}

#[test]
fn biquad_cohort_is_bit_identical() {
    let nodes = biquads();
    assert_eq!(nodes.len(), 19);
    for accumulate in [false, true] {
        compare(&nodes, Batch::All, accumulate, false);
    }
}

#[test]
fn biquad_cohort_in_shuffled_member_order_is_bit_identical() {
    // Lanes are grouped by length; interleave the shapes differently from `biquads()`.
    let mut nodes = biquads();
    nodes.reverse();
    nodes.rotate_left(5);
    compare(&nodes, Batch::All, true, false);
}

#[test]
fn unary_cohort_is_bit_identical() {
    let nodes = unaries();
    for accumulate in [false, true] {
        for special in [false, true] {
            compare(&nodes, Batch::PerKind, accumulate, special);
        }
    }
}

#[test]
fn unary_cohort_of_one_kind_is_bit_identical() {
    // All Map members (every op) in one fire_cohort call: the batched form, not the fallback.
    let nodes: Vec<Node> = unaries()
        .into_iter()
        .filter(|n| matches!(n.spec, KernelSpec::Map { .. }))
        .collect();
    assert_eq!(nodes.len(), 16);
    for special in [false, true] {
        compare(&nodes, Batch::All, true, special);
    }
}

/// Biquads, Gains and an Offset, interleaved.
fn mixed() -> Vec<Node> {
    let bq = biquads();
    let un = unaries();
    let mut nodes = Vec::new();
    for i in 0..6 {
        nodes.push(bq[i].clone());
        nodes.push(un[i % 2].clone()); // Gain, in two shapes
    }
    nodes.push(un[4].clone()); // Offset
    nodes
}

#[test]
fn mixed_kind_cohort_gives_one_by_one_results() {
    let nodes = mixed();
    for accumulate in [false, true] {
        // fire_cohort over mixed kinds (it falls back to one by one)…
        compare(&nodes, Batch::All, accumulate, false);
        // …and per kind, each group through its own batched form.
        compare(&nodes, Batch::PerKind, accumulate, false);
    }
}

#[test]
fn cohort_functions_fall_back_for_foreign_members() {
    // Called directly on a mixed list, each cohort function fires the members that are not
    // its kind with `Kernel::fire`.
    let nodes = mixed();
    compare(&nodes, Batch::BiquadFn, true, false);
    compare(&nodes, Batch::UnaryFn, true, false);
}
