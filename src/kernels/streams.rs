//! Stream kernels: Kahn processes whose demand depends on their state (SPEC §7).

use super::{BackwardIo, FireIo, InputView, Kernel, NoAdjoint};
use crate::scene::Pred;

/// `Probe`: the sink recorded to the output. The engine records the consumed tokens with their
/// sequence numbers and visibility ticks; the kernel itself computes nothing.
pub struct ProbeSink {
    rate: u32,
}

impl ProbeSink {
    pub fn new(rate: u32) -> Self {
        ProbeSink { rate }
    }
}

impl Kernel for ProbeSink {
    fn kind(&self) -> &str {
        "Probe"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        0
    }
    fn fire(&mut self, _: &mut FireIo<'_>) {}
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Ok(()) // the loss gradient enters at the probe's inputs, from the tape
    }
}

/// `OrderedMerge(dedup)`: merges two ascending streams (ordered by each token's first element).
///
/// It keeps a head per input and demands one token on every input whose head is empty and which
/// is not closed-and-drained. A firing emits the smaller head (equal heads: `a`'s first, or with
/// `dedup` one token clearing both). When one input is closed and drained with an empty head,
/// the other is copied through; it finishes when both are closed and drained with empty heads.
///
/// ```
/// use tapwheel::kernels::{InputView, Kernel};
/// use tapwheel::kernels::streams::OrderedMerge;
/// let m = OrderedMerge::new(true, 1);
/// let open = InputView { visible: 0, held: 0, closed: false, drained: true, optional: false };
/// let done = InputView { visible: 0, held: 0, closed: true, drained: true, optional: false };
/// let mut d = [0u32; 2];
/// m.demand(&[open, done], &mut d);
/// assert_eq!(d, [1, 0]); // nothing more can come on `b`: read only `a`
/// assert!(!m.finished(&[open, done], &d));
/// assert!(m.finished(&[done, done], &[0, 0]));
/// ```
pub struct OrderedMerge {
    dedup: bool,
    heads: [Option<Vec<f32>>; 2],
    token_len: usize,
}

impl OrderedMerge {
    pub fn new(dedup: bool, token_len: usize) -> Self {
        OrderedMerge {
            dedup,
            heads: [None, None],
            token_len,
        }
    }

    /// Which heads a firing takes, given the heads after consuming.
    fn choose(&self, keys: [Option<f32>; 2]) -> [bool; 2] {
        match (keys[0], keys[1]) {
            (Some(a), Some(b)) => match a.total_cmp(&b) {
                std::cmp::Ordering::Less => [true, false],
                std::cmp::Ordering::Greater => [false, true],
                std::cmp::Ordering::Equal => [true, self.dedup],
            },
            (Some(_), None) => [true, false],
            (None, Some(_)) => [false, true],
            (None, None) => [false, false],
        }
    }
}

impl Kernel for OrderedMerge {
    fn kind(&self) -> &str {
        "OrderedMerge"
    }
    fn demand(&self, inputs: &[InputView], demand: &mut [u32]) {
        for i in 0..2 {
            demand[i] = u32::from(self.heads[i].is_none() && !inputs[i].exhausted());
        }
    }
    fn finished(&self, inputs: &[InputView], _: &[u32]) -> bool {
        (0..2).all(|i| self.heads[i].is_none() && inputs[i].exhausted())
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        for i in 0..2 {
            if io.inputs[i].tokens() > 0 {
                self.heads[i] = Some(io.inputs[i].token(0).to_vec());
            }
        }
        let key = |h: &Option<Vec<f32>>| h.as_ref().and_then(|t| t.first().copied());
        let take = self.choose([key(&self.heads[0]), key(&self.heads[1])]);
        // Emit one token; with dedup an equal head on `b` is cleared too.
        let mut emitted = false;
        for (head, take) in self.heads.iter_mut().zip(take) {
            if take
                && let Some(t) = head.take()
                && !emitted
            {
                io.outputs[0].push(&t);
                emitted = true;
            }
        }
    }
    /// The state is both heads: `[present_a, present_b, head_a…, head_b…]` saved, and the
    /// gradient of each head's values carried.
    fn state_len(&self) -> usize {
        2 * self.token_len
    }
    fn save_state(&self, out: &mut Vec<f32>) {
        out.extend(
            self.heads
                .iter()
                .map(|h| if h.is_some() { 1.0 } else { 0.0 }),
        );
        for h in &self.heads {
            match h {
                Some(t) => out.extend_from_slice(t),
                None => out.extend(std::iter::repeat_n(0.0, self.token_len)),
            }
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let len = self.token_len;
        let present = |i: usize| io.saved.get(i).is_some_and(|&p| p != 0.0);
        let consumed = [0, 1].map(|i| io.inputs[i].tokens() > 0);
        let key = |i: usize| -> Option<f32> {
            if consumed[i] {
                io.inputs[i].values.first().copied()
            } else if present(i) {
                io.saved.get(2 + i * len).copied()
            } else {
                None
            }
        };
        let take = self.choose([key(0), key(1)]);
        let emitted = if take[0] { 0 } else { 1 };
        for i in 0..2 {
            // The adjoint of head i after consuming, before the firing's choice.
            let mid: Vec<f64> = if !take[i] {
                io.grad_state[i * len..(i + 1) * len].to_vec()
            } else if i == emitted && io.outputs[0].tokens() > 0 {
                io.grad_outputs[0][..len].to_vec()
            } else {
                vec![0.0; len]
            };
            if consumed[i] {
                for (g, m) in io.grad_inputs[i].iter_mut().zip(&mid) {
                    *g += m;
                }
                io.grad_state[i * len..(i + 1) * len].fill(0.0);
            } else {
                io.grad_state[i * len..(i + 1) * len].copy_from_slice(&mid);
            }
        }
        Ok(())
    }
}

/// `Filter(pred)`: passes a token when its first element satisfies the predicate.
///
/// ```
/// use tapwheel::kernels::streams::pred_holds;
/// use tapwheel::scene::Pred;
/// assert!(pred_holds(Pred::Le(5.0), 5.0));
/// assert!(!pred_holds(Pred::Lt(5.0), 5.0));
/// assert!(pred_holds(Pred::NotMultipleOf(3.0), 7.0));
/// assert!(!pred_holds(Pred::NotMultipleOf(3.0), 9.0));
/// assert!(pred_holds(Pred::Le(0.1), 0.1f32) && pred_holds(Pred::Eq(0.1), 0.1f32));
/// ```
pub struct Filter {
    pred: Pred,
}

impl Filter {
    pub fn new(pred: Pred) -> Self {
        Filter { pred }
    }
}

/// Evaluates a predicate on a value: the parameter is rounded to f32 first (SPEC §7), then both
/// are compared in f64, so `Le(0.1)` passes a token holding `0.1f32`.
pub fn pred_holds(pred: Pred, v: f32) -> bool {
    let v = v as f64;
    let r = |x: f64| f64::from(x as f32);
    let pred = match pred {
        Pred::Lt(x) => Pred::Lt(r(x)),
        Pred::Le(x) => Pred::Le(r(x)),
        Pred::Gt(x) => Pred::Gt(r(x)),
        Pred::Ge(x) => Pred::Ge(r(x)),
        Pred::Eq(x) => Pred::Eq(r(x)),
        Pred::Ne(x) => Pred::Ne(r(x)),
        Pred::NotMultipleOf(x) => Pred::NotMultipleOf(r(x)),
    };
    match pred {
        Pred::Lt(x) => v < x,
        Pred::Le(x) => v <= x,
        Pred::Gt(x) => v > x,
        Pred::Ge(x) => v >= x,
        Pred::Eq(x) => v == x,
        Pred::Ne(x) => v != x,
        Pred::NotMultipleOf(x) => v % x != 0.0,
    }
}

impl Kernel for Filter {
    fn kind(&self) -> &str {
        "Filter"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(1);
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let t = io.inputs[0].token(0);
        if t.first().is_some_and(|&v| pred_holds(self.pred, v)) {
            io.outputs[0].push(t);
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        pass_through(io);
        Ok(())
    }
}

/// The adjoint of a kernel that copies its input token to its output (or drops it).
fn pass_through(io: &mut BackwardIo<'_>) {
    if io.outputs[0].tokens() > 0 {
        for (g, o) in io.grad_inputs[0].iter_mut().zip(&io.grad_outputs[0]) {
            *g += o;
        }
    }
}

/// `Take(n)`: passes the first `n` tokens, then finishes (closing its output).
pub struct Take {
    n: u64,
    taken: u64,
}

impl Take {
    pub fn new(n: u64) -> Self {
        Take { n, taken: 0 }
    }
}

impl Kernel for Take {
    fn kind(&self) -> &str {
        "Take"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(u32::from(self.taken < self.n));
    }
    fn finished(&self, inputs: &[InputView], demand: &[u32]) -> bool {
        self.taken >= self.n
            || !inputs[0].optional && inputs[0].closed && inputs[0].held < demand[0] as usize
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        io.outputs[0].push(io.inputs[0].token(0));
        self.taken += 1;
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        pass_through(io);
        Ok(())
    }
}

/// `Select(slot)`: routes each input token to `then` when the slot is non-zero, else to `else`
/// (SPEC §11). The slot is read as of the firing's tick: a write made in the same tick is not
/// seen. Maximum production 1 on each output; the other output gets nothing.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::streams::Select;
/// use tapwheel::slots::SlotIo;
/// let mut k = Select::new(2);
/// let x = [4.0f32, 5.0];
/// let table = [0u64, 0, 1];
/// let mut out = [OutputBlock { values: vec![], token_len: 2 }, OutputBlock { values: vec![], token_len: 2 }];
/// k.fire(&mut FireIo { inputs: &[InputBlock { values: &x, token_len: 2 }], outputs: &mut out,
///     slots: SlotIo::new(&table), ..Default::default() });
/// assert_eq!((out[0].values.as_slice(), out[1].tokens()), (&[4.0, 5.0][..], 0)); // slot 2 ≠ 0: `then`
/// ```
pub struct Select {
    slot: u32,
}

impl Select {
    pub fn new(slot: u32) -> Self {
        Select { slot }
    }
}

impl Kernel for Select {
    fn kind(&self) -> &str {
        "Select"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(1);
    }
    fn max_production(&self, _: usize) -> u32 {
        1
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let route = if io.slots.get(self.slot) != 0 { 0 } else { 1 };
        let Some(input) = io.inputs.first() else {
            return;
        };
        for t in 0..input.tokens() {
            if let Some(out) = io.outputs.get_mut(route) {
                out.push(input.token(t));
            }
        }
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Err(NoAdjoint::new(
            "Select",
            "its route depends on a slot value, which is run state outside the tape",
        ))
    }
}

/// `SlotLoad(slot, index)`: stores element `index` of each input token into the slot, as
/// `value as u64` saturating ([`slot_value`](crate::slots::slot_value): NaN and negatives give
/// 0). The write applies at the end of the tick the firing completes (SPEC §11). No outputs.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel};
/// use tapwheel::kernels::streams::SlotLoad;
/// let mut k = SlotLoad::new(9, 1);
/// let x = [0.5f32, 1e30];
/// let mut io = FireIo { inputs: &[InputBlock { values: &x, token_len: 2 }], ..Default::default() };
/// k.fire(&mut io);
/// assert_eq!(io.slots.writes(), &[(9, u64::MAX)]);
/// ```
pub struct SlotLoad {
    slot: u32,
    index: usize,
}

impl SlotLoad {
    pub fn new(slot: u32, index: usize) -> Self {
        SlotLoad { slot, index }
    }
}

impl Kernel for SlotLoad {
    fn kind(&self) -> &str {
        "SlotLoad"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(1);
    }
    fn max_production(&self, _: usize) -> u32 {
        0
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let Some(input) = io.inputs.first() else {
            return;
        };
        for t in 0..input.tokens() {
            if let Some(&v) = input.token(t).get(self.index) {
                // The planner keeps `slot` below 256 (E220), so the write cannot be refused.
                let _ = io.slots.set(self.slot, crate::slots::slot_value(v));
            }
        }
    }
    fn backward(&self, _: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        Err(NoAdjoint::new(
            "SlotLoad",
            "it writes a slot (integer run state), not a token",
        ))
    }
}
