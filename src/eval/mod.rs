//! Evaluation: metrics on feature matrices, the linear probe, and the model-level suite.
//!
//! - [`metrics`]: top-k classification accuracy and image-text retrieval recall
//!   (R@1/5/10 in both directions, several captions per image).
//! - [`linear_probe`]: multinomial logistic regression on L2-normalised features,
//!   fitted with L-BFGS, with the regularisation strength swept on a validation
//!   split as in the CLIP paper's linear-probe protocol.
//!
//! - [`adapted`]: classification through loaded adapters (probe, prompt, LoRA).
//!
//! Everything here takes row-major `f32` matrices plus their sizes, checks them,
//! and returns [`crate::error::Error`] (never panics) on inconsistent input.
pub mod adapted;
pub mod linear_probe;
pub mod metrics;
pub mod suite;

pub use linear_probe::{split_train_val, sweep, LinearProbe};
pub use metrics::{retrieval, topk_accuracy, RetrievalMetrics};
