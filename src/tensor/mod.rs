//! Tensors: a shape plus shared, immutable storage on one device.
//!
//! Compute is f32. Frozen weights may be *stored* as f16 or bf16 (half the memory);
//! kernels convert them on read. Token ids and indices are u32. Every tensor is
//! contiguous row-major; reshapes share storage, everything else makes a new tensor
//! (values are immutable, so sharing is always safe).
pub mod io;
mod late;
pub mod ops;

pub use late::LateRead;

use std::sync::Arc;

use half::{bf16, f16};

use crate::backend::wgpu::GpuStorage;
use crate::backend::Device;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U32 => "u32",
        }
    }
}

/// Host-side storage of the CPU backend.
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    U32(Vec<u32>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::U32(_) => DType::U32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub enum Storage {
    Cpu(CpuStorage),
    Gpu(GpuStorage),
}

#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Arc<Storage>,
    device: Device,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({:?}, {}, {})",
            self.shape,
            self.dtype.name(),
            self.device.kind_name()
        )
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// Used by backends to wrap storage they made.
    pub fn from_storage(storage: Storage, shape: Vec<usize>, dtype: DType, device: Device) -> Tensor {
        Tensor {
            shape,
            dtype,
            storage: Arc::new(storage),
            device,
        }
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dims(&self) -> usize {
        self.shape.len()
    }
    pub fn dim(&self, i: usize) -> usize {
        self.shape[i]
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// Bytes of device memory this tensor's storage holds.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
    /// True when both tensors share one storage (a reshape of the other).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
    /// No other tensor shares this storage: nothing could see it being overwritten.
    pub fn storage_is_unique(&self) -> bool {
        Arc::strong_count(&self.storage) == 1
    }

    /// CPU storage, or an error naming `op` when the tensor lives on a GPU.
    pub fn cpu(&self, op: &str) -> Result<&CpuStorage> {
        match &*self.storage {
            Storage::Cpu(s) => Ok(s),
            Storage::Gpu(_) => Err(Error::device(format!("{op}: expected a CPU tensor, got {self:?}"))),
        }
    }
    pub fn gpu(&self, op: &str) -> Result<&GpuStorage> {
        match &*self.storage {
            Storage::Gpu(s) => Ok(s),
            Storage::Cpu(_) => Err(Error::device(format!("{op}: expected a GPU tensor, got {self:?}"))),
        }
    }

    // ---- creation -------------------------------------------------------------
    pub fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_vec", data.len(), shape)?;
        device.backend().from_f32(data, shape)
    }
    pub fn from_slice(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape, device)
    }
    pub fn from_u32(data: Vec<u32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_u32", data.len(), shape)?;
        device.backend().from_u32(data, shape)
    }
    pub fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
        device.backend().fill(shape, 0.0)
    }
    pub fn full(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
        device.backend().fill(shape, value)
    }
    pub fn scalar(value: f32, device: &Device) -> Result<Tensor> {
        Self::from_vec(vec![value], &[1], device)
    }
    /// Deterministic pseudo-random normal values (for tests, init and benchmarks).
    pub fn randn(shape: &[usize], std: f32, seed: u64, device: &Device) -> Result<Tensor> {
        let mut rng = crate::tensor::Rng::new(seed);
        let data = (0..numel(shape)).map(|_| rng.normal() * std).collect();
        Self::from_vec(data, shape, device)
    }

    // ---- movement -------------------------------------------------------------
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.device.backend().to_vec_f32(self)
    }
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.device.backend().to_vec_u32(self)
    }
    /// The single value of a one-element tensor (reads back from a GPU).
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("expected one element, got shape {:?}", self.shape),
            ));
        }
        Ok(self.to_vec()?[0])
    }
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device.same(device) {
            return Ok(self.clone());
        }
        match self.dtype {
            DType::U32 => Tensor::from_u32(self.to_vec_u32()?, &self.shape, device),
            DType::F32 => Tensor::from_vec(self.to_vec()?, &self.shape, device),
            d => Tensor::from_vec(self.to_vec()?, &self.shape, device)?.cast(d),
        }
    }
    /// Convert storage dtype (f32 <-> f16/bf16).
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        self.device.backend().cast(self, dtype)
    }
    /// Same storage, new shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {:?} ({} elements) as {:?}",
                    self.shape,
                    self.numel(),
                    shape
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }
}

fn check_len(op: &str, len: usize, shape: &[usize]) -> Result<()> {
    if len != numel(shape) {
        return Err(Error::shape(op, format!("{len} values do not fill shape {shape:?}")));
    }
    Ok(())
}

/// Small deterministic generator (splitmix64 + Box-Muller): reproducible across
/// platforms, so seeds mean the same thing everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

impl Tensor {
    /// A tensor stored as f16 or bf16 from raw little-endian 16-bit words (frozen
    /// weights straight from a checkpoint; kernels convert on read).
    pub fn from_half_bits(bits: Vec<u16>, dtype: DType, shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_half_bits", bits.len(), shape)?;
        let storage = match (dtype, device) {
            (DType::F16, Device::Cpu) => Storage::Cpu(CpuStorage::F16(bits.into_iter().map(f16::from_bits).collect())),
            (DType::BF16, Device::Cpu) => {
                Storage::Cpu(CpuStorage::BF16(bits.into_iter().map(bf16::from_bits).collect()))
            }
            (DType::F16 | DType::BF16, Device::Gpu(g)) => {
                Storage::Gpu(g.upload("weights", bytemuck::cast_slice(&bits))?)
            }
            _ => {
                return Err(Error::shape(
                    "from_half_bits",
                    format!("dtype {} is not a half type", dtype.name()),
                ))
            }
        };
        Ok(Tensor::from_storage(storage, shape.to_vec(), dtype, device.clone()))
    }
}
