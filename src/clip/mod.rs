//! CLIP on the engine: config, checkpoint loading (HF and open_clip layouts), the
//! tokenizer, image preprocessing and the two towers.
pub mod config;
pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod text_clean;
mod text_clean_tables;
pub mod tokenizer;
pub mod weights;
pub mod zero_shot;

pub use config::{ClipConfig, Layout};
pub use model::{Clip, TextInput, WeightStorage};
pub use pipeline::Pipeline;
