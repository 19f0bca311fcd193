// Attention forward specialised on head_dim 64 (every CLIP model). Launch code:
// src/backend/wgpu/attention.rs; other head dims: attn_fwd in shaders/attention.wgsl.
// CPU twin: src/backend/cpu/attention.rs.
//
// Layout as attention.wgsl: q, k, v, out [batch, seq, heads * 64], lse [batch, heads,
// seq]; grid x = block of QR query rows, (y, z) = (batch, head) folded as z * ny + y.
// One thread per query row keeps its q row and output accumulator as 16 vec4 each in
// registers, so a score is 16 vec4 dot products with no cross-thread reduction. K and V
// stream through workgroup memory T keys at a time as vec4 rows (all threads of a row
// read the same key: a broadcast); two barriers per T keys. Online softmax: the
// accumulator is rescaled once per tile, not per key.
struct Params { batch: u32, seq: u32, heads: u32, dh: u32, causal: u32, scale: f32, ny: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q_in: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_in: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_in: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out_o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out_lse: array<f32>;

const QR: u32 = 64u;  // query rows (threads) per workgroup
const T: u32 = 32u;   // keys per tile
const D4: u32 = 16u;  // head_dim / 4
const NEG: f32 = -3.0e38;

var<workgroup> sk: array<vec4<f32>, 512>; // [T][D4]
var<workgroup> sv: array<vec4<f32>, 512>;

@compute @workgroup_size(64)
fn attn_fwd_d64(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bh = wg.z * p.ny + wg.y;
    if (bh >= p.batch * p.heads) { return; }
    // In vec4 units: a token's row is heads * 16 vec4s, a head's slice 16.
    let hd4 = p.heads * D4;
    let base = (bh / p.heads) * p.seq * hd4 + (bh % p.heads) * D4;
    let q0 = wg.x * QR;
    let qi = q0 + li;
    let live = qi < p.seq;

    var q: array<vec4<f32>, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var c = 0u; c < D4; c++) {
        var x = vec4<f32>(0.0);
        if (live) { x = q_in[base + qi * hd4 + c] * p.scale; }
        q[c] = x;
        acc[c] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;
    var kend = p.seq;
    if (p.causal != 0u) { kend = min(p.seq, q0 + QR); }
    for (var k0 = 0u; k0 < kend; k0 += T) {
        for (var e = li; e < T * D4; e += QR) {
            let key = k0 + e / D4;
            var kx = vec4<f32>(0.0);
            var vx = vec4<f32>(0.0);
            if (key < p.seq) {
                let g = base + key * hd4 + e % D4;
                kx = k_in[g];
                vx = v_in[g];
            }
            sk[e] = kx;
            sv[e] = vx;
        }
        workgroupBarrier();
        // A runtime key count: LLVM (llvmpipe, lavapipe) fully unrolls a constant
        // 32 x 16 loop nest into code it then takes minutes to split at the barriers.
        let tn = min(T, kend - k0);
        var s: array<f32, 32>;
        var mt = m;
        for (var j = 0u; j < tn; j++) {
            var d = vec4<f32>(0.0);
            for (var c = 0u; c < D4; c++) { d = fma(q[c], sk[j * D4 + c], d); }
            let key = k0 + j;
            let visible = live && key < p.seq && (p.causal == 0u || key <= qi);
            s[j] = select(NEG, d.x + d.y + d.z + d.w, visible);
            mt = max(mt, s[j]);
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var c = 0u; c < D4; c++) { acc[c] *= corr; }
        for (var j = 0u; j < tn; j++) {
            // Masked keys: exp(NEG - mt) is 0 once any key is visible; rows with none
            // visible (dead rows) are never written.
            let pj = select(0.0, exp(s[j] - mt), s[j] > NEG);
            l += pj;
            for (var c = 0u; c < D4; c++) { acc[c] = fma(vec4<f32>(pj), sv[j * D4 + c], acc[c]); }
        }
        m = mt;
        workgroupBarrier();
    }
    if (live) {
        let inv = 1.0 / l;
        for (var c = 0u; c < D4; c++) { out_o[base + qi * hd4 + c] = acc[c] * inv; }
        out_lse[bh * p.seq + qi] = m + log(l);
    }
}
