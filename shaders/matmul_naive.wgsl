// The first tiled matmul, kept as `--variant naive` (the baseline of shaders/matmul.wgsl). Launch:
// src/backend/wgpu/matmul/naive.rs; CPU twin: src/backend/cpu/matmul.rs.
//
// Each workgroup of 16x16 threads computes a 64x64 tile of C; each thread a 4x4 block
// strided by 16 (rows ty + 16i, cols tx + 16j) so shared-memory reads are broadcast or
// consecutive and global stores coalesce. K advances in slabs of 16 staged through
// 8 KiB of workgroup memory; transposes are handled by the tile loads. B is raw u32
// words read as f32, f16 or bf16 (p.b_dtype) so half weights are never widened in memory.
struct Params {
    m: u32, n: u32, k: u32, tiles_m: u32,
    total: u32, trans_a: u32, trans_b: u32, b_shared: u32,
    b_dtype: u32, has_bias: u32, act: u32, pad: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mat_a: array<f32>;
@group(0) @binding(2) var<storage, read> mat_b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mat_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> mat_pre: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [TK][TM]
var<workgroup> tile_b: array<f32, 1024>; // [TK][TN]
var<private> acc: array<f32, 16>;        // [4 rows][4 cols]

fn load_b(i: u32) -> f32 {
    if (p.b_dtype == 1u) { return f16_at(mat_b[i >> 1u], i); }
    if (p.b_dtype == 2u) { return bf16_at(mat_b[i >> 1u], i); }
    return bitcast<f32>(mat_b[i]);
}

// Accumulate the (row0, col0) tile of batch entry bz into `acc`. Called by all threads
// of the workgroup (it contains barriers).
fn mm_tile(bz: u32, row0: u32, col0: u32, li: u32, tx: u32, ty: u32) {
    let a_off = bz * p.m * p.k;
    let b_off = select(bz * p.k * p.n, 0u, p.b_shared == 1u);
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + 256u * r;
            // Walk memory-contiguous along whichever index is contiguous in A.
            var row: u32;
            var kk: u32;
            if (p.trans_a == 1u) { row = e % TM; kk = e / TM; } else { kk = e % TK; row = e / TK; }
            let gr = row0 + row;
            let gk = k0 + kk;
            var va = 0.0;
            if (gr < p.m && gk < p.k) {
                va = mat_a[a_off + select(gr * p.k + gk, gk * p.m + gr, p.trans_a == 1u)];
            }
            tile_a[kk * TM + row] = va;

            var col: u32;
            var kb: u32;
            if (p.trans_b == 1u) { kb = e % TK; col = e / TK; } else { col = e % TN; kb = e / TN; }
            let gc = col0 + col;
            let gkb = k0 + kb;
            var vb = 0.0;
            if (gc < p.n && gkb < p.k) {
                vb = load_b(b_off + select(gkb * p.n + gc, gc * p.k + gkb, p.trans_b == 1u));
            }
            tile_b[kb * TN + col] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = tile_a[kk * TM + ty + 16u * i];
                bv[i] = tile_b[kk * TN + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
}

struct Tile { valid: bool, bz: u32, row0: u32, col0: u32 }

// Grid: x = column tiles, y/z = (batch, row tile) pairs folded past 65535.
fn locate(wg: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let lin = wg.z * nwg.y + wg.y;
    return Tile(lin < p.total, lin / p.tiles_m, (lin % p.tiles_m) * TM, wg.x * TN);
}

fn biased(v: f32, c: u32) -> f32 {
    if (p.has_bias == 1u) { return v + bias[c]; }
    return v;
}

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = locate(wg, nwg);
    if (!t.valid) { return; }
    mm_tile(t.bz, t.row0, t.col0, li, lid.x, lid.y);
    let c_off = t.bz * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let r = t.row0 + lid.y + 16u * i;
        if (r >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            let c = t.col0 + lid.x + 16u * j;
            if (c < p.n) {
                mat_out[c_off + r * p.n + c] = act_apply(biased(acc[i * 4u + j], c), p.act);
            }
        }
    }
}

// Same, also writing the pre-activation (needed by the activation's backward).
@compute @workgroup_size(16, 16, 1)
fn matmul_preact(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = locate(wg, nwg);
    if (!t.valid) { return; }
    mm_tile(t.bz, t.row0, t.col0, li, lid.x, lid.y);
    let c_off = t.bz * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let r = t.row0 + lid.y + 16u * i;
        if (r >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            let c = t.col0 + lid.x + 16u * j;
            if (c < p.n) {
                let v = biased(acc[i * 4u + j], c);
                mat_pre[c_off + r * p.n + c] = v;
                mat_out[c_off + r * p.n + c] = act_apply(v, p.act);
            }
        }
    }
}
