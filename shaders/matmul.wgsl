// Register-tiled matmul C[b] = op(A[b]) @ op(B[b]) (+ bias) then activation.
// Launch code and variant generator: src/backend/wgpu/matmul.rs; CPU twin:
// src/backend/cpu/matmul.rs. The old kernel is shaders/matmul_naive.wgsl.
//
// This file is a template: matmul.rs prepends, per variant, the tile constants
// (BM x BN outputs per workgroup, BK deep k-steps, TM x TN outputs per thread on a
// WX x WY thread grid), the flags TRANS_A, TRANS_B, VEC_A, VEC_B, VEC_C, HAS_BIAS,
// KEEP_PRE, SPLIT and ACT, the storage bindings 1-5 and the accessors a4/a1, b4/b1,
// bias4/bias1, out4/out1, pre4/pre1 matching their element types. The flags are
// `const`, so every branch on them folds away: one pipeline per (transposes, B dtype,
// vector widths, epilogue) instead of runtime branches in the inner loop.
//
// Design (for NVIDIA/AMD/Apple GPUs): each thread keeps TM x TN accumulators as vec4
// rows; per k it reads TM/4 + TN/4 vec4s from workgroup memory for TM*TN FMAs. The
// shared tiles are k-major ([k][m], [k][n]) so those reads are consecutive vec4s across
// a row of threads (conflict-free) or broadcasts. Global loads are vec4 where the
// contiguous dimension is a multiple of 4 (VEC_*), else four scalars. Tiles are double
// buffered: the next k-step is fetched into registers before the FMAs on the current
// one and stored into the other buffer after, so one barrier per k-step suffices.
// Workgroups whose tile lies inside C take a path with no bounds checks; only edge tiles
// and the last partial k-step check. SPLIT: grid z also splits K; each split writes raw
// partial sums to its own slice of `mat_out` and shaders/matmul_splitk.wgsl adds them up
// with the epilogue (no atomics, so results do not depend on scheduling).
struct Params {
    m: u32, n: u32, k: u32, tiles_m: u32,
    // (split, batch, row tile) triples folded into grid y and z past 65535.
    total: u32,
    // tiles_m * batch: the triples of one split.
    tiles_mb: u32,
    // K per split, a multiple of BK (K when not SPLIT).
    k_chunk: u32,
    b_shared: u32,
}
@group(0) @binding(0) var<uniform> p: Params;

const NT: u32 = WX * WY;
// vec4 groups per tile, and per thread (rounded up).
const GA: u32 = BM * BK / 4u;
const GB: u32 = BN * BK / 4u;
// One shared buffer's size in vec4s.
const SA: u32 = BK * BM / 4u;
const SB: u32 = BK * BN / 4u;

var<workgroup> sa: array<vec4<f32>, SA2>;
var<workgroup> sb: array<vec4<f32>, SB2>;
var<private> acc: array<vec4<f32>, ACC_N>;
var<private> ra: array<vec4<f32>, LA>;
var<private> rb: array<vec4<f32>, LB>;

struct Tile { row0: u32, col0: u32, a_off: u32, b_off: u32 }

// Group g of the A tile at k0: 4 consecutive elements along A's contiguous dimension
// (rows when TRANS_A, else k), zero outside the matrix when `checked`.
fn a_group(t: Tile, g: u32, k0: u32, checked: bool) -> vec4<f32> {
    var r: u32;
    var kk: u32;
    if (TRANS_A) { kk = g / (BM / 4u); r = (g % (BM / 4u)) * 4u; } else { r = g / (BK / 4u); kk = (g % (BK / 4u)) * 4u; }
    let gr = t.row0 + r;
    let gk = k0 + kk;
    var base: u32;
    if (TRANS_A) { base = t.a_off + gk * p.m + gr; } else { base = t.a_off + gr * p.k + gk; }
    if (VEC_A) {
        // m (TRANS_A) or k is a multiple of 4: a group is wholly inside or outside.
        if (checked && !(gr < p.m && gk < p.k)) { return vec4<f32>(0.0); }
        return a4(base);
    }
    if (!checked) { return vec4<f32>(a1(base), a1(base + 1u), a1(base + 2u), a1(base + 3u)); }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        var ok: bool;
        if (TRANS_A) { ok = gr + c < p.m && gk < p.k; } else { ok = gr < p.m && gk + c < p.k; }
        if (ok) { v[c] = a1(base + c); }
    }
    return v;
}

// Group g of the B tile at k0: 4 consecutive elements along B's contiguous dimension
// (k when TRANS_B, else columns).
fn b_group(t: Tile, g: u32, k0: u32, checked: bool) -> vec4<f32> {
    var c0: u32;
    var kk: u32;
    if (TRANS_B) { c0 = g / (BK / 4u); kk = (g % (BK / 4u)) * 4u; } else { kk = g / (BN / 4u); c0 = (g % (BN / 4u)) * 4u; }
    let gc = t.col0 + c0;
    let gk = k0 + kk;
    var base: u32;
    if (TRANS_B) { base = t.b_off + gc * p.k + gk; } else { base = t.b_off + gk * p.n + gc; }
    if (VEC_B) {
        if (checked && !(gc < p.n && gk < p.k)) { return vec4<f32>(0.0); }
        return b4(base);
    }
    if (!checked) { return vec4<f32>(b1(base), b1(base + 1u), b1(base + 2u), b1(base + 3u)); }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        var ok: bool;
        if (TRANS_B) { ok = gc < p.n && gk + c < p.k; } else { ok = gc + c < p.n && gk < p.k; }
        if (ok) { v[c] = b1(base + c); }
    }
    return v;
}

// Fetch this thread's share of the k0 tiles into registers.
fn fetch(t: Tile, li: u32, k0: u32, checked: bool) {
    for (var q = 0u; q < LA; q++) {
        let g = li + q * NT;
        if (GA % NT == 0u || g < GA) { ra[q] = a_group(t, g, k0, checked); }
    }
    for (var q = 0u; q < LB; q++) {
        let g = li + q * NT;
        if (GB % NT == 0u || g < GB) { rb[q] = b_group(t, g, k0, checked); }
    }
}

// Store the fetched registers into shared buffer `buf`, k-major.
fn stash(li: u32, buf: u32) {
    for (var q = 0u; q < LA; q++) {
        let g = li + q * NT;
        if (GA % NT == 0u || g < GA) {
            if (TRANS_A) {
                sa[buf * SA + g] = ra[q];
            } else {
                let r = g / (BK / 4u);
                let kk = (g % (BK / 4u)) * 4u;
                for (var c = 0u; c < 4u; c++) { sa[buf * SA + (kk + c) * (BM / 4u) + r / 4u][r % 4u] = ra[q][c]; }
            }
        }
    }
    for (var q = 0u; q < LB; q++) {
        let g = li + q * NT;
        if (GB % NT == 0u || g < GB) {
            if (TRANS_B) {
                let cc = g / (BK / 4u);
                let kk = (g % (BK / 4u)) * 4u;
                for (var c = 0u; c < 4u; c++) { sb[buf * SB + (kk + c) * (BN / 4u) + cc / 4u][cc % 4u] = rb[q][c]; }
            } else {
                sb[buf * SB + g] = rb[q];
            }
        }
    }
}

// TM x TN FMAs per k from TM/4 + TN/4 vec4 reads of shared buffer `buf`.
fn multiply(buf: u32, tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        var av: array<vec4<f32>, TM4>;
        var bv: array<vec4<f32>, TN4>;
        for (var i = 0u; i < TM4; i++) { av[i] = sa[buf * SA + kk * (BM / 4u) + ty + i * WY]; }
        for (var j = 0u; j < TN4; j++) { bv[j] = sb[buf * SB + kk * (BN / 4u) + tx + j * WX]; }
        for (var i = 0u; i < TM4; i++) {
            for (var r = 0u; r < 4u; r++) {
                let a = vec4<f32>(av[i][r]);
                for (var j = 0u; j < TN4; j++) {
                    let x = (i * 4u + r) * TN4 + j;
                    acc[x] = fma(a, bv[j], acc[x]);
                }
            }
        }
    }
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_apply(v.x, ACT), act_apply(v.y, ACT), act_apply(v.z, ACT), act_apply(v.w, ACT));
}

@compute @workgroup_size(WX, WY, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let lin = wg.z * nwg.y + wg.y;
    if (lin >= p.total) { return; }
    let split = lin / p.tiles_mb;
    let rem = lin % p.tiles_mb;
    let bz = rem / p.tiles_m;
    let t = Tile((rem % p.tiles_m) * BM, wg.x * BN, bz * p.m * p.k, select(bz * p.k * p.n, 0u, p.b_shared == 1u));
    let k_begin = split * p.k_chunk;
    let k_len = min(p.k, k_begin + p.k_chunk) - k_begin;
    let interior = t.row0 + BM <= p.m && t.col0 + BN <= p.n;
    // Only the last split can end in a partial k-step (k_chunk is a multiple of BK).
    let full = k_len / BK;
    let steps = (k_len + BK - 1u) / BK;
    for (var i = 0u; i < ACC_N; i++) { acc[i] = vec4<f32>(0.0); }

    if (interior && full > 0u) { fetch(t, li, k_begin, false); } else { fetch(t, li, k_begin, true); }
    stash(li, 0u);
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let cur = s & 1u;
        let more = s + 1u < steps;
        if (more) {
            let k0 = k_begin + (s + 1u) * BK;
            if (interior && s + 1u < full) { fetch(t, li, k0, false); } else { fetch(t, li, k0, true); }
        }
        multiply(cur, lid.x, lid.y);
        if (more) { stash(li, 1u - cur); }
        workgroupBarrier();
    }

    let batch = p.tiles_mb / p.tiles_m;
    let c_off = (split * batch + bz) * p.m * p.n;
    for (var i = 0u; i < TM4; i++) {
        for (var r = 0u; r < 4u; r++) {
            let row = t.row0 + (lid.y + i * WY) * 4u + r;
            if (!interior && row >= p.m) { continue; }
            for (var j = 0u; j < TN4; j++) {
                let col = t.col0 + (lid.x + j * WX) * 4u;
                let v = acc[(i * 4u + r) * TN4 + j];
                let at = c_off + row * p.n + col;
                if (VEC_C) {
                    if (!interior && col >= p.n) { continue; }
                    if (SPLIT) { out4(at, v); continue; }
                    var x = v;
                    if (HAS_BIAS) { x += bias4(col); }
                    if (KEEP_PRE) { pre4(at, x); }
                    out4(at, act4(x));
                } else {
                    for (var c = 0u; c < 4u; c++) {
                        if (!interior && col + c >= p.n) { break; }
                        if (SPLIT) { out1(at + c, v[c]); continue; }
                        var x = v[c];
                        if (HAS_BIAS) { x += bias1(col + c); }
                        if (KEEP_PRE) { pre1(at + c, x); }
                        out1(at + c, act_apply(x, ACT));
                    }
                }
            }
        }
    }
}
