//! cliptune: fine-tune CLIP without breaking it.
//!
//! Layers, bottom to top (each calls only those below it):
//! - [`backend`]: buffers and kernels, one function per kernel per backend (`cpu`, `wgpu`).
//! - [`tensor`]: shapes, dtypes and storage; device-checked ops that call the backend.
//! - [`autograd`]: the tape, one backward rule per op, trainable vs frozen parameters.
//! - [`nn`]: Linear, LayerNorm, attention, MLP, the pre-LN transformer block.
//! - [`clip`]: config, checkpoint loading, tokenizer, preprocessing, the two towers.
//! - [`train`]: the optimizer.
//!
//! # Using CLIP from Rust
//!
//! Load a Hugging Face `CLIPModel` directory or an open_clip hub directory, embed
//! images and texts, and compare them:
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use cliptune::clip::{preprocess, tokenizer::ClipTokenizer, zero_shot, Clip, WeightStorage};
//! use cliptune::{Device, DeviceChoice, Tensor};
//!
//! # fn main() -> cliptune::Result<()> {
//! let dir = Path::new("clip-vit-base-patch32");
//! let device = Device::select(DeviceChoice::Auto)?; // a real GPU, else the CPU backend
//! let model = Clip::load(dir, &device, WeightStorage::AsStored)?; // f16 weights stay f16
//! let tok = ClipTokenizer::for_model_dir(dir)?;
//!
//! // Images: HF CLIPImageProcessor-compatible preprocessing, then the vision tower.
//! let cfg = preprocess::PreprocessConfig::from_model_dir(dir, model.config.vision.image_size)?;
//! let (pixels, kept, _skipped) = preprocess::preprocess_files(&[PathBuf::from("cat.jpg")], &cfg, false)?;
//! let pixels = Tensor::from_vec(pixels, &[kept.len(), 3, cfg.crop.0, cfg.crop.1], &device)?;
//! let image_embeds = model.encode_image(&pixels, 32)?; // [n, P], L2-normalised
//!
//! // Texts: the CLIP BPE tokenizer, EOT kept last when truncating.
//! let texts = vec!["a photo of a cat".to_string(), "a photo of a dog".to_string()];
//! let (input, _truncated) = zero_shot::tokenize(&model, &tok, &texts)?;
//! let text_embeds = model.encode_text(&input, 64)?; // [m, P], L2-normalised
//!
//! // logits_per_image = exp(logit_scale) * cosine; softmax for probabilities.
//! let probs = model.logits(&image_embeds, &text_embeds)?.softmax()?;
//! println!("{:?}", probs.to_vec()?);
//! # Ok(())
//! # }
//! ```
pub mod adapt;
pub mod alloc_guard;
pub mod autograd;
pub mod backend;
pub mod bench;
pub mod clip;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval;
pub mod nn;
pub mod report;
pub mod selfcheck;
pub mod tensor;
pub mod train;
pub mod util;

pub use backend::{Device, DeviceChoice};
pub use error::{Error, ErrorKind, Result};
pub use tensor::{DType, Tensor};
