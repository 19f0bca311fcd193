//! GPU storage: uploads, fills, readback and dtype conversion (`shaders/memory.wgsl`).
//! Also `as_f32`, which kernels without native half support call on their inputs.
use half::{bf16, f16};

use super::{grid_1d, GpuBackend};
use crate::error::{Error, Result};
use crate::tensor::{numel, DType, Storage, Tensor};

const WGSL: &str = include_str!("../../../shaders/memory.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    value: f32,
}

fn upload(g: &GpuBackend, op: &str, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
    let st = g.upload(op, bytes)?;
    Ok(Tensor::from_storage(
        Storage::Gpu(st),
        shape.to_vec(),
        dtype,
        g.as_device(),
    ))
}

pub fn from_f32(g: &GpuBackend, data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    upload(g, "from_f32", bytemuck::cast_slice(&data), shape, DType::F32)
}

pub fn from_u32(g: &GpuBackend, data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
    upload(g, "from_u32", bytemuck::cast_slice(&data), shape, DType::U32)
}

pub fn fill(g: &GpuBackend, shape: &[usize], value: f32) -> Result<Tensor> {
    let out = g.empty("fill", shape, DType::F32)?;
    let n = numel(shape);
    g.dispatch(
        WGSL,
        "fill",
        &Params { n: n as u32, value },
        &[],
        &[out.gpu("fill")?],
        grid_1d(n, 256),
    )?;
    Ok(out)
}

pub fn to_vec_f32(g: &GpuBackend, t: &Tensor) -> Result<Vec<f32>> {
    let n = t.numel();
    let bytes = g.read_bytes(t.gpu("to_vec")?, n * t.dtype().size())?;
    Ok(match t.dtype() {
        DType::F32 => bytemuck::cast_slice(&bytes).to_vec(),
        DType::F16 => bytemuck::cast_slice::<u8, f16>(&bytes)
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        DType::BF16 => bytemuck::cast_slice::<u8, bf16>(&bytes)
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        DType::U32 => return Err(Error::shape("to_vec", format!("expected a float tensor, got {t:?}"))),
    })
}

pub fn to_vec_u32(g: &GpuBackend, t: &Tensor) -> Result<Vec<u32>> {
    if t.dtype() != DType::U32 {
        return Err(Error::shape("to_vec_u32", format!("expected a u32 tensor, got {t:?}")));
    }
    let bytes = g.read_bytes(t.gpu("to_vec_u32")?, t.numel() * 4)?;
    Ok(bytemuck::cast_slice(&bytes).to_vec())
}

pub fn cast(g: &GpuBackend, t: &Tensor, dtype: DType) -> Result<Tensor> {
    let n = t.numel();
    let entry = match (t.dtype(), dtype) {
        (DType::F16, DType::F32) => "f16_to_f32",
        (DType::BF16, DType::F32) => "bf16_to_f32",
        (DType::F32, DType::F16) => "f32_to_f16",
        (DType::F32, DType::BF16) => "f32_to_bf16",
        (a, b) if a == b => return Ok(t.clone()),
        (DType::F16 | DType::BF16, DType::F16 | DType::BF16) => return cast(g, &cast(g, t, DType::F32)?, dtype),
        _ => return Err(Error::shape("cast", format!("cannot cast {t:?} to {}", dtype.name()))),
    };
    let out = g.empty("cast", t.shape(), dtype)?;
    // Packing kernels run one invocation per output word (two halves).
    let items = if dtype == DType::F32 { n } else { n.div_ceil(2) };
    g.dispatch(
        WGSL,
        entry,
        &Params {
            n: n as u32,
            value: 0.0,
        },
        &[t.gpu("cast")?],
        &[out.gpu("cast")?],
        grid_1d(items, 256),
    )?;
    Ok(out)
}

/// `t` as an f32 tensor: itself when already f32, else converted (one temporary).
pub fn as_f32(g: &GpuBackend, t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F32 => Ok(t.clone()),
        DType::U32 => Err(Error::shape("as_f32", format!("expected a float tensor, got {t:?}"))),
        _ => cast(g, t, DType::F32),
    }
}
