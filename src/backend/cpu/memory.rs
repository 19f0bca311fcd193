//! CPU storage: creation, readback and dtype conversion. Also the helpers every CPU
//! kernel uses to read inputs as f32 (half-precision weights convert on read) and to
//! wrap outputs.
use std::borrow::Cow;

use half::{bf16, f16};

use crate::backend::Device;
use crate::error::{Error, Result};
use crate::tensor::{numel, CpuStorage, DType, Storage, Tensor};

/// A CPU tensor owning `data` with `shape`.
pub fn wrap(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_storage(
        Storage::Cpu(CpuStorage::F32(data)),
        shape.to_vec(),
        DType::F32,
        Device::Cpu,
    )
}

/// The tensor's values as f32: borrowed when stored as f32, converted otherwise.
pub fn f32s<'a>(t: &'a Tensor, op: &str) -> Result<Cow<'a, [f32]>> {
    match t.cpu(op)? {
        CpuStorage::F32(v) => Ok(Cow::Borrowed(v)),
        CpuStorage::F16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        CpuStorage::BF16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        CpuStorage::U32(_) => Err(Error::shape(op, format!("expected a float tensor, got {t:?}"))),
    }
}

pub fn u32s<'a>(t: &'a Tensor, op: &str) -> Result<&'a [u32]> {
    match t.cpu(op)? {
        CpuStorage::U32(v) => Ok(v),
        _ => Err(Error::shape(op, format!("expected a u32 index tensor, got {t:?}"))),
    }
}

pub fn from_f32(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Ok(wrap(data, shape))
}

pub fn from_u32(data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_storage(
        Storage::Cpu(CpuStorage::U32(data)),
        shape.to_vec(),
        DType::U32,
        Device::Cpu,
    ))
}

pub fn fill(shape: &[usize], value: f32) -> Result<Tensor> {
    Ok(wrap(vec![value; numel(shape)], shape))
}

pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(f32s(t, "to_vec")?.into_owned())
}

pub fn to_vec_u32(t: &Tensor) -> Result<Vec<u32>> {
    Ok(u32s(t, "to_vec_u32")?.to_vec())
}

pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if dtype == DType::U32 || t.dtype() == DType::U32 {
        return Err(Error::shape("cast", format!("cannot cast {t:?} to {}", dtype.name())));
    }
    let v = f32s(t, "cast")?;
    let st = match dtype {
        DType::F32 => CpuStorage::F32(v.into_owned()),
        DType::F16 => CpuStorage::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
        DType::BF16 => CpuStorage::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
        DType::U32 => unreachable!(),
    };
    Ok(Tensor::from_storage(
        Storage::Cpu(st),
        t.shape().to_vec(),
        dtype,
        Device::Cpu,
    ))
}
