//! Launch code for the register-tiled matmul with fused bias + activation
//! (`shaders/matmul.wgsl`, a template) and its split-K pass (`shaders/matmul_splitk.wgsl`).
//! B is read natively as f32, f16 or bf16, so frozen half-precision weights never get a
//! full-size f32 copy. CPU twin: cpu/matmul.rs. The first kernel lives on as
//! [`MatmulVariant::Naive`] (matmul/naive.rs).
//!
//! Each distinct (tile shape, transposes, B dtype, vector widths, epilogue, split) gets
//! its own generated WGSL module: the flags are WGSL `const`s, so the inner loop carries
//! no runtime branch on them. Generated sources are cached (and leaked: the set is
//! bounded by the flag combinations, and the pipeline cache keys on `&'static str`).
mod naive;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use super::memory::as_f32;
use super::requirements;
use super::{grid_1d, GpuBackend, MAX_GROUPS};
use crate::backend::checks::{check_matmul, matmul_out_shape};
use crate::backend::cpu::act_code;
use crate::backend::{Act, MatmulSpec};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const TEMPLATE: &str = include_str!("../../../shaders/matmul.wgsl");
const SPLITK_WGSL: &str = include_str!("../../../shaders/matmul_splitk.wgsl");

/// Which matmul kernel to run (`cliptune bench --kernel matmul --variant ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// Tile shape and split-K chosen from the GEMM's shape and the adapter's limits.
    Auto,
    /// The first kernel (64x64 tile, scalar loads, runtime branches).
    Naive,
    /// 128x128 tile, 8x8 outputs per thread.
    Tile128,
    /// 128x64 tile, 8x4 outputs per thread.
    Tile128x64,
    /// 64x64 tile, 4x4 outputs per thread.
    Tile64,
    /// 128x16 tile for narrow N (LoRA's rank-r GEMMs).
    Skinny,
    /// Auto's tile with K split over at least two workgroups per output tile.
    SplitK,
}

impl MatmulVariant {
    pub const NAMES: &'static [&'static str] =
        &["auto", "naive", "tile128", "tile128x64", "tile64", "skinny", "splitk"];

    pub fn parse(s: &str) -> Result<MatmulVariant> {
        Ok(match s {
            "auto" => MatmulVariant::Auto,
            "naive" => MatmulVariant::Naive,
            "tile128" => MatmulVariant::Tile128,
            "tile128x64" => MatmulVariant::Tile128x64,
            "tile64" => MatmulVariant::Tile64,
            "skinny" => MatmulVariant::Skinny,
            "splitk" => MatmulVariant::SplitK,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown matmul variant '{s}': valid variants are {}",
                    Self::NAMES.join(", ")
                )))
            }
        })
    }
}

/// A tile configuration of the template: BM x BN outputs per workgroup in BK-deep
/// k-steps, TM x TN per thread (multiples of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TileCfg {
    name: &'static str,
    bm: u32,
    bn: u32,
    bk: u32,
    tm: u32,
    tn: u32,
}

/// Wide GEMMs: 64 FMAs per 4 vec4 shared reads; exactly 16 KiB of workgroup memory
/// double-buffered (the GL/WebGPU default limit).
const TILE128: TileCfg = TileCfg {
    name: "tile128",
    bm: 128,
    bn: 128,
    bk: 8,
    tm: 8,
    tn: 8,
};
/// Twice the workgroups of TILE128 at 32 FMAs per 3 vec4 shared reads (12 KiB).
const TILE128X64: TileCfg = TileCfg {
    name: "tile128x64",
    bm: 128,
    bn: 64,
    bk: 8,
    tm: 8,
    tn: 4,
};
/// Four times the workgroups of TILE128 for GEMMs that would not fill a GPU with it.
const TILE64: TileCfg = TileCfg {
    name: "tile64",
    bm: 64,
    bn: 64,
    bk: 16,
    tm: 4,
    tn: 4,
};
/// N <= 16: a 128-wide tile would be mostly padding.
const SKINNY: TileCfg = TileCfg {
    name: "skinny",
    bm: 128,
    bn: 16,
    bk: 8,
    tm: 4,
    tn: 4,
};
const TILES: [TileCfg; 4] = [TILE128, TILE128X64, TILE64, SKINNY];

impl TileCfg {
    fn wx(&self) -> u32 {
        self.bn / self.tn
    }
    fn wy(&self) -> u32 {
        self.bm / self.tm
    }
    fn threads(&self) -> u32 {
        self.wx() * self.wy()
    }
    /// Two buffers of the A and B tiles.
    fn workgroup_bytes(&self) -> u32 {
        2 * self.bk * (self.bm + self.bn) * 4
    }
}

/// The flags of one generated module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    cfg: TileCfg,
    trans_a: bool,
    trans_b: bool,
    vec_a: bool,
    vec_b: bool,
    vec_c: bool,
    /// 0 f32, 1 f16, 2 bf16.
    b_dtype: u32,
    has_bias: bool,
    act: u32,
    keep_pre: bool,
    split: bool,
}

/// Storage declaration and accessors for a float operand read as vec4s or scalars.
fn f32_operand(out: &mut String, binding: u32, name: &str, f: &str, vec: bool) {
    if vec {
        let _ = writeln!(
            out,
            "@group(0) @binding({binding}) var<storage, read> {name}: array<vec4<f32>>;\n\
             fn {f}4(i: u32) -> vec4<f32> {{ return {name}[i >> 2u]; }}\n\
             fn {f}1(i: u32) -> f32 {{ return {name}[i >> 2u][i & 3u]; }}"
        );
    } else {
        let _ = writeln!(
            out,
            "@group(0) @binding({binding}) var<storage, read> {name}: array<f32>;\n\
             fn {f}1(i: u32) -> f32 {{ return {name}[i]; }}\n\
             fn {f}4(i: u32) -> vec4<f32> {{ return vec4<f32>({name}[i], {name}[i + 1u], {name}[i + 2u], {name}[i + 3u]); }}"
        );
    }
}

/// B stored as f16/bf16 halves, two per u32 word.
fn half_operand(out: &mut String, bf16: bool, vec: bool) {
    // The two halves of word w as f32 (element 2i in the low half).
    let pair = if bf16 {
        "fn halves(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }"
    } else {
        "fn halves(w: u32) -> vec2<f32> { return unpack2x16float(w); }"
    };
    out.push_str(pair);
    out.push('\n');
    if vec {
        out.push_str(
            "@group(0) @binding(2) var<storage, read> mat_b: array<vec2<u32>>;\n\
             fn b4(i: u32) -> vec4<f32> { let w = mat_b[i >> 2u]; return vec4<f32>(halves(w.x), halves(w.y)); }\n\
             fn b1(i: u32) -> f32 { let w = mat_b[i >> 2u]; return halves(select(w.x, w.y, (i & 2u) != 0u))[i & 1u]; }\n",
        );
    } else {
        out.push_str(
            "@group(0) @binding(2) var<storage, read> mat_b: array<u32>;\n\
             fn b1(i: u32) -> f32 { return halves(mat_b[i >> 1u])[i & 1u]; }\n\
             fn b4(i: u32) -> vec4<f32> { return vec4<f32>(b1(i), b1(i + 1u), b1(i + 2u), b1(i + 3u)); }\n",
        );
    }
}

/// A writable output (C or the pre-activation) and its store functions.
fn output(out: &mut String, binding: u32, name: &str, f: &str, vec: bool) {
    if vec {
        let _ = writeln!(
            out,
            "@group(0) @binding({binding}) var<storage, read_write> {name}: array<vec4<f32>>;\n\
             fn {f}4(i: u32, v: vec4<f32>) {{ {name}[i >> 2u] = v; }}\n\
             fn {f}1(i: u32, x: f32) {{ {name}[i >> 2u][i & 3u] = x; }}"
        );
    } else {
        let _ = writeln!(
            out,
            "@group(0) @binding({binding}) var<storage, read_write> {name}: array<f32>;\n\
             fn {f}1(i: u32, x: f32) {{ {name}[i] = x; }}\n\
             fn {f}4(i: u32, v: vec4<f32>) {{ {name}[i] = v.x; {name}[i + 1u] = v.y; {name}[i + 2u] = v.z; {name}[i + 3u] = v.w; }}"
        );
    }
}

/// Ends the default variant's header in shaders/matmul.wgsl: what precedes it is
/// replaced by each variant's header, so the file itself stays a valid module (one
/// variant) for naga-based tools.
const HEADER_END: &str = "// ---- end of the variant header ----\n";

/// The template body of shaders/matmul.wgsl (after the default header).
fn template_body() -> &'static str {
    match TEMPLATE.find(HEADER_END) {
        Some(i) => &TEMPLATE[i + HEADER_END.len()..],
        None => TEMPLATE,
    }
}

/// The variant shaders/matmul.wgsl spells out in its own header.
const DEFAULT_KEY: Key = Key {
    cfg: TILE128,
    trans_a: false,
    trans_b: true,
    vec_a: true,
    vec_b: true,
    vec_c: true,
    b_dtype: 0,
    has_bias: true,
    act: 0,
    keep_pre: false,
    split: false,
};

/// The WGSL of one variant: the generated header, then the template body.
fn generate(k: &Key) -> String {
    let mut s = header(k);
    s.push_str(HEADER_END);
    s.push_str(template_body());
    s
}

/// Constants, bindings and accessors of one variant.
fn header(k: &Key) -> String {
    let c = k.cfg;
    let nt = c.threads();
    let ga = c.bm * c.bk / 4;
    let gb = c.bn * c.bk / 4;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Variant header (generated by src/backend/wgpu/matmul.rs): {k:?}\n\
         const BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst BK: u32 = {}u;\n\
         const TM: u32 = {}u;\nconst TN: u32 = {}u;\nconst TM4: u32 = {}u;\nconst TN4: u32 = {}u;\n\
         const WX: u32 = {}u;\nconst WY: u32 = {}u;\n\
         const SA2: u32 = {}u;\nconst SB2: u32 = {}u;\nconst ACC_N: u32 = {}u;\n\
         const LA: u32 = {}u;\nconst LB: u32 = {}u;\n\
         const TRANS_A: bool = {};\nconst TRANS_B: bool = {};\n\
         const VEC_A: bool = {};\nconst VEC_B: bool = {};\nconst VEC_C: bool = {};\n\
         const HAS_BIAS: bool = {};\nconst KEEP_PRE: bool = {};\nconst SPLIT: bool = {};\nconst ACT: u32 = {}u;",
        c.bm,
        c.bn,
        c.bk,
        c.tm,
        c.tn,
        c.tm / 4,
        c.tn / 4,
        c.wx(),
        c.wy(),
        2 * c.bk * c.bm / 4,
        2 * c.bk * c.bn / 4,
        c.tm * c.tn / 4,
        ga.div_ceil(nt),
        gb.div_ceil(nt),
        k.trans_a,
        k.trans_b,
        k.vec_a,
        k.vec_b,
        k.vec_c,
        k.has_bias,
        k.keep_pre,
        k.split,
        k.act,
    );
    f32_operand(&mut s, 1, "mat_a", "a", k.vec_a);
    match k.b_dtype {
        0 => f32_operand(&mut s, 2, "mat_b", "b", k.vec_b),
        d => half_operand(&mut s, d == 2, k.vec_b),
    }
    f32_operand(&mut s, 3, "bias", "bias", k.vec_c);
    output(&mut s, 4, "mat_out", "out", k.vec_c);
    if k.keep_pre {
        output(&mut s, 5, "mat_pre", "pre", k.vec_c);
    } else {
        s.push_str("fn pre4(i: u32, v: vec4<f32>) {}\nfn pre1(i: u32, x: f32) {}\n");
    }
    s
}

fn source(k: &Key) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<Key, &'static str>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(*k)
        .or_insert_with(|| Box::leak(generate(k).into_boxed_str()))
}

/// A covering set of generated variants (every flag value with every tile shape) as
/// (name, WGSL without common.wgsl), plus the split-K pass and the naive kernel: for
/// the test that translates every entry point to each backend's language.
pub fn variant_sources() -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut i = 0usize;
    for cfg in TILES {
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            for b_dtype in 0..3 {
                for vec in [true, false] {
                    // Rotate the epilogues so each meets every tile shape and dtype.
                    let (has_bias, act, keep_pre, split) = match i % 4 {
                        0 => (false, 0, false, false),
                        1 => (true, 1, true, false),
                        2 => (true, 2, false, false),
                        _ => (false, 0, false, true),
                    };
                    i += 1;
                    let k = Key {
                        cfg,
                        trans_a,
                        trans_b,
                        vec_a: vec,
                        vec_b: vec,
                        vec_c: vec,
                        b_dtype,
                        has_bias,
                        act,
                        keep_pre,
                        split,
                    };
                    v.push((format!("matmul.wgsl:matmul {k:?}"), generate(&k)));
                }
            }
        }
    }
    v.push(("matmul_splitk.wgsl".into(), SPLITK_WGSL.into()));
    v.push(("matmul_naive.wgsl".into(), naive::WGSL.into()));
    v
}

/// The shared numel checks, then what the shader needs: float operands, u32 indices.
fn check(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, s: &MatmulSpec) -> Result<()> {
    let op = "matmul";
    let (a_need, b_need, c_need) = check_matmul(a, b, bias, s)?;
    for (name, t) in [("A", Some(a)), ("B", Some(b)), ("bias", bias)] {
        if let Some(t) = t {
            if t.dtype() == DType::U32 {
                return Err(Error::shape(op, format!("{name} must be a float tensor, got {t:?}")));
            }
        }
    }
    // Flat u32 indices in the shader.
    let biggest = c_need.max(a_need).max(b_need);
    if biggest > u32::MAX as usize {
        return Err(Error::limit(format!(
            "matmul: {s:?} has more than 2^32 elements in one operand"
        )));
    }
    Ok(())
}

/// Whether tile `c` can run on the adapter, judged by the same naga reading of the
/// generated WGSL that guards pipeline creation (the variant binding the most buffers).
fn fits(g: &GpuBackend, c: &TileCfg) -> bool {
    let widest = Key {
        cfg: *c,
        keep_pre: true,
        ..DEFAULT_KEY
    };
    requirements::entry_req(source(&widest), "matmul", &[])
        .map(|r| requirements::exceeded(&r, &g.limits).is_none())
        .unwrap_or(false)
}

fn tiles(c: &TileCfg, s: &MatmulSpec) -> usize {
    s.m.div_ceil(c.bm as usize) * s.n.div_ceil(c.bn as usize) * s.batch
}

/// Workgroups that keep the adapter busy: two waves of tiles on a large GPU (an H100 has
/// 132 SMs); a software adapter runs a workgroup per CPU thread, where the largest tile
/// (the fewest loads per FMA) wins as soon as there is one per core.
fn busy_tiles(g: &GpuBackend) -> usize {
    if g.info.device_type == wgpu::DeviceType::Cpu {
        16
    } else {
        192
    }
}

/// Split K when the output has too few tiles to fill a GPU (dW = dY^T X, LoRA's rank-r
/// products) and K is long enough for each split to amortise its partial write.
fn auto_splits(busy: usize, c: &TileCfg, s: &MatmulSpec, at_least: usize) -> usize {
    let t = tiles(c, s);
    let want = busy.div_ceil(t).max(at_least);
    let by_k = (s.k / 256).max(at_least.min(s.k.div_ceil(c.bk as usize)));
    want.min(by_k).clamp(1, 32)
}

/// (tile, splits) for a GEMM; None = the naive kernel.
fn plan(g: &GpuBackend, v: MatmulVariant, s: &MatmulSpec) -> Result<Option<(TileCfg, usize)>> {
    let forced = match v {
        MatmulVariant::Naive => return Ok(None),
        MatmulVariant::Tile128 => Some(TILE128),
        MatmulVariant::Tile128x64 => Some(TILE128X64),
        MatmulVariant::Tile64 => Some(TILE64),
        MatmulVariant::Skinny => Some(SKINNY),
        MatmulVariant::Auto | MatmulVariant::SplitK => None,
    };
    if let Some(c) = forced {
        if !fits(g, &c) {
            return Err(Error::limit(format!(
                "matmul variant {}: needs {} invocations ({}x{}) and {} bytes of workgroup memory; adapter '{}' allows {} invocations and {} bytes",
                c.name,
                c.threads(),
                c.wx(),
                c.wy(),
                c.workgroup_bytes(),
                g.info.name,
                g.limits.max_compute_invocations_per_workgroup,
                g.limits.max_compute_workgroup_storage_size
            )));
        }
        return Ok(Some((c, 1)));
    }
    let busy = busy_tiles(g);
    let preferred = if s.n <= 16 {
        SKINNY
    } else if s.m >= 128 && s.n >= 128 && tiles(&TILE128, s) >= busy / 2 {
        TILE128
    } else if s.m >= 128 && s.n >= 64 && tiles(&TILE128X64, s) >= busy / 2 {
        TILE128X64
    } else {
        TILE64
    };
    let Some(c) = [preferred, TILE128X64, TILE64, SKINNY].into_iter().find(|c| fits(g, c)) else {
        return Ok(None);
    };
    let at_least = if v == MatmulVariant::SplitK { 2 } else { 1 };
    Ok(Some((c, auto_splits(busy, &c, s, at_least))))
}

pub fn matmul(
    g: &GpuBackend,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    act: Act,
    spec: &MatmulSpec,
    keep_preact: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    matmul_variant(g, MatmulVariant::Auto, a, b, bias, act, spec, keep_preact)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_m: u32,
    total: u32,
    tiles_mb: u32,
    k_chunk: u32,
    b_shared: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    count: u32,
    n: u32,
    splits: u32,
    has_bias: u32,
    act: u32,
    _pad: [u32; 3],
}

/// The matmul with a chosen kernel variant (the backend's `matmul` is `Auto`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_variant(
    g: &GpuBackend,
    variant: MatmulVariant,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    act: Act,
    spec: &MatmulSpec,
    keep_preact: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let op = "matmul";
    check(a, b, bias, spec)?;
    let Some((cfg, splits)) = plan(g, variant, spec)? else {
        return naive::matmul(g, a, b, bias, act, spec, keep_preact);
    };
    if spec.k == 0 {
        // No k-steps: C is the bias (or zero) through the activation.
        return naive::matmul(g, a, b, bias, act, spec, keep_preact);
    }
    let s = *spec;
    let shape = matmul_out_shape(&s);
    let keep = keep_preact && act != Act::None;
    let out = g.empty(op, &shape, DType::F32)?;
    let pre = if keep {
        Some(g.empty(op, &shape, DType::F32)?)
    } else {
        None
    };
    if out.numel() == 0 {
        return Ok((out, pre));
    }
    let b_dtype = match b.dtype() {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    };
    let a = as_f32(g, a)?;
    let bias = bias.map(|t| as_f32(g, t)).transpose()?;
    let bk = cfg.bk as usize;
    let k_chunk = s.k.div_ceil(splits).div_ceil(bk) * bk;
    let splits = s.k.div_ceil(k_chunk);
    let split = splits > 1;
    let key = Key {
        cfg,
        trans_a: s.trans_a,
        trans_b: s.trans_b,
        vec_a: if s.trans_a { s.m % 4 == 0 } else { s.k % 4 == 0 },
        vec_b: if s.trans_b { s.k % 4 == 0 } else { s.n % 4 == 0 },
        vec_c: s.n % 4 == 0,
        b_dtype,
        has_bias: bias.is_some() && !split,
        act: if split { 0 } else { act_code(act) },
        keep_pre: keep && !split,
        split,
    };
    let tiles_m = s.m.div_ceil(cfg.bm as usize);
    let tiles_n = s.n.div_ceil(cfg.bn as usize);
    let tiles_mb = tiles_m * s.batch;
    let total = tiles_mb * splits;
    if tiles_n > MAX_GROUPS as usize {
        return Err(Error::limit(format!(
            "matmul: n = {} needs {tiles_n} workgroups along x (max {MAX_GROUPS})",
            s.n
        )));
    }
    let gy = total.min(MAX_GROUPS as usize);
    let gz = total.div_ceil(gy);
    if gz > MAX_GROUPS as usize || total > u32::MAX as usize {
        return Err(Error::limit(format!(
            "matmul: {s:?} needs more than {MAX_GROUPS}^2 row-tile workgroups"
        )));
    }
    let params = Params {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        tiles_m: tiles_m as u32,
        total: total as u32,
        tiles_mb: tiles_mb as u32,
        k_chunk: k_chunk as u32,
        b_shared: s.b_shared as u32,
    };
    let a_st = a.gpu(op)?;
    // Without a bias, A stands in for the binding (never read: HAS_BIAS is false).
    let bias_st = match &bias {
        Some(t) => t.gpu(op)?,
        None => a_st,
    };
    let inputs = [a_st, b.gpu(op)?, bias_st];
    let groups = [tiles_n as u32, gy as u32, gz as u32];
    let src = source(&key);
    if !split {
        let mut outs = vec![out.gpu(op)?];
        if let Some(p) = &pre {
            outs.push(p.gpu(op)?);
        }
        g.dispatch(src, "matmul", &params, &inputs, &outs, groups)?;
        return Ok((out, pre));
    }
    let count = s.batch * s.m * s.n;
    if splits * count > u32::MAX as usize {
        return Err(Error::limit(format!(
            "matmul: {s:?} split {splits} ways has more than 2^32 partial sums"
        )));
    }
    let parts = g.empty(op, &[splits, count], DType::F32)?;
    g.dispatch(src, "matmul", &params, &inputs, &[parts.gpu(op)?], groups)?;
    let rp = ReduceParams {
        count: count as u32,
        n: s.n as u32,
        splits: splits as u32,
        has_bias: bias.is_some() as u32,
        act: act_code(act),
        _pad: [0; 3],
    };
    let parts_st = parts.gpu(op)?;
    let bias_st = match &bias {
        Some(t) => t.gpu(op)?,
        None => parts_st,
    };
    let grid = grid_1d(count, 256);
    match &pre {
        Some(p) => g.dispatch(
            SPLITK_WGSL,
            "splitk_reduce_preact",
            &rp,
            &[parts_st, bias_st],
            &[out.gpu(op)?, p.gpu(op)?],
            grid,
        )?,
        None => g.dispatch(
            SPLITK_WGSL,
            "splitk_reduce",
            &rp,
            &[parts_st, bias_st],
            &[out.gpu(op)?],
            grid,
        )?,
    }
    Ok((out, pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// shaders/matmul.wgsl starts with exactly the default variant's generated header.
    #[test]
    fn the_shader_file_is_the_default_variant() {
        assert_eq!(generate(&DEFAULT_KEY), TEMPLATE);
    }
}
