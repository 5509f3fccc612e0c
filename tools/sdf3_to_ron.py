#!/usr/bin/env python3
"""Converts the SDF3 testbench graphs into tapwheel scenes, and writes their repetition vectors.

Reads  /work/shared/oracles/sdf3/graphs/*.xml           (or the folder given as the first argument)
Writes scenes/sdf3/<name>.ron                           one scene per graph, "unbounded" buffers
       scenes/sdf3/<name>_minbuf.ron, <name>_maxthr.ron for graphs with a <name>.buffersize.xml
                                                        beside the graphs folder (samplerate, modem)
       tests/golden/sdf3/repetition_vectors.txt         q of every graph (checked by
                                                        tests/sdf3_oracle.rs)

How to run (only to regenerate; CI never runs it; Python 3 standard library only):
    python3 tools/sdf3_to_ron.py [ORACLE_SDF3_DIR]      # from any cwd

Deterministic: re-running writes the same bytes.

The repetition vectors are computed here with `fractions`, independently of the Rust analysis
(src/sdf.rs): balance equations q[src]*prod = q[dst]*cons per channel, smallest positive integers per
weakly connected component. For every graph that ships SDF3's own `<name>.repetition_vector.txt`
(samplerate, modem) the tool asserts that its result equals SDF3's.

Mapping (SDF3 -> tapwheel), decisions written down:
- One `Actor` node per actor, in XML order. Its taps are the XML ports (`dir: In|Out`, `rate`).
  Names are sanitised to [A-Za-z0-9_]+ (other characters become `_`; a clash gets a numeric
  suffix). The eight graphs need no renaming.
- One edge per channel, in XML order, with `initialTokens` initial tokens (`0.0` each).
- `latency` = the execution time on the actor's default processor: the first <processor> with
  default="true", else the first <processor>. (h263decoder, h263encoder and the mp3decoders mark
  two processors of one actor as default; the first of them, the `arm` processor, is taken. The
  published throughputs concern samplerate and modem only, whose actors have one processor each.)
- Auto-concurrency: an actor with a self-loop channel (src == dst; `_chN`, `vld2vld`, ...) keeps
  tapwheel's default `concurrency: Some(1)`; the self-loop (one initial token) is kept as an edge,
  so the scene is the SDF3 graph channel for channel. An actor without a self-loop may overlap any
  number of its own firings in SDF3 (unlimited auto-concurrency): `concurrency: None`. A self-loop
  with k != 1 initial tokens would allow k overlapping firings: such an actor also gets
  `concurrency: None` and the self-loop alone limits it (no graph here has one).
- Sources: in tapwheel a node without mandatory inputs is a *source* and needs a `period`
  (SPEC §4). None of the eight graphs has an actor without input ports: the actors that look like
  sources (samplerate `a`, modem `in`, h263decoder `vld`, mp3 `huffman`/`mp3`, satellite `a`, `d`)
  all have their self-loop as input, so they are ordinary (non-source) nodes that fire as soon as
  their previous firing has ended and their outputs have room, exactly SDF3's self-timed
  execution. An actor with no input at all would have an unbounded firing rate under SDF3's
  unlimited auto-concurrency, which tapwheel cannot express: the tool refuses such a graph.
- Unbounded runs (<name>.ron): every channel gets `capacity: max(4096, 2*(initial + prod + cons))`
  and the default `memory: Parks(..)`. That is far above what any graph here needs to reach its
  maximal throughput, and keeps the arena small (tokens are (1,1,1) f32, capacity slots are
  allocated up front).
- Buffer-size scenes: `<name>_minbuf.ron` takes the capacities of the *first* distribution of
  `<name>.buffersize.xml` (minimal storage, lowest throughput), `<name>_maxthr.ron` those of the
  last (smallest storage for the maximal throughput); both with `memory: Fixed`, so no channel grows.
  Self-loop capacities come from the file too (SDF3 sizes them 2).
- `run: (until: Some(N))`: N = 10 * sum over actors of q[a] * latency[a] (ten iterations of a fully
  sequential schedule; the self-timed iteration period is never longer), rounded up to 1000.
"""

import os
import re
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from math import gcd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_ORACLES = "/work/shared/oracles/sdf3"


def sanitise(name, used):
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    base, k = s, 1
    while s in used:
        k += 1
        s = f"{base}_{k}"
    used.add(s)
    return s


class Graph:
    def __init__(self, path):
        root = ET.parse(path).getroot()
        app = root.find("applicationGraph")
        sdf = app.find("sdf")
        self.file = os.path.splitext(os.path.basename(path))[0]
        self.name = self.file
        used = set()
        self.actors = []  # (xml name, scene name, [(xml port, scene tap, dir, rate)])
        self.ren = {}
        for a in sdf.findall("actor"):
            an = a.get("name")
            sn = sanitise(an, used)
            self.ren[an] = sn
            pused = set()
            ports = []
            for p in a.findall("port"):
                d = {"in": "In", "out": "Out"}[p.get("type")]
                ports.append((p.get("name"), sanitise(p.get("name"), pused), d, int(p.get("rate", "1"))))
            self.actors.append((an, sn, ports))
        self.port = {(an, pn): (tap, d, r) for an, _, ps in self.actors for pn, tap, d, r in ps}
        self.channels = []  # (name, src, srcport, dst, dstport, initial)
        for c in sdf.findall("channel"):
            self.channels.append(
                (
                    c.get("name"),
                    c.get("srcActor"),
                    c.get("srcPort"),
                    c.get("dstActor"),
                    c.get("dstPort"),
                    int(c.get("initialTokens", "0")),
                )
            )
        self.exec = {}
        props = app.find("sdfProperties")
        for ap in props.findall("actorProperties"):
            procs = ap.findall("processor")
            chosen = next((p for p in procs if p.get("default") == "true"), procs[0])
            self.exec[ap.get("actor")] = int(chosen.find("executionTime").get("time"))
        for an, _, _ in self.actors:
            assert an in self.exec, f"{self.name}: actor {an} has no execution time"

    def prod(self, ch):
        return self.port[(ch[1], ch[2])][2]

    def cons(self, ch):
        return self.port[(ch[3], ch[4])][2]

    def repetition_vector(self):
        names = [a[0] for a in self.actors]
        adj = {n: [] for n in names}
        for ch in self.channels:
            # q[dst] = q[src] * prod / cons
            adj[ch[1]].append((ch[3], Fraction(self.prod(ch), self.cons(ch))))
            adj[ch[3]].append((ch[1], Fraction(self.cons(ch), self.prod(ch))))
        q = {}
        for start in names:
            if start in q:
                continue
            comp = {start: Fraction(1)}
            stack = [start]
            while stack:
                v = stack.pop()
                for w, f in adj[v]:
                    want = comp[v] * f
                    if w in comp:
                        assert comp[w] == want, f"{self.name}: inconsistent at {v}->{w}"
                    else:
                        comp[w] = want
                        stack.append(w)
            den = 1
            for f in comp.values():
                den = den * f.denominator // gcd(den, f.denominator)
            ints = {k: int(f * den) for k, f in comp.items()}
            g = 0
            for v in ints.values():
                g = gcd(g, v)
            for k, v in ints.items():
                q[k] = v // g
        for ch in self.channels:
            assert q[ch[1]] * self.prod(ch) == q[ch[3]] * self.cons(ch)
        return [(a[1], q[a[0]]) for a in self.actors]

    def self_loops(self):
        out = {}
        for ch in self.channels:
            if ch[1] == ch[3]:
                out.setdefault(ch[1], []).append(ch[5])
        return out

    def scene(self, title, capacities, fixed, comment):
        q = dict(self.repetition_vector())
        loops = self.self_loops()
        inputs = {a[0]: sum(1 for p in a[2] if p[2] == "In") for a in self.actors}
        work = sum(q[sn] * self.exec[an] for an, sn, _ in self.actors)
        until = max(1000, -(-10 * work // 1000) * 1000)
        lines = [f"// {comment}", "// Generated by tools/sdf3_to_ron.py from the SDF3 testbench graph; do not edit."]
        lines.append(f'Scene(version: 1, name: "{title}",')
        lines.append("    nodes: [")
        for an, sn, ports in self.actors:
            if inputs[an] == 0:
                raise SystemExit(
                    f"{self.name}: actor {an} has no input port; under SDF3's unlimited "
                    "auto-concurrency its rate is unbounded, which a tapwheel source (period) cannot express"
                )
            taps = ", ".join(f'"{tap}": (dir: {d}, rate: {r})' for _, tap, d, r in ports)
            conc = "" if loops.get(an) == [1] else ", concurrency: None"
            lines.append(
                f'        Node(name: "{sn}", kernel: Actor, latency: {self.exec[an]}{conc},'
            )
            lines.append(f"             taps: {{ {taps} }}),")
        lines.append("    ],")
        lines.append("    edges: [")
        for ch in self.channels:
            name, sa, sp, da, dp, init = ch
            frm = f"{self.ren[sa]}.{self.port[(sa, sp)][0]}"
            to = f"{self.ren[da]}.{self.port[(da, dp)][0]}"
            cap = capacities(ch)
            ini = "[" + ", ".join(["0.0"] * init) + "]"
            lines.append(
                f'        Edge(from: "{frm}", to: "{to}", capacity: {cap}, initial: {ini}),  // {name}'
            )
        lines.append("    ],")
        if fixed:
            lines.append("    memory: Fixed,")
        lines.append(f"    run: (until: Some({until})),")
        lines.append(")")
        return "\n".join(lines) + "\n"


def read_published_rv(path):
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*\[(\w+)\]\s*=\s*(\d+)", line)
            if m:
                out.append((m.group(1), int(m.group(2))))
    return out


def read_distributions(path):
    root = ET.parse(path).getroot()
    out = []
    for ds in root.iter("distributionsSet"):
        for d in ds.findall("distribution"):
            out.append((ds.get("thr"), ds.get("sz"), {c.get("name"): int(c.get("sz")) for c in d.findall("ch")}))
    return out


def main():
    oracles = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_ORACLES
    gdir = os.path.join(oracles, "graphs")
    sdir = os.path.join(ROOT, "scenes", "sdf3")
    golden = os.path.join(ROOT, "tests", "golden", "sdf3")
    os.makedirs(sdir, exist_ok=True)
    os.makedirs(golden, exist_ok=True)
    rv_lines = [
        "# Repetition vectors of the SDF3 testbench graphs (firings per graph iteration), one graph a line:",
        "# <graph> <node>=<count> ... in scene (XML) order. Computed by tools/sdf3_to_ron.py with exact",
        "# fractions; samplerate and modem asserted equal to SDF3's published *.repetition_vector.txt.",
    ]
    for f in sorted(os.listdir(gdir)):
        if not f.endswith(".xml"):
            continue
        g = Graph(os.path.join(gdir, f))
        rv = g.repetition_vector()
        published = os.path.join(oracles, f"{g.file}.repetition_vector.txt")
        if os.path.exists(published):
            pub = read_published_rv(published)
            assert sorted(pub) == sorted(rv), f"{g.name}: {rv} != SDF3's {pub}"
            print(f"{g.name}: repetition vector equals SDF3's published one")
        rv_lines.append(g.name + " " + " ".join(f"{n}={c}" for n, c in rv))

        def unbounded(ch):
            return max(4096, 2 * (ch[5] + g.prod(ch) + g.cons(ch)))

        text = g.scene(g.name, unbounded, False, f"SDF3 graph `{g.name}`, buffers large enough never to limit throughput.")
        with open(os.path.join(sdir, f"{g.name}.ron"), "w") as out:
            out.write(text)
        loops = g.self_loops()
        print(f"{g.name}: q = {dict(rv)}; unlimited auto-concurrency: {[a[1] for a in g.actors if loops.get(a[0]) != [1]]}")
        bs = os.path.join(oracles, f"{g.file}.buffersize.xml")
        if os.path.exists(bs):
            dists = read_distributions(bs)
            for suffix, (thr, sz, dist) in (("minbuf", dists[0]), ("maxthr", dists[-1])):
                names = {ch[0] for ch in g.channels}
                assert set(dist) == names, f"{g.name}: distribution channels differ from the graph's"
                text = g.scene(
                    f"{g.name}_{suffix}",
                    lambda ch, dist=dist: dist[ch[0]],
                    True,
                    f"SDF3 graph `{g.name}` with SDF3's buffer sizes (total {sz} tokens) for throughput {thr}.",
                )
                with open(os.path.join(sdir, f"{g.name}_{suffix}.ron"), "w") as out:
                    out.write(text)
    with open(os.path.join(golden, "repetition_vectors.txt"), "w") as out:
        out.write("\n".join(rv_lines) + "\n")


if __name__ == "__main__":
    main()
