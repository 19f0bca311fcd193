//! The fine-tuning methods `cliptune train --method` knows, with their usual learning rates.
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Prompt,
    LinearProbe,
    Lora,
    TextualInversion,
    Full,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        Ok(match s {
            "prompt" => Method::Prompt,
            "linear-probe" => Method::LinearProbe,
            "lora" => Method::Lora,
            "textual-inversion" => Method::TextualInversion,
            "full" => Method::Full,
            _ => {
                return Err(Error::invalid(format!(
                    "--method '{s}': expected prompt, linear-probe, lora, textual-inversion or full"
                )))
            }
        })
    }
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Prompt => "prompt",
            Method::LinearProbe => "linear-probe",
            Method::Lora => "lora",
            Method::TextualInversion => "textual-inversion",
            Method::Full => "full",
        }
    }
    /// Defaults from practice: LoRA 1e-4, CoOp 2e-3, textual inversion 5e-3, full 1e-5.
    pub fn default_lr(self) -> f32 {
        match self {
            Method::Lora => 1e-4,
            Method::Prompt => 2e-3,
            Method::TextualInversion => 5e-3,
            Method::Full => 1e-5,
            Method::LinearProbe => 0.0,
        }
    }
    /// The default floor on optimizer steps: enough for 100-3,000 images to move the
    /// parameters (CLIP-LoRA runs 500 x shots iterations; CoOp 50-200 epochs); None for
    /// the linear probe, which is solved, not stepped.
    pub fn default_min_steps(self) -> Option<usize> {
        match self {
            Method::Lora | Method::Full => Some(300),
            Method::Prompt | Method::TextualInversion => Some(200),
            Method::LinearProbe => None,
        }
    }
}
