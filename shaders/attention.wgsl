// Fused multi-head attention, forward and backward. Launch code:
// src/backend/wgpu/attention.rs; CPU twin: src/backend/cpu/attention.rs.
//
// q, k, v, out, dout are [batch, seq, heads * dh] (head h of token t at t*heads*dh +
// h*dh); lse and D are [batch, heads, seq]. Grid: x = block of ROWS rows, (y, z) =
// (batch, head) pair folded as z * ny + y so batch * heads may exceed 65535.
//
// A workgroup owns ROWS rows (queries in the forward and dQ kernels, keys in the dK/dV
// kernel), TPR threads per row; thread `sub` of a row keeps dims sub, sub+TPR, ... of
// its row and accumulators in registers. The other operand streams through workgroup
// memory T rows at a time. A dot product is split across the TPR threads of a row and
// summed through workgroup memory (attention.rs generates a subgroup-shuffle variant of
// this file for adapters with subgroups; naga takes the builtins without the directive). Scores
// never touch global memory; P is recomputed from lse in the backward kernels, and
// each kernel owns its output rows, so no atomics are needed.
struct Params { batch: u32, seq: u32, heads: u32, dh: u32, causal: u32, scale: f32, ny: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;

const ROWS: u32 = 16u;
const TPR: u32 = 4u;
const WG: u32 = 64u; // ROWS * TPR
const T: u32 = 8u;
const DS: u32 = 32u; // max head_dim (128) / TPR
const NEG: f32 = -3.0e38;

var<workgroup> tile_a: array<f32, 1024>; // [T][dh], dh <= 128
var<workgroup> tile_b: array<f32, 1024>;
var<workgroup> part_a: array<f32, 512>; // [ROWS][T][TPR] partial dot products
var<workgroup> part_b: array<f32, 512>;
var<workgroup> row_lse: array<f32, 8>; // [T]
var<workgroup> row_d: array<f32, 8>;

@group(0) @binding(1) var<storage, read> q_in: array<f32>;
@group(0) @binding(2) var<storage, read> k_in: array<f32>;
@group(0) @binding(3) var<storage, read> v_in: array<f32>;

fn head_of(wg: vec3<u32>) -> u32 {
    return wg.z * p.ny + wg.y;
}

fn key_visible(query: u32, key: u32) -> bool {
    return query < p.seq && key < p.seq && (p.causal == 0u || key <= query);
}

fn sum_part_a(o: u32) -> f32 {
    return part_a[o] + part_a[o + 1u] + part_a[o + 2u] + part_a[o + 3u];
}

fn sum_part_b(o: u32) -> f32 {
    return part_b[o] + part_b[o + 1u] + part_b[o + 2u] + part_b[o + 3u];
}

// ---- forward ------------------------------------------------------------------------
@group(0) @binding(4) var<storage, read_write> out_o: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_lse: array<f32>;

@compute @workgroup_size(64)
fn attn_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = head_of(wg);
    if (bh >= p.batch * p.heads) { return; }
    let hd = p.heads * p.dh;
    let base = (bh / p.heads) * p.seq * hd + (bh % p.heads) * p.dh;
    let r = li / TPR;
    let sub = li % TPR;
    let q0 = wg.x * ROWS;
    let qi = q0 + r;

    var qv: array<f32, 32>;
    var acc: array<f32, 32>;
    for (var c = 0u; c < DS; c++) {
        let d = sub + c * TPR;
        var x = 0.0;
        if (d < p.dh && qi < p.seq) { x = q_in[base + qi * hd + d] * p.scale; }
        qv[c] = x;
        acc[c] = 0.0;
    }

    // Online softmax: running max m and sum l; acc is rescaled when m grows.
    var m = NEG;
    var l = 0.0;
    var kend = p.seq;
    if (p.causal != 0u) { kend = min(p.seq, q0 + ROWS); }
    for (var k0 = 0u; k0 < kend; k0 += T) {
        for (var e = li; e < T * p.dh; e += WG) {
            let key = k0 + e / p.dh;
            var kx = 0.0;
            var vx = 0.0;
            if (key < p.seq) {
                let g = base + key * hd + e % p.dh;
                kx = k_in[g];
                vx = v_in[g];
            }
            tile_a[e] = kx;
            tile_b[e] = vx;
        }
        workgroupBarrier();
        for (var j = 0u; j < T; j++) {
            var s = 0.0;
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) { s += qv[c] * tile_a[j * p.dh + d]; }
            }
            part_a[(r * T + j) * TPR + sub] = s;
        }
        workgroupBarrier();
        var sc: array<f32, 8>;
        var mt = m;
        for (var j = 0u; j < T; j++) {
            sc[j] = sum_part_a((r * T + j) * TPR);
            if (key_visible(qi, k0 + j)) { mt = max(mt, sc[j]); }
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var c = 0u; c < DS; c++) { acc[c] *= corr; }
        for (var j = 0u; j < T; j++) {
            var pj = 0.0;
            if (key_visible(qi, k0 + j)) { pj = exp(sc[j] - mt); }
            l += pj;
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) { acc[c] += pj * tile_b[j * p.dh + d]; }
            }
        }
        m = mt;
        workgroupBarrier();
    }

    if (qi < p.seq) {
        let inv = 1.0 / l;
        for (var c = 0u; c < DS; c++) {
            let d = sub + c * TPR;
            if (d < p.dh) { out_o[base + qi * hd + d] = acc[c] * inv; }
        }
        if (sub == 0u) { out_lse[bh * p.seq + qi] = m + log(l); }
    }
}

// ---- backward: D = rowsum(dO * O), one invocation per (token, head) row -------------
@group(0) @binding(1) var<storage, read> dd_dout: array<f32>;
@group(0) @binding(2) var<storage, read> dd_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> dd_d: array<f32>;

@compute @workgroup_size(64)
fn attn_bwd_d(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat_id(wg, nwg, li, 64u); // (b * seq + i) * heads + h: memory order
    if (t >= p.batch * p.seq * p.heads) { return; }
    let h = t % p.heads;
    let i = (t / p.heads) % p.seq;
    let b = t / (p.heads * p.seq);
    let g = t * p.dh;
    var s = 0.0;
    for (var d = 0u; d < p.dh; d++) { s += dd_dout[g + d] * dd_out[g + d]; }
    dd_d[(b * p.heads + h) * p.seq + i] = s;
}

// ---- backward: shared bindings of the dQ and dK/dV kernels ----------------------------
@group(0) @binding(4) var<storage, read> b_dout: array<f32>;
@group(0) @binding(5) var<storage, read> b_lse: array<f32>;
@group(0) @binding(6) var<storage, read> b_d: array<f32>;
@group(0) @binding(7) var<storage, read_write> b_dq: array<f32>;
@group(0) @binding(7) var<storage, read_write> b_dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> b_dv: array<f32>;

// dQ_i = scale * sum_j P_ij (dP_ij - D_i) K_j, streaming key tiles.
@compute @workgroup_size(64)
fn attn_bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = head_of(wg);
    if (bh >= p.batch * p.heads) { return; }
    let hd = p.heads * p.dh;
    let base = (bh / p.heads) * p.seq * hd + (bh % p.heads) * p.dh;
    let r = li / TPR;
    let sub = li % TPR;
    let q0 = wg.x * ROWS;
    let qi = q0 + r;

    var qv: array<f32, 32>;
    var dov: array<f32, 32>;
    var acc: array<f32, 32>;
    for (var c = 0u; c < DS; c++) {
        let d = sub + c * TPR;
        var x = 0.0;
        var y = 0.0;
        if (d < p.dh && qi < p.seq) {
            x = q_in[base + qi * hd + d] * p.scale;
            y = b_dout[base + qi * hd + d];
        }
        qv[c] = x;
        dov[c] = y;
        acc[c] = 0.0;
    }
    var lse_i = 0.0;
    var d_i = 0.0;
    if (qi < p.seq) {
        lse_i = b_lse[bh * p.seq + qi];
        d_i = b_d[bh * p.seq + qi];
    }

    var kend = p.seq;
    if (p.causal != 0u) { kend = min(p.seq, q0 + ROWS); }
    for (var k0 = 0u; k0 < kend; k0 += T) {
        for (var e = li; e < T * p.dh; e += WG) {
            let key = k0 + e / p.dh;
            var kx = 0.0;
            var vx = 0.0;
            if (key < p.seq) {
                let g = base + key * hd + e % p.dh;
                kx = k_in[g];
                vx = v_in[g];
            }
            tile_a[e] = kx;
            tile_b[e] = vx;
        }
        workgroupBarrier();
        for (var j = 0u; j < T; j++) {
            var s = 0.0;
            var dp = 0.0;
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) {
                    s += qv[c] * tile_a[j * p.dh + d];
                    dp += dov[c] * tile_b[j * p.dh + d];
                }
            }
            part_a[(r * T + j) * TPR + sub] = s;
            part_b[(r * T + j) * TPR + sub] = dp;
        }
        workgroupBarrier();
        for (var j = 0u; j < T; j++) {
            let o = (r * T + j) * TPR;
            var ds = 0.0;
            if (key_visible(qi, k0 + j)) { ds = exp(sum_part_a(o) - lse_i) * (sum_part_b(o) - d_i); }
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) { acc[c] += ds * tile_a[j * p.dh + d]; }
            }
        }
        workgroupBarrier();
    }

    if (qi < p.seq) {
        for (var c = 0u; c < DS; c++) {
            let d = sub + c * TPR;
            if (d < p.dh) { b_dq[base + qi * hd + d] = p.scale * acc[c]; }
        }
    }
}

// dV_j = sum_i P_ij dO_i and dK_j = scale * sum_i dS_ij Q_i, streaming query tiles.
@compute @workgroup_size(64)
fn attn_bwd_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = head_of(wg);
    if (bh >= p.batch * p.heads) { return; }
    let hd = p.heads * p.dh;
    let base = (bh / p.heads) * p.seq * hd + (bh % p.heads) * p.dh;
    let r = li / TPR;
    let sub = li % TPR;
    let kb = wg.x * ROWS;
    let kj = kb + r;

    var kv: array<f32, 32>;
    var vv: array<f32, 32>;
    var dk: array<f32, 32>;
    var dv: array<f32, 32>;
    for (var c = 0u; c < DS; c++) {
        let d = sub + c * TPR;
        var x = 0.0;
        var y = 0.0;
        if (d < p.dh && kj < p.seq) {
            x = k_in[base + kj * hd + d] * p.scale;
            y = v_in[base + kj * hd + d];
        }
        kv[c] = x;
        vv[c] = y;
        dk[c] = 0.0;
        dv[c] = 0.0;
    }

    // Causal: queries before this key block never see it.
    var qstart = 0u;
    if (p.causal != 0u) { qstart = kb; }
    for (var q0 = qstart; q0 < p.seq; q0 += T) {
        for (var e = li; e < T * p.dh; e += WG) {
            let query = q0 + e / p.dh;
            var qx = 0.0;
            var gx = 0.0;
            if (query < p.seq) {
                let g = base + query * hd + e % p.dh;
                qx = q_in[g];
                gx = b_dout[g];
            }
            tile_a[e] = qx;
            tile_b[e] = gx;
        }
        if (li < T) {
            var lx = 0.0;
            var dx = 0.0;
            if (q0 + li < p.seq) {
                lx = b_lse[bh * p.seq + q0 + li];
                dx = b_d[bh * p.seq + q0 + li];
            }
            row_lse[li] = lx;
            row_d[li] = dx;
        }
        workgroupBarrier();
        for (var i = 0u; i < T; i++) {
            var s = 0.0;
            var dp = 0.0;
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) {
                    s += kv[c] * tile_a[i * p.dh + d];
                    dp += vv[c] * tile_b[i * p.dh + d];
                }
            }
            part_a[(r * T + i) * TPR + sub] = s;
            part_b[(r * T + i) * TPR + sub] = dp;
        }
        workgroupBarrier();
        for (var i = 0u; i < T; i++) {
            let o = (r * T + i) * TPR;
            var pij = 0.0;
            var ds = 0.0;
            if (key_visible(q0 + i, kj)) {
                pij = exp(sum_part_a(o) - row_lse[i]);
                ds = pij * (sum_part_b(o) - row_d[i]);
            }
            for (var c = 0u; c < DS; c++) {
                let d = sub + c * TPR;
                if (d < p.dh) {
                    dv[c] += pij * tile_b[i * p.dh + d];
                    dk[c] += ds * tile_a[i * p.dh + d];
                }
            }
        }
        workgroupBarrier();
    }

    if (kj < p.seq) {
        for (var c = 0u; c < DS; c++) {
            let d = sub + c * TPR;
            if (d < p.dh) {
                b_dk[base + kj * hd + d] = p.scale * dk[c];
                b_dv[base + kj * hd + d] = dv[c];
            }
        }
    }
}
