//! Adaptation methods that train a small parameter set on a frozen CLIP.
//!
//! - [`lora`]: low-rank adapters on the towers' attention/MLP Linears, with PEFT-layout
//!   export/import, merging into the base weights, and merged HF checkpoints.
pub mod bundle;
pub mod lora;
pub mod prompt;
pub mod textual_inversion;
pub mod trainable;
