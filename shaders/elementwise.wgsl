// Element-wise maps, repeating binary ops, reductions and data movement.
// Launch code: src/backend/wgpu/elementwise.rs; CPU twin: src/backend/cpu/elementwise.rs.
// Entry points share binding slots (each uses only its own variables), as in memory.wgsl.

// ---- maps: one invocation per element ----------------------------------------------
// code: activation code (act_code) or binary op (0 add, 1 sub, 2 mul); bn: b's length.
struct MapP { n: u32, code: u32, bn: u32, _pad: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> pm: MapP;
@group(0) @binding(1) var<storage, read> m_x: array<f32>;
@group(0) @binding(2) var<storage, read> m_y: array<f32>;
@group(0) @binding(2) var<storage, read_write> m_out1: array<f32>; // after one input
@group(0) @binding(3) var<storage, read_write> m_out2: array<f32>; // after two inputs

@compute @workgroup_size(256)
fn act(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_out1[i] = act_apply(m_x[i], pm.code); }
}

// m_x = dy, m_y = x.
@compute @workgroup_size(256)
fn act_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_out2[i] = m_x[i] * act_grad(m_y[i], pm.code); }
}

// min(x, alpha), NaN kept (a clamp must not turn a diverged value into a finite one).
// WGSL lets a compiler assume no NaN: on lavapipe `select(x, a, x > a)` returned `a`
// for NaN (tests/kernel_elementwise.rs), so NaN is recognised from the bits.
fn clamp_max_keep_nan(x: f32, hi: f32) -> f32 {
    let nan = (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
    return select(x, hi, x > hi && !nan);
}

@compute @workgroup_size(256)
fn clamp_max(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_out1[i] = clamp_max_keep_nan(m_x[i], pm.alpha); }
}

// The same clamp over its own buffer (no input binding): a parameter clamped after each
// update stays in one buffer, so the bind groups of the kernels that read it repeat.
@group(0) @binding(1) var<storage, read_write> m_io: array<f32>;
@compute @workgroup_size(256)
fn clamp_max_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_io[i] = clamp_max_keep_nan(m_io[i], pm.alpha); }
}

@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_out1[i] = pm.alpha * m_x[i] + pm.beta; }
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pm.n) { return; }
    let a = m_x[i];
    let b = m_y[i % pm.bn];
    var r = a * b;
    if (pm.code == 0u) { r = a + b; } else if (pm.code == 1u) { r = a - b; }
    m_out2[i] = r;
}

// m_y[0] is the device scalar.
@compute @workgroup_size(256)
fn mul_scalar(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < pm.n) { m_out2[i] = m_x[i] * m_y[0]; }
}

// ---- sum / sum of squares: two stages of the same kernel ---------------------------
// Stage 1: `groups` workgroups each reduce a grid-stride slice of n values to one
// partial; stage 2: one workgroup reduces the partials (square = 0).
struct RedP { n: u32, square: u32, groups: u32, _pad: u32 }
@group(0) @binding(0) var<uniform> pr: RedP;
@group(0) @binding(1) var<storage, read> r_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> r_out: array<f32>;
var<workgroup> r_sh: array<f32, 256>;

@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    let stride = pr.groups * 256u;
    for (var i = wg.x * 256u + li; i < pr.n; i += stride) {
        let v = r_in[i];
        s += select(v, v * v, pr.square == 1u);
    }
    r_sh[li] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (li < k) { r_sh[li] += r_sh[li + k]; }
        workgroupBarrier();
    }
    if (li == 0u) { r_out[wg.x] = r_sh[0]; }
}

// ---- column sums of [rows, cols] ------------------------------------------------------
// One invocation per (row chunk, column): out[k, c] = sum of x[r, c] over the chunk's
// rows. Neighbouring invocations read neighbouring columns (coalesced).
struct RowsP { rows: u32, cols: u32, chunk: u32, total: u32 }
@group(0) @binding(0) var<uniform> ps: RowsP;
@group(0) @binding(1) var<storage, read> s_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_out: array<f32>;

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat_id(wg, nwg, li, 256u);
    if (t >= ps.total) { return; }
    let k = t / ps.cols;
    let c = t % ps.cols;
    let r0 = k * ps.chunk;
    let r1 = min(r0 + ps.chunk, ps.rows);
    var s = 0.0;
    for (var r = r0; r < r1; r += 1u) { s += s_in[r * ps.cols + c]; }
    s_out[t] = s;
}

// ---- concat / slice along the last dim ------------------------------------------------
struct CatP { total: u32, ia: u32, ib: u32, start: u32, inner: u32, len: u32 }
@group(0) @binding(0) var<uniform> pc: CatP;
@group(0) @binding(1) var<storage, read> c_a: array<f32>;
@group(0) @binding(2) var<storage, read> c_b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c_out1: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_out2: array<f32>;

@compute @workgroup_size(256)
fn concat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pc.total) { return; }
    let w = pc.ia + pc.ib;
    let r = i / w;
    let c = i % w;
    if (c < pc.ia) { c_out2[i] = c_a[r * pc.ia + c]; } else { c_out2[i] = c_b[r * pc.ib + (c - pc.ia)]; }
}

@compute @workgroup_size(256)
fn slice_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pc.total) { return; }
    c_out1[i] = c_a[(i / pc.len) * pc.inner + pc.start + i % pc.len];
}

// ---- gather / scatter-add of table rows ---------------------------------------------
// The table is bound as raw words and read in its storage dtype (0 f32, 1 f16,
// 2 bf16), so a half-precision vocabulary is never converted as a whole.
// Ids >= rows read as a zero row (gather) or are skipped (scatter): the GPU cannot
// report them without a readback; the CPU backend rejects them.
struct GatherP { total: u32, width: u32, rows: u32, dtype: u32 }
@group(0) @binding(0) var<uniform> pg: GatherP;
@group(0) @binding(1) var<storage, read> g_table: array<u32>;
@group(0) @binding(2) var<storage, read> g_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> g_out: array<f32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pg.total) { return; }
    let id = g_ids[i / pg.width];
    var v = 0.0;
    if (id < pg.rows) {
        let j = id * pg.width + i % pg.width;
        if (pg.dtype == 0u) {
            v = bitcast<f32>(g_table[j]);
        } else if (pg.dtype == 1u) {
            v = f16_at(g_table[j >> 1u], j);
        } else {
            v = bf16_at(g_table[j >> 1u], j);
        }
    }
    g_out[i] = v;
}

// Scatter-add without atomics, deterministic. Pass 1 links every dy row to the next
// row with the same id and marks the first occurrence of each id as its leader
// (O(n) per invocation, uniform reads of ids). Pass 2: each leader sums its chain in
// id order (the CPU's order) into the zero-filled output, one invocation per column.
struct ScatP { n: u32, width: u32, rows: u32, total: u32 }
@group(0) @binding(0) var<uniform> pl: ScatP;
@group(0) @binding(1) var<storage, read> l_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> l_next: array<u32>;
@group(0) @binding(3) var<storage, read_write> l_lead: array<u32>;

@compute @workgroup_size(256)
fn scatter_links(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pl.n) { return; }
    let id = l_ids[i];
    var lead = select(0u, 1u, id < pl.rows);
    var nxt = pl.n;
    for (var j = 0u; j < pl.n; j += 1u) {
        if (j != i && l_ids[j] == id) {
            if (j < i) {
                lead = 0u;
            } else {
                nxt = j;
                break;
            }
        }
    }
    l_next[i] = nxt;
    l_lead[i] = lead;
}

@group(0) @binding(1) var<storage, read> a_dy: array<f32>;
@group(0) @binding(2) var<storage, read> a_ids: array<u32>;
@group(0) @binding(3) var<storage, read> a_next: array<u32>;
@group(0) @binding(4) var<storage, read> a_lead: array<u32>;
@group(0) @binding(5) var<storage, read_write> a_out: array<f32>;

@compute @workgroup_size(256)
fn scatter_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat_id(wg, nwg, li, 256u);
    if (t >= pl.total) { return; }
    let i = t / pl.width;
    let c = t % pl.width;
    if (a_lead[i] == 0u) { return; }
    var s = 0.0;
    var j = i;
    loop {
        s += a_dy[j * pl.width + c];
        j = a_next[j];
        if (j >= pl.n) { break; }
    }
    a_out[a_ids[i] * pl.width + c] = s;
}

// ---- patchify / unpatchify ----------------------------------------------------------
// Pure permutations (h, w divisible by p), so both are gathers: one invocation per
// output element. Patch pi = py * gw + px; inside a patch the order is (c, ky, kx).
struct PatchP { total: u32, c: u32, h: u32, w: u32, p: u32, gw: u32, np: u32, _pad: u32 }
@group(0) @binding(0) var<uniform> pp: PatchP;
@group(0) @binding(1) var<storage, read> p_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_out: array<f32>;

@compute @workgroup_size(256)
fn patchify(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pp.total) { return; }
    let pp2 = pp.p * pp.p;
    let plen = pp.c * pp2;
    let e = i % plen;
    let r = i / plen;
    let b = r / pp.np;
    let pi = r % pp.np;
    let py = pi / pp.gw;
    let px = pi % pp.gw;
    let ci = e / pp2;
    let ky = (e / pp.p) % pp.p;
    let kx = e % pp.p;
    p_out[i] = p_in[((b * pp.c + ci) * pp.h + py * pp.p + ky) * pp.w + px * pp.p + kx];
}

@compute @workgroup_size(256)
fn unpatchify(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= pp.total) { return; }
    let x = i % pp.w;
    let t = i / pp.w;
    let y = t % pp.h;
    let bc = t / pp.h;
    let ci = bc % pp.c;
    let b = bc / pp.c;
    let pi = (y / pp.p) * pp.gw + x / pp.p;
    let plen = pp.c * pp.p * pp.p;
    p_out[i] = p_in[(b * pp.np + pi) * plen + (ci * pp.p + y % pp.p) * pp.p + x % pp.p];
}
