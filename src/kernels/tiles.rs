//! Tile kernels for NPU task graphs (SPEC §7): a token is a stack of `batch` tiles of
//! `channels × frames` (rows × columns), row-major. With rate `r` a firing is `r` independent
//! applications.

use super::{BackwardIo, Cost, FireIo, InputView, Kernel, NoAdjoint, Signature, default_cost};
use crate::scene::{CoreType, Shape};

/// `MatMul`: `a` `(batch, M, K)` @ `b` `(batch, K, N)` → `out` `(batch, M, N)`, accumulated in f32
/// over `k` ascending.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock, Signature, TapSig};
/// use tapwheel::kernels::tiles::MatMul;
/// use tapwheel::scene::Shape;
/// let tap = |n: &str, c, f| TapSig { name: n.into(), rate: 1, token_len: (c * f) as usize,
///     shape: Shape { batch: 1, channels: c, frames: f } };
/// let sig = Signature { inputs: vec![tap("a", 2, 3), tap("b", 3, 1)], outputs: vec![tap("out", 2, 1)] };
/// let mut k = MatMul::new(&sig);
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0f32, 0.0, -1.0]);
/// let ins = [InputBlock { values: &a, token_len: 6 }, InputBlock { values: &b, token_len: 3 }];
/// let mut out = [OutputBlock { values: vec![], token_len: 2 }];
/// k.fire(&mut FireIo { firing: 0, tick: 0, inputs: &ins, outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![-2.0, -2.0]);
/// ```
pub struct MatMul {
    rate: u32,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

impl MatMul {
    pub fn new(sig: &Signature) -> Self {
        let shape = |t: Option<&super::TapSig>| t.map_or(Shape::default(), |t| t.shape);
        let a = shape(sig.inputs.first());
        let b = shape(sig.inputs.get(1));
        MatMul {
            rate: sig.inputs.first().map_or(1, |t| t.rate),
            batch: a.batch as usize,
            m: a.channels as usize,
            k: a.frames as usize,
            n: b.frames as usize,
        }
    }
    fn dims(&self) -> (usize, usize, usize) {
        (self.m * self.k, self.k * self.n, self.m * self.n)
    }
}

impl Kernel for MatMul {
    fn kind(&self) -> &str {
        "MatMul"
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let (sa, sb, so) = self.dims();
        let (a, b) = (io.inputs[0].values, io.inputs[1].values);
        let tiles = a.len().checked_div(sa).unwrap_or(0);
        let out = io.outputs[0].append_zeroed(tiles * so);
        if self.n == 0 || self.k == 0 {
            return; // empty products: the zeroed output is the result
        }
        for t in 0..tiles {
            let (at, bt) = (&a[t * sa..][..sa], &b[t * sb..][..sb]);
            tile_product(at, bt, &mut out[t * so..][..so], self.k, self.n);
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let (sa, sb, so) = self.dims();
        let (a, b) = (io.inputs[0].values, io.inputs[1].values);
        let g = &io.grad_outputs[0];
        let tiles = a.len().checked_div(sa).unwrap_or(0);
        let (ga, gb) = io.grad_inputs.split_at_mut(1);
        for t in 0..tiles {
            for i in 0..self.m {
                for j in 0..self.n {
                    let gij = g[t * so + i * self.n + j];
                    for k in 0..self.k {
                        ga[0][t * sa + i * self.k + k] +=
                            gij * f64::from(b[t * sb + k * self.n + j]);
                        gb[0][t * sb + k * self.n + j] +=
                            gij * f64::from(a[t * sa + i * self.k + k]);
                    }
                }
            }
        }
        Ok(())
    }
    fn cost(&self, sig: &Signature) -> Cost {
        Cost {
            matmul: Some([
                (self.batch * self.rate as usize) as u64,
                self.m as u64,
                self.k as u64,
                self.n as u64,
            ]),
            ..default_cost(sig, CoreType::Cube)
        }
    }
}

/// `c = a @ b` for one tile: `a` is `m × k`, `b` is `k × n`, `c` is `m × n`, all row-major (`m`
/// is `c.len() / n`); `c`'s previous content is overwritten. Every element is computed as
/// `c = 0; for k ascending { c += a[i][k] * b[k][j] }` — a separate multiply and add, rounded
/// each time (Rust never contracts them into a fused multiply-add), in that order — so the result
/// is the same bit for bit whatever the blocking or the vector width.
///
/// Blocks of `MR` rows × `NR` columns of `c` are accumulated in registers over the whole `k` loop
/// (each `b` row segment is loaded once per block, each `a` element broadcast), compiled for
/// AVX-512 or AVX2 when the CPU has them (detected at run time) and for the build's baseline
/// otherwise; the columns left over at the right edge go in narrower blocks.
///
/// ```
/// use tapwheel::kernels::tiles::tile_product;
/// let (a, b) = ([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0f32, 0.0, -1.0]); // 2×3 @ 3×1
/// let mut c = [9.0f32; 2];
/// tile_product(&a, &b, &mut c, 3, 1);
/// assert_eq!(c, [-2.0, -2.0]);
/// ```
pub fn tile_product(a: &[f32], b: &[f32], c: &mut [f32], k: usize, n: usize) {
    if n == 0 {
        return;
    }
    let m = c.len() / n;
    if k == 0 || a.len() < m * k || b.len() < k * n {
        c.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above), the only requirement of
            // a `#[target_feature(enable = "avx512f")]` function.
            unsafe { product_avx512(a, b, c, m, k, n) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of a
            // `#[target_feature(enable = "avx2")]` function.
            unsafe { product_avx2(a, b, c, m, k, n) };
            return;
        }
    }
    blocked::<4, 8>(a, b, c, m, k, n);
}

/// 32 vector registers of 16 lanes: 8 × 32 accumulators take 16 of them (measured faster
/// here than 4 × 64, 2 × 64 or 6 × 32 on 64 × 64 tiles).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn product_avx512(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    blocked::<8, 32>(a, b, c, m, k, n);
}

/// 16 vector registers of 8 lanes: 4 × 16 accumulators take 8 of them (measured faster here
/// than 6 × 16, 3 × 32 or 2 × 32).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn product_avx2(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    blocked::<4, 16>(a, b, c, m, k, n);
}

/// [`tile_product`] with `MR × NR` register blocks; `a`, `b` and `c` hold at least `m·k`, `k·n`
/// and exactly `m·n` elements. Rows left over below a multiple of `MR` go one by one.
#[inline(always)]
fn blocked<const MR: usize, const NR: usize>(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    let (a, b) = (&a[..m * k], &b[..k * n]);
    let mut i = 0;
    while i < m {
        if m - i >= MR {
            band::<MR, NR>(&a[i * k..][..MR * k], b, &mut c[i * n..][..MR * n], k, n);
            i += MR;
        } else {
            band::<1, NR>(&a[i * k..][..k], b, &mut c[i * n..][..n], k, n);
            i += 1;
        }
    }
}

/// `R` rows of `c` (and their rows of `a`): blocks of `NR` columns, then of 8, then single
/// columns.
#[inline(always)]
fn band<const R: usize, const NR: usize>(a: &[f32], b: &[f32], c: &mut [f32], k: usize, n: usize) {
    let mut j = 0;
    while j + NR <= n {
        block::<R, NR>(a, b, c, k, n, j);
        j += NR;
    }
    while j + 8 <= n {
        block::<R, 8>(a, b, c, k, n, j);
        j += 8;
    }
    while j < n {
        block::<R, 1>(a, b, c, k, n, j);
        j += 1;
    }
}

/// One `R × NR` block of `c` at column `j`: `a` holds the block's `R` rows of `a`, `c` the
/// block's `R` rows of `c`.
#[inline(always)]
fn block<const R: usize, const NR: usize>(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    k: usize,
    n: usize,
    j: usize,
) {
    let mut acc = [[0f32; NR]; R];
    for (kk, brow) in b.chunks_exact(n).enumerate().take(k) {
        let Some(bv) = brow[j..].first_chunk::<NR>() else {
            return;
        };
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = a[r * k + kk];
            for (x, &bv) in acc.iter_mut().zip(bv) {
                *x += av * bv;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        c[r * n + j..][..NR].copy_from_slice(acc);
    }
}

/// Groups of elements along one axis of a `(batch, channels, frames)` token: `(starts, len,
/// stride)`. Axis 0 is frames (each row of a tile), 1 channels (each column), 2 batch.
fn axis_groups(shape: Shape, axis: u32) -> (Vec<usize>, usize, usize) {
    let (b, c, f) = (
        shape.batch as usize,
        shape.channels as usize,
        shape.frames as usize,
    );
    match axis {
        0 => ((0..b * c).map(|r| r * f).collect(), f, 1),
        1 => (
            (0..b)
                .flat_map(|bb| (0..f).map(move |ff| bb * c * f + ff))
                .collect(),
            c,
            f,
        ),
        _ => ((0..c * f).collect(), b, c * f),
    }
}

/// `Softmax(axis)`: `y = exp(x − max) / Σ exp(x − max)` along an axis of each token — axis 0
/// normalises each tile row (over frames), 1 each column (over channels), 2 across the batch.
///
/// ```
/// use tapwheel::kernels::{FireIo, InputBlock, Kernel, OutputBlock};
/// use tapwheel::kernels::tiles::Softmax;
/// use tapwheel::scene::Shape;
/// let mut k = Softmax::new(0, 1, Shape { batch: 1, channels: 2, frames: 2 });
/// let x = [0.0f32, 0.0, 1000.0, 1000.0]; // large values do not overflow
/// let mut out = [OutputBlock { values: vec![], token_len: 4 }];
/// k.fire(&mut FireIo { firing: 0, tick: 0, inputs: &[InputBlock { values: &x, token_len: 4 }], outputs: &mut out, ..Default::default() });
/// assert_eq!(out[0].values, vec![0.5, 0.5, 0.5, 0.5]);
/// ```
pub struct Softmax {
    rate: u32,
    len: usize,
    groups: Vec<usize>,
    glen: usize,
    stride: usize,
}

impl Softmax {
    pub fn new(axis: u32, rate: u32, shape: Shape) -> Self {
        let (groups, glen, stride) = axis_groups(shape, axis);
        Softmax {
            rate,
            len: shape.elements() as usize,
            groups,
            glen,
            stride,
        }
    }
}

impl Kernel for Softmax {
    fn kind(&self) -> &str {
        "Softmax"
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        super::default_cost(sig, crate::scene::CoreType::Vector)
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = io.outputs[0].append_zeroed(x.len());
        for t in 0..x.len() / self.len.max(1) {
            for &g in &self.groups {
                let at = |i: usize| t * self.len + g + i * self.stride;
                let max = (0..self.glen)
                    .map(|i| x[at(i)])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for i in 0..self.glen {
                    let e = (x[at(i)] - max).exp();
                    out[at(i)] = e;
                    sum += e;
                }
                for i in 0..self.glen {
                    out[at(i)] /= sum;
                }
            }
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let y = io.outputs[0].values;
        let g = &io.grad_outputs[0];
        for t in 0..y.len() / self.len.max(1) {
            for &grp in &self.groups {
                let at = |i: usize| t * self.len + grp + i * self.stride;
                let dot: f64 = (0..self.glen).map(|i| g[at(i)] * f64::from(y[at(i)])).sum();
                for i in 0..self.glen {
                    io.grad_inputs[0][at(i)] += f64::from(y[at(i)]) * (g[at(i)] - dot);
                }
            }
        }
        Ok(())
    }
}

/// Which reduction a [`RowReduce`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
}

/// `RowSum` / `RowMax`: each tile row (over frames) reduced to one value: `(batch, channels, 1)`.
/// `RowMax`'s subgradient goes to the first maximal element.
pub struct RowReduce {
    op: Reduce,
    rate: u32,
    frames: usize,
}

impl RowReduce {
    pub fn new(op: Reduce, rate: u32, shape: Shape) -> Self {
        RowReduce {
            op,
            rate,
            frames: shape.frames.max(1) as usize,
        }
    }
}

impl Kernel for RowReduce {
    fn kind(&self) -> &str {
        match self.op {
            Reduce::Sum => "RowSum",
            Reduce::Max => "RowMax",
        }
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        super::default_cost(sig, crate::scene::CoreType::Vector)
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let out = &mut io.outputs[0].values;
        for row in io.inputs[0].values.chunks(self.frames) {
            out.push(match self.op {
                Reduce::Sum => row.iter().sum(),
                Reduce::Max => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            });
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let x = io.inputs[0].values;
        let y = io.outputs[0].values;
        for (r, row) in x.chunks(self.frames).enumerate() {
            let g = io.grad_outputs[0][r];
            match self.op {
                Reduce::Sum => {
                    for i in 0..row.len() {
                        io.grad_inputs[0][r * self.frames + i] += g;
                    }
                }
                Reduce::Max => {
                    if let Some(i) = row.iter().position(|&v| v == y[r]) {
                        io.grad_inputs[0][r * self.frames + i] += g;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `Transpose`: each tile `channels × frames` → `frames × channels`.
pub struct Transpose {
    rate: u32,
    c: usize,
    f: usize,
}

impl Transpose {
    pub fn new(rate: u32, shape: Shape) -> Self {
        Transpose {
            rate,
            c: shape.channels as usize,
            f: shape.frames as usize,
        }
    }
}

impl Kernel for Transpose {
    fn kind(&self) -> &str {
        "Transpose"
    }
    fn cost(&self, sig: &super::Signature) -> super::Cost {
        super::default_cost(sig, crate::scene::CoreType::Vector)
    }
    fn demand(&self, _: &[InputView], demand: &mut [u32]) {
        demand.fill(self.rate);
    }
    fn max_production(&self, _: usize) -> u32 {
        self.rate
    }
    fn fire(&mut self, io: &mut FireIo<'_>) {
        let x = io.inputs[0].values;
        let out = &mut io.outputs[0].values;
        let tile = self.c * self.f;
        for t in x.chunks(tile.max(1)) {
            for j in 0..self.f {
                out.extend((0..self.c).map(|i| t[i * self.f + j]));
            }
        }
    }
    fn backward(&self, io: &mut BackwardIo<'_>) -> Result<(), NoAdjoint> {
        let tile = self.c * self.f;
        let g = &io.grad_outputs[0];
        for (t, gt) in g.chunks(tile.max(1)).enumerate() {
            for j in 0..self.f {
                for i in 0..self.c {
                    io.grad_inputs[0][t * tile + i * self.f + j] += gt[j * self.c + i];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: `c = 0; for k ascending { c += a[i][k] * b[k][j] }`.
    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f32;
                for kk in 0..k {
                    s += a[i * k + kk] * b[kk * n + j];
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    /// Values whose products and sums round (and some negative zeros and tiny values).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                match i % 23 {
                    0 => -0.0,
                    7 => 1e-30,
                    _ => (x as f32 / u32::MAX as f32 - 0.5) * 3.7,
                }
            })
            .collect()
    }

    #[test]
    fn blocked_product_equals_naive_bit_for_bit() {
        let sizes = [
            1, 2, 3, 4, 5, 7, 8, 9, 17, 23, 24, 25, 31, 33, 63, 64, 65, 67,
        ];
        let mut cases = 0;
        for (x, &m) in sizes.iter().enumerate() {
            for (y, &k) in sizes.iter().enumerate() {
                for &n in &sizes[(x + y) % 5..][..4] {
                    let a = values(m * k, (m * 1000 + k) as u32);
                    let b = values(k * n, (k * 1000 + n + 7) as u32);
                    let want = naive(&a, &b, m, k, n);
                    let mut got = vec![f32::NAN; m * n];
                    tile_product(&a, &b, &mut got, k, n);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{m}x{k} @ {k}x{n}");
                    for (r, (mr, nr)) in [(4, 8), (4, 24), (4, 64), (3, 5)].into_iter().enumerate()
                    {
                        let mut got = vec![f32::NAN; m * n];
                        match r {
                            0 => blocked::<4, 8>(&a, &b, &mut got, m, k, n),
                            1 => blocked::<4, 24>(&a, &b, &mut got, m, k, n),
                            2 => blocked::<4, 64>(&a, &b, &mut got, m, k, n),
                            _ => blocked::<3, 5>(&a, &b, &mut got, m, k, n),
                        }
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{mr}x{nr} blocks, {m}x{k} @ {k}x{n}"
                        );
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, sizes.len() * sizes.len() * 4);
    }

    #[test]
    fn empty_products_are_zero() {
        let mut c = [5.0f32; 6];
        tile_product(&[], &[], &mut c, 0, 3);
        assert_eq!(c, [0.0; 6]);
        tile_product(&[], &[], &mut [], 4, 0);
    }
}
