//! The run report (`report.json`, SPEC §19), digests (§18) and probe CSV output.

use crate::arena::TokenArena;
use crate::device::ActiveDevice;
use crate::diag::DeadlockReport;
use crate::ecs::{NodeOrder, NodeRuntime, ProbeStream, Probes, Slots, StallCount, Stats};
use crate::error::Diagnostic;
use crate::plan::Plan;
use bevy_ecs::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The one terminal outcome of a run (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Quiescent,
    LimitReached,
    Deadlock,
    Cancelled,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Quiescent => "quiescent",
            Outcome::LimitReached => "limit_reached",
            Outcome::Deadlock => "deadlock",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }

    /// The CLI exit code (§19): 0 for completed, quiescent and limit; 3 deadlock.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Completed | Outcome::Quiescent | Outcome::LimitReached => 0,
            Outcome::Deadlock => 3,
            Outcome::Cancelled => 0,
            Outcome::Failed => 4,
        }
    }
}

/// One Parks growth step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub tick: u64,
    pub delta: u32,
    pub channel: String,
    pub from: u32,
    pub to: u32,
}

/// The run report. `to_json` gives the §19 `report.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scene: String,
    pub outcome: Option<Outcome>,
    pub plan_digest: String,
    pub output_digest: String,
    pub values_digest: String,
    pub end_tick: u64,
    pub makespan_ticks: u64,
    pub steps: u64,
    pub tick_hz: f64,
    pub json: Value,
    pub deadlock: Option<DeadlockReport>,
    pub error: Option<Diagnostic>,
}

fn stall_json(c: &StallCount) -> Value {
    json!({"instants": c.instants, "ticks": c.ticks, "longest_ticks": c.longest_ticks})
}

/// `output_digest` (with visible ticks) and `values_digest` (without) over every probe token in
/// canonical order: probes in plan order, tokens in consumption order.
pub fn digests(probes: &[ProbeStream]) -> (String, String) {
    let mut out = blake3::Hasher::new();
    let mut val = blake3::Hasher::new();
    out.update(b"tapwheel-output/1\0");
    val.update(b"tapwheel-values/1\0");
    for p in probes {
        for h in [&mut out, &mut val] {
            h.update(p.name.as_bytes());
            h.update(&[0]);
            h.update(&(p.len() as u64).to_le_bytes());
        }
        for i in 0..p.len() {
            out.update(&p.seqs[i].to_le_bytes());
            out.update(&p.ticks[i].to_le_bytes());
            val.update(&p.seqs[i].to_le_bytes());
            let bits: &[u8] = bytemuck::cast_slice(p.token(i));
            out.update(bits);
            val.update(bits);
        }
    }
    (
        out.finalize().to_hex().to_string(),
        val.finalize().to_hex().to_string(),
    )
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        world: &World,
        plan: &Plan,
        outcome: Option<Outcome>,
        end_tick: u64,
        steps: u64,
        growths: &[Growth],
        deadlock: Option<DeadlockReport>,
        error: Option<Diagnostic>,
        extra_deltas: u64,
    ) -> Report {
        let stats = world.resource::<Stats>();
        let probes = world.resource::<Probes>();
        let arena = world.resource::<TokenArena>();
        let order = &world.resource::<NodeOrder>().0;
        let (output_digest, values_digest) = digests(&probes.streams);

        let mut firings = Map::new();
        let mut discarded = Map::new();
        let mut finished = Map::new();
        for (i, n) in plan.nodes.iter().enumerate() {
            firings.insert(n.name.clone(), json!(stats.firings[i]));
            if let Some(rt) = world.get::<NodeRuntime>(order[i]) {
                if rt.discarded_inputs > 0 {
                    discarded.insert(n.name.clone(), json!(rt.discarded_inputs));
                }
                finished.insert(n.name.clone(), json!(rt.finished_at.map(|f| f.tick)));
            }
        }
        let mut by_node = Map::new();
        for (n, reason, c) in stats.node_stall_counts() {
            let entry = by_node
                .entry(plan.nodes[n].name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(reason.code().to_string(), stall_json(&c));
            }
        }
        let mut by_channel = Map::new();
        for (ch, reason, c) in stats.channel_stall_counts() {
            let entry = by_channel
                .entry(plan.channels[ch].name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(reason.code().to_string(), stall_json(&c));
            }
        }
        let mut by_gate = Map::new();
        for (g, gate) in plan.gates.iter().enumerate() {
            let mut m = Map::new();
            m.insert(
                "openings".into(),
                json!(stats.gate_openings.get(g).copied().unwrap_or(0)),
            );
            if let Some(c) = stats.gate_stalls.get(&g) {
                m.insert("GATE_WAIT".into(), stall_json(c));
            }
            by_gate.insert(gate.name.clone(), Value::Object(m));
        }
        let mut by_resource = Map::new();
        for (&(on, reason), c) in &stats.resource_stalls {
            let name = match on {
                crate::ecs::StallOn::Domain(d) => format!("domain{d}"),
                crate::ecs::StallOn::TaskRing => "task_ring".to_string(),
                crate::ecs::StallOn::HeapRing => "heap_ring".to_string(),
                crate::ecs::StallOn::ReadyQueue(d) => format!("ready_queue{d}"),
                _ => "window".to_string(),
            };
            let entry = by_resource
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(reason.code().to_string(), stall_json(c));
            }
        }
        let dispatch = world
            .get_resource::<crate::dispatch::Dispatcher>()
            .map(|d| {
                json!({
                    "domains": d.loads().len(),
                    "policy": format!("{:?}", d.config.policy),
                    "dispatch_cost": d.config.dispatch_cost,
                    "workers": d.config.workers,
                    "per_domain": d.stats.iter().zip(d.loads()).map(|(st, l)| json!({
                        "tasks": st.tasks,
                        "issue_ticks": st.issue_ticks,
                        "in_flight_high_water": st.in_flight_high_water,
                        "in_flight": l.in_flight,
                    })).collect::<Vec<_>>(),
                    "window": crate::diag::window_state(world),
                    "capabilities": crate::dispatch::capabilities(),
                })
            });
        let schedule = json!({
            "mode": plan.schedule.mode.as_str(),
            "stages": plan.schedule.stages.iter().map(|st| st.cohorts.iter().map(|c| json!({
                "kind": c.kind,
                "nodes": c.nodes.iter().map(|&n| plan.nodes[n].name.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "extra_deltas": extra_deltas,
            "cohort_calls": stats.cohort_calls,
            "parallel_cohort_calls": stats.parallel_cohort_calls,
        });
        let warnings: Vec<Value> = plan
            .warnings
            .iter()
            .map(|w| json!({"code": w.code, "message": w.message, "at": w.location_text()}))
            .collect();
        let mut channels = Map::new();
        for (c, ch) in plan.channels.iter().enumerate() {
            let r = arena.ring(c);
            let blocked = stats.watermark_stalls.get(&c).copied().unwrap_or_default();
            let mut entry = json!({
                    "index": c,
                    "capacity": r.capacity,
                    "initial_capacity": ch.capacity,
                    "delay": ch.delay,
                    "lane": ch.lane,
                    "policy": ch.policy,
                    "watermarks": ch.watermarks.map(|(high, low)| json!({"high": high, "low": low})),
                    "high_water": r.high_water,
                    "tokens_written": r.written,
                    "tokens_passed": r.consumed,
                    "shed": r.shed,
                    "watermark_crossings": r.crossings,
                    "blocked_by_watermark": stall_json(&blocked),
                    "discarded": r.discarded,
                    "occupancy": r.len(),
                    "closed": r.closed_at.is_some(),
            });
            // A `Symbol` delay: `delay` is the value it took at run start.
            if let (Some(name), Value::Object(m)) = (&ch.delay_symbol, &mut entry) {
                m.insert("delay_symbol".into(), json!(name));
            }
            channels.insert(ch.name.clone(), entry);
        }
        // §11: the slot table after every write made up to `end_tick` (non-zero slots only),
        // and the symbol values the run started with.
        let (slots, symbols) = world.get_resource::<Slots>().map_or_else(
            || (Map::new(), Map::new()),
            |s| {
                (
                    s.table
                        .nonzero_at(end_tick.saturating_add(1))
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), json!(v)))
                        .collect(),
                    s.symbols
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect(),
                )
            },
        );
        let device = world
            .get_resource::<ActiveDevice>()
            .map_or_else(|| json!({"name": "Reference"}), |d| d.0.report());
        let json = json!({
            "scene": plan.name,
            "outcome": outcome.map(Outcome::as_str),
            "plan_digest": plan.digest,
            "output_digest": output_digest,
            "values_digest": values_digest,
            "end_tick": end_tick,
            "makespan_ticks": stats.makespan,
            "steps": steps,
            "tick_hz": plan.tick_hz,
            "end_seconds": end_tick as f64 / plan.tick_hz,
            "firings": firings,
            "stalls": {"nodes": by_node, "channels": by_channel, "gates": by_gate, "resources": by_resource},
            "dispatch": dispatch,
            "schedule": schedule,
            "warnings": warnings,
            "channels": channels,
            "growths": growths,
            "slots": slots,
            "symbols": symbols,
            "discarded": discarded,
            "finished_at": finished,
            "probes": probes.streams.iter().map(|p| (p.name.clone(), json!(p.len()))).collect::<Map<_, _>>(),
            // What feeds each probe (`node.tap`, `a.out+b.out` for a gather): a `.temp` tap is a
            // temperature in kelvin (§14).
            "probe_sources": probes.streams.iter().map(|p| {
                let from: Vec<String> = plan.nodes.get(p.node).map(|n| n.inputs.iter()
                    .flat_map(|t| t.channels.iter())
                    .filter_map(|&c| plan.channels.get(c))
                    .map(|c| {
                        let node = plan.nodes.get(c.from_node).map_or("", |n| n.name.as_str());
                        let tap = plan.nodes.get(c.from_node).and_then(|n| n.outputs.get(c.from_tap)).map_or("", |t| t.name.as_str());
                        format!("{node}.{tap}")
                    }).collect()).unwrap_or_default();
                (p.name.clone(), json!(from.join("+")))
            }).collect::<Map<_, _>>(),
            "thermal": world
                .get_resource::<crate::thermal::ThermalNet>()
                .filter(|t| !t.is_empty())
                .map_or_else(|| json!({}), |t| t.report_json(end_tick, |n| {
                    plan.nodes.get(n as usize).map_or_else(String::new, |p| p.name.clone())
                })),
            "deadlock": deadlock,
            "device": device,
            "timing": stats.timing.iter().map(|(&n, t)| (plan.nodes[n].name.clone(), json!({
                "firings": t.firings,
                "total_ns": t.total_ns,
                "mean_ns": t.total_ns.checked_div(t.firings).unwrap_or(0),
                "min_ns": t.min_ns,
                "max_ns": t.max_ns,
            }))).collect::<Map<_, _>>(),
            "deterministic": !plan.nodes.iter().any(|n| n.measured_latency),
            "error": error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
        });
        Report {
            scene: plan.name.clone(),
            outcome,
            plan_digest: plan.digest.clone(),
            output_digest,
            values_digest,
            end_tick,
            makespan_ticks: stats.makespan,
            steps,
            tick_hz: plan.tick_hz,
            json,
            deadlock,
            error,
        }
    }

    /// `report.json` text.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "{}".into())
    }

    /// A short human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}: {} at tick {} ({} steps, makespan {} ticks)\n  plan_digest   {}\n  output_digest {}\n",
            self.scene,
            self.outcome.map_or("running", Outcome::as_str),
            self.end_tick,
            self.steps,
            self.makespan_ticks,
            self.plan_digest,
            self.output_digest
        );
        if let Some(Value::Object(f)) = self.json.get("firings") {
            let list: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s += &format!("  firings: {}\n", list.join(" "));
        }
        if let Some(Value::Object(nodes)) = self.json.pointer("/stalls/nodes") {
            // The longest waits of working nodes (probes wait for data by design).
            let probes = self.json.get("probes").and_then(Value::as_object);
            let mut top: Vec<(u64, u64, &str, &str)> = Vec::new();
            for (node, reasons) in nodes {
                if probes.is_some_and(|p| p.contains_key(node)) {
                    continue;
                }
                for (reason, c) in reasons.as_object().into_iter().flatten() {
                    let ticks = c.get("ticks").and_then(Value::as_u64).unwrap_or(0);
                    let longest = c.get("longest_ticks").and_then(Value::as_u64).unwrap_or(0);
                    if ticks > 0 {
                        top.push((ticks, longest, node, reason));
                    }
                }
            }
            top.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(b.2)).then(a.3.cmp(b.3)));
            let list: Vec<String> = top
                .iter()
                .take(3)
                .map(|(t, l, n, r)| format!("{n} {r} {t} ticks (longest {l})"))
                .collect();
            if !list.is_empty() {
                s += &format!("  top stalls: {}\n", list.join(", "));
            }
        }
        if let Some(Value::Object(chs)) = self.json.get("channels") {
            let count = |key: &str| -> Vec<String> {
                chs.iter()
                    .filter_map(|(k, v)| {
                        let n = v.get(key)?.as_u64()?;
                        (n > 0).then(|| format!("{k}={n}"))
                    })
                    .collect()
            };
            for (key, what) in [
                ("shed", "shed"),
                ("watermark_crossings", "watermark crossings"),
            ] {
                let list = count(key);
                if !list.is_empty() {
                    s += &format!("  {what}: {}\n", list.join(" "));
                }
            }
        }
        if let Some(Value::Object(t)) = self.json.pointer("/thermal/nodes") {
            let list: Vec<String> = t
                .iter()
                .map(|(k, v)| {
                    let f = |key: &str| v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
                    format!("{k}={:.3} K (peak {:.3} K)", f("final"), f("peak"))
                })
                .collect();
            s += &format!("  temperature: {}\n", list.join(", "));
        }
        if let Some(Value::Array(g)) = self.json.get("growths")
            && !g.is_empty()
        {
            s += &format!("  Parks growths: {}\n", g.len());
        }
        if let Some(d) = &self.deadlock {
            s += &d.to_text();
        }
        if let Some(e) = &self.error {
            s += &format!("{e}\n");
        }
        s
    }
}

/// Writes `probes/NAME.csv` (`tick,seq,batch,channel,frame,value`, values in Rust's shortest
/// round-trip f32 form).
pub fn probe_csv(p: &ProbeStream) -> String {
    let mut s = String::with_capacity(32 * p.values.len() + 40);
    s.push_str("tick,seq,batch,channel,frame,value\n");
    use std::fmt::Write;
    for i in 0..p.len() {
        let tok = p.token(i);
        let mut k = 0;
        for b in 0..p.batch {
            for c in 0..p.channels {
                for f in 0..p.frames {
                    let v = tok.get(k).copied().unwrap_or(f32::NAN);
                    let _ = writeln!(s, "{},{},{b},{c},{f},{v}", p.ticks[i], p.seqs[i]);
                    k += 1;
                }
            }
        }
    }
    s
}
