// Row normalisations: layer norm, softmax, L2 norm and their backwards.
// Launch code: src/backend/wgpu/norms.rs; CPU twin: src/backend/cpu/norms.rs.
//
// Row kernels: a 256-invocation workgroup holds 256 / tpr rows; each row is reduced
// by a segment of `tpr` (a power of two) invocations striding over its columns,
// then a tree in workgroup memory. Small rows share a workgroup instead of leaving
// 250 invocations idle. Workgroup ids past the last row still run every barrier.
struct Params {
    rows: u32,
    cols: u32,
    tpr: u32,    // invocations per row (row kernels)
    chunk: u32,  // rows per partial sum (layernorm parameter grads)
    nchunks: u32,
    eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const L2_EPS: f32 = 1e-12;
// Finite stand-in for -inf: exp(NEG_BIG - NEG_BIG) is 1, not NaN, for empty lanes.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<vec2<f32>, 256>;

struct RowPos {
    row: u32,
    lane: u32,
    base: u32, // first invocation of this row's segment
    ok: bool,
}

fn row_pos(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> RowPos {
    let lane = lid & (p.tpr - 1u);
    let row = (wg.y * nwg.x + wg.x) * (WG / p.tpr) + lid / p.tpr;
    return RowPos(row, lane, lid - lane, row < p.rows);
}

// Sum of v over this row's segment. Every invocation of the workgroup must call it.
fn seg_sum(lid: u32, base: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    let lane = lid - base;
    for (var s = p.tpr >> 1u; s > 0u; s = s >> 1u) {
        if (lane < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let r = red[base];
    workgroupBarrier(); // red is reused by the next call
    return r;
}

fn seg_sum2(lid: u32, base: u32, v: vec2<f32>) -> vec2<f32> {
    red2[lid] = v;
    workgroupBarrier();
    let lane = lid - base;
    for (var s = p.tpr >> 1u; s > 0u; s = s >> 1u) {
        if (lane < s) { red2[lid] += red2[lid + s]; }
        workgroupBarrier();
    }
    let r = red2[base];
    workgroupBarrier();
    return r;
}

// Merge two (max, sum of exp(x - max)) pairs.
fn ms_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn seg_max_sum(lid: u32, base: u32, v: vec2<f32>) -> vec2<f32> {
    red2[lid] = v;
    workgroupBarrier();
    let lane = lid - base;
    for (var s = p.tpr >> 1u; s > 0u; s = s >> 1u) {
        if (lane < s) { red2[lid] = ms_merge(red2[lid], red2[lid + s]); }
        workgroupBarrier();
    }
    let r = red2[base];
    workgroupBarrier();
    return r;
}

// ---- layer norm forward ---------------------------------------------------------
@group(0) @binding(1) var<storage, read> lnf_x: array<f32>;
@group(0) @binding(2) var<storage, read> lnf_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> lnf_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> lnf_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> lnf_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> lnf_rstd: array<f32>;

@compute @workgroup_size(256)
fn layernorm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    var s = 0.0;
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) { s += lnf_x[off + j]; }
    }
    let mean = seg_sum(lid, q.base, s) / f32(p.cols);
    // Two passes (mean, then squared deviations) as the CPU twin: no cancellation.
    var d2 = 0.0;
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            let d = lnf_x[off + j] - mean;
            d2 += d * d;
        }
    }
    let variance = seg_sum(lid, q.base, d2) / f32(p.cols);
    let rstd = 1.0 / sqrt(variance + p.eps);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            lnf_y[off + j] = (lnf_x[off + j] - mean) * rstd * lnf_gamma[j] + lnf_beta[j];
        }
        if (q.lane == 0u) {
            lnf_mean[q.row] = mean;
            lnf_rstd[q.row] = rstd;
        }
    }
}

// ---- layer norm backward: dx ------------------------------------------------------
@group(0) @binding(1) var<storage, read> lnb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> lnb_x: array<f32>;
@group(0) @binding(3) var<storage, read> lnb_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> lnb_mean: array<f32>;
@group(0) @binding(5) var<storage, read> lnb_rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> lnb_dx: array<f32>;

@compute @workgroup_size(256)
fn layernorm_bwd_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    var mean = 0.0;
    var rstd = 0.0;
    var acc = vec2<f32>(0.0, 0.0);
    if (q.ok) {
        mean = lnb_mean[q.row];
        rstd = lnb_rstd[q.row];
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            let gdy = lnb_gamma[j] * lnb_dy[off + j];
            acc += vec2<f32>(gdy, gdy * (lnb_x[off + j] - mean) * rstd);
        }
    }
    // (mean(g*dy), mean(g*dy*xhat))
    let ab = seg_sum2(lid, q.base, acc) / f32(p.cols);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            let xhat = (lnb_x[off + j] - mean) * rstd;
            lnb_dx[off + j] = rstd * (lnb_gamma[j] * lnb_dy[off + j] - ab.x - xhat * ab.y);
        }
    }
}

// ---- layer norm backward: dgamma, dbeta without atomics ------------------------------
// Stage 1: partial column sums over `chunk` rows each, grid (ceil(cols/256), nchunks).
@group(0) @binding(1) var<storage, read> lnp_dy: array<f32>;
@group(0) @binding(2) var<storage, read> lnp_x: array<f32>;
@group(0) @binding(3) var<storage, read> lnp_mean: array<f32>;
@group(0) @binding(4) var<storage, read> lnp_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> lnp_dg: array<f32>;
@group(0) @binding(6) var<storage, read_write> lnp_db: array<f32>;

@compute @workgroup_size(256)
fn layernorm_bwd_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x * WG + lid;
    if (c >= p.cols) { return; }
    let r0 = wg.y * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    var dg = 0.0;
    var db = 0.0;
    for (var r = r0; r < r1; r++) {
        let d = lnp_dy[r * p.cols + c];
        dg += d * (lnp_x[r * p.cols + c] - lnp_mean[r]) * lnp_rstd[r];
        db += d;
    }
    lnp_dg[wg.y * p.cols + c] = dg;
    lnp_db[wg.y * p.cols + c] = db;
}

// Stage 2: sum the nchunks partials of each column.
@group(0) @binding(1) var<storage, read> lnr_pg: array<f32>;
@group(0) @binding(2) var<storage, read> lnr_pb: array<f32>;
@group(0) @binding(3) var<storage, read_write> lnr_dg: array<f32>;
@group(0) @binding(4) var<storage, read_write> lnr_db: array<f32>;

@compute @workgroup_size(256)
fn layernorm_bwd_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = flat_id(wg, nwg, lid, WG);
    if (c >= p.cols) { return; }
    var dg = 0.0;
    var db = 0.0;
    for (var k = 0u; k < p.nchunks; k++) {
        dg += lnr_pg[k * p.cols + c];
        db += lnr_pb[k * p.cols + c];
    }
    lnr_dg[c] = dg;
    lnr_db[c] = db;
}

// ---- softmax ---------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> smf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> smf_y: array<f32>;

@compute @workgroup_size(256)
fn softmax_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    // Online (max, sum) in one read of the row; the write pass is the second read.
    var ms = vec2<f32>(NEG_BIG, 0.0);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            let v = smf_x[off + j];
            if (v > ms.x) {
                ms = vec2<f32>(v, ms.y * exp(ms.x - v) + 1.0);
            } else {
                ms.y += exp(v - ms.x);
            }
        }
    }
    let t = seg_max_sum(lid, q.base, ms);
    let inv = 1.0 / t.y;
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            smf_y[off + j] = exp(smf_x[off + j] - t.x) * inv;
        }
    }
}

@group(0) @binding(1) var<storage, read> smb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> smb_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> smb_dx: array<f32>;

@compute @workgroup_size(256)
fn softmax_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    var s = 0.0;
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) { s += smb_dy[off + j] * smb_y[off + j]; }
    }
    let t = seg_sum(lid, q.base, s);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            smb_dx[off + j] = smb_y[off + j] * (smb_dy[off + j] - t);
        }
    }
}

// ---- L2 norm ----------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> l2f_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> l2f_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> l2f_norm: array<f32>;

@compute @workgroup_size(256)
fn l2norm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    var s = 0.0;
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            let v = l2f_x[off + j];
            s += v * v;
        }
    }
    let n = sqrt(seg_sum(lid, q.base, s));
    let den = max(n, L2_EPS);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) { l2f_y[off + j] = l2f_x[off + j] / den; }
        if (q.lane == 0u) { l2f_norm[q.row] = n; }
    }
}

@group(0) @binding(1) var<storage, read> l2b_dy: array<f32>;
@group(0) @binding(2) var<storage, read> l2b_y: array<f32>;
@group(0) @binding(3) var<storage, read> l2b_norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> l2b_dx: array<f32>;

@compute @workgroup_size(256)
fn l2norm_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = row_pos(wg, nwg, lid);
    let off = q.row * p.cols;
    var s = 0.0;
    var den = 1.0;
    if (q.ok) {
        den = max(l2b_norm[q.row], L2_EPS);
        for (var j = q.lane; j < p.cols; j += p.tpr) { s += l2b_dy[off + j] * l2b_y[off + j]; }
    }
    let t = seg_sum(lid, q.base, s);
    if (q.ok) {
        for (var j = q.lane; j < p.cols; j += p.tpr) {
            l2b_dx[off + j] = (l2b_dy[off + j] - l2b_y[off + j] * t) / den;
        }
    }
}
