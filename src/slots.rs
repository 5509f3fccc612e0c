//! Slots and symbols (SPEC §11): the run's 256 `u64` slots with their end-of-tick write rule,
//! the symbol table (`name → u64`, id = FNV-1a-64 of the name), and the precedence of their
//! sources (scene < [`RunOptions`](crate::RunOptions) / `--slot` / `--symbol`).
//!
//! **The write rule.** A slot write made at tick `t` (by a firing that completes at `t`) applies
//! at the *end* of tick `t`: a read at tick `t` — at any delta, in any IPLS stage — sees every
//! write made before `t` and none made at `t`. Several writes to one slot in one tick apply in
//! canonical order (node, then firing, then write order), so the last of them wins whatever the
//! schedule, the deltas or the thread count:
//!
//! ```
//! use tapwheel::slots::{SlotTable, SlotWrite};
//! let mut t = SlotTable::new(&[(3, 7)].into_iter().collect());
//! t.advance_to(5);                       // a read at tick 5 …
//! assert_eq!(t.get(3), 7);
//! t.queue(SlotWrite { tick: 5, node: 2, firing: 0, order: 0, slot: 3, value: 1 });
//! t.queue(SlotWrite { tick: 5, node: 1, firing: 0, order: 0, slot: 3, value: 9 });
//! t.advance_to(5);                       // … never sees a write of tick 5, at any delta
//! assert_eq!(t.get(3), 7);
//! t.advance_to(6);                       // tick 6 sees both, applied in node order: node 2 last
//! assert_eq!(t.get(3), 1);
//! // A write made at a later tick (a firing with latency) waits for the end of that tick.
//! t.queue(SlotWrite { tick: 9, node: 0, firing: 4, order: 0, slot: 0, value: 42 });
//! assert_eq!(t.peek(0, 9), 0);
//! assert_eq!(t.peek(0, 10), 42);
//! ```
//!
//! **Symbols** name `u64` values; a channel's `delay: Symbol("name")` takes its value from the
//! table at run start (engine construction), so changing a symbol never re-plans and never
//! changes `plan_digest`. A symbol's id is the FNV-1a-64 hash of its name ([`symbol_id`]).

use crate::error::{Diagnostic, Location};
use std::collections::BTreeMap;

/// Slots per run (indices `0..=255`).
pub const SLOT_COUNT: usize = 256;

/// FNV-1a, 64-bit (shared with the dispatch `Hash` policies): a symbol's id is this hash of its
/// name.
///
/// ```
/// use tapwheel::slots::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);       // the offset basis
/// assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
/// assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
/// ```
pub use crate::dispatch::fnv1a64;

/// The id of a symbol: FNV-1a-64 of its name (UTF-8 bytes).
///
/// ```
/// use tapwheel::slots::symbol_id;
/// assert_eq!(symbol_id("a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn symbol_id(name: &str) -> u64 {
    fnv1a64(name.as_bytes())
}

/// The slot value `SlotLoad` stores for an element: `value as u64`, saturating — negatives and
/// NaN give 0, values above `u64::MAX` give `u64::MAX`, fractions are truncated toward zero.
///
/// ```
/// use tapwheel::slots::slot_value;
/// assert_eq!(slot_value(2.9), 2);
/// assert_eq!(slot_value(-3.0), 0);
/// assert_eq!(slot_value(f32::NAN), 0);
/// assert_eq!(slot_value(1e30), u64::MAX);
/// assert_eq!(slot_value(f32::INFINITY), u64::MAX);
/// ```
pub fn slot_value(v: f32) -> u64 {
    // Rust's float-to-int `as` saturates and maps NaN to 0: exactly the rule.
    v as u64
}

/// One slot write, tagged with the tick it is made at and its canonical position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotWrite {
    /// The tick the write is made at (the writing firing's completion tick).
    pub tick: u64,
    /// The writing node (plan index), its firing index, and the write's position in that firing.
    pub node: u32,
    pub firing: u64,
    pub order: u32,
    pub slot: u32,
    pub value: u64,
}

impl SlotWrite {
    fn key(&self) -> (u64, u32, u64, u32) {
        (self.tick, self.node, self.firing, self.order)
    }
}

/// The run's slot table: the values reads see, and the writes not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTable {
    values: Vec<u64>,
    pending: Vec<SlotWrite>,
}

impl Default for SlotTable {
    fn default() -> Self {
        SlotTable {
            values: vec![0; SLOT_COUNT],
            pending: Vec::new(),
        }
    }
}

impl SlotTable {
    /// A table with these initial values (indices ≥ 256 are ignored; callers validate them).
    pub fn new(initial: &BTreeMap<u32, u64>) -> Self {
        let mut t = SlotTable::default();
        for (&n, &v) in initial {
            if let Some(s) = t.values.get_mut(n as usize) {
                *s = v;
            }
        }
        t
    }

    /// The value of `slot` as applied so far (0 for an index ≥ 256).
    pub fn get(&self, slot: u32) -> u64 {
        self.values.get(slot as usize).copied().unwrap_or(0)
    }

    /// Every slot as applied so far (what a firing reads).
    pub fn view(&self) -> &[u64] {
        &self.values
    }

    /// Queues a write; it applies once the table advances past its tick.
    pub fn queue(&mut self, w: SlotWrite) {
        self.pending.push(w);
    }

    /// Applies, in canonical order, every queued write made before `tick`: afterwards the table
    /// is what a read at `tick` sees. Idempotent for one tick.
    pub fn advance_to(&mut self, tick: u64) {
        if !self.pending.iter().any(|w| w.tick < tick) {
            return;
        }
        self.pending.sort_by_key(SlotWrite::key);
        let due = self.pending.partition_point(|w| w.tick < tick);
        for w in self.pending.drain(..due) {
            if let Some(s) = self.values.get_mut(w.slot as usize) {
                *s = w.value;
            }
        }
    }

    /// What a read of `slot` at `tick` would see, without applying anything.
    pub fn peek(&self, slot: u32, tick: u64) -> u64 {
        let mut due: Vec<&SlotWrite> = self
            .pending
            .iter()
            .filter(|w| w.slot == slot && w.tick < tick)
            .collect();
        due.sort_by_key(|w| w.key());
        due.last().map_or(self.get(slot), |w| w.value)
    }

    /// Every slot whose value a read at `tick` would see as non-zero, by index.
    pub fn nonzero_at(&self, tick: u64) -> BTreeMap<u32, u64> {
        let mut t = self.clone();
        t.advance_to(tick);
        (0..SLOT_COUNT as u32)
            .filter_map(|n| Some((n, t.get(n))).filter(|&(_, v)| v != 0))
            .collect()
    }
}

/// A write outside the table (a custom kernel asking for slot ≥ 256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("slot {0} is out of range (a run has {SLOT_COUNT} slots, 0..=255)")]
pub struct SlotOutOfRange(pub u32);

/// What a firing sees of the slot table (SPEC §11): the table as of its tick, and a queue for
/// its own writes, which the engine applies at the end of the tick the firing completes.
/// Kernels stay ECS-free; the `Default` reads every slot as 0 (kernels fired outside an engine).
///
/// ```
/// use tapwheel::slots::SlotIo;
/// let table = [0u64, 5, 0];
/// let mut io = SlotIo::new(&table);
/// assert_eq!(io.get(1), 5);
/// io.set(1, 9).unwrap();
/// assert_eq!(io.get(1), 5);                 // a firing never sees its own write
/// assert_eq!(io.writes(), &[(1, 9)]);
/// assert!(io.set(256, 1).is_err());         // 256 slots: 0..=255
/// assert_eq!(SlotIo::default().get(7), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SlotIo<'a> {
    table: &'a [u64],
    writes: Vec<(u32, u64)>,
}

impl<'a> SlotIo<'a> {
    pub fn new(table: &'a [u64]) -> Self {
        SlotIo {
            table,
            writes: Vec::new(),
        }
    }

    /// The slot's value as of the firing's tick (writes of that tick are not seen).
    pub fn get(&self, slot: u32) -> u64 {
        self.table.get(slot as usize).copied().unwrap_or(0)
    }

    /// Queues a write of `value` into `slot`.
    pub fn set(&mut self, slot: u32, value: u64) -> Result<(), SlotOutOfRange> {
        if slot as usize >= SLOT_COUNT {
            return Err(SlotOutOfRange(slot));
        }
        self.writes.push((slot, value));
        Ok(())
    }

    /// The writes queued by this firing, in order.
    pub fn writes(&self) -> &[(u32, u64)] {
        &self.writes
    }

    /// Takes the queued writes out (the engine does this after the firing).
    pub fn take_writes(&mut self) -> Vec<(u32, u64)> {
        std::mem::take(&mut self.writes)
    }
}

/// The symbol table and slot values a run starts with, after precedence: the scene's values,
/// overridden by the run's options (`RunOptions`, `--symbol`, `--slot`).
///
/// ```
/// use std::collections::BTreeMap;
/// use tapwheel::slots::merged;
/// let scene: BTreeMap<String, u64> = [("link".to_string(), 3), ("x".to_string(), 1)].into();
/// let opts: BTreeMap<String, u64> = [("link".to_string(), 7)].into();
/// let m = merged(&scene, &opts);
/// assert_eq!((m["link"], m["x"]), (7, 1));
/// ```
pub fn merged<K: Ord + Clone>(
    scene: &BTreeMap<K, u64>,
    opts: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    let mut m = scene.clone();
    m.extend(opts.iter().map(|(k, v)| (k.clone(), *v)));
    m
}

fn arg_error(arg: &str, text: &str, message: String) -> Diagnostic {
    Diagnostic {
        code: "E106",
        message,
        location: Location::Argument(format!("{arg} {text}")),
    }
}

/// Parses a `--slot N=VALUE` argument (E106 located at the argument).
///
/// ```
/// use tapwheel::slots::parse_slot_arg;
/// assert_eq!(parse_slot_arg("3=17").unwrap(), (3, 17));
/// assert_eq!(parse_slot_arg(" 255 = 0x10 ").unwrap(), (255, 16));
/// assert_eq!(parse_slot_arg("256=1").unwrap_err().code, "E106");
/// assert!(parse_slot_arg("3").is_err() && parse_slot_arg("3=x").is_err());
/// ```
pub fn parse_slot_arg(text: &str) -> Result<(u32, u64), Diagnostic> {
    let bad = |m: String| arg_error("--slot", text, m);
    let (n, v) = text
        .split_once('=')
        .ok_or_else(|| bad(format!("`{text}` must be written N=VALUE")))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| bad(format!("slot index `{}` is not a number", n.trim())))?;
    if n as usize >= SLOT_COUNT {
        return Err(bad(format!(
            "slot {n} is out of range (a run has {SLOT_COUNT} slots, 0..=255)"
        )));
    }
    let v = parse_u64(v).ok_or_else(|| {
        bad(format!(
            "slot value `{}` is not an unsigned 64-bit integer",
            v.trim()
        ))
    })?;
    Ok((n, v))
}

/// Parses a `--symbol NAME=VALUE` argument (E106 located at the argument).
///
/// ```
/// use tapwheel::slots::parse_symbol_arg;
/// assert_eq!(parse_symbol_arg("link=7").unwrap(), ("link".to_string(), 7));
/// assert_eq!(parse_symbol_arg("link").unwrap_err().code, "E106");
/// assert!(parse_symbol_arg("=7").is_err() && parse_symbol_arg("link=-1").is_err());
/// ```
pub fn parse_symbol_arg(text: &str) -> Result<(String, u64), Diagnostic> {
    let bad = |m: String| arg_error("--symbol", text, m);
    let (name, v) = text
        .split_once('=')
        .ok_or_else(|| bad(format!("`{text}` must be written NAME=VALUE")))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the symbol name is empty".into()));
    }
    let v = parse_u64(v).ok_or_else(|| {
        bad(format!(
            "symbol value `{}` is not an unsigned 64-bit integer",
            v.trim()
        ))
    })?;
    Ok((name.to_string(), v))
}

/// A decimal or `0x` hexadecimal `u64`.
fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Checks slot indices given through the run's options (E106 at `--slot`).
pub fn check_option_slots(slots: &BTreeMap<u32, u64>) -> Vec<Diagnostic> {
    slots
        .keys()
        .filter(|&&n| n as usize >= SLOT_COUNT)
        .map(|&n| Diagnostic {
            code: "E106",
            message: format!("slot {n} is out of range (a run has {SLOT_COUNT} slots, 0..=255)"),
            location: Location::Argument(format!("--slot {n}")),
        })
        .collect()
}

/// Resolves every `delay: Symbol("name")` of a plan against `symbols`: the delay of every
/// channel, or one located error (E280 at `edges[i].delay`) per channel whose symbol has no
/// value at run start.
///
/// ```
/// use std::collections::BTreeMap;
/// use tapwheel::{Plan, Scene};
/// use tapwheel::slots::resolve_delays;
/// let scene = Scene::parse(r#"Scene(version: 1, name: "s",
///     nodes: [Node(name: "a", kernel: Const(value: 1.0), count: Some(1)), Node(name: "p", kernel: Probe)],
///     edges: [Edge(from: "a.out", to: "p.in", delay: Symbol("link"))])"#, "s.ron", ".".into()).unwrap();
/// let plan = Plan::compile(&scene).unwrap();
/// let table: BTreeMap<String, u64> = [("link".to_string(), 7)].into();
/// assert_eq!(resolve_delays(&plan, &table).unwrap(), vec![7]);
/// let err = resolve_delays(&plan, &BTreeMap::new()).unwrap_err();
/// assert_eq!((err[0].code, err[0].location_text().unwrap().as_str()), ("E280", "edges[0].delay"));
/// ```
pub fn resolve_delays(
    plan: &crate::plan::Plan,
    symbols: &BTreeMap<String, u64>,
) -> Result<Vec<u64>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let delays = plan
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| match &c.delay_symbol {
            None => c.delay,
            Some(name) => symbols.get(name).copied().unwrap_or_else(|| {
                errors.push(Diagnostic::at(
                    "E280",
                    format!("edges[{i}].delay"),
                    format!(
                        "channel `{}` takes its delay from symbol `{name}`, which has no value at run start (set it in the scene's `symbols`, `RunOptions::symbols` or `--symbol {name}=TICKS`)",
                        c.name
                    ),
                ));
                0
            }),
        })
        .collect();
    if errors.is_empty() {
        Ok(delays)
    } else {
        Err(errors)
    }
}

/// What a run starts with (§11): slot values and symbols after precedence, and every channel's
/// delay with its `Symbol` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInputs {
    pub slots: BTreeMap<u32, u64>,
    pub symbols: BTreeMap<String, u64>,
    pub delays: Vec<u64>,
}

impl RunInputs {
    /// Merges the plan's (scene's) slots and symbols with the run's, then resolves delays.
    /// Errors: E106 for an option slot ≥ 256, E280 for each symbol without a value.
    pub fn resolve(
        plan: &crate::plan::Plan,
        slots: &BTreeMap<u32, u64>,
        symbols: &BTreeMap<String, u64>,
    ) -> Result<RunInputs, Vec<Diagnostic>> {
        let mut errors = check_option_slots(slots);
        let symbols = merged(&plan.symbols, symbols);
        let delays = resolve_delays(plan, &symbols).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RunInputs {
            slots: merged(&plan.slots, slots),
            symbols,
            delays,
        })
    }

    /// The plan as run: every `Symbol` delay replaced by its value (the digest is unchanged).
    pub fn apply(&self, plan: &mut crate::plan::Plan) {
        for (c, &d) in plan.channels.iter_mut().zip(&self.delays) {
            c.delay = d;
        }
    }
}
