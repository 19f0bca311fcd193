//! No checkpoint, adapter or trainer state holds a NaN or an infinity: the shared
//! safetensors writer checks every float tensor as it is encoded, so a diverged run
//! fails at its checkpoint and the previous one (written atomically) stays whole.
use std::path::Path;

use crate::error::{Error, Result};

/// Refuse `bytes` (a tensor `name` of `dtype` "F32" / "F16" / "BF16", as about to be
/// written to `path`) when a value is NaN or infinite; other dtypes pass.
pub fn check_encoded(path: &Path, name: &str, dtype: &str, bytes: &[u8]) -> Result<()> {
    let bad = match dtype {
        "F32" => bytes
            .chunks_exact(4)
            .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
        "F16" => bytes
            .chunks_exact(2)
            .position(|c| !half::f16::from_le_bytes([c[0], c[1]]).is_finite()),
        "BF16" => bytes
            .chunks_exact(2)
            .position(|c| !half::bf16::from_le_bytes([c[0], c[1]]).is_finite()),
        _ => None,
    };
    match bad {
        None => Ok(()),
        Some(i) => Err(non_finite_error(path, name, dtype, i)),
    }
}

/// Refuse non-finite `values` of `name` bound for `path` (writers other than safetensors,
/// e.g. JSON, which would turn NaN into null).
pub fn check_values(path: &Path, name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(non_finite_error(path, name, "f32", i)),
    }
}

fn non_finite_error(path: &Path, name: &str, dtype: &str, i: usize) -> Error {
    Error::non_finite(format!(
        "{}: not written: tensor '{name}' ({dtype}) holds a non-finite value (first at element {i}): the weights \
         diverged (NaN or infinity)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_encoding_is_checked() {
        let p = Path::new("x.safetensors");
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        assert!(check_encoded(p, "w", "F32", &f32s(&[1.0, -2.0])).is_ok());
        let e = check_encoded(p, "w", "F32", &f32s(&[1.0, f32::NAN])).unwrap_err();
        assert!(e.msg.contains("'w'") && e.msg.contains("element 1"), "{}", e.msg);
        assert!(check_encoded(p, "w", "F32", &f32s(&[f32::INFINITY])).is_err());
        let inf16 = half::f16::INFINITY.to_le_bytes();
        assert!(check_encoded(p, "w", "F16", &inf16).is_err());
        assert!(check_encoded(p, "w", "BF16", &half::bf16::NAN.to_le_bytes()).is_err());
        assert!(check_encoded(p, "w", "BF16", &half::bf16::ONE.to_le_bytes()).is_ok());
        // u32 bit patterns of a NaN are ordinary integers.
        assert!(check_encoded(p, "step", "U32", &f32s(&[f32::NAN])).is_ok());
        assert!(check_values(p, "bias", &[0.0, f32::NEG_INFINITY]).is_err());
    }
}
