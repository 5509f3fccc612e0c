//! Stage 4 — kernel execute (§4 "Firing"). Each enabled node fires, in canonical order, up to its
//! free concurrency slots, re-checking its conditions before every further firing: inputs are
//! consumed in FIFO order (their slots free at this instant, seen by producers next delta),
//! output slots are reserved for the maximum production, the kernel computes the values, and the
//! firing completes at `t + L` — in this very step when `L = 0`, writing its outputs now.

use crate::adapters::gather;
use crate::arena::TokenArena;
use crate::ecs::*;
use crate::kernels::{FireIo, InputBlock};
use bevy_ecs::prelude::*;

#[allow(clippy::too_many_arguments)]
pub fn kernel_execute(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    mut arena: ResMut<TokenArena>,
    mut events: ResMut<Events>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    mut probes: ResMut<Probes>,
    mut scratch: ResMut<Scratch>,
    mut nodes: Query<(&mut NodeRuntime, &NodeWiring, &mut NodeKernel)>,
) {
    let now = clock.now;
    let enabled = std::mem::take(&mut step.enabled);
    for &(i, latency, allowed) in &enabled {
        let n = i as usize;
        let Some(&entity) = order.0.get(n) else {
            continue;
        };
        let Ok((mut rt, wiring, mut kernel)) = nodes.get_mut(entity) else {
            continue;
        };
        let rt = &mut *rt;
        for k in 0..allowed {
            if k > 0 {
                rt.refresh_views(wiring, &arena, now);
                kernel.0.demand(&rt.views, &mut rt.demand);
                if !rt.evaluate(wiring, &arena, now).ready {
                    break;
                }
            }
            // Consume inputs in FIFO order; optional taps fall back to hold_last / default.
            let scratch = &mut *scratch;
            scratch.values.resize_with(wiring.inputs.len(), Vec::new);
            for (j, port) in wiring.inputs.iter().enumerate() {
                let buf = &mut scratch.values[j];
                buf.clear();
                scratch.metas.clear();
                let want = rt.demand[j] as usize;
                let take = if port.optional {
                    want.min(rt.views[j].visible)
                } else {
                    want
                };
                if port.gathers() {
                    // §8 gather: one token from every channel makes one tap token.
                    scratch.parts.resize_with(port.channels.len(), Vec::new);
                    for (k, &ch) in port.channels.iter().enumerate() {
                        scratch.parts[k].clear();
                        arena.pop(ch, take, &mut scratch.parts[k], &mut scratch.metas);
                    }
                    // A gathered token is the first channel's (its seq) and visible when
                    // its last part became visible.
                    for t in 0..take {
                        let latest = (0..port.channels.len())
                            .filter_map(|k| scratch.metas.get(k * take + t))
                            .map(|m| m.visible)
                            .max();
                        if let (Some(v), Some(m)) = (latest, scratch.metas.get_mut(t)) {
                            m.visible = v;
                        }
                    }
                    scratch.metas.truncate(take);
                    let mut slices: Vec<&[f32]> = Vec::with_capacity(port.channels.len());
                    for t in 0..take {
                        slices.clear();
                        for (k, s) in port.channel_shapes.iter().enumerate() {
                            let len = s.elements() as usize;
                            slices.push(&scratch.parts[k][t * len..(t + 1) * len]);
                        }
                        gather(port.adapter, port.shape, &port.channel_shapes, &slices, buf);
                    }
                } else if let Some(ch) = port.channel {
                    arena.pop(ch, take, buf, &mut scratch.metas);
                }
                // A probe records the tokens it consumed, never the fallbacks of an optional tap.
                if wiring.is_probe
                    && let Some(p) = probes.by_node.get(n).copied().flatten()
                {
                    probes.streams[p].record(buf, &scratch.metas);
                }
                if port.optional {
                    rt.held.resize_with(wiring.inputs.len(), Vec::new);
                    if take > 0 && port.hold_last {
                        let last = &buf[(take - 1) * port.token_len..take * port.token_len];
                        rt.held[j] = last.to_vec();
                    }
                    for _ in take..want {
                        if port.hold_last && rt.held[j].len() == port.token_len {
                            buf.extend_from_slice(&rt.held[j]);
                        } else {
                            buf.resize(buf.len() + port.token_len, port.default);
                        }
                    }
                }
            }
            for port in &wiring.outputs {
                for oc in &port.channels {
                    arena.reserve(oc.channel, port.max_production);
                }
            }
            let mut outputs = rt.spare.pop().unwrap_or_default();
            outputs.resize_with(wiring.outputs.len(), Default::default);
            for (block, port) in outputs.iter_mut().zip(&wiring.outputs) {
                block.values.clear();
                block.token_len = port.token_len;
            }
            let inputs: Vec<InputBlock<'_>> = wiring
                .inputs
                .iter()
                .zip(&scratch.values)
                .map(|(p, v)| InputBlock {
                    values: v,
                    token_len: p.token_len,
                })
                .collect();
            let index = rt.firings_started;
            let mut io = FireIo {
                firing: index,
                tick: now.tick,
                inputs: &inputs,
                outputs: &mut outputs,
            };
            let mut latency = latency;
            if wiring.timed {
                // Wall-clock timing never changes simulated time, except under
                // `latency: Measured`, which makes the run non-deterministic (§7).
                let started = std::time::Instant::now();
                kernel.0.fire(&mut io);
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                stats.timing.entry(n).or_default().record(ns);
                if wiring.measured_latency {
                    latency = (ns as f64 * 1e-9 * wiring.tick_hz).ceil() as u64;
                }
            } else {
                kernel.0.fire(&mut io);
            }
            rt.firings_started += 1;
            stats.firings[n] += 1;
            step.changed = true;
            if wiring.is_source {
                rt.remaining = rt.remaining.map(|r| r.saturating_sub(1));
                if let Some(period) = wiring.period {
                    rt.next_due = now.tick.saturating_add(period);
                    if rt.remaining != Some(0) {
                        events.0.push_wake(rt.next_due);
                    }
                }
            }
            let complete_at = now.tick.saturating_add(latency);
            rt.in_flight.push_back(Firing {
                index,
                started: now.tick,
                complete_at,
                done: latency == 0,
                outputs,
            });
            if latency > 0 {
                events.0.push_completion(complete_at, i);
                continue;
            }
            if !wiring.is_probe {
                stats.makespan = stats.makespan.max(now.tick);
            }
            if let Some(f) =
                write_out_completed(n, rt, wiring, &mut arena, &mut events.0, &mut stats, now)
            {
                step.failure = Some(f);
            }
        }
    }
    step.enabled = enabled;
}
