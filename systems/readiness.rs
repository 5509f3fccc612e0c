//! Stage 2 — readiness (§4 conditions 1–4). For every unfinished node of the current stage
//! (under `Kpn`: every node), in canonical order: its kernel states its demand from what its
//! inputs hold; an idle node whose demand can never be met (or a source with no firings left)
//! finishes — closing its outputs and discarding what is left on its inputs; otherwise the node
//! is *ready* when it has a free concurrency slot, its demanded tokens are visible, its Block
//! outputs have room for its maximum production and, for a source, it is due. A node that is
//! not ready is stalled on the channel it waits for (gate members are accounted by gate_sync).
//!
//! Everything is judged against the state at the start of the stage: changes made during it
//! (writes, freed room, closures) are seen from the next stage or delta, so node order within a
//! stage cannot matter.

use crate::arena::TokenArena;
use crate::ecs::*;
use bevy_ecs::prelude::*;

#[allow(clippy::too_many_arguments)]
pub fn readiness(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    staging: Res<Staging>,
    dispatcher: Option<Res<crate::dispatch::Dispatcher>>,
    mut arena: ResMut<TokenArena>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    mut nodes: Query<(&mut NodeRuntime, &NodeWiring, &NodeKernel)>,
) {
    crate::profile::profile_span!("readiness");
    let now = clock.now;
    let contended = dispatcher.is_some();
    let step = &mut *step;
    let n = order.0.len();
    step.ready.clear();
    step.ready.grow(n);
    step.was_ready.grow(n);
    step.was_room_blocked.grow(n);
    if !staging.ipls() {
        stats.begin_instant();
    }
    // Under `Kpn`, after delta 0 of a tick only the nodes next to a channel changed since the
    // previous step's check, and the nodes that were ready, can be judged differently; every
    // other node keeps its judgement without being visited: its stall goes on (counted lazily,
    // `Stats::count_to`) and so does its lack of room.
    let partial = !staging.ipls() && now.delta > 0 && !step.full_scan;
    step.full_scan = false;
    let mut visit = std::mem::take(&mut step.visit);
    if partial {
        visit.clone_from(&step.was_ready);
        for c in arena.recently_changed() {
            if let (Some(&p), Some(&q)) = (staging.producer_of.get(c), staging.consumer_of.get(c)) {
                visit.insert(p as usize);
                visit.insert(q as usize);
            }
        }
        let mut kept = std::mem::take(&mut step.kept);
        kept.clone_from(&step.was_room_blocked);
        kept.difference_with(&visit);
        step.room_blocked.union_with(&kept);
        step.kept = kept;
    }
    let all = &staging.stage().eval;
    let mut listed = visit.ones();
    let mut next = 0usize;
    loop {
        // Under `Kpn` the one stage lists every node in canonical order, as `ones()` does.
        let i = if partial {
            match listed.next() {
                Some(i) => i,
                None => break,
            }
        } else {
            match all.get(next) {
                Some(&i) => {
                    next += 1;
                    i
                }
                None => break,
            }
        };
        let Some(&entity) = order.0.get(i) else {
            continue;
        };
        let Ok((mut rt, wiring, kernel)) = nodes.get_mut(entity) else {
            continue;
        };
        if rt.finished() {
            continue;
        }
        // Under `Kpn`, a node not ready at an earlier delta of this tick whose state is the
        // same and whose channels all changed before that check is judged the same: skip the
        // check, keep the stall.
        let key = (!staging.ipls()).then(|| rt.readiness_key());
        let unchanged = match (rt.memo, key) {
            (Some((tick, step, memo)), Some(key)) => {
                tick == now.tick
                    && memo == key
                    && NodeRuntime::channels_changed_at(wiring, &arena) < step
            }
            _ => false,
        };
        if now.delta > 0 && !rt.readiness.ready && unchanged {
            if staging.gate_of[i].is_none() {
                stats.observe_stall(i, rt.readiness.stall(), now);
            }
            if !rt.readiness.lacking_outputs.is_empty() {
                step.room_blocked.insert(i);
            }
            step.was_ready.set(i, false);
            continue;
        }
        rt.memo = key.map(|k| (now.tick, arena.stamp, k));
        rt.refresh_views(wiring, &mut arena, now);
        let rt = &mut *rt;
        kernel.0.demand(&rt.views, &mut rt.demand);
        if rt.idle() {
            let done = if wiring.is_source {
                rt.remaining == Some(0)
            } else {
                kernel.0.finished(&rt.views, &rt.demand)
            };
            if done {
                step.was_ready.set(i, false);
                step.was_room_blocked.set(i, false);
                finish_node(rt, wiring, &mut arena, now);
                stats.close_stall(i, now.tick);
                step.changed = true;
                step.pending = true; // the closure is seen from the next delta
                continue;
            }
        }
        let r = rt.evaluate(wiring, &arena, now);
        // A ready node's stall is decided by gate_sync (gate members) or, when tasks compete
        // for dispatch resources, by dispatch.
        if staging.gate_of[i].is_none() && !(r.ready && contended) {
            stats.observe_stall(i, r.stall(), now);
        }
        if !r.lacking_outputs.is_empty() {
            step.room_blocked.insert(i);
        }
        step.was_room_blocked.set(i, !r.lacking_outputs.is_empty());
        step.was_ready.set(i, r.ready);
        if r.ready {
            step.ready.insert(i);
        }
        rt.readiness = r;
    }
    step.visit = visit;
}
