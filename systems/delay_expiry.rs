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
use crate::tape::Tape;
use crate::time::{Event, EventQueue, Instant};
use bevy_ecs::prelude::*;

/// What completing a firing touches.
struct Out<'a> {
    arena: &'a mut TokenArena,
    events: &'a mut EventQueue,
    stats: &'a mut Stats,
    step: &'a mut StepState,
    dispatcher: Option<&'a mut Dispatcher>,
    now: Instant,
    zero: ZeroDelay,
    tape: Option<&'a mut Tape>,
}

impl Out<'_> {
    /// A firing of node `n` completed now: count it in the makespan, write out what is complete,
    /// hand retired tasks back to dispatch, and note a finish (its closure is seen next delta).
    fn complete(&mut self, n: usize, rt: &mut NodeRuntime, wiring: &NodeWiring) {
        self.step.changed = true;
        if !wiring.is_probe {
            self.stats.makespan = self.stats.makespan.max(self.now.tick);
        }
        let was_finished = rt.finished();
        if let Some(f) = write_out_completed(
            n,
            rt,
            wiring,
            self.arena,
            self.events,
            self.stats,
            self.now,
            self.zero,
            self.tape.as_deref_mut(),
            None,
        ) {
            self.step.failure = Some(f);
        }
        retire_tickets(rt, self.dispatcher.as_deref_mut(), self.now.tick);
        if rt.finished() && !was_finished {
            self.step.pending = true;
        }
    }
}

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
    mut tape: Option<ResMut<Tape>>,
    mut nodes: Query<(&mut NodeRuntime, &NodeWiring)>,
) {
    crate::profile::profile_span!("delay_expiry");
    if staging.current != 0 {
        return; // later stages of the step: the barrier already ran in kernel_execute
    }
    let now = clock.now;
    arena.end_step();
    step.changed = false;
    step.pending = false;
    step.fired = false;
    step.room_blocked.clear();
    step.room_blocked.grow(order.0.len());
    if let Some(d) = dispatcher.as_deref_mut() {
        d.begin_step();
    }
    let taken = std::mem::take(&mut arena.rendezvous_taken);
    let mut due = std::mem::take(&mut step.completions);
    due.clear();
    if now.delta == 0 {
        // Completions with L > 0 land at (t + L, 0).
        events.0.pop_due(now.tick, &mut due);
    }
    let mut out = Out {
        arena: &mut arena,
        events: &mut events.0,
        stats: &mut stats,
        step: &mut step,
        dispatcher: dispatcher.as_deref_mut(),
        now,
        zero: staging.zero_delay(),
        tape: tape.as_deref_mut(),
    };
    let node = |n: usize| order.0.get(n).copied();
    // §10: a rendezvous token taken (or discarded) completes its producer's held firing.
    for &(ch, k) in &taken {
        let Some(p) = staging.producer_of.get(ch).and_then(|&p| node(p as usize)) else {
            continue;
        };
        let Ok((mut rt, wiring)) = nodes.get_mut(p) else {
            continue;
        };
        if release_rendezvous(&mut rt, ch, k) {
            let n = staging.producer_of[ch] as usize;
            out.complete(n, &mut rt, wiring);
        }
    }
    for event in &due {
        let Event::Completion { node: n } = *event else {
            continue;
        };
        let Some(entity) = node(n as usize) else {
            continue;
        };
        let Ok((mut rt, wiring)) = nodes.get_mut(entity) else {
            continue;
        };
        if complete_due(&mut rt, wiring, now.tick) {
            out.complete(n as usize, &mut rt, wiring);
        }
    }
    let mut taken = taken;
    taken.clear();
    arena.rendezvous_taken = taken;
    step.completions = due;
}
