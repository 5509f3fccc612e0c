//! Stage 1 — delay expiry. At the first pass of a step (under an IPLS, before its first stage)
//! slots freed in the previous step become room. At the first delta of a tick, every firing
//! whose latency has elapsed completes: its outputs are written (in firing order per node) and
//! become visible per the §3 rule; a source whose last firing completed closes its outputs.
//! Under an IPLS these completions precede every stage, so their zero-delay tokens are visible
//! to all stages of the step (§5 barrier rule). Rendezvous firings whose tokens were taken in
//! the previous step complete now (§10), and dispatch frees the workers and window slots of
//! tasks that completed in the step that issued them (§9).

use crate::arena::TokenArena;
use crate::dispatch::Dispatcher;
use crate::ecs::*;
use crate::time::Event;
use bevy_ecs::prelude::*;

#[allow(clippy::too_many_arguments)]
pub fn delay_expiry(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    staging: Res<Staging>,
    mut dispatcher: Option<ResMut<Dispatcher>>,
    mut events: ResMut<Events>,
    mut arena: ResMut<TokenArena>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    mut nodes: Query<(&mut NodeRuntime, &NodeWiring)>,
) {
    if staging.current != 0 {
        return; // later stages of the step: the barrier already ran in kernel_execute
    }
    arena.end_step();
    step.changed = false;
    step.pending = false;
    step.fired = false;
    step.room_blocked.clear();
    step.room_blocked.grow(order.0.len());
    let now = clock.now;
    if let Some(d) = dispatcher.as_deref_mut() {
        d.begin_step();
    }
    let zero = staging.zero_delay();
    // §10: a rendezvous token taken (or discarded) completes its producer's held firing.
    let taken = std::mem::take(&mut arena.rendezvous_taken);
    for &(ch, n) in &taken {
        let Some(&p) = staging.producer_of.get(ch) else {
            continue;
        };
        let Some(&entity) = order.0.get(p as usize) else {
            continue;
        };
        let Ok((mut rt, wiring)) = nodes.get_mut(entity) else {
            continue;
        };
        if !release_rendezvous(&mut rt, ch, n) {
            continue;
        }
        step.changed = true;
        if !wiring.is_probe {
            stats.makespan = stats.makespan.max(now.tick);
        }
        if let Some(d) = dispatcher.as_deref_mut() {
            rt.retired.drain(..).for_each(|t| d.retire(t, now.tick));
        }
        rt.retired.clear();
        // A source whose last firing is released closes its outputs (§4 end of stream).
        let was_finished = rt.finished();
        if let Some(f) = write_out_completed(
            p as usize,
            &mut rt,
            wiring,
            &mut arena,
            &mut events.0,
            &mut stats,
            now,
            zero,
        ) {
            step.failure = Some(f);
        }
        if rt.finished() && !was_finished {
            step.pending = true;
        }
    }
    let mut taken = taken;
    taken.clear();
    arena.rendezvous_taken = taken;
    if now.delta != 0 {
        return; // completions with L > 0 land at (t + L, 0)
    }
    let mut due = std::mem::take(&mut step.completions);
    due.clear();
    events.0.pop_due(now.tick, &mut due);
    for event in &due {
        let Event::Completion { node } = *event else {
            continue;
        };
        let Some(&entity) = order.0.get(node as usize) else {
            continue;
        };
        let Ok((mut rt, wiring)) = nodes.get_mut(entity) else {
            continue;
        };
        if !complete_due(&mut rt, now.tick) {
            continue;
        }
        step.changed = true;
        if !wiring.is_probe {
            stats.makespan = stats.makespan.max(now.tick);
        }
        let was_finished = rt.finished();
        if let Some(f) = write_out_completed(
            node as usize,
            &mut rt,
            wiring,
            &mut arena,
            &mut events.0,
            &mut stats,
            now,
            zero,
        ) {
            step.failure = Some(f);
        }
        if let Some(d) = dispatcher.as_deref_mut() {
            rt.retired.drain(..).for_each(|t| d.retire(t, now.tick));
        }
        rt.retired.clear();
        if rt.finished() && !was_finished {
            // Closures are seen from the next delta.
            step.pending = true;
        }
    }
    step.completions = due;
}
