//! Stage 1 — delay expiry. Slots freed in the previous step become room. At the first delta of
//! a tick, every firing whose latency has elapsed completes: its outputs are written (in firing
//! order per node) and become visible per the §3 rule; a source whose last firing completed
//! closes its outputs.

use crate::arena::TokenArena;
use crate::ecs::*;
use crate::time::Event;
use bevy_ecs::prelude::*;

pub fn delay_expiry(
    clock: Res<Clock>,
    order: Res<NodeOrder>,
    mut events: ResMut<Events>,
    mut arena: ResMut<TokenArena>,
    mut step: ResMut<StepState>,
    mut stats: ResMut<Stats>,
    mut nodes: Query<(&mut NodeRuntime, &NodeWiring)>,
) {
    arena.end_step();
    step.changed = false;
    let now = clock.now;
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
        if let Some(f) = write_out_completed(
            node as usize,
            &mut rt,
            wiring,
            &mut arena,
            &mut events.0,
            &mut stats,
            now,
        ) {
            step.failure = Some(f);
        }
    }
    step.completions = due;
}
