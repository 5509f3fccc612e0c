//! Gather/scatter adapters (SPEC §8): how the tokens of several channels, or of a channel with a
//! smaller shape, map onto a tap's `(batch, channels, frames)` axes — and how an output token
//! is split across its channels.
//!
//! Gathers (input taps): `Broadcast` expands size-1 axes; `SumFanIn` sums the tokens of every
//! channel into the tap; `ConcatChannels` / `ConcatBatch` stack them along an axis in edge
//! order. Scatters (output taps): `SplitChannels(n)` / `SplitBatch(n)` give channel `i` (in
//! edge order) the `i`-th of `n` equal parts along the axis.

use crate::scene::{Adapter, Shape};

/// Builds one tap token from one token per channel (`parts[i]` has shape `shapes[i]`).
///
/// ```
/// use tapwheel::adapters::gather;
/// use tapwheel::scene::{Adapter, Shape};
/// let sh = |b, c, f| Shape { batch: b, channels: c, frames: f };
/// let mut out = Vec::new();
/// // Broadcast a (1,1,2) token to (1,2,2): the channel axis expands.
/// gather(Some(Adapter::Broadcast), sh(1, 2, 2), &[sh(1, 1, 2)], &[&[1.0, 2.0]], &mut out);
/// assert_eq!(out, vec![1.0, 2.0, 1.0, 2.0]);
/// out.clear();
/// // Two (1,1,2) tokens concatenated along channels.
/// gather(Some(Adapter::ConcatChannels), sh(1, 2, 2), &[sh(1, 1, 2); 2], &[&[1.0, 2.0], &[3.0, 4.0]], &mut out);
/// assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0]);
/// out.clear();
/// gather(Some(Adapter::SumFanIn), sh(1, 1, 2), &[sh(1, 1, 2); 2], &[&[1.0, 2.0], &[3.0, 4.0]], &mut out);
/// assert_eq!(out, vec![4.0, 6.0]);
/// ```
pub fn gather(
    adapter: Option<Adapter>,
    tap: Shape,
    shapes: &[Shape],
    parts: &[&[f32]],
    out: &mut Vec<f32>,
) {
    let (b, c, f) = (
        tap.batch as usize,
        tap.channels as usize,
        tap.frames as usize,
    );
    match adapter {
        Some(Adapter::SumFanIn) => {
            let start = out.len();
            out.resize(start + b * c * f, 0.0);
            for p in parts {
                for (d, &x) in out[start..].iter_mut().zip(p.iter()) {
                    *d += x;
                }
            }
        }
        Some(Adapter::ConcatChannels) => {
            for bb in 0..b {
                for (p, s) in parts.iter().zip(shapes) {
                    let pc = s.channels as usize;
                    out.extend_from_slice(&p[bb * pc * f..(bb + 1) * pc * f]);
                }
            }
        }
        Some(Adapter::ConcatBatch) => {
            for p in parts {
                out.extend_from_slice(p);
            }
        }
        Some(Adapter::Broadcast) => {
            let (Some(p), Some(s)) = (parts.first(), shapes.first()) else {
                return;
            };
            let (sb, sc, sf) = (s.batch as usize, s.channels as usize, s.frames as usize);
            for bb in 0..b {
                for cc in 0..c {
                    for ff in 0..f {
                        let i = ((bb % sb) * sc + cc % sc) * sf + ff % sf;
                        out.push(p[i]);
                    }
                }
            }
        }
        _ => {
            if let Some(p) = parts.first() {
                out.extend_from_slice(p);
            }
        }
    }
}

/// Appends part `part` of `n` of an output token of shape `tap` under a split adapter.
///
/// ```
/// use tapwheel::adapters::scatter;
/// use tapwheel::scene::{Adapter, Shape};
/// let tap = Shape { batch: 1, channels: 4, frames: 1 };
/// let mut out = Vec::new();
/// scatter(Some(Adapter::SplitChannels(2)), tap, 1, &[1.0, 2.0, 3.0, 4.0], &mut out);
/// assert_eq!(out, vec![3.0, 4.0]);
/// ```
pub fn scatter(
    adapter: Option<Adapter>,
    tap: Shape,
    part: usize,
    token: &[f32],
    out: &mut Vec<f32>,
) {
    let (b, c, f) = (
        tap.batch as usize,
        tap.channels as usize,
        tap.frames as usize,
    );
    match adapter {
        Some(Adapter::SplitChannels(n)) if n > 0 => {
            let pc = c / n as usize;
            for bb in 0..b {
                let start = (bb * c + part * pc) * f;
                out.extend_from_slice(&token[start..start + pc * f]);
            }
        }
        Some(Adapter::SplitBatch(n)) if n > 0 => {
            let pb = b / n as usize;
            let start = part * pb * c * f;
            out.extend_from_slice(&token[start..start + pb * c * f]);
        }
        _ => out.extend_from_slice(token),
    }
}

/// The adjoint of [`gather`]: splits the gradient of one tap token, `g` (tap shape), into the
/// gradients of its parts (`out[k]` with `shapes[k]`'s length). Broadcast sums over the
/// repeated axes, SumFanIn copies, the concatenations slice.
///
/// ```
/// use tapwheel::adapters::gather_adjoint;
/// use tapwheel::scene::{Adapter, Shape};
/// let sh = |b, c, f| Shape { batch: b, channels: c, frames: f };
/// let mut out = Vec::new();
/// // (1,1,2) broadcast to (1,2,2): each source element feeds two tap elements.
/// gather_adjoint(Some(Adapter::Broadcast), sh(1, 2, 2), &[sh(1, 1, 2)], &[1.0, 2.0, 3.0, 4.0], &mut out);
/// assert_eq!(out, vec![vec![4.0, 6.0]]);
/// gather_adjoint(Some(Adapter::ConcatChannels), sh(1, 2, 2), &[sh(1, 1, 2); 2], &[1.0, 2.0, 3.0, 4.0], &mut out);
/// assert_eq!(out, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
/// gather_adjoint(Some(Adapter::SumFanIn), sh(1, 1, 2), &[sh(1, 1, 2); 2], &[5.0, 6.0], &mut out);
/// assert_eq!(out, vec![vec![5.0, 6.0], vec![5.0, 6.0]]);
/// ```
pub fn gather_adjoint(
    adapter: Option<Adapter>,
    tap: Shape,
    shapes: &[Shape],
    g: &[f64],
    out: &mut Vec<Vec<f64>>,
) {
    let (b, c, f) = (
        tap.batch as usize,
        tap.channels as usize,
        tap.frames as usize,
    );
    out.resize_with(shapes.len().max(1), Vec::new);
    out.truncate(shapes.len().max(1));
    for (o, s) in out.iter_mut().zip(shapes) {
        o.clear();
        o.resize(s.elements() as usize, 0.0);
    }
    match adapter {
        Some(Adapter::SumFanIn) => {
            for o in out.iter_mut() {
                for (d, x) in o.iter_mut().zip(g) {
                    *d = *x;
                }
            }
        }
        Some(Adapter::ConcatChannels) => {
            let mut at = 0;
            for bb in 0..b {
                for (o, s) in out.iter_mut().zip(shapes) {
                    let n = s.channels as usize * f;
                    if let (Some(dst), Some(src)) =
                        (o.get_mut(bb * n..(bb + 1) * n), g.get(at..at + n))
                    {
                        dst.copy_from_slice(src);
                    }
                    at += n;
                }
            }
        }
        Some(Adapter::ConcatBatch) => {
            let mut at = 0;
            for o in out.iter_mut() {
                let n = o.len();
                if let Some(src) = g.get(at..at + n) {
                    o.copy_from_slice(src);
                }
                at += n;
            }
        }
        Some(Adapter::Broadcast) => {
            let (Some(o), Some(s)) = (out.first_mut(), shapes.first()) else {
                return;
            };
            let (sb, sc, sf) = (s.batch as usize, s.channels as usize, s.frames as usize);
            let mut k = 0;
            for bb in 0..b {
                for cc in 0..c {
                    for ff in 0..f {
                        let i = ((bb % sb) * sc + cc % sc) * sf + ff % sf;
                        if let (Some(d), Some(x)) = (o.get_mut(i), g.get(k)) {
                            *d += x;
                        }
                        k += 1;
                    }
                }
            }
        }
        _ => {
            if let Some(o) = out.first_mut() {
                o.clear();
                o.extend_from_slice(g);
            }
        }
    }
}

/// The adjoint of [`scatter`]: adds the gradient of part `part`, `g`, into the gradient of the
/// whole output token, `token` (tap shape).
///
/// ```
/// use tapwheel::adapters::scatter_adjoint;
/// use tapwheel::scene::{Adapter, Shape};
/// let tap = Shape { batch: 1, channels: 4, frames: 1 };
/// let mut token = vec![0.0; 4];
/// scatter_adjoint(Some(Adapter::SplitChannels(2)), tap, 1, &[1.0, 2.0], &mut token);
/// assert_eq!(token, vec![0.0, 0.0, 1.0, 2.0]);
/// ```
pub fn scatter_adjoint(
    adapter: Option<Adapter>,
    tap: Shape,
    part: usize,
    g: &[f64],
    token: &mut [f64],
) {
    let (b, c, f) = (
        tap.batch as usize,
        tap.channels as usize,
        tap.frames as usize,
    );
    let mut add = |start: usize, src: &[f64]| {
        if let Some(dst) = token.get_mut(start..start + src.len()) {
            for (d, x) in dst.iter_mut().zip(src) {
                *d += x;
            }
        }
    };
    match adapter {
        Some(Adapter::SplitChannels(n)) if n > 0 => {
            let pc = c / n as usize;
            for bb in 0..b {
                if let Some(src) = g.get(bb * pc * f..(bb + 1) * pc * f) {
                    add((bb * c + part * pc) * f, src);
                }
            }
        }
        Some(Adapter::SplitBatch(n)) if n > 0 => {
            let pb = b / n as usize;
            add(part * pb * c * f, g);
        }
        _ => add(0, g),
    }
}
