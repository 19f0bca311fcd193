// Symmetric CLIP InfoNCE (forward + backward) and cross-entropy. Launch code:
// src/backend/wgpu/contrastive_loss.rs; CPU twin: src/backend/cpu/contrastive_loss.rs.
//
// The b x m logit matrix never reaches global memory: one workgroup owns one row of
// A and each invocation recomputes the dot products of its columns of B on the fly.
// Row kernels run in two orientations: mode 0 has A = img (rows i < b) and B = txt
// (columns j < m); mode 1 has A = txt and B = img (columns i < b).

const WG: u32 = 256u;
// Finite stand-in for -inf: exp(NEG - x) is 0 for any real x, without inf arithmetic.
const NEG: f32 = -3.0e38;

struct Params {
    n_a: u32,   // rows of A (one workgroup each), or the length of a reduced vector
    n_b: u32,   // rows of B = columns of the logit matrix (classes for cross-entropy)
    d: u32,     // feature dimension
    b: u32,     // batch size: images, and texts that have a positive
    mode: u32,  // row orientation, see above
    scale: f32, // factor applied by the reduction kernels
}
@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;
var<workgroup> gs: array<f32, 256>;

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// Merge this invocation's (max, sum of exp(x - max)) with the rest of the workgroup;
// returns the row's log-sum-exp to every invocation.
fn lse_reduce(t: u32, mx: f32, sm: f32) -> f32 {
    red_m[t] = mx;
    red_s[t] = sm;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (t < h) {
            let m1 = red_m[t];
            let m2 = red_m[t + h];
            let mm = max(m1, m2);
            red_s[t] = red_s[t] * exp(m1 - mm) + red_s[t + h] * exp(m2 - mm);
            red_m[t] = mm;
        }
        workgroupBarrier();
    }
    let r = red_m[0] + log(red_s[0]);
    workgroupBarrier();
    return r;
}

// Sum of one value per invocation, returned to every invocation.
fn sum_reduce(t: u32, x: f32) -> f32 {
    red_s[t] = x;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (t < h) { red_s[t] = red_s[t] + red_s[t + h]; }
        workgroupBarrier();
    }
    let r = red_s[0];
    workgroupBarrier();
    return r;
}

// ---- contrastive forward: lse over the columns of each row of A --------------------
@group(0) @binding(1) var<storage, read> f_a: array<f32>;
@group(0) @binding(2) var<storage, read> f_b: array<f32>;
@group(0) @binding(3) var<storage, read> f_log_scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_diag: array<f32>; // L_aa, written in mode 0

@compute @workgroup_size(256)
fn cl_lse(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let a = row_of(wg, nwg);
    if (a >= p.n_a) { return; }
    let s = exp(f_log_scale[0]);
    let abase = a * p.d;
    var mx = NEG;
    var sm = 0.0;
    for (var c = t; c < p.n_b; c += WG) {
        let bbase = c * p.d;
        var dot = 0.0;
        for (var k = 0u; k < p.d; k++) { dot += f_a[abase + k] * f_b[bbase + k]; }
        let x = s * dot;
        if (c == a && p.mode == 0u) { f_diag[a] = x; }
        if (x > mx) {
            sm = sm * exp(mx - x) + 1.0;
            mx = x;
        } else {
            sm += exp(x - mx);
        }
    }
    let l = lse_reduce(t, mx, sm);
    if (t == 0u) { f_lse[a] = l; }
}

// ---- contrastive forward: loss = sum_i (lse_img_i + lse_txt_i - 2 L_ii) / (2b) -------
@group(0) @binding(1) var<storage, read> l_img: array<f32>;
@group(0) @binding(2) var<storage, read> l_txt: array<f32>;
@group(0) @binding(3) var<storage, read> l_diag: array<f32>;
@group(0) @binding(4) var<storage, read_write> l_out: array<f32>;

@compute @workgroup_size(256)
fn cl_loss(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < p.n_a; i += WG) { acc += l_img[i] + l_txt[i] - 2.0 * l_diag[i]; }
    let total = sum_reduce(t, acc);
    if (t == 0u) { l_out[0] = total * p.scale; }
}

// ---- contrastive backward: out_a = s * sum_c G(a, c) B_c, plus sum_c G L in mode 0 ----
@group(0) @binding(1) var<storage, read> g_a: array<f32>;
@group(0) @binding(2) var<storage, read> g_b: array<f32>;
@group(0) @binding(3) var<storage, read> g_log_scale: array<f32>;
@group(0) @binding(4) var<storage, read> g_lse_img: array<f32>;
@group(0) @binding(5) var<storage, read> g_lse_txt: array<f32>;
@group(0) @binding(6) var<storage, read> g_dloss: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> g_part: array<f32>; // per image row, mode 0

@compute @workgroup_size(256)
fn cl_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let a = row_of(wg, nwg);
    if (a >= p.n_a) { return; }
    let s = exp(g_log_scale[0]);
    let coef = g_dloss[0] / (2.0 * f32(p.b));
    let abase = a * p.d;
    var part = 0.0;
    for (var c0 = 0u; c0 < p.n_b; c0 += WG) {
        // Phase 1: one logit and its gradient G per invocation, kept in workgroup memory.
        let c = c0 + t;
        var gv = 0.0;
        if (c < p.n_b) {
            let bbase = c * p.d;
            var dot = 0.0;
            for (var k = 0u; k < p.d; k++) { dot += g_a[abase + k] * g_b[bbase + k]; }
            let x = s * dot;
            var i = a;
            var j = c;
            if (p.mode == 1u) {
                i = c;
                j = a;
            }
            var q = exp(x - g_lse_img[i]);
            if (j < p.b) { q += exp(x - g_lse_txt[j]); }
            if (i == j) { q -= 2.0; }
            gv = coef * q;
            part += gv * x;
        }
        gs[t] = gv;
        workgroupBarrier();
        // Phase 2: this row's output, coalesced over k; the row belongs to this
        // workgroup alone, so it accumulates in place across column chunks.
        let cn = min(WG, p.n_b - c0);
        for (var k = t; k < p.d; k += WG) {
            var acc = 0.0;
            for (var jj = 0u; jj < cn; jj++) { acc += gs[jj] * g_b[(c0 + jj) * p.d + k]; }
            if (c0 == 0u) {
                g_out[abase + k] = s * acc;
            } else {
                g_out[abase + k] += s * acc;
            }
        }
        workgroupBarrier();
    }
    if (p.mode == 0u) {
        let total = sum_reduce(t, part);
        if (t == 0u) { g_part[a] = total; }
    }
}

// ---- scale * sum(x) -> out[0]: dlog_scale from the row partials, the mean CE loss ---
@group(0) @binding(1) var<storage, read> r_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> r_out: array<f32>;

@compute @workgroup_size(256)
fn sum_scaled(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < p.n_a; i += WG) { acc += r_x[i]; }
    let total = sum_reduce(t, acc);
    if (t == 0u) { r_out[0] = total * p.scale; }
}

// ---- cross-entropy: one workgroup per row -> lse and the row's loss term ------------
// Labels live on the device and cannot be reported: a row whose label is out of range
// contributes nothing (term 0 here, zero gradient in ce_bwd). The CPU path errors.
@group(0) @binding(1) var<storage, read> ce_x: array<f32>;
@group(0) @binding(2) var<storage, read> ce_labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> ce_lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> ce_term: array<f32>;

@compute @workgroup_size(256)
fn ce_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = row_of(wg, nwg);
    if (r >= p.n_a) { return; }
    let base = r * p.n_b;
    var mx = NEG;
    var sm = 0.0;
    for (var c = t; c < p.n_b; c += WG) {
        let x = ce_x[base + c];
        if (x > mx) {
            sm = sm * exp(mx - x) + 1.0;
            mx = x;
        } else {
            sm += exp(x - mx);
        }
    }
    let l = lse_reduce(t, mx, sm);
    if (t == 0u) {
        ce_lse[r] = l;
        let y = ce_labels[r];
        var term = 0.0;
        if (y < p.n_b) { term = l - ce_x[base + y]; }
        ce_term[r] = term;
    }
}

// ---- cross-entropy backward: dloss * (softmax - onehot) / rows, elementwise ----------
@group(0) @binding(1) var<storage, read> cb_x: array<f32>;
@group(0) @binding(2) var<storage, read> cb_labels: array<u32>;
@group(0) @binding(3) var<storage, read> cb_lse: array<f32>;
@group(0) @binding(4) var<storage, read> cb_dloss: array<f32>;
@group(0) @binding(5) var<storage, read_write> cb_out: array<f32>;

@compute @workgroup_size(256)
fn ce_bwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let idx = flat_id(wg, nwg, t, WG);
    if (idx >= p.n_a * p.n_b) { return; }
    let r = idx / p.n_b;
    let c = idx - r * p.n_b;
    let y = cb_labels[r];
    var g = 0.0;
    if (y < p.n_b) {
        g = exp(cb_x[idx] - cb_lse[r]);
        if (c == y) { g -= 1.0; }
    }
    cb_out[idx] = g * cb_dloss[0] * p.scale;
}
