//! The gradient tape and the backward walk (SPEC §17).
//!
//! With gradients requested, the forward run records every firing: its node, the values it
//! consumed (per input tap, as the kernel saw them), the values it produced, the state its
//! adjoint needs (`Kernel::save_state`, taken before the firing), and the identity of every
//! consumed token — `(channel, seq)`, the arena's own identity. When a token is written out, the
//! tape notes which firing, output tap and token produced that `(channel, seq)`. Nothing of this
//! exists without gradients: the engine holds no `Tape` then.
//!
//! The backward walk visits the firings in reverse order. A firing's output gradients are
//! complete by then: every consumer of its tokens fired later, so it has already pushed
//! `dL/d(token)` into the producer's slot (summed over fan-out channels and over the parts of a
//! split). The kernel's adjoint turns output and state gradients into input and parameter
//! gradients; input gradients go to the producing firings — across delays and feedback
//! channels alike, since a token's identity does not depend on when it became visible — or to
//! the channel's initial tokens. A node's state gradient is carried from each firing to the one
//! before it (back-propagation through time).
//!
//! ```
//! use tapwheel::{Engine, RunOptions, Scene};
//! // out = g · x for x = 1, 2, 3; loss = Σ out = 6g: dL/dg = 6, dL/d(src.value of a Ramp)…
//! let scene = Scene::parse(r#"Scene(version: 1, name: "t",
//!     nodes: [Node(name: "src", kernel: Ramp(start: 1.0, step: 1.0), period: Some(1), count: Some(3)),
//!             Node(name: "g", kernel: Gain(gain: 2.0)), Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "g.in"), Edge(from: "g.out", to: "out.in")],
//!     loss: Some(Sum(probe: "out")))"#, "t.ron", ".".into()).unwrap();
//! let g = tapwheel::tape::gradients(&scene, RunOptions::default()).unwrap();
//! assert_eq!(g.loss, 12.0);
//! assert_eq!(g.grads["g.gain"], 6.0);
//! // x_k = start + k·step: dL/dstart = 3g = 6, dL/dstep = (0 + 1 + 2)·g = 6.
//! assert_eq!(g.grads["src.start"], 6.0);
//! assert_eq!(g.grads["src.step"], 6.0);
//! ```

use crate::ecs::Probes;
use crate::error::{Diagnostic, Error, Result};
use crate::kernels::{BackwardIo, InputBlock, Kernel};
use crate::plan::Plan;
use bevy_ecs::prelude::Resource;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where one consumed token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A token of channel `ch` with sequence number `seq`.
    Token { ch: u32, seq: u64 },
    /// A gathered token: `count` parts starting at `start` in the tape's part list.
    Gathered { start: u32, count: u32 },
    /// A default value of an optional tap: no gradient flows back.
    Constant,
}

/// Who wrote a `(channel, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// The channel's `k`-th initial token.
    Initial(u32),
    /// Token `token` of output tap `port` of tape entry `entry`, part `part` of a split.
    Output {
        entry: u32,
        port: u16,
        part: u16,
        token: u32,
    },
    /// Discarded on arrival, or written by an engine tap (`temp`): no gradient flows back.
    Nothing,
}

/// One recorded firing.
#[derive(Debug, Clone, Copy)]
struct Entry {
    node: u32,
    firing: u64,
    tick: u64,
    /// First span: inputs, then kernel outputs, then the saved state.
    spans: u32,
    /// First source of its consumed tokens (input taps in order, tokens in order).
    sources: u32,
    /// A probe firing: `(probe stream, index of its first recorded token)`.
    probe: Option<(u32, u64, u32)>,
}

/// The static shape of a node's firings.
#[derive(Debug, Clone, Default)]
struct NodeShape {
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    /// Output taps the kernel writes (the rest are the engine's).
    kernel_outputs: usize,
    state_len: usize,
}

/// Sources collected while a firing consumes its inputs (scratch, reused).
#[derive(Debug, Clone, Default)]
pub struct SourceScratch {
    pub sources: Vec<Source>,
    pub parts: Vec<(u32, u64)>,
}

/// The tape of a forward run (a resource, present only when gradients are requested).
#[derive(Resource, Debug, Clone, Default)]
pub struct Tape {
    entries: Vec<Entry>,
    spans: Vec<(usize, usize)>,
    values: Vec<f32>,
    sources: Vec<Source>,
    parts: Vec<(u32, u64)>,
    /// Per channel, indexed by `seq`.
    producers: Vec<Vec<Producer>>,
    nodes: Vec<NodeShape>,
    /// Per channel: token length and the adapter of the output port writing it.
    channel_len: Vec<usize>,
    /// Per node, per output tap: its split adapter and shape (for the adjoint of a scatter).
    splits: Vec<Vec<Option<(crate::scene::Adapter, crate::scene::Shape)>>>,
    /// Per node, per input tap: its gather adapter, tap shape and part shapes.
    gathers: Vec<Vec<GatherShape>>,
    /// Scratch the engine fills while consuming.
    pub scratch: SourceScratch,
    /// The state a kernel saved before the firing being recorded.
    pub saved: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
struct GatherShape {
    adapter: Option<crate::scene::Adapter>,
    tap: crate::scene::Shape,
    parts: Vec<crate::scene::Shape>,
}

impl Tape {
    /// An empty tape for `plan`, knowing each kernel's state length.
    pub fn new(plan: &Plan, state_lens: &[usize]) -> Tape {
        let producers = plan
            .channels
            .iter()
            .map(|c| (0..c.initial.len() as u32).map(Producer::Initial).collect())
            .collect();
        let nodes = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeShape {
                inputs: n
                    .inputs
                    .iter()
                    .map(|t| t.shape.elements() as usize)
                    .collect(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|t| t.shape.elements() as usize)
                    .collect(),
                kernel_outputs: n.kernel_outputs().len(),
                state_len: state_lens.get(i).copied().unwrap_or(0),
            })
            .collect();
        let splits = plan
            .nodes
            .iter()
            .map(|n| {
                n.outputs
                    .iter()
                    .map(|t| t.adapter.map(|a| (a, t.shape)))
                    .collect()
            })
            .collect();
        let gathers = plan
            .nodes
            .iter()
            .map(|n| {
                n.inputs
                    .iter()
                    .map(|t| GatherShape {
                        adapter: t.adapter,
                        tap: t.shape,
                        parts: t.channels.iter().map(|&c| plan.channels[c].shape).collect(),
                    })
                    .collect()
            })
            .collect();
        Tape {
            producers,
            nodes,
            channel_len: plan
                .channels
                .iter()
                .map(|c| c.shape.elements() as usize)
                .collect(),
            splits,
            gathers,
            ..Tape::default()
        }
    }

    /// Firings recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the tape holds (values, sources, producers).
    pub fn bytes(&self) -> usize {
        self.values.len() * 4
            + self.sources.len() * std::mem::size_of::<Source>()
            + self.producers.iter().map(Vec::len).sum::<usize>() * std::mem::size_of::<Producer>()
            + self.entries.len() * std::mem::size_of::<Entry>()
    }

    fn push_span(&mut self, v: &[f32]) {
        let start = self.values.len();
        self.values.extend_from_slice(v);
        self.spans.push((start, v.len()));
    }

    /// Records a firing of `node`: what it consumed (with the sources in `self.scratch`), the
    /// state saved before it (`self.saved`) and what it produced. Returns the entry index.
    pub fn record(
        &mut self,
        node: usize,
        firing: u64,
        tick: u64,
        inputs: &[Vec<f32>],
        outputs: &[crate::kernels::OutputBlock],
        probe: Option<(u32, u64, u32)>,
    ) -> u32 {
        let entry = self.entries.len() as u32;
        let spans = self.spans.len() as u32;
        for v in inputs {
            self.push_span(v);
        }
        let kernel_outputs = self.nodes.get(node).map_or(0, |s| s.kernel_outputs);
        for b in outputs.iter().take(kernel_outputs) {
            self.push_span(&b.values);
        }
        let saved = std::mem::take(&mut self.saved);
        self.push_span(&saved);
        self.saved = saved;
        self.saved.clear();
        let sources = self.sources.len() as u32;
        let base = self.parts.len() as u32;
        for s in &self.scratch.sources {
            self.sources.push(match *s {
                Source::Gathered { start, count } => Source::Gathered {
                    start: start + base,
                    count,
                },
                other => other,
            });
        }
        self.parts.extend_from_slice(&self.scratch.parts);
        self.scratch.sources.clear();
        self.scratch.parts.clear();
        self.entries.push(Entry {
            node: node as u32,
            firing,
            tick,
            spans,
            sources,
            probe,
        });
        entry
    }

    /// Notes that token `token` of output tap `port` (part `part`) of entry `entry` became
    /// `(ch, seq)`; `entry = None` (an engine tap, a discarded arrival) carries no gradient.
    pub fn produced(&mut self, ch: usize, seq: u64, at: Option<(u32, u16, u16, u32)>) {
        let Some(list) = self.producers.get_mut(ch) else {
            return;
        };
        let p = match at {
            Some((entry, port, part, token)) => {
                let kernel_port = self
                    .entries
                    .get(entry as usize)
                    .and_then(|e| self.nodes.get(e.node as usize))
                    .is_some_and(|s| (port as usize) < s.kernel_outputs);
                if kernel_port {
                    Producer::Output {
                        entry,
                        port,
                        part,
                        token,
                    }
                } else {
                    Producer::Nothing
                }
            }
            None => Producer::Nothing,
        };
        // Sequence numbers are dense per channel; a gap (never expected) is padded.
        let seq = seq as usize;
        if list.len() < seq {
            list.resize(seq, Producer::Nothing);
        }
        if list.len() == seq {
            list.push(p);
        } else {
            list[seq] = p;
        }
    }
}

/// The gradients of a run's loss (SPEC §17).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gradients {
    /// The loss of the forward run.
    pub loss: f64,
    /// `dL/d(node.param)` for every float parameter of every kernel.
    pub grads: BTreeMap<String, f64>,
    /// `dL/d(initial token)` per channel (by name), per token, per element.
    pub initial: BTreeMap<String, Vec<Vec<f64>>>,
}

impl Gradients {
    /// `{"loss": …, "grads": {"node.param": …}, "initial": {…}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "loss": self.loss,
            "grads": self.grads,
            "initial": self.initial,
        })
    }
}

/// A node whose kernel has no adjoint but lies on the loss's path (R311, exit 4).
fn no_adjoint(plan: &Plan, node: usize, reason: &str) -> Error {
    Error::refused(Diagnostic::at(
        "R311",
        format!("nodes[{node}].kernel"),
        format!(
            "`{}` carries gradient to the loss, but {reason}; `grad` cannot differentiate through it",
            plan.nodes.get(node).map_or("", |n| n.name.as_str())
        ),
    ))
}

/// What the backward walk produces before names are attached.
pub struct RawGradients {
    /// Per node, in `Kernel::params` order.
    pub params: Vec<Vec<f64>>,
    /// Per channel, flat over its initial tokens.
    pub initial: Vec<Vec<f64>>,
}

/// The output gradients of the firings whose outputs have received a gradient but which the
/// walk has not reached yet: one buffer set per such entry (per kernel output tap, one value per
/// produced element), taken from a free list and returned once the entry is walked. Only these
/// live entries hold memory — in a chain, a handful — instead of an `f64` per recorded value.
struct OutGrads {
    /// Per tape entry: its buffer set in `bufs`, or `NONE` (all its output gradients are zero).
    slot: Vec<u32>,
    bufs: Vec<Vec<Vec<f64>>>,
    free: Vec<u32>,
}

impl OutGrads {
    const NONE: u32 = u32::MAX;

    fn new(entries: usize) -> OutGrads {
        OutGrads {
            slot: vec![Self::NONE; entries],
            bufs: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The zero-initialised buffers of `entry` (allocated on first use).
    fn get(&mut self, tape: &Tape, entry: usize) -> Option<&mut Vec<Vec<f64>>> {
        let slot = *self.slot.get(entry)?;
        if slot != Self::NONE {
            return self.bufs.get_mut(slot as usize);
        }
        let slot = match self.free.pop() {
            Some(k) => k,
            None => {
                self.bufs.push(Vec::new());
                (self.bufs.len() - 1) as u32
            }
        };
        self.slot[entry] = slot;
        let b = &mut self.bufs[slot as usize];
        zeroed(tape, entry, b);
        Some(b)
    }

    /// Moves `entry`'s output gradients into `into` (zeros if it received none) and returns
    /// whether it received any. The buffers `into` held go back to the free list.
    fn take(&mut self, tape: &Tape, entry: usize, into: &mut Vec<Vec<f64>>) -> bool {
        let slot = self.slot.get(entry).copied().unwrap_or(Self::NONE);
        if slot == Self::NONE {
            zeroed(tape, entry, into);
            return false;
        }
        self.slot[entry] = Self::NONE;
        std::mem::swap(into, &mut self.bufs[slot as usize]);
        self.free.push(slot);
        true
    }
}

/// Sets `b` to zeros shaped like `entry`'s kernel outputs (reusing its allocations).
fn zeroed(tape: &Tape, entry: usize, b: &mut Vec<Vec<f64>>) {
    let Some((e, shape)) = tape
        .entries
        .get(entry)
        .and_then(|e| Some((e, tape.nodes.get(e.node as usize)?)))
    else {
        b.clear();
        return;
    };
    b.resize_with(shape.kernel_outputs, Vec::new);
    for (q, g) in b.iter_mut().enumerate() {
        let (_, l) = tape.spans[e.spans as usize + shape.inputs.len() + q];
        g.clear();
        g.resize(l, 0.0);
    }
}

/// Walks `tape` in reverse (the `backward` schedule's work): `kernels` by node index,
/// `loss_grad[p]` = dL/d(value) for every recorded value of probe stream `p`.
pub fn walk(
    tape: &Tape,
    plan: &Plan,
    kernels: &[&dyn Kernel],
    loss_grad: &[Vec<f64>],
    probe_token_len: &[usize],
) -> Result<RawGradients> {
    let mut grad_out = OutGrads::new(tape.entries.len());
    let mut initial: Vec<Vec<f64>> = plan
        .channels
        .iter()
        .map(|c| vec![0.0; c.initial.len() * c.shape.elements() as usize])
        .collect();
    let mut state: Vec<Vec<f64>> = tape.nodes.iter().map(|s| vec![0.0; s.state_len]).collect();
    let mut params: Vec<Vec<f64>> = kernels
        .iter()
        .map(|k| vec![0.0; k.params().len()])
        .collect();
    let mut grad_inputs: Vec<Vec<f64>> = Vec::new();
    let mut grad_outputs: Vec<Vec<f64>> = Vec::new();
    let mut part_grads: Vec<Vec<f64>> = Vec::new();
    let mut ins: Vec<InputBlock<'_>> = Vec::new();
    let mut outs: Vec<InputBlock<'_>> = Vec::new();
    for (ei, e) in tape.entries.iter().enumerate().rev() {
        let n = e.node as usize;
        let Some(shape) = tape.nodes.get(n) else {
            continue;
        };
        let n_in = shape.inputs.len();
        let n_out = shape.kernel_outputs;
        let span = |k: usize| tape.spans[e.spans as usize + k];
        // The entry's output gradients are complete: take them (and free its buffers) now.
        let received = grad_out.take(tape, ei, &mut grad_outputs);
        grad_inputs.resize_with(n_in, Vec::new);
        for (j, g) in grad_inputs.iter_mut().enumerate() {
            g.clear();
            g.resize(span(j).1, 0.0);
        }
        if let Some((p, start, count)) = e.probe {
            // A probe's recorded values are the loss's arguments; the fallbacks of an optional
            // tap (after them in the buffer) were not recorded and get no gradient.
            let (Some(lg), Some(&len)) =
                (loss_grad.get(p as usize), probe_token_len.get(p as usize))
            else {
                continue;
            };
            let from = start as usize * len;
            if let Some(g0) = grad_inputs.first_mut() {
                for (k, g) in g0.iter_mut().enumerate().take(count as usize * len) {
                    *g = lg.get(from + k).copied().unwrap_or(0.0);
                }
            }
        } else {
            let Some(kernel) = kernels.get(n) else {
                continue;
            };
            let mut any = state[n].iter().any(|&g| g != 0.0);
            if received {
                any |= grad_outputs.iter().flatten().any(|&x| x != 0.0);
            }
            if !any {
                // The adjoint is linear in the incoming gradients: all zero gives all zero.
                continue;
            }
            ins.clear();
            ins.extend((0..n_in).map(|j| {
                let (s, l) = span(j);
                InputBlock {
                    values: &tape.values[s..s + l],
                    token_len: shape.inputs[j],
                }
            }));
            outs.clear();
            outs.extend((0..n_out).map(|q| {
                let (s, l) = span(n_in + q);
                InputBlock {
                    values: &tape.values[s..s + l],
                    token_len: shape.outputs[q],
                }
            }));
            let (ss, sl) = span(n_in + n_out);
            let mut io = BackwardIo {
                firing: e.firing,
                tick: e.tick,
                inputs: &ins,
                outputs: &outs,
                saved: &tape.values[ss..ss + sl],
                grad_outputs: &grad_outputs,
                grad_inputs: &mut grad_inputs,
                grad_state: &mut state[n],
                grad_params: &mut params[n],
            };
            kernel
                .backward(&mut io)
                .map_err(|na| no_adjoint(plan, n, &na.to_string()))?;
        }
        // Send each consumed token's gradient to whoever produced it.
        let mut src = e.sources as usize;
        for (j, g) in grad_inputs.iter().enumerate() {
            let len = shape.inputs[j].max(1);
            for tok in g.chunks(len) {
                let Some(&s) = tape.sources.get(src) else {
                    break;
                };
                src += 1;
                match s {
                    Source::Token { ch, seq } => {
                        send(tape, &mut grad_out, &mut initial, ch, seq, tok);
                    }
                    Source::Gathered { start, count } => {
                        let Some(gs) = tape.gathers.get(n).and_then(|v| v.get(j)) else {
                            continue;
                        };
                        crate::adapters::gather_adjoint(
                            gs.adapter,
                            gs.tap,
                            &gs.parts,
                            tok,
                            &mut part_grads,
                        );
                        for (k, pg) in part_grads.iter().enumerate().take(count as usize) {
                            if let Some(&(ch, seq)) = tape.parts.get(start as usize + k) {
                                send(tape, &mut grad_out, &mut initial, ch, seq, pg);
                            }
                        }
                    }
                    Source::Constant => {}
                }
            }
        }
    }
    Ok(RawGradients { params, initial })
}

/// Adds `g` (one token's gradient) to the producer of `(ch, seq)`.
fn send(
    tape: &Tape,
    grad_out: &mut OutGrads,
    initial: &mut [Vec<f64>],
    ch: u32,
    seq: u64,
    g: &[f64],
) {
    let ch = ch as usize;
    let Some(p) = tape
        .producers
        .get(ch)
        .and_then(|l| l.get(seq as usize))
        .copied()
    else {
        return;
    };
    match p {
        Producer::Initial(k) => {
            let len = tape.channel_len.get(ch).copied().unwrap_or(0);
            if let Some(slot) = initial
                .get_mut(ch)
                .and_then(|v| v.get_mut(k as usize * len..(k as usize + 1) * len))
            {
                for (d, x) in slot.iter_mut().zip(g) {
                    *d += x;
                }
            }
        }
        Producer::Output {
            entry,
            port,
            part,
            token,
        } => {
            let Some(e) = tape.entries.get(entry as usize) else {
                return;
            };
            let n = e.node as usize;
            let Some(shape) = tape.nodes.get(n) else {
                return;
            };
            let tl = shape.outputs.get(port as usize).copied().unwrap_or(0);
            let Some(buf) = grad_out
                .get(tape, entry as usize)
                .and_then(|b| b.get_mut(port as usize))
            else {
                return;
            };
            let token = &mut buf[token as usize * tl..(token as usize + 1) * tl];
            match tape
                .splits
                .get(n)
                .and_then(|v| v.get(port as usize))
                .copied()
                .flatten()
            {
                Some((adapter, tap)) => {
                    crate::adapters::scatter_adjoint(Some(adapter), tap, part as usize, g, token)
                }
                None => {
                    for (d, x) in token.iter_mut().zip(g) {
                        *d += x;
                    }
                }
            }
        }
        Producer::Nothing => {}
    }
}

/// Runs `scene` forward with gradients and returns the loss and its gradients (the Rust API of
/// `tapwheel grad`).
pub fn gradients(scene: &crate::Scene, opts: crate::RunOptions) -> Result<Gradients> {
    let mut engine = crate::Engine::from_scene(
        scene,
        crate::RunOptions {
            gradients: true,
            ..opts
        },
    )?;
    engine.run();
    engine.gradients()
}

/// Probe streams' recorded values as `f64`, by probe index.
pub fn probe_values(probes: &Probes) -> Vec<Vec<f64>> {
    probes
        .streams
        .iter()
        .map(|p| p.values.iter().map(|&v| f64::from(v)).collect())
        .collect()
}
