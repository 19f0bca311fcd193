//! Which reference pipeline (tokenizer text cleaning, image transform) a model follows.
//!
//! A model directory is used the way its own library uses it: a Hugging Face `CLIPModel`
//! directory (`config.json`) goes through transformers' `CLIPTokenizer` and
//! `CLIPImageProcessor`, an open_clip directory (`open_clip_config.json` only) through
//! open_clip's `SimpleTokenizer` (ftfy + HTML unescape + whitespace clean + Python lower-case)
//! and its torchvision transform (resize, center crop rounding the offset, alpha dropped).
//! `--pipeline hf|open_clip` overrides the choice.
use std::path::Path;
use std::str::FromStr;

use super::config::Layout;
use crate::error::{Error, Result};

/// The reference library whose text and image preprocessing to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pipeline {
    /// transformers' `CLIPTokenizer` and `CLIPImageProcessor` (PIL path).
    #[default]
    Hf,
    /// open_clip's `SimpleTokenizer` and `image_transform` (torchvision on PIL).
    OpenClip,
}

impl Pipeline {
    /// The pipeline of a checkpoint layout.
    pub fn for_layout(layout: Layout) -> Pipeline {
        match layout {
            Layout::HuggingFace => Pipeline::Hf,
            Layout::OpenClip => Pipeline::OpenClip,
        }
    }

    /// The pipeline of a model directory, decided as `ClipConfig::from_dir` decides its
    /// layout: `config.json` means HF, else `open_clip_config.json` means open_clip, else HF.
    pub fn of_model_dir(dir: &Path) -> Pipeline {
        Pipeline::for_layout(Layout::of_dir(dir).unwrap_or(Layout::HuggingFace))
    }

    /// `explicit` when given, else the model directory's own pipeline.
    pub fn resolve(explicit: Option<Pipeline>, dir: &Path) -> Pipeline {
        explicit.unwrap_or_else(|| Pipeline::of_model_dir(dir))
    }

    pub fn name(self) -> &'static str {
        match self {
            Pipeline::Hf => "hf",
            Pipeline::OpenClip => "open_clip",
        }
    }
}

impl FromStr for Pipeline {
    type Err = Error;

    fn from_str(s: &str) -> Result<Pipeline> {
        match s {
            "hf" => Ok(Pipeline::Hf),
            "open_clip" | "open-clip" | "openclip" => Ok(Pipeline::OpenClip),
            _ => Err(Error::invalid(format!("--pipeline {s:?}: expected hf or open_clip"))),
        }
    }
}
