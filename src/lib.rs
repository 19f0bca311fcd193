//! cliptune: fine-tune CLIP without breaking it.
//!
//! Layers, bottom to top (each calls only those below it):
//! - [`backend`]: buffers and kernels, one function per kernel per backend (`cpu`, `wgpu`).
//! - [`tensor`]: shapes, dtypes and storage; device-checked ops that call the backend.
//! - [`autograd`]: the tape, one backward rule per op, trainable vs frozen parameters.
//! - [`nn`]: Linear, LayerNorm, attention, MLP, the pre-LN transformer block.
//! - [`clip`]: config, checkpoint loading, tokenizer, preprocessing, the two towers.
//! - [`adapt`]: LoRA, prompt tuning, textual inversion; the adapter directory format.
//! - [`train`], [`eval`], [`data`]: the training loop and optimizer, metrics and the
//!   evaluation suite, the dataset loaders.
//! - [`cli`]: the commands, also callable as library functions ([`cli::train`],
//!   [`cli::eval`], [`cli::merge`]) with the binary's exact options.
//!
//! The examples below run as doc-tests (`cargo test --release`) on the tiny random
//! checkpoint in `tests/fixtures/tiny-clip/hf`; with a real download (e.g. `git clone
//! https://huggingface.co/openai/clip-vit-base-patch32`) only the paths change.
//!
//! # Using CLIP from Rust
//!
//! Load a Hugging Face `CLIPModel` directory or an open_clip hub directory, embed
//! images and texts, and compare them:
//!
//! ```
//! use std::path::{Path, PathBuf};
//! use cliptune::clip::{preprocess, tokenizer::ClipTokenizer, zero_shot, Clip, WeightStorage};
//! use cliptune::{Device, DeviceChoice, Tensor};
//!
//! # fn main() -> cliptune::Result<()> {
//! # let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
//! # let dir = &root.join("tiny-clip/hf");
//! # let cat = root.join("preprocess/inputs/rgb_37x53.png");
//! # /*
//! let dir = Path::new("clip-vit-base-patch32");
//! let cat = PathBuf::from("cat.jpg");
//! # */
//! let device = Device::select(DeviceChoice::Cpu)?; // or Auto: a real GPU, else the CPU
//! let model = Clip::load(dir, &device, WeightStorage::AsStored)?; // f16 weights stay f16
//! let tok = ClipTokenizer::for_model_dir(dir)?;
//!
//! // Images: HF CLIPImageProcessor-compatible preprocessing, then the vision tower.
//! let cfg = preprocess::PreprocessConfig::from_model_dir(dir, model.config.vision.image_size)?;
//! let (pixels, kept, _skipped) = preprocess::preprocess_files(&[cat], &cfg, false)?;
//! let pixels = Tensor::from_vec(pixels, &[kept.len(), 3, cfg.crop.0, cfg.crop.1], &device)?;
//! let image_embeds = model.encode_image(&pixels, 32)?; // [n, P], L2-normalised
//!
//! // Texts: the CLIP BPE tokenizer, EOT kept last when truncating.
//! let texts = vec!["a photo of a cat".to_string(), "a photo of a dog".to_string()];
//! let (input, _truncated) = zero_shot::tokenize(&model, &tok, &texts)?;
//! let text_embeds = model.encode_text(&input, 64)?; // [m, P], L2-normalised
//!
//! // logits_per_image = exp(logit_scale) * cosine; softmax for probabilities.
//! let probs = model.logits(&image_embeds, &text_embeds)?.softmax()?.to_vec()?;
//! assert_eq!(probs.len(), 2);
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! # Ok(())
//! # }
//! ```
//!
//! # Zero-shot classification
//!
//! Class embeddings from prompt templates (the CLIP paper's 80 with `"openai"`), then a
//! softmax over classes, as `cliptune zero-shot` does:
//!
//! ```
//! # use std::path::Path;
//! use cliptune::clip::{tokenizer::ClipTokenizer, zero_shot, Clip, WeightStorage};
//! use cliptune::{Device, Tensor};
//! # fn main() -> cliptune::Result<()> {
//! # let dir = &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip/hf");
//! let model = Clip::load(dir, &Device::Cpu, WeightStorage::AsStored)?;
//! let tok = ClipTokenizer::for_model_dir(dir)?;
//! let classes = ["cat".to_string(), "dog".to_string(), "car".to_string()];
//! let class_embeds = zero_shot::class_embeddings(&model, &tok, &classes, &zero_shot::templates("simple")?)?;
//! let side = model.config.vision.image_size;
//! let pixels = Tensor::from_vec(vec![0.1; 2 * 3 * side * side], &[2, 3, side, side], &Device::Cpu)?;
//! let probs = zero_shot::probabilities(&model, &model.encode_image(&pixels, 8)?, &class_embeds)?;
//! assert_eq!(probs.shape(), &[2, 3]);
//! # Ok(())
//! # }
//! ```
//!
//! # Fine-tuning, evaluating, merging
//!
//! [`cli::train`], [`cli::eval`] and [`cli::merge`] take the command's flags and run the
//! command's own code (same defaults, checks, output files), returning what it produced:
//!
//! ```
//! # use std::path::Path;
//! # fn main() -> cliptune::Result<()> {
//! # let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
//! # let model = root.join("tiny-clip/hf").display().to_string();
//! # let captions = root.join("data/captions.csv").display().to_string();
//! # let tmp = std::env::temp_dir().join(format!("cliptune-doc-train-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&tmp);
//! # let lora = tmp.join("lora").display().to_string();
//! # let merged = tmp.join("merged").display().to_string();
//! # /*
//! let (model, captions, lora, merged) = ("clip-vit-base-patch32", "captions.csv", "lora/", "merged/");
//! # */
//! let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
//! let run = cliptune::cli::train(&args(&[
//!     "--method", "lora", "--model", &model, "--data", &captions, "--out", &lora,
//!     "--rank", "4", "--epochs", "2", "--batch", "4", "--seed", "1", "--device", "cpu",
//!     "--min-steps", "0", // exactly the epochs asked, no small-data step floor
//! ]))?;
//! assert_eq!(run.steps, 2);
//!
//! let report = cliptune::cli::eval(&args(&[
//!     "--model", &model, "--adapter", &lora, "--retrieval", &captions, "--json", "--device", "cpu",
//! ]))?;
//! assert_eq!(report.retrieval.len(), 1);
//!
//! cliptune::cli::merge(&args(&["--model", &model, "--adapter", &lora, "--out", &merged, "--device", "cpu"]))?;
//! assert!(Path::new(&merged).join("model.safetensors").exists());
//! # std::fs::remove_dir_all(&tmp).ok();
//! # Ok(())
//! # }
//! ```
// The command-line modules are written against `cliptune::...` paths; this alias lets the
// library compile them too, so library callers (the Python package) run the same code.
extern crate self as cliptune;

pub mod adapt;
pub mod alloc_guard;
pub mod autograd;
pub mod backend;
pub mod bench;
pub mod cancel;
pub mod cli;
pub mod clip;
pub mod contain_panic;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod guard;
pub mod io;
pub mod nn;
pub mod progress;
pub mod report;
pub mod selfcheck;
pub mod signal;
pub mod tensor;
pub mod train;
pub mod user_file;
pub mod util;

pub use backend::{Device, DeviceChoice};
pub use error::{Error, ErrorKind, Result};
pub use tensor::{DType, Tensor};
