// AdamW update and the gradient-clipping coefficient. Launch code:
// src/backend/wgpu/optim.rs; CPU twin: src/backend/cpu/optim.rs.

// Per-step scalars come from the host (computed in f64, like PyTorch's Python floats):
// p' = p * decay - step_size * m' / (sqrt(v') / bc2_sqrt + eps).
struct Params {
    n: u32,
    has_scale: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    max_norm: f32,
}
@group(0) @binding(0) var<uniform> p: Params;

// (p', m', v') of one element with the (already scaled) gradient g: the arithmetic both
// entry points share, so the in-place update stays bit for bit the copying one.
fn adamw_update(param: f32, g: f32, m_old: f32, v_old: f32) -> vec3<f32> {
    let m = p.beta1 * m_old + (1.0 - p.beta1) * g;
    let v = p.beta2 * v_old + (1.0 - p.beta2) * g * g;
    return vec3<f32>(param * p.decay - p.step_size * m / (sqrt(v) / p.bc2_sqrt + p.eps), m, v);
}

@group(0) @binding(1) var<storage, read> a_param: array<f32>;
@group(0) @binding(2) var<storage, read> a_grad: array<f32>;
@group(0) @binding(3) var<storage, read> a_m: array<f32>;
@group(0) @binding(4) var<storage, read> a_v: array<f32>;
@group(0) @binding(5) var<storage, read> a_scale: array<f32>; // read only when has_scale
@group(0) @binding(6) var<storage, read_write> a_param_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> a_m_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> a_v_out: array<f32>;

@compute @workgroup_size(256)
fn adamw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= p.n) { return; }
    var g = a_grad[i];
    if (p.has_scale != 0u) { g = g * a_scale[0]; }
    let u = adamw_update(a_param[i], g, a_m[i], a_v[i]);
    a_param_out[i] = u.x;
    a_m_out[i] = u.y;
    a_v_out[i] = u.z;
}

// The same update written over the parameter and its moments, when nothing else holds
// them (optim.rs): a training step then keeps its parameters in the same buffers, so
// its bind groups repeat step after step. Same arithmetic as `adamw` (`adamw_update`).
@group(0) @binding(1) var<storage, read> w_grad: array<f32>;
@group(0) @binding(2) var<storage, read> w_scale: array<f32>; // read only when has_scale
@group(0) @binding(3) var<storage, read_write> w_param: array<f32>;
@group(0) @binding(4) var<storage, read_write> w_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> w_v: array<f32>;

@compute @workgroup_size(256)
fn adamw_inplace(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= p.n) { return; }
    var g = w_grad[i];
    if (p.has_scale != 0u) { g = g * w_scale[0]; }
    let u = adamw_update(w_param[i], g, w_m[i], w_v[i]);
    w_param[i] = u.x;
    w_m[i] = u.y;
    w_v[i] = u.z;
}

@group(0) @binding(1) var<storage, read> c_sumsq: array<f32>;
@group(0) @binding(2) var<storage, read_write> c_out: array<f32>;

@compute @workgroup_size(1)
fn clip_coef() {
    c_out[0] = min(1.0, p.max_norm / (sqrt(c_sumsq[0]) + 1e-6));
}
