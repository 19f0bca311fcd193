//! Content digests: of the data a run trains on (so `--resume` notices changed data), of
//! adapter files (so a merged model can list what it contains), and of the weights an
//! adapter changes (so an adapter refuses a model that already has its update).
//!
//! The hash is a 64-bit multiply-rotate mix over 8-byte words: not cryptographic (these
//! digests guard against mistakes, not adversaries), but fast enough to run over every
//! pixel of a training set at each start, and fixed here so digests stay comparable
//! across builds (std's `DefaultHasher` promises no such thing).
use std::path::Path;

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::nn::Module;

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Incremental digest; feed it, then [`Digest::hex`].
#[derive(Clone)]
pub struct Digest {
    h: u64,
    len: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            h: 0x243F_6A88_85A3_08D3,
            len: 0,
        }
    }
}

impl Digest {
    pub fn new() -> Digest {
        Digest::default()
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(K).rotate_left(29) ^ (self.h >> 17);
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
        // The length separates fields: ("ab","c") and ("a","bc") differ.
        self.len = self.len.wrapping_add(b.len() as u64);
        self.word(b.len() as u64 ^ 0xA5A5_A5A5);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.bytes(bytemuck::cast_slice(v))
    }

    pub fn usizes(&mut self, v: &[usize]) -> &mut Self {
        let w: Vec<u64> = v.iter().map(|&x| x as u64).collect();
        self.bytes(bytemuck::cast_slice(&w))
    }

    /// 16 hex digits.
    pub fn hex(&self) -> String {
        let mut h = self.h ^ self.len.wrapping_mul(K);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        format!("{h:016x}")
    }
}

/// Digest of one file's bytes.
pub fn file_digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    Ok(Digest::new().bytes(&bytes).hex())
}

/// Values sampled per weight tensor by [`weights_fingerprint`].
const SAMPLES: usize = 64;

/// A fingerprint of the weights an adapter changes (name, shape and [`SAMPLES`] evenly
/// spaced values of each): a merged LoRA update (`W + s B A` changes nearly every value
/// of `W`) changes it. Left out: adapters attached but not merged, and the token table,
/// which textual inversion grows (an installed word is refused by the tokenizer instead).
pub fn weights_fingerprint(model: &Clip) -> Result<String> {
    let mut d = Digest::new();
    for p in model.params() {
        if p.name.contains(".lora_") || p.name.contains("token_embedding") {
            continue;
        }
        d.str(&p.name).usizes(p.value.shape());
        let v = p.value.to_vec()?;
        let n = v.len();
        let take = SAMPLES.min(n);
        let picked: Vec<f32> = (0..take).map(|i| v[i * n / take.max(1)]).collect();
        d.f32s(&picked);
        if let Some(last) = v.last() {
            d.f32s(&[*last]);
        }
    }
    Ok(d.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_separate_fields_and_contents() {
        let h = |parts: &[&str]| {
            let mut d = Digest::new();
            for p in parts {
                d.str(p);
            }
            d.hex()
        };
        assert_eq!(h(&["ab", "c"]), h(&["ab", "c"]));
        assert_ne!(h(&["ab", "c"]), h(&["a", "bc"]));
        assert_ne!(h(&["x"]), h(&["y"]));
        assert_ne!(h(&[""]), h(&[]));
        assert_eq!(h(&["abc"]).len(), 16);
    }
}
