//! Generates the scenes that model pto-runtime's larger examples (`scenes/pto/`):
//!
//! ```text
//! cargo run --release --example gen_pto_scenes -- scenes/pto
//! ```
//!
//! - `batched_gemm.ron`: pto-runtime's BGEMM (`examples/a2a3/host_build_graph/bgemm`,
//!   uv-xiao/pto-runtime@d81b111844183018338743ca91049857076283be): `C = A @ B` on a 4×4×4 grid
//!   of 64×64 tiles, per output tile a chain over `k` of `P = A[m,k] @ B[k,n]` (cube) and
//!   `C[m,n] = C[m,n] + P` (vector) starting from a zero tile: 64 matmuls + 64 adds = 128 tasks.
//! - `paged_attention.ron`: pto-runtime's paged attention (`examples/host_build_graph/
//!   paged_attention`, uv-xiao/pto-runtime@0659b93b8743bd26557c39d8fa9a23385a6f5090, Case1's
//!   structure at a smaller size): per `(batch, KV block)` the tasks QK (cube) → SF
//!   (softmax-prepare, vector) → PV (cube), and per batch a serial chain of UP (online update,
//!   vector) tasks with the final normalisation fused into the last one.
//!
//! The scenes are generated so that they never drift from this program: `tests/pto_scenes.rs`
//! regenerates them and compares the bytes with the committed files. Edit this file, rerun the
//! command above, and commit both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The batched GEMM's configuration and inputs.
pub mod bgemm {
    /// Tile edge (`TILE` in pto-runtime's orchestration).
    pub const TILE: u32 = 64;
    pub const GRID_M: u32 = 4;
    pub const GRID_K: u32 = 4;
    pub const GRID_N: u32 = 4;

    /// Every element of tile `A[m,k]`: `(m + k + 1)/16`.
    pub fn a_value(m: u32, k: u32) -> f64 {
        f64::from(m + k + 1) / 16.0
    }

    /// Every element of tile `B[k,n]`: `(4n + k + 2)/16`.
    pub fn b_value(k: u32, n: u32) -> f64 {
        f64::from(4 * n + k + 2) / 16.0
    }
}

/// The paged attention's configuration and inputs (pto-runtime's Case1 shape, scaled down).
pub mod paged_attention {
    /// Independent sequences (pto-runtime's Case1: 256).
    pub const BATCH: u32 = 2;
    /// Query heads, processed together by every task (Case1: 16).
    pub const NUM_HEADS: u32 = 16;
    /// One KV head shared by every query head (Case1: 1).
    pub const KV_HEAD_NUM: u32 = 1;
    /// Case1: 128.
    pub const HEAD_DIM: u32 = 64;
    /// Tokens per KV block (Case1: 128).
    pub const BLOCK_SIZE: u32 = 64;
    /// KV blocks per sequence (Case1: 4); `context_len = BLOCK_SIZE · BLOCK_NUM`, so every
    /// block is full and no score is masked.
    pub const BLOCK_NUM: u32 = 4;
    /// `1/√HEAD_DIM`, exact in f32.
    pub const SCALE: f64 = 0.125;
    /// Amplitudes of the `Noise` sources: queries, keys, values.
    pub const Q_AMP: f64 = 2.0;
    pub const K_AMP: f64 = 1.0;
    pub const V_AMP: f64 = 1.0;

    /// Seed of batch `b`'s query tile `(NUM_HEADS, HEAD_DIM)`.
    pub fn q_seed(b: u32) -> u64 {
        100 + u64::from(b)
    }
    /// Seed of block `j` of batch `b`'s transposed key block `(HEAD_DIM, BLOCK_SIZE)`.
    pub fn k_seed(b: u32, j: u32) -> u64 {
        200 + 10 * u64::from(b) + u64::from(j)
    }
    /// Seed of block `j` of batch `b`'s value block `(BLOCK_SIZE, HEAD_DIM)`.
    pub fn v_seed(b: u32, j: u32) -> u64 {
        300 + 10 * u64::from(b) + u64::from(j)
    }
}

/// A node as written in the scene.
struct Node {
    name: String,
    kernel: String,
    shape: Option<(u32, u32)>,
    count: Option<u64>,
    core: Option<&'static str>,
    taps: Vec<(&'static str, String)>,
}

impl Node {
    fn new(name: impl Into<String>, kernel: impl Into<String>) -> Self {
        Node {
            name: name.into(),
            kernel: kernel.into(),
            shape: None,
            count: None,
            core: None,
            taps: Vec::new(),
        }
    }
    /// A tile of `rows × cols` (batch 1) on every tap the kernel does not infer.
    fn shape(mut self, rows: u32, cols: u32) -> Self {
        self.shape = Some((rows, cols));
        self
    }
    /// A source that fires once.
    fn once(mut self) -> Self {
        self.count = Some(1);
        self
    }
    fn cube(mut self) -> Self {
        self.core = Some("Cube");
        self
    }
    fn vector(mut self) -> Self {
        self.core = Some("Vector");
        self
    }
    /// `b` of a `MatMul` is a `rows × cols` tile.
    fn b_shape(mut self, rows: u32, cols: u32) -> Self {
        self.taps
            .push(("b", format!("(shape: Some({}))", shape(rows, cols))));
        self
    }
    /// `b` is a `(1, rows, 1)` column broadcast along each row (SPEC §8 `Broadcast`).
    fn broadcast_b(mut self) -> Self {
        self.taps.push(("b", "(adapter: Some(Broadcast))".into()));
        self
    }
    fn render(&self) -> String {
        let mut s = format!("Node(name: \"{}\", kernel: {}", self.name, self.kernel);
        if let Some((r, c)) = self.shape {
            write!(s, ", shape: Some({})", shape(r, c)).unwrap();
        }
        if let Some(n) = self.count {
            write!(s, ", count: Some({n})").unwrap();
        }
        if let Some(c) = self.core {
            write!(s, ", core: Some({c})").unwrap();
        }
        if !self.taps.is_empty() {
            let taps: Vec<String> = self
                .taps
                .iter()
                .map(|(t, o)| format!("\"{t}\": {o}"))
                .collect();
            write!(s, ", taps: {{{}}}", taps.join(", ")).unwrap();
        }
        s + "),"
    }
}

fn shape(rows: u32, cols: u32) -> String {
    format!("(batch: 1, channels: {rows}, frames: {cols})")
}

/// A scene under construction: nodes and edges in the order they are added, with comments.
struct SceneText {
    /// `defaults.shape` as `(channels, frames)`: nodes of this shape do not repeat it.
    default_shape: (u32, u32),
    nodes: Vec<String>,
    edges: Vec<String>,
}

impl SceneText {
    fn new(default_shape: (u32, u32)) -> Self {
        SceneText {
            default_shape,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }
    fn comment(&mut self, text: &str) {
        self.nodes.push(format!("// {text}"));
    }
    fn node(&mut self, mut n: Node) {
        if n.shape == Some(self.default_shape) {
            n.shape = None;
        }
        self.nodes.push(n.render());
    }
    fn edge(&mut self, from: &str, to: &str) {
        self.edges
            .push(format!("Edge(from: \"{from}\", to: \"{to}\"),"));
    }
    fn finish(self, header: &str, name: &str) -> String {
        let mut s = String::new();
        for line in header.lines() {
            writeln!(s, "// {line}").unwrap();
        }
        writeln!(
            s,
            "// Generated by examples/gen_pto_scenes.rs; do not edit by hand."
        )
        .unwrap();
        writeln!(s, "Scene(").unwrap();
        writeln!(s, "    version: 1,").unwrap();
        writeln!(s, "    name: \"{name}\",").unwrap();
        // One tick per AI-core cycle of the a2a3 profile, so CycleSim timings read in cycles.
        writeln!(s, "    tick_hz: 1.8e9,").unwrap();
        let (r, c) = self.default_shape;
        writeln!(s, "    defaults: (shape: {}, capacity: 2),", shape(r, c)).unwrap();
        writeln!(s, "    nodes: [").unwrap();
        for n in &self.nodes {
            writeln!(s, "        {n}").unwrap();
        }
        writeln!(s, "    ],").unwrap();
        writeln!(s, "    edges: [").unwrap();
        for e in &self.edges {
            writeln!(s, "        {e}").unwrap();
        }
        writeln!(s, "    ],").unwrap();
        writeln!(s, ")").unwrap();
        s
    }
}

/// `scenes/pto/batched_gemm.ron`.
pub fn batched_gemm() -> String {
    use bgemm::*;
    let mut sc = SceneText::new((TILE, TILE));
    sc.comment("inputs: A[m,k], B[k,n] (constant tiles) and one zero tile per C[m,n]");
    for m in 0..GRID_M {
        for k in 0..GRID_K {
            sc.node(
                Node::new(
                    format!("A_m{m}_k{k}"),
                    format!("Const(value: {:?})", a_value(m, k)),
                )
                .once(),
            );
        }
    }
    for k in 0..GRID_K {
        for n in 0..GRID_N {
            sc.node(
                Node::new(
                    format!("B_k{k}_n{n}"),
                    format!("Const(value: {:?})", b_value(k, n)),
                )
                .once(),
            );
        }
    }
    for m in 0..GRID_M {
        for n in 0..GRID_N {
            sc.node(Node::new(format!("zero_m{m}_n{n}"), "Const(value: 0.0)").once());
        }
    }
    // Tasks in pto-runtime's submission order: for m, n, k: gemm, then add.
    for m in 0..GRID_M {
        for n in 0..GRID_N {
            sc.comment(&format!(
                "C[{m},{n}]: for k: P = A[{m},k] @ B[k,{n}] (cube), C = C + P (vector)"
            ));
            for k in 0..GRID_K {
                let gemm = format!("gemm_m{m}_n{n}_k{k}");
                let add = format!("add_m{m}_n{n}_k{k}");
                sc.node(Node::new(&gemm, "MatMul").cube());
                sc.node(Node::new(&add, "Add").vector());
                sc.edge(&format!("A_m{m}_k{k}.out"), &format!("{gemm}.a"));
                sc.edge(&format!("B_k{k}_n{n}.out"), &format!("{gemm}.b"));
                let acc = match k {
                    0 => format!("zero_m{m}_n{n}.out"),
                    _ => format!("add_m{m}_n{n}_k{}.out", k - 1),
                };
                sc.edge(&acc, &format!("{add}.a"));
                sc.edge(&format!("{gemm}.out"), &format!("{add}.b"));
            }
            let last = format!("add_m{m}_n{n}_k{}.out", GRID_K - 1);
            sc.node(Node::new(format!("C_m{m}_n{n}"), "Probe"));
            sc.edge(&last, &format!("C_m{m}_n{n}.in"));
        }
    }
    let header = format!(
        "pto-runtime's batched GEMM example (uv-xiao/pto-runtime@d81b111844183018338743ca91049857076283be,
examples/a2a3/host_build_graph/bgemm): C = A @ B on a {GRID_M}×{GRID_K}×{GRID_N} grid (GRID_M×GRID_K×GRID_N)
of {TILE}×{TILE} tiles, batch 1. Per output tile C[m,n], for k = 0..{}: P = A[m,k] @ B[k,n] (gemm_tile,
MatMul on a cube core), C[m,n] = C[m,n] + P (tile_add, Add on a vector core), starting from a zero
tile: {} matmuls + {} adds = {} tasks. Each gemm writes its own P, so the scene has the dependences
of pto-runtime's tensormap_and_ringbuffer variant (add[k] after gemm[k] and add[k−1]); the
host_build_graph variant also orders gemm[k] after add[k−1] because it reuses one P buffer per tile.
Inputs: every element of A[m,k] is (m + k + 1)/16 and of B[k,n] is (4n + k + 2)/16, so each P is
(m + k + 1)(4n + k + 2)/4 and, with u = m + 1 and v = 4n + 2, every element of C[m,n] is
Σ_k (u + k)(v + k)/4 = (u + 1.5)(v + 1.5) + 1.25 (exact in f32; probes C_m<m>_n<n>).",
        GRID_K - 1,
        GRID_M * GRID_N * GRID_K,
        GRID_M * GRID_N * GRID_K,
        2 * GRID_M * GRID_N * GRID_K,
    );
    sc.finish(&header, "batched_gemm")
}

/// `scenes/pto/paged_attention.ron`.
pub fn paged_attention() -> String {
    use paged_attention::*;
    let (h, d, bs) = (NUM_HEADS, HEAD_DIM, BLOCK_SIZE);
    let mut sc = SceneText::new((h, d));
    for b in 0..BATCH {
        sc.comment(&format!(
            "batch {b}: query tile ({h} heads × {d}), per block the transposed key block \
             ({d} × {bs}) and the value block ({bs} × {d})"
        ));
        sc.node(
            Node::new(
                format!("q_b{b}"),
                format!("Noise(seed: {}, amp: {Q_AMP:?})", q_seed(b)),
            )
            .shape(h, d)
            .once(),
        );
        for j in 0..BLOCK_NUM {
            sc.node(
                Node::new(
                    format!("kt_b{b}_j{j}"),
                    format!("Noise(seed: {}, amp: {K_AMP:?})", k_seed(b, j)),
                )
                .shape(d, bs)
                .once(),
            );
            sc.node(
                Node::new(
                    format!("v_b{b}_j{j}"),
                    format!("Noise(seed: {}, amp: {V_AMP:?})", v_seed(b, j)),
                )
                .shape(bs, d)
                .once(),
            );
        }
        // Phase 1: the parallel QK → SF → PV chains, one per block.
        for j in 0..BLOCK_NUM {
            let t = |task: &str| format!("b{b}_{task}{j}");
            let (qk, sf, pv) = (t("qk"), t("sf"), t("pv"));
            sc.comment(&format!(
                "batch {b}, block {j}: {qk} (cube) → {sf} (vector: scale, row max, \
                 exp(s − max), row sum) → {pv} (cube)"
            ));
            sc.node(Node::new(&qk, "MatMul").shape(h, d).b_shape(d, bs).cube());
            sc.edge(&format!("q_b{b}.out"), &format!("{qk}.a"));
            sc.edge(&format!("kt_b{b}_j{j}.out"), &format!("{qk}.b"));
            let sfn = |op: &str| format!("{sf}_{op}");
            sc.node(
                Node::new(sfn("scale"), format!("MulScalar(value: {SCALE:?})"))
                    .shape(h, bs)
                    .vector(),
            );
            sc.node(Node::new(sfn("rowmax"), "RowMax").shape(h, bs).vector());
            sc.node(
                Node::new(sfn("sub"), "Sub")
                    .shape(h, bs)
                    .broadcast_b()
                    .vector(),
            );
            sc.node(Node::new(sfn("exp"), "Map(op: Exp)").shape(h, bs).vector());
            sc.node(Node::new(sfn("rowsum"), "RowSum").shape(h, bs).vector());
            sc.edge(&format!("{qk}.out"), &format!("{}.in", sfn("scale")));
            sc.edge(
                &format!("{}.out", sfn("scale")),
                &format!("{}.in", sfn("rowmax")),
            );
            sc.edge(
                &format!("{}.out", sfn("scale")),
                &format!("{}.a", sfn("sub")),
            );
            sc.edge(
                &format!("{}.out", sfn("rowmax")),
                &format!("{}.b", sfn("sub")),
            );
            sc.edge(
                &format!("{}.out", sfn("sub")),
                &format!("{}.in", sfn("exp")),
            );
            sc.edge(
                &format!("{}.out", sfn("exp")),
                &format!("{}.in", sfn("rowsum")),
            );
            sc.node(Node::new(&pv, "MatMul").shape(h, bs).b_shape(bs, d).cube());
            sc.edge(&format!("{}.out", sfn("exp")), &format!("{pv}.a"));
            sc.edge(&format!("v_b{b}_j{j}.out"), &format!("{pv}.b"));
        }
        // Phase 2: the serial online-update chain. (m, l, o) is the running row max, row sum
        // and unnormalised output; block 0 starts it (pto-runtime's is_first copy).
        let up0 = format!("b{b}_up0_copy");
        sc.comment(&format!(
            "batch {b}, b{b}_up0 (vector): starts the running (max, sum, output) from block 0"
        ));
        sc.node(Node::new(&up0, "Copy").shape(h, d).vector());
        sc.edge(&format!("b{b}_pv0.out"), &format!("{up0}.in"));
        let mut m_prev = format!("b{b}_sf0_rowmax.out");
        let mut l_prev = format!("b{b}_sf0_rowsum.out");
        let mut o_prev = format!("{up0}.out");
        for j in 1..BLOCK_NUM {
            let up = format!("b{b}_up{j}");
            let last = j == BLOCK_NUM - 1;
            sc.comment(&format!(
                "batch {b}, {up} (vector): m' = max(m, m{j}), α = exp(m − m'), β = exp(m{j} − m'), \
                 l' = α·l + β·l{j}, o' = α·o + β·o{j}{}",
                if last { "; out = o'/l'" } else { "" }
            ));
            let n = |op: &str| format!("{up}_{op}");
            let (m_j, l_j, o_j) = (
                format!("b{b}_sf{j}_rowmax.out"),
                format!("b{b}_sf{j}_rowsum.out"),
                format!("b{b}_pv{j}.out"),
            );
            // Row statistics: (h, 1) columns.
            for (op, kernel) in [
                ("max", "Max"),
                ("dprev", "Sub"),
                ("alpha", "Map(op: Exp)"),
                ("dcur", "Sub"),
                ("beta", "Map(op: Exp)"),
                ("lprev", "Mul"),
                ("lcur", "Mul"),
                ("l", "Add"),
            ] {
                sc.node(Node::new(n(op), kernel).shape(h, 1).vector());
            }
            sc.edge(&m_prev, &format!("{}.a", n("max")));
            sc.edge(&m_j, &format!("{}.b", n("max")));
            sc.edge(&m_prev, &format!("{}.a", n("dprev")));
            sc.edge(&format!("{}.out", n("max")), &format!("{}.b", n("dprev")));
            sc.edge(
                &format!("{}.out", n("dprev")),
                &format!("{}.in", n("alpha")),
            );
            sc.edge(&m_j, &format!("{}.a", n("dcur")));
            sc.edge(&format!("{}.out", n("max")), &format!("{}.b", n("dcur")));
            sc.edge(&format!("{}.out", n("dcur")), &format!("{}.in", n("beta")));
            sc.edge(&format!("{}.out", n("alpha")), &format!("{}.a", n("lprev")));
            sc.edge(&l_prev, &format!("{}.b", n("lprev")));
            sc.edge(&format!("{}.out", n("beta")), &format!("{}.a", n("lcur")));
            sc.edge(&l_j, &format!("{}.b", n("lcur")));
            sc.edge(&format!("{}.out", n("lprev")), &format!("{}.a", n("l")));
            sc.edge(&format!("{}.out", n("lcur")), &format!("{}.b", n("l")));
            // The output rows, rescaled by the (h, 1) factors.
            sc.node(
                Node::new(n("oprev"), "Mul")
                    .shape(h, d)
                    .broadcast_b()
                    .vector(),
            );
            sc.node(
                Node::new(n("ocur"), "Mul")
                    .shape(h, d)
                    .broadcast_b()
                    .vector(),
            );
            sc.node(Node::new(n("o"), "Add").shape(h, d).vector());
            sc.edge(&o_prev, &format!("{}.a", n("oprev")));
            sc.edge(&format!("{}.out", n("alpha")), &format!("{}.b", n("oprev")));
            sc.edge(&o_j, &format!("{}.a", n("ocur")));
            sc.edge(&format!("{}.out", n("beta")), &format!("{}.b", n("ocur")));
            sc.edge(&format!("{}.out", n("oprev")), &format!("{}.a", n("o")));
            sc.edge(&format!("{}.out", n("ocur")), &format!("{}.b", n("o")));
            m_prev = format!("{}.out", n("max"));
            l_prev = format!("{}.out", n("l"));
            o_prev = format!("{}.out", n("o"));
            if last {
                sc.node(
                    Node::new(n("norm"), "Div")
                        .shape(h, d)
                        .broadcast_b()
                        .vector(),
                );
                sc.edge(&o_prev, &format!("{}.a", n("norm")));
                sc.edge(&l_prev, &format!("{}.b", n("norm")));
                sc.node(Node::new(format!("out_b{b}"), "Probe").shape(h, d));
                sc.edge(&format!("{}.out", n("norm")), &format!("out_b{b}.in"));
            }
        }
    }
    let tasks_per_batch = BLOCK_NUM * 7 + 1 + (BLOCK_NUM - 1) * 11 + 1;
    let header = format!(
        "pto-runtime's paged attention example (uv-xiao/pto-runtime@0659b93b8743bd26557c39d8fa9a23385a6f5090,
examples/host_build_graph/paged_attention: golden.py Case1, paged_attention_orch.cpp, aic_qk_matmul,
aiv_softmax_prepare, aic_pv_matmul, aiv_online_update), Case1's structure at a smaller size:
batch {BATCH}, num_heads {NUM_HEADS}, kv_head_num {KV_HEAD_NUM}, head_dim {HEAD_DIM}, block_size {BLOCK_SIZE}, block_num {BLOCK_NUM}
(context_len {}; Case1: 256, 16, 1, 128, 128, 4, 512). Every task handles all heads of one
(batch, block), so pto-runtime's graph has batch·block_num·4 = {} tasks:
  for each block j (in parallel): QK[j]: s = q @ k_jᵀ (cube) → SF[j]: s' = s·scale, m_j = rowmax(s'),
  p = exp(s' − m_j), l_j = rowsum(p) (vector) → PV[j]: o_j = p @ v_j (cube);
  then UP[0] → UP[1] → … (vector, serial): running m, l, o with m' = max(m, m_j), α = exp(m − m'),
  β = exp(m_j − m'), l' = α·l + β·l_j, o' = α·o + β·o_j, and out = o/l fused into the last UP.
Here every pto-runtime task is a group of nodes named b<b>_<task><j>[_<op>], all on the task's core
(QK, PV: one MatMul on Cube; SF: 5 nodes, UP[0]: 1, UP[j>0]: 11, the last one 12, on Vector):
{tasks_per_batch} nodes per batch, {} in all. Row statistics are (heads × 1) columns, broadcast along the rows
(Broadcast adapter on tap b). Keys are supplied transposed, (head_dim × block_size), as
aic_qk_matmul reads K row by row. scale = 1/√head_dim = {SCALE:?}. Inputs: Noise sources (SplitMix64,
deterministic) with amplitudes q {Q_AMP:?}, k {K_AMP:?}, v {V_AMP:?}; seeds q 100 + b, k 200 + 10b + j,
v 300 + 10b + j. Output: out_b<b> = softmax(q·Kᵀ·scale)·V over all {} keys of batch b (probes).",
        BLOCK_SIZE * BLOCK_NUM,
        BATCH * BLOCK_NUM * 4,
        BATCH * tasks_per_batch,
        BLOCK_SIZE * BLOCK_NUM,
    );
    sc.finish(&header, "paged_attention")
}

/// Every generated scene: `(file name, text)`.
pub fn scenes() -> Vec<(&'static str, String)> {
    vec![
        ("batched_gemm.ron", batched_gemm()),
        ("paged_attention.ron", paged_attention()),
    ]
}

/// Writes every scene into `dir` (created if missing); returns the paths written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    scenes()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

#[allow(dead_code)] // the tests include this file as a module and call `write_all` directly
fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("scenes/pto"), PathBuf::from);
    match write_all(&dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
        }
        Err(e) => {
            eprintln!("gen_pto_scenes: cannot write into {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
