//! Backends: buffers and kernel launches, one function per kernel per backend.
//!
//! The trait is deliberately thin: every method is one kernel (or one fused kernel
//! pair), takes contiguous tensors and returns new ones. Shape checks that are the
//! same for both backends live in `tensor::ops`; backends may assume valid shapes
//! but must still return `Err` (never panic) on anything device-specific such as a
//! buffer over the adapter's binding limit.
//!
//! Where things are: the CPU twin of kernel family `X` is `cpu/X.rs`, its GPU launch
//! code `wgpu/X.rs`, its WGSL `shaders/X.wgsl`, its cross-backend test
//! `tests/kernel_X.rs`.
pub(crate) mod checks;
pub mod cpu;
pub mod wgpu;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Activation fused into a matmul epilogue, or applied on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    /// x * sigmoid(1.702 x): OpenAI CLIP.
    QuickGelu,
    /// Exact erf GELU: open_clip without `quick_gelu`.
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
}

/// `C[b] = op(A[b]) @ op(B[b]) (+ bias[n]) then act`, all row-major.
/// A is [batch, m, k] (or [batch, k, m] when `trans_a`), B is [batch, k, n]
/// (or [batch, n, k] when `trans_b`, the layout of a PyTorch Linear weight).
/// `b_shared`: B has no batch dimension and is reused for every batch entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub b_shared: bool,
}

impl MatmulSpec {
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// Fused multi-head attention over q, k, v laid out [batch, seq, heads * head_dim]
/// (the output of the q/k/v projections, no transposes). Output has the same layout;
/// `lse` [batch, heads, seq] is the row log-sum-exp saved for backward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnSpec {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub causal: bool,
    pub scale: f32,
}

/// Non-overlapping patches (conv with stride = kernel): images [batch, channels, h, w]
/// become [batch, (h/p)*(w/p), channels*p*p], each patch flattened in (c, ky, kx)
/// order so that a conv weight [d, c, p, p] reshaped to [d, c*p*p] multiplies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchSpec {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
}

impl PatchSpec {
    pub fn grid(&self) -> (usize, usize) {
        (self.height / self.patch, self.width / self.patch)
    }
    pub fn num_patches(&self) -> usize {
        let (gh, gw) = self.grid();
        gh * gw
    }
    pub fn patch_len(&self) -> usize {
        self.channels * self.patch * self.patch
    }
}

/// AdamW hyper-parameters for one update; `step` counts from 1 (bias correction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWSpec {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
}

/// One kernel per method. See module docs.
pub trait Backend: Send + Sync {
    fn name(&self) -> String;

    // ---- memory (memory.rs) --------------------------------------------------
    fn from_f32(&self, data: Vec<f32>, shape: &[usize]) -> Result<Tensor>;
    fn from_u32(&self, data: Vec<u32>, shape: &[usize]) -> Result<Tensor>;
    fn fill(&self, shape: &[usize], value: f32) -> Result<Tensor>;
    fn to_vec_f32(&self, t: &Tensor) -> Result<Vec<f32>>;
    fn to_vec_u32(&self, t: &Tensor) -> Result<Vec<u32>>;
    /// f32 <-> f16/bf16 storage conversion.
    fn cast(&self, t: &Tensor, dtype: DType) -> Result<Tensor>;

    // ---- matmul.rs -------------------------------------------------------------
    /// Returns (output, pre-activation) where the pre-activation is kept only when
    /// `keep_preact` and `act != None` (backward of a fused activation needs it).
    fn matmul(
        &self,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
        act: Act,
        spec: &MatmulSpec,
        keep_preact: bool,
    ) -> Result<(Tensor, Option<Tensor>)>;

    // ---- elementwise.rs ----------------------------------------------------------
    fn act(&self, x: &Tensor, act: Act) -> Result<Tensor>;
    /// dL/dx given dL/dy and the activation's input x.
    fn act_bwd(&self, dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor>;
    /// `a op b` where b's element count divides a's and b repeats along a's leading
    /// dimensions (same shape, bias rows, position embeddings).
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    /// `alpha * x + beta`.
    fn affine(&self, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor>;
    /// min(x, hi) element-wise, NaN kept (a clamp on the device: no readback).
    fn clamp_max(&self, x: &Tensor, hi: f32) -> Result<Tensor>;
    /// Multiply every element by the one value in `s` (a device scalar, no readback).
    fn mul_scalar_tensor(&self, x: &Tensor, s: &Tensor) -> Result<Tensor>;
    /// Column sums of x viewed as [rows, cols] -> [cols] (bias grads, broadcast grads).
    fn sum_rows(&self, x: &Tensor, rows: usize, cols: usize) -> Result<Tensor>;
    /// Sum of all elements -> [1].
    fn sum_all(&self, x: &Tensor) -> Result<Tensor>;
    /// Sum of squares of all elements -> [1] (gradient norms).
    fn sumsq(&self, x: &Tensor) -> Result<Tensor>;
    /// Concatenate a [outer, ia] and b [outer, ib] -> [outer, ia + ib].
    fn concat(&self, a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor>;
    /// x [outer, inner] -> x[:, start..start+len].
    fn slice_cols(&self, x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor>;
    /// Rows of table [rows, width] picked by ids (embedding lookup, CLS/EOT pooling).
    fn gather_rows(&self, table: &Tensor, ids: &Tensor) -> Result<Tensor>;
    /// Backward of gather_rows: scatter-add dy [n, width] into [rows, width].
    fn scatter_add_rows(&self, dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor>;
    fn patchify(&self, img: &Tensor, spec: &PatchSpec) -> Result<Tensor>;
    fn unpatchify(&self, patches: &Tensor, spec: &PatchSpec) -> Result<Tensor>;

    // ---- norms.rs ----------------------------------------------------------------
    /// Layer norm over the last dim of x [rows, cols]: (y, mean [rows], rstd [rows]).
    fn layernorm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)>;
    /// (dx, Some((dgamma, dbeta)) when `param_grads`).
    #[allow(clippy::type_complexity)]
    fn layernorm_bwd(
        &self,
        dy: &Tensor,
        x: &Tensor,
        gamma: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        param_grads: bool,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)>;
    /// Softmax over the last dim.
    fn softmax(&self, x: &Tensor) -> Result<Tensor>;
    fn softmax_bwd(&self, dy: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// Row L2 normalisation: (y, norm [rows]).
    fn l2norm(&self, x: &Tensor) -> Result<(Tensor, Tensor)>;
    fn l2norm_bwd(&self, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<Tensor>;

    // ---- attention.rs ------------------------------------------------------------
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)>;
    #[allow(clippy::too_many_arguments)]
    fn attention_bwd(
        &self,
        dout: &Tensor,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        lse: &Tensor,
        spec: &AttnSpec,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    // ---- contrastive_loss.rs ---------------------------------------------------------
    /// Symmetric InfoNCE. img [b, d] and txt [m, d] (m >= b; rows b.. are extra hard
    /// negative captions) are L2-normalised; logits = exp(log_scale) * img @ txt^T.
    /// Image i's positive is text i. Loss = (CE over the m texts for each image +
    /// CE over the b images for each of the first b texts) / 2, each a mean over b.
    /// Returns (loss [1], lse_img [b], lse_txt [b]).
    fn contrastive_loss(&self, img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)>;
    /// (dimg, dtxt, dlog_scale [1]), all scaled by dloss [1].
    #[allow(clippy::too_many_arguments)]
    fn contrastive_loss_bwd(
        &self,
        img: &Tensor,
        txt: &Tensor,
        log_scale: &Tensor,
        lse_img: &Tensor,
        lse_txt: &Tensor,
        dloss: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)>;
    /// Mean cross-entropy of logits [rows, classes] against labels (u32 [rows]):
    /// (loss [1], lse [rows]).
    fn cross_entropy(&self, logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)>;
    fn cross_entropy_bwd(&self, logits: &Tensor, labels: &Tensor, lse: &Tensor, dloss: &Tensor) -> Result<Tensor>;

    // ---- optim.rs ----------------------------------------------------------------
    /// One AdamW update; grads are multiplied by `grad_scale` [1] first when given
    /// (gradient-norm clipping without a readback). Returns (param, m, v). The GPU writes
    /// them over `param`, `m` and `v` when no other tensor shares those storages (a
    /// training step then keeps its buffers): read the returned tensors, not the arguments.
    #[allow(clippy::too_many_arguments)]
    fn adamw(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        spec: &AdamWSpec,
        grad_scale: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)>;
    /// min(1, max_norm / (sqrt(sumsq) + 1e-6)) as a [1] tensor.
    fn clip_coef(&self, sumsq: &Tensor, max_norm: f32) -> Result<Tensor>;

    /// Wait for queued work (GPU); no-op on CPU.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// Where tensors live and kernels run.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Gpu(Arc<wgpu::GpuBackend>),
}

/// `--device auto|cpu|gpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Gpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            _ => Err(Error::invalid(format!(
                "--device: expected auto, cpu or gpu, got '{s}'"
            ))),
        }
    }
}

/// `--backend vulkan|metal|dx12|gl`: the native API a GPU device must use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuApi {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl GpuApi {
    pub const ALL: [GpuApi; 4] = [GpuApi::Vulkan, GpuApi::Metal, GpuApi::Dx12, GpuApi::Gl];

    pub fn name(self) -> &'static str {
        match self {
            GpuApi::Vulkan => "vulkan",
            GpuApi::Metal => "metal",
            GpuApi::Dx12 => "dx12",
            GpuApi::Gl => "gl",
        }
    }

    pub fn wgpu_backend(self) -> ::wgpu::Backend {
        match self {
            GpuApi::Vulkan => ::wgpu::Backend::Vulkan,
            GpuApi::Metal => ::wgpu::Backend::Metal,
            GpuApi::Dx12 => ::wgpu::Backend::Dx12,
            GpuApi::Gl => ::wgpu::Backend::Gl,
        }
    }

    pub fn from_wgpu(b: ::wgpu::Backend) -> Option<GpuApi> {
        GpuApi::ALL.into_iter().find(|a| a.wgpu_backend() == b)
    }
}

impl std::str::FromStr for GpuApi {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(GpuApi::Vulkan),
            "metal" => Ok(GpuApi::Metal),
            "dx12" | "d3d12" => Ok(GpuApi::Dx12),
            "gl" | "gles" | "opengl" => Ok(GpuApi::Gl),
            _ => Err(Error::invalid(format!(
                "--backend: expected vulkan, metal, dx12 or gl, got '{s}'"
            ))),
        }
    }
}

/// The `--backend` given on the command line; set once by the CLI before any device is
/// chosen, so every subcommand's `--device` honours it without threading it through.
static CLI_API: std::sync::OnceLock<GpuApi> = std::sync::OnceLock::new();

/// Record the command line's `--backend` (the binary calls this once, first).
pub fn set_cli_api(api: GpuApi) {
    let _ = CLI_API.set(api);
}

pub fn cli_api() -> Option<GpuApi> {
    CLI_API.get().copied()
}

static CPU: cpu::CpuBackend = cpu::CpuBackend;

impl Device {
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Device::Cpu => &CPU,
            Device::Gpu(g) => g.as_ref(),
        }
    }
    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
    pub fn kind_name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu(_) => "gpu",
        }
    }
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }
    pub fn name(&self) -> String {
        self.backend().name()
    }

    /// Pick a device. `Auto` takes a real GPU adapter and otherwise the CPU backend:
    /// a software rasteriser (lavapipe, llvmpipe, WARP, SwiftShader) is slower than our
    /// CPU kernels, so it is used only when asked for explicitly with `Gpu`. The CLI's
    /// `--backend` (see [`set_cli_api`]) restricts the GPU to that API.
    pub fn select(choice: DeviceChoice) -> Result<Device> {
        Device::select_api(choice, cli_api())
    }

    /// [`Device::select`] with an explicit API. Naming an API with `Auto` means a GPU
    /// of that API is wanted, so software adapters count and there is no CPU fallback.
    pub fn select_api(choice: DeviceChoice, api: Option<GpuApi>) -> Result<Device> {
        match (choice, api) {
            (DeviceChoice::Cpu, Some(a)) => Err(Error::invalid(format!(
                "--backend {} selects a GPU API but --device is cpu; drop one of them",
                a.name()
            ))),
            (DeviceChoice::Cpu, None) => Ok(Device::Cpu),
            (DeviceChoice::Gpu, _) | (DeviceChoice::Auto, Some(_)) => {
                Ok(Device::Gpu(wgpu::GpuBackend::new(true, api)?))
            }
            (DeviceChoice::Auto, None) => match wgpu::GpuBackend::new(false, None) {
                Ok(g) => Ok(Device::Gpu(g)),
                Err(_) => Ok(Device::Cpu),
            },
        }
    }

    /// Any GPU adapter, software ones included (tests run the WGSL kernels on lavapipe).
    pub fn gpu_any() -> Result<Device> {
        Device::select_api(DeviceChoice::Gpu, None)
    }

    /// The best adapter of one API, software ones included (tests pin Vulkan and GL).
    pub fn gpu_on(api: GpuApi) -> Result<Device> {
        Device::select_api(DeviceChoice::Gpu, Some(api))
    }
}
