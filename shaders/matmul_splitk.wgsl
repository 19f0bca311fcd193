// Split-K matmul, second pass: C = sum over splits of the partial products that
// shaders/matmul.wgsl (SPLIT variants) wrote, then bias and activation. Launch code:
// src/backend/wgpu/matmul.rs. Memory-bound, so the epilogue flags stay uniforms.
struct Params {
    // batch * m * n
    count: u32,
    n: u32,
    splits: u32,
    has_bias: u32,
    act: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> mat_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mat_pre: array<f32>;

fn reduce(i: u32) -> f32 {
    var s = 0.0;
    for (var z = 0u; z < p.splits; z++) { s += parts[z * p.count + i]; }
    if (p.has_bias == 1u) { s += bias[i % p.n]; }
    return s;
}

@compute @workgroup_size(256, 1, 1)
fn splitk_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= p.count) { return; }
    mat_out[i] = act_apply(reduce(i), p.act);
}

@compute @workgroup_size(256, 1, 1)
fn splitk_reduce_preact(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i >= p.count) { return; }
    let v = reduce(i);
    mat_pre[i] = v;
    mat_out[i] = act_apply(v, p.act);
}
