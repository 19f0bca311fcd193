// Fills and dtype conversions. Launch code: src/backend/wgpu/memory.rs; CPU twin:
// src/backend/cpu/memory.rs.
struct Params { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read_write> fill_out: array<f32>;
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < p.n) { fill_out[i] = p.value; }
}

@group(0) @binding(1) var<storage, read> src_words: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst_f32: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst_words: array<u32>;
@group(0) @binding(1) var<storage, read> src_f32: array<f32>;

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < p.n) { dst_f32[i] = f16_at(src_words[i >> 1u], i); }
}

@compute @workgroup_size(256)
fn bf16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if (i < p.n) { dst_f32[i] = bf16_at(src_words[i >> 1u], i); }
}

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = flat_id(wg, nwg, li, 256u);
    let i = 2u * w;
    if (i < p.n) {
        var hi = 0.0;
        if (i + 1u < p.n) { hi = src_f32[i + 1u]; }
        dst_words[w] = pack2x16float(vec2<f32>(src_f32[i], hi));
    }
}

// Round-to-nearest-even on the dropped 16 bits (what `half::bf16::from_f32` does).
fn to_bf16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) { return (b >> 16u) | 0x40u; } // NaN stays NaN
    let r = b + 0x7fffu + ((b >> 16u) & 1u);
    return r >> 16u;
}

@compute @workgroup_size(256)
fn f32_to_bf16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = flat_id(wg, nwg, li, 256u);
    let i = 2u * w;
    if (i < p.n) {
        var hi = 0u;
        if (i + 1u < p.n) { hi = to_bf16_bits(src_f32[i + 1u]); }
        dst_words[w] = to_bf16_bits(src_f32[i]) | (hi << 16u);
    }
}
