#!/usr/bin/env python3
"""Outside-oracle goldens for tapwheel's DSP, source, integrator and tile kernels.

Writes everything under tests/golden/dsp/ (checked by tests/dsp_goldens.rs):
  input.csv, input_stereo.csv, input_step.csv   input signals (f32-exact values)
  <case>.ron                                    one scene per case
  <case>.<probe>.csv                            the expected stream of probe <probe>

How to run (only needed to regenerate; CI never runs it):
    pip install numpy scipy
    python3 tools/gen_dsp_goldens.py          # from the crate root (any cwd works)

Deterministic: re-running writes the same bytes. The expected values are computed here in float64
with numpy/scipy, independently of the Rust kernels (SPEC §7, §15), from the f32-rounded inputs the
engine actually reads. Every input sample and every tile element is chosen exactly representable in
f32, so input rounding is no part of the comparison; parameters (filter taps, coefficients) are
written with full precision and the engine rounds them to f32 itself.

Expected CSV format: `#` comment lines, including the machine-read lines
    # shape: <batch> <channels> <frames>      the probe's token shape
    # tokens: <n>                             tokens the probe records
then one value per line: the probe's values back to back (token after token, each token row-major:
element (b, c, f) at (b*channels + c)*frames + f), written with %.9g.

Decisions documented here (questions the brief left open):
- Tile inputs (MatMul, Softmax, RowSum, RowMax, Transpose) are `initial` tokens on an edge from a
  `Const(value: 0.0)` source with `count: Some(0)` (SPEC §4: such a source never fires and finishes
  at (0, 0), closing its output; the consumer drains the initial tokens and then finishes). This
  gives distinct batch rows, which a `File` source cannot (it writes every batch row alike). Tile
  elements are k/32 with |k| <= 96, exact in f32.
- Output tap shapes of the shape-changing tile kernels (MatMul, RowSum, RowMax, Transpose) are
  declared with per-tap overrides (`taps: {"out": (shape: ...)}`), and the probe's node shape
  matches them.
- `Softmax(axis: 0)` normalises over frames (the last axis) within each (batch, channel) row;
  `axis: 1` normalises over channels for each (batch, frame).
- The Interpolate case keeps its golden within 1024 samples by passing the first 4 tokens (256
  samples) of input.csv through `Take(n: 4)`; its output is 3*256 = 768 samples.
- The Decimate case relies on `Decimate`'s `in` tap rate defaulting to the factor (no override).
- Tolerances (in the Rust test): |got - want| <= tol * max(1, |want|) with tol = 1e-4, except
  the BandSplit->BandMerge reconstruction (1e-5), Noise (1e-7: every draw is exact in f32) and the
  SlewIntegrator integrals (1e-6: they stay below 0.01, where 1e-4 would hide an off-by-one).
  The generator also simulates the f32-sensitive cases (biquads, slew) in float32 and asserts
  the float32 run stays within 1e-5 (integrals 1e-7) of the float64 golden, so the goldens are
  well conditioned for an f32 engine.
- SlewIntegrator: besides the brief's Limited(max_rate: 2000, max_accel: 4e6) there is a
  rate-only case (max_accel 1e9, so max_accel*h > 2*max_rate and only the rate clamp binds).
  With max_accel 4e6 the integrator overshoots and rings for the whole run; the f32 rounding of
  y, amplified by 1/h into v, then drifts y, and how far depends on the input: input_step.csv
  was chosen so that drift stays ~1e-6 (an earlier candidate drifted 5e-5).
- The Biquad batch case (shape (2, 2, 16), input_stereo.csv) passes the first 16 tokens through
  Take(n: 16) to stay within 1024 values; both batch rows see the same input and must each keep
  their own filter state.
"""

import math
import os

import numpy as np
from scipy import signal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "dsp")
FS = 48000.0
N = 512
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------
# helpers


def f32(x):
    """Round to f32 and back to float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def fmt(v):
    return "%.9g" % float(v)


def write(name, text):
    path = os.path.join(OUT, name)
    with open(path, "w", newline="\n") as f:
        f.write(text)


def write_input(name, comment, columns):
    """columns: list of equal-length float64 arrays (already f32-exact)."""
    lines = ["# " + c for c in comment.splitlines()]
    for row in zip(*columns):
        lines.append(",".join(fmt(v) for v in row))
    write(name, "\n".join(lines) + "\n")


def write_expected(case, probe, shape, values, note):
    b, c, fr = shape
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    tok = b * c * fr
    assert flat.size % tok == 0, (case, probe, flat.size, tok)
    assert flat.size <= 1024, (case, probe, flat.size)
    assert np.all(np.isfinite(flat))
    head = [
        "# tapwheel DSP golden (tools/gen_dsp_goldens.py): case %s, probe %s" % (case, probe),
        "# " + note,
        "# shape: %d %d %d" % (b, c, fr),
        "# tokens: %d" % (flat.size // tok),
    ]
    write("%s.%s.csv" % (case, probe), "\n".join(head + [fmt(v) for v in flat]) + "\n")


def tokens_from_rows(rows, shape):
    """rows[b][c] = the whole 1-D stream of row (b, c); returns the probe layout (token after
    token, row-major within a token)."""
    b, c, fr = shape
    n = len(rows[0][0])
    assert n % fr == 0
    out = []
    for t in range(n // fr):
        for bi in range(b):
            for ci in range(c):
                out.extend(rows[bi][ci][t * fr:(t + 1) * fr])
    return np.array(out, dtype=np.float64)


def shape_ron(shape):
    return "(batch: %d, channels: %d, frames: %d)" % shape


def scene(name, comment, nodes, edges, shape=(1, 1, 64), capacity=4):
    lines = ["// " + c for c in comment.splitlines()]
    lines += [
        "// Generated by tools/gen_dsp_goldens.py; do not edit by hand.",
        "Scene(",
        "    version: 1,",
        '    name: "%s",' % name,
        "    tick_hz: 48000.0,",
        "    defaults: (shape: %s, capacity: %d)," % (shape_ron(shape), capacity),
        "    nodes: [",
    ]
    lines += ["        %s," % n for n in nodes]
    lines += ["    ],", "    edges: ["]
    lines += ["        %s," % e for e in edges]
    lines += ["    ],", ")"]
    write(name + ".ron", "\n".join(lines) + "\n")


def file_src(path="input.csv", extra=""):
    return 'Node(name: "src", kernel: File(path: "%s"), period: Some(1)%s)' % (path, extra)


def probe(name="out", shape=None):
    s = "" if shape is None else ", shape: Some(%s)" % shape_ron(shape)
    return 'Node(name: "%s", kernel: Probe%s)' % (name, s)


def edge(a, b, extra=""):
    return 'Edge(from: "%s", to: "%s"%s)' % (a, b, extra)


def ron_list(vals):
    return "[" + ", ".join(repr(float(v)) for v in vals) + "]"


def splitmix64(seed):
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


# ---------------------------------------------------------------------------------------------
# input signals


def make_inputs():
    n = np.arange(N, dtype=np.float64)
    rng = splitmix64(2024)
    jitter = np.array([((next(rng) >> 11) * 2.0 ** -53) * 2.0 - 1.0 for _ in range(N)])
    x = (
        0.6 * np.sin(2 * np.pi * 220.0 * n / FS)
        + 0.35 * np.sin(2 * np.pi * 3100.0 * n / FS + 0.7)
        + 0.2 * np.sin(2 * np.pi * 9000.0 * n / FS + 1.9)
        + 0.25 * jitter
        + np.where((n >= 100) & (n < 180), 0.5, 0.0)  # a pulse: transients for the filters
    )
    x = f32(x)
    assert np.max(np.abs(x)) < 2.0
    # A second, different column for the stereo cases.
    x2 = f32(0.8 * np.sin(2 * np.pi * 700.0 * n / FS + 0.2) - 0.3 * jitter[::-1]
             + np.where(n >= 300, -0.4, 0.0))
    assert np.max(np.abs(x2)) < 2.0
    # Step-like signal for the slew integrator: rest, an up-step, a down-step, a slow sine
    # (200 Hz: within both limits), a down-step. With max_rate 2000 and max_accel 4e6 the
    # integrator never settles (it reaches a target with speed and overshoots), so f32 rounding
    # of y, amplified by 1/h, is carried in v; this signal keeps that drift ~1e-6 (checked below).
    step = np.zeros(N)
    step[32:200] = 1.0
    step[200:300] = 0.25
    step[300:420] = 0.25 + 0.3 * np.sin(2 * np.pi * 200.0 * (n[300:420] - 300) / FS)
    step[420:] = -0.75
    step = f32(step)
    write_input("input.csv",
                "tapwheel DSP golden input: 512 samples, one channel (f32-exact values).\n"
                "Generated by tools/gen_dsp_goldens.py.", [x])
    write_input("input_stereo.csv",
                "tapwheel DSP golden input: 512 frames, two channels (column 0 = input.csv).\n"
                "Generated by tools/gen_dsp_goldens.py.", [x, x2])
    write_input("input_step.csv",
                "tapwheel DSP golden input for SlewIntegrator: steps and a slow sine, 512 samples.\n"
                "Generated by tools/gen_dsp_goldens.py.", [step])
    return x, x2, step


# ---------------------------------------------------------------------------------------------
# kernels in float64


def one_pole(c, x):
    return signal.lfilter([c], [1.0, -(1.0 - c)], x)


def rbj(mode, cutoff, q, gain_db, fs=FS):
    w0 = 2 * math.pi * cutoff / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    A = 10.0 ** (gain_db / 40.0)
    sA = math.sqrt(A)
    if mode == "Lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif mode == "Highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif mode == "Bandpass":
        b = [alpha, 0.0, -alpha]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif mode == "Notch":
        b = [1.0, -2 * cw, 1.0]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    elif mode == "Peak":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif mode == "LowShelf":
        b = [A * ((A + 1) - (A - 1) * cw + 2 * sA * alpha),
             2 * A * ((A - 1) - (A + 1) * cw),
             A * ((A + 1) - (A - 1) * cw - 2 * sA * alpha)]
        a = [(A + 1) + (A - 1) * cw + 2 * sA * alpha,
             -2 * ((A - 1) + (A + 1) * cw),
             (A + 1) + (A - 1) * cw - 2 * sA * alpha]
    elif mode == "HighShelf":
        b = [A * ((A + 1) + (A - 1) * cw + 2 * sA * alpha),
             -2 * A * ((A - 1) + (A + 1) * cw),
             A * ((A + 1) + (A - 1) * cw - 2 * sA * alpha)]
        a = [(A + 1) - (A - 1) * cw + 2 * sA * alpha,
             2 * ((A - 1) - (A + 1) * cw),
             (A + 1) - (A - 1) * cw - 2 * sA * alpha]
    else:
        raise ValueError(mode)
    b = np.array(b) / a[0]
    a = np.array(a) / a[0]
    return b, a


def check_rbj():
    """Independent sanity checks of the cookbook formulas via their frequency responses."""
    def gain(b, a, f):
        _, h = signal.freqz(b, a, worN=[2 * math.pi * f / FS])
        return abs(h[0])
    g6 = 10 ** (6.0 / 20)
    b, a = rbj("Lowpass", 1000, 0.707, 0)
    assert abs(gain(b, a, 0) - 1) < 1e-12 and gain(b, a, 23999) < 1e-6
    assert abs(gain(b, a, 1000) - 0.707) < 1e-9  # |H(w0)| = Q for the 2nd-order lowpass
    b, a = rbj("Highpass", 1000, 0.707, 0)
    assert gain(b, a, 0) < 1e-12 and abs(gain(b, a, 24000) - 1) < 1e-9
    b, a = rbj("Bandpass", 1000, 0.707, 0)
    assert abs(gain(b, a, 1000) - 1) < 1e-12
    b, a = rbj("Notch", 1000, 0.707, 0)
    assert gain(b, a, 1000) < 1e-9 and abs(gain(b, a, 0) - 1) < 1e-12
    b, a = rbj("Peak", 1000, 0.707, 6.0)
    assert abs(gain(b, a, 1000) - g6) < 1e-9 and abs(gain(b, a, 0) - 1) < 1e-12
    b, a = rbj("LowShelf", 1000, 0.707, 6.0)
    assert abs(gain(b, a, 0) - g6) < 1e-9 and abs(gain(b, a, 24000) - 1) < 1e-9
    assert abs(gain(b, a, 1000) - math.sqrt(g6)) < 1e-9  # half the dB gain at the midpoint
    b, a = rbj("HighShelf", 1000, 0.707, 6.0)
    assert abs(gain(b, a, 24000) - g6) < 1e-9 and abs(gain(b, a, 0) - 1) < 1e-12
    assert abs(gain(b, a, 1000) - math.sqrt(g6)) < 1e-9


def biquad_f32(b, a, x):
    """A float32 transposed direct form II run with f32-rounded coefficients: the conditioning
    check (not the golden)."""
    b = np.float32(b)
    a = np.float32(a)
    s1 = np.float32(0)
    s2 = np.float32(0)
    y = np.zeros(len(x), dtype=np.float32)
    for i, v in enumerate(np.float32(x)):
        out = b[0] * v + s1
        s1 = b[1] * v - a[1] * out + s2
        s2 = b[2] * v - a[2] * out
        y[i] = out
    return y.astype(np.float64)


def band_split(x_rows, frames, bands):
    """x_rows: 1-D stream; returns list of band streams (per token rfft masks)."""
    B = frames // 2 + 1
    outs = [np.zeros(len(x_rows)) for _ in range(bands)]
    for t in range(len(x_rows) // frames):
        seg = x_rows[t * frames:(t + 1) * frames]
        X = np.fft.rfft(seg)
        for i in range(bands):
            lo, hi = (i * B) // bands, ((i + 1) * B) // bands
            m = np.zeros_like(X)
            m[lo:hi] = X[lo:hi]
            outs[i][t * frames:(t + 1) * frames] = np.fft.irfft(m, n=frames)
    return outs


def poly_blep(t, dt):
    if t < dt:
        u = t / dt
        return 2 * u - u * u - 1
    if t > 1 - dt:
        u = (t - 1) / dt
        return u * u + 2 * u + 1
    return 0.0


def frac(v):
    return v - math.floor(v)


def slew(x, mode, fs, R=None, A=None, dtype=np.float64):
    h = dtype(1.0) / dtype(fs)
    y = dtype(0)
    v = dtype(0)
    I = dtype(0)
    ys, Is = [], []
    for xv in np.asarray(x, dtype=dtype):
        if mode == "Ideal":
            y = xv
        else:
            vs = (xv - y) / h
            v = min(max(vs, v - dtype(A) * h), v + dtype(A) * h)
            v = min(max(v, dtype(-R)), dtype(R))
            y = y + v * h
        I = I + h * y
        ys.append(float(y))
        Is.append(float(I))
    return np.array(ys), np.array(Is)


def tile_values(seed, n):
    g = splitmix64(seed)
    return np.array([((next(g) >> 32) % 193 - 96) / 32.0 for _ in range(n)])


# ---------------------------------------------------------------------------------------------
# cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):  # regenerate from scratch: no stale cases
        if f.endswith(".csv") or f.endswith(".ron"):
            os.remove(os.path.join(OUT, f))
    x, x2, step = make_inputs()
    check_rbj()
    S64 = (1, 1, 64)

    # --- OnePole: frames 64, frames 1, and two channels
    c = 0.1
    y = one_pole(c, x)
    for case, shape, path in [("onepole", S64, "input.csv"), ("onepole_frames1", (1, 1, 1), "input.csv")]:
        scene(case, "OnePole(coeff: 0.1) on input.csv, shape %s." % (shape,),
              [file_src(path), 'Node(name: "f", kernel: OnePole(coeff: 0.1))', probe()],
              [edge("src.out", "f.in"), edge("f.out", "out.in")], shape=shape)
        write_expected(case, "out", shape, y, "lfilter([c], [1, -(1-c)], x), c = 0.1")
    shape = (1, 2, 64)
    scene("onepole_stereo", "OnePole(coeff: 0.1) on the two columns of input_stereo.csv: rows filter independently.",
          [file_src("input_stereo.csv"), 'Node(name: "f", kernel: OnePole(coeff: 0.1))', probe()],
          [edge("src.out", "f.in"), edge("f.out", "out.in")], shape=shape)
    write_expected("onepole_stereo", "out", shape,
                   tokens_from_rows([[one_pole(c, x), one_pole(c, x2)]], shape),
                   "channel 0 = OnePole(input col 0), channel 1 = OnePole(input col 1)")

    # --- Biquad: every mode, then a resonant lowpass, a frames-1 and a (2,2,16) case
    bq = [("Lowpass", 1000.0, 0.707, 0.0), ("Highpass", 1000.0, 0.707, 0.0),
          ("Bandpass", 1000.0, 0.707, 0.0), ("Notch", 1000.0, 0.707, 0.0),
          ("Peak", 1000.0, 0.707, 6.0), ("LowShelf", 1000.0, 0.707, 6.0),
          ("HighShelf", 1000.0, 0.707, 6.0)]
    cases = [("biquad_" + m.lower(), m, fc, q, g, S64, "input.csv") for (m, fc, q, g) in bq]
    cases.append(("biquad_lowpass_5k_q2", "Lowpass", 5000.0, 2.0, 0.0, S64, "input.csv"))
    cases.append(("biquad_lowpass_frames1", "Lowpass", 1000.0, 0.707, 0.0, (1, 1, 1), "input.csv"))
    cases.append(("biquad_peak_b2c2", "Peak", 1000.0, 0.707, 6.0, (2, 2, 16), "input_stereo.csv"))
    for case, m, fc, q, g, shape, path in cases:
        b, a = rbj(m, fc, q, g)
        kern = "Biquad(mode: %s, cutoff_hz: %r, q: %r, gain_db: %r)" % (m, fc, q, g)
        doc = "%s on %s, shape %s.\nRBJ cookbook, alpha = sin(w0)/(2q), A = 10^(gain_db/40), fs = tick_hz." % (kern, path, shape)
        cols = [x] if path == "input.csv" else [x, x2]
        if shape[0] == 1:
            scene(case, doc, [file_src(path), 'Node(name: "f", kernel: %s)' % kern, probe()],
                  [edge("src.out", "f.in"), edge("f.out", "out.in")], shape=shape)
        else:
            # Batch rows: the File source writes every batch row alike; each row must still
            # keep its own filter state. Take(n: 16) keeps the golden at 16 tokens (1024 values).
            doc += "\nTake(n: 16) passes the first 16 tokens (256 frames); both batch rows see the same input."
            scene(case, doc, [file_src(path), 'Node(name: "first", kernel: Take(n: 16))',
                              'Node(name: "f", kernel: %s)' % kern, probe()],
                  [edge("src.out", "first.in"), edge("first.out", "f.in"), edge("f.out", "out.in")], shape=shape)
            cols = [col[:16 * shape[2]] for col in cols]
        rows = []
        for bi in range(shape[0]):
            row = []
            for ci in range(shape[1]):
                col = cols[ci if len(cols) > 1 else 0]
                yy = signal.lfilter(b, a, col)
                dev = np.max(np.abs(biquad_f32(b, a, col) - yy))
                assert dev < 1e-5, (case, dev)
                row.append(yy)
            rows.append(row)
        write_expected(case, "out", shape, tokens_from_rows(rows, shape),
                       "scipy.signal.lfilter(b, a, x) with RBJ %s coefficients normalised by a0" % m)

    # --- FIR, FIR -> Decimate(4), Take(4) -> Interpolate(3) -> FIR
    h = signal.firwin(31, 0.2)
    taps = ron_list(h)
    y = signal.lfilter(h, [1.0], x)
    assert np.allclose(y, np.convolve(h, x)[:N], atol=1e-13)
    scene("fir", "Fir(taps: firwin(31, 0.2)) on input.csv.",
          [file_src(), 'Node(name: "f", kernel: Fir(taps: %s))' % taps, probe()],
          [edge("src.out", "f.in"), edge("f.out", "out.in")])
    write_expected("fir", "out", S64, y, "lfilter(firwin(31, 0.2), 1, x)")

    yd = signal.upfirdn(h, x, down=4)[:N // 4]
    assert np.allclose(yd, y[::4], atol=1e-13)
    scene("fir_decimate4", "Fir(firwin(31, 0.2)) -> Decimate(factor: 4) on input.csv: 512 -> 128 samples.\n"
          "Decimate's `in` rate defaults to the factor (4 tokens per firing), `out` rate 1.",
          [file_src(), 'Node(name: "f", kernel: Fir(taps: %s))' % taps,
           'Node(name: "d", kernel: Decimate(factor: 4))', probe()],
          [edge("src.out", "f.in"), edge("f.out", "d.in"), edge("d.out", "out.in")])
    write_expected("fir_decimate4", "out", S64, yd, "upfirdn(h, x, down=4)[:len(x)/4] = lfilter(h, 1, x)[::4]")

    xs = x[:256]
    yi = signal.upfirdn(h, xs, up=3)[:3 * len(xs)]
    up = np.zeros(3 * len(xs))
    up[::3] = xs
    assert np.allclose(yi, signal.lfilter(h, [1.0], up), atol=1e-13)
    scene("interpolate3_fir", "Take(n: 4) -> Interpolate(factor: 3) -> Fir(firwin(31, 0.2)) on input.csv:\n"
          "the first 256 samples, zero-stuffed to 768, then filtered. Interpolate: `in` rate 1, `out` rate 3.",
          [file_src(), 'Node(name: "first", kernel: Take(n: 4))',
           'Node(name: "i", kernel: Interpolate(factor: 3))',
           'Node(name: "f", kernel: Fir(taps: %s))' % taps, probe()],
          [edge("src.out", "first.in"), edge("first.out", "i.in"), edge("i.out", "f.in"),
           edge("f.out", "out.in")])
    write_expected("interpolate3_fir", "out", S64, yi, "upfirdn(h, x[:256], up=3)[:768]")

    # --- BandSplit / BandMerge
    bands = band_split(x, 64, 3)
    scene("bandsplit3", "BandSplit(bands: 3) on input.csv, frames 64 (B = 33 bins: [0,11), [11,22), [22,33)).\n"
          "band1 -> probe `out`, band0 -> `b0`, band2 -> `b2`.",
          [file_src(), 'Node(name: "split", kernel: BandSplit(bands: 3))', probe("out"), probe("b0"), probe("b2")],
          [edge("src.out", "split.in"), edge("split.band1", "out.in"), edge("split.band0", "b0.in"),
           edge("split.band2", "b2.in")])
    for p, k in [("out", 1), ("b0", 0), ("b2", 2)]:
        write_expected("bandsplit3", p, S64, bands[k],
                       "per 64-sample token: irfft(rfft(x) masked to band %d bins, n=64)" % k)
    b4 = band_split(x, 64, 4)
    assert np.max(np.abs(sum(b4) - x)) < 1e-12
    scene("bandsplit4_merge", "BandSplit(bands: 4) -> BandMerge(bands: 4) on input.csv: exact reconstruction.",
          [file_src(), 'Node(name: "split", kernel: BandSplit(bands: 4))',
           'Node(name: "merge", kernel: BandMerge(bands: 4))', probe()],
          [edge("src.out", "split.in")] + [edge("split.band%d" % i, "merge.band%d" % i) for i in range(4)]
          + [edge("merge.out", "out.in")])
    write_expected("bandsplit4_merge", "out", S64, x, "sum of the 4 bands = the input")

    # --- oscillators: no input; period 1, count 8, frames 64 = 512 samples
    n = np.arange(N)
    shape = (1, 2, 64)
    sine = 0.5 * np.sin(2 * np.pi * 440.0 * n / FS + 0.3)
    scene("sine", "Sine(freq_hz: 440.0, amp: 0.5, phase: 0.3), shape (1, 2, 64): both rows alike.",
          ['Node(name: "src", kernel: Sine(freq_hz: 440.0, amp: 0.5, phase: 0.3), period: Some(1), count: Some(8))',
           probe()], [edge("src.out", "out.in")], shape=shape)
    write_expected("sine", "out", shape, tokens_from_rows([[sine, sine]], shape),
                   "amp*sin(2*pi*freq*n/fs + phase), the same sample in both channels")
    saw = []
    for k in range(N):
        t, dt = frac(1000.0 * k / FS), 1000.0 / FS
        saw.append(0.8 * (2 * t - 1 - poly_blep(t, dt)))
    scene("saw", "Saw(freq_hz: 1000.0, amp: 0.8), PolyBLEP.",
          ['Node(name: "src", kernel: Saw(freq_hz: 1000.0, amp: 0.8), period: Some(1), count: Some(8))', probe()],
          [edge("src.out", "out.in")])
    write_expected("saw", "out", S64, saw, "amp*(2t - 1 - polyblep(t, dt)), t = frac(freq*n/fs)")
    sq = []
    duty = 0.3
    for k in range(N):
        t, dt = frac(1500.0 * k / FS), 1500.0 / FS
        naive = 1.0 if t < duty else -1.0
        sq.append(0.7 * (naive + poly_blep(t, dt) - poly_blep(frac(t - duty + 1), dt)))
    scene("square", "Square(freq_hz: 1500.0, amp: 0.7, duty: 0.3), PolyBLEP.",
          ['Node(name: "src", kernel: Square(freq_hz: 1500.0, amp: 0.7, duty: 0.3), period: Some(1), count: Some(8))',
           probe()], [edge("src.out", "out.in")])
    write_expected("square", "out", S64, sq,
                   "amp*(naive + polyblep(t, dt) - polyblep(frac(t - duty + 1), dt)), naive = +1 if t < duty else -1")

    # --- Noise: SplitMix64, every element drawn
    shape = (1, 2, 64)
    g = splitmix64(42)
    noise = [0.5 * (2 * ((next(g) >> 40) * 2.0 ** -24) - 1) for _ in range(4 * 128)]
    scene("noise", "Noise(seed: 42, amp: 0.5), shape (1, 2, 64), 4 tokens.",
          ['Node(name: "src", kernel: Noise(seed: 42, amp: 0.5), period: Some(1), count: Some(4))', probe()],
          [edge("src.out", "out.in")], shape=shape)
    write_expected("noise", "out", shape, noise,
                   "SplitMix64(seed 42), u = (next >> 40) * 2^-24, amp*(2u - 1), (batch, channel, frame) order")

    # --- SlewIntegrator
    for case, mode, R, A in [("slew_limited", "Limited", 2000.0, 4e6),
                             ("slew_rate_limited", "Limited", 2000.0, 1e9),
                             ("slew_ideal", "Ideal", None, None)]:
        if mode == "Ideal":
            kern = "SlewIntegrator(mode: Ideal, sample_rate_hz: 48000.0)"
        else:
            kern = ("SlewIntegrator(mode: Limited(max_rate: %r, max_accel: %r), sample_rate_hz: 48000.0)"
                    % (R, A))
        y, I = slew(step, mode, 48000.0, R, A)
        y32, I32 = slew(step, mode, 48000.0, R, A, dtype=np.float32)
        assert np.max(np.abs(y32 - y)) < 1e-5 and np.max(np.abs(I32 - I)) < 1e-7, case
        why = {"slew_limited": "Both clamps bind: the output overshoots and rings.",
               "slew_rate_limited": "max_accel*h = 20833 > 2*max_rate: only the rate clamp binds, so y\n"
                                    "slews at max_rate and lands exactly on each target.",
               "slew_ideal": "y = x."}[case]
        scene(case, "%s on input_step.csv: `out` -> probe `out`, `integral` -> probe `integ`.\n%s" % (kern, why),
              [file_src("input_step.csv"), 'Node(name: "s", kernel: %s)' % kern, probe("out"), probe("integ")],
              [edge("src.out", "s.in"), edge("s.out", "out.in"), edge("s.integral", "integ.in")])
        write_expected(case, "out", S64, y, "SPEC 15 output y (float64 recurrence)")
        write_expected(case, "integ", S64, I, "SPEC 15 integral I += h*y (float64 recurrence)")

    # --- tiles: two tokens of batch 2 fed as initial tokens from a never-firing Const
    B, M, K, Nn = 2, 3, 4, 5
    ta = [tile_values(100 + i, B * M * K) for i in range(2)]
    tb = [tile_values(200 + i, B * K * Nn) for i in range(2)]

    def hold(name, shape):
        return ('Node(name: "%s", kernel: Const(value: 0.0), count: Some(0), shape: Some(%s))'
                % (name, shape_ron(shape)))

    def init(tokens):
        return ", initial: [%s]" % ", ".join(ron_list(t) for t in tokens)

    note = ("Tile inputs are two initial tokens on an edge from a Const source with count: Some(0)\n"
            "(it never fires; the consumer drains the initial tokens, then finishes).")
    scene("matmul", "MatMul: a (2, 3, 4) x b (2, 4, 5) -> out (2, 3, 5), batch rows separate.\n" + note,
          [hold("ha", (B, M, K)), hold("hb", (B, K, Nn)),
           'Node(name: "mm", kernel: MatMul, shape: Some(%s), taps: {"b": (shape: Some(%s)), "out": (shape: Some(%s))})'
           % (shape_ron((B, M, K)), shape_ron((B, K, Nn)), shape_ron((B, M, Nn))),
           probe("out", (B, M, Nn))],
          [edge("ha.out", "mm.a", init(ta)), edge("hb.out", "mm.b", init(tb)), edge("mm.out", "out.in")],
          shape=(B, M, K))
    mm = np.concatenate([np.matmul(a.reshape(B, M, K), b.reshape(B, K, Nn)).reshape(-1) for a, b in zip(ta, tb)])
    write_expected("matmul", "out", (B, M, Nn), mm, "numpy.matmul per batch row, float64")

    tshape = (B, M, K)
    t_in = ta

    def softmax(v, axis):
        e = np.exp(v - np.max(v, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    for axis in (0, 1):
        case = "softmax_axis%d" % axis
        scene(case, "Softmax(axis: %d) on (2, 3, 4) tiles: axis 0 normalises over frames (each row),\n"
              "axis 1 over channels (each column).\n%s" % (axis, note),
              [hold("h", tshape), 'Node(name: "sm", kernel: Softmax(axis: %d))' % axis, probe()],
              [edge("h.out", "sm.in", init(t_in)), edge("sm.out", "out.in")], shape=tshape)
        np_axis = 2 if axis == 0 else 1
        vals = np.concatenate([softmax(t.reshape(tshape), np_axis).reshape(-1) for t in t_in])
        write_expected(case, "out", tshape, vals, "softmax with max subtraction over numpy axis %d of (b, c, f)" % np_axis)

    for case, kern, fn in [("rowsum", "RowSum", np.sum), ("rowmax", "RowMax", np.max)]:
        oshape = (B, M, 1)
        scene(case, "%s on (2, 3, 4) tiles -> (2, 3, 1).\n%s" % (kern, note),
              [hold("h", tshape),
               'Node(name: "r", kernel: %s, taps: {"out": (shape: Some(%s))})' % (kern, shape_ron(oshape)),
               probe("out", oshape)],
              [edge("h.out", "r.in", init(t_in)), edge("r.out", "out.in")], shape=tshape)
        vals = np.concatenate([fn(t.reshape(tshape), axis=2).reshape(-1) for t in t_in])
        write_expected(case, "out", oshape, vals, "numpy %s over frames" % fn.__name__)

    oshape = (B, K, M)
    scene("transpose", "Transpose on (2, 3, 4) tiles -> (2, 4, 3).\n" + note,
          [hold("h", tshape),
           'Node(name: "t", kernel: Transpose, taps: {"out": (shape: Some(%s))})' % shape_ron(oshape),
           probe("out", oshape)],
          [edge("h.out", "t.in", init(t_in)), edge("t.out", "out.in")], shape=tshape)
    vals = np.concatenate([np.transpose(t.reshape(tshape), (0, 2, 1)).reshape(-1) for t in t_in])
    write_expected("transpose", "out", oshape, vals, "numpy transpose of the (channels, frames) axes")

    print("wrote", len(os.listdir(OUT)), "files to", OUT)


if __name__ == "__main__":
    main()
