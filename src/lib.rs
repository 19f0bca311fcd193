//! cliptune: fine-tune CLIP without breaking it.
//!
//! Layers, bottom to top (each calls only those below it):
//! - [`backend`]: buffers and kernels, one function per kernel per backend (`cpu`, `wgpu`).
//! - [`tensor`]: shapes, dtypes and storage; device-checked ops that call the backend.
//! - [`autograd`]: the tape, one backward rule per op, trainable vs frozen parameters.
pub mod autograd;
pub mod backend;
pub mod clip;
pub mod error;
pub mod nn;
pub mod selfcheck;
pub mod tensor;
pub mod train;
pub mod util;

pub use backend::{Device, DeviceChoice};
pub use error::{Error, ErrorKind, Result};
pub use tensor::{DType, Tensor};
