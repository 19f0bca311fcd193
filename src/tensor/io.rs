//! Writing safetensors files atomically (temp file + rename): embeddings, adapters,
//! checkpoints. Reading goes through `clip::weights` (memory-mapped).
use std::path::Path;

use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// Write `tensors` (name, tensor) to `path` as safetensors; f32 tensors are written as
/// F32, f16/bf16 as themselves, u32 as U32. Never leaves a half-written file.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    write_safetensors_with_metadata(path, tensors, &std::collections::BTreeMap::new())
}

/// As [`write_safetensors`], with string metadata (`__metadata__`), written in key
/// order so the same content always gives the same bytes.
pub fn write_safetensors_with_metadata(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    meta: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    write_atomic(path, &safetensors_bytes(path, tensors, meta)?)
}

/// The bytes of a safetensors file holding `tensors` and `meta` (see
/// [`write_safetensors_with_metadata`]), bound for `path` (named when a float tensor holds
/// a non-finite value, which is refused).
pub fn safetensors_bytes(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    meta: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut header = String::from("{");
    if !meta.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.push_str(&format!("\"__metadata__\":{}", serde_json::Value::Object(m)));
        if !tensors.is_empty() {
            header.push(',');
        }
    }
    let mut blobs: Vec<Vec<u8>> = vec![];
    let mut offset = 0usize;
    for (i, (name, t)) in tensors.iter().enumerate() {
        let (dtype, bytes): (&str, Vec<u8>) = match t.dtype() {
            DType::F32 => ("F32", bytemuck::cast_slice(&t.to_vec()?).to_vec()),
            DType::U32 => ("U32", bytemuck::cast_slice(&t.to_vec_u32()?).to_vec()),
            DType::F16 => (
                "F16",
                t.to_vec()?
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
            DType::BF16 => (
                "BF16",
                t.to_vec()?
                    .iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
        };
        crate::guard::finite::check_encoded(path, name, dtype, &bytes)?;
        let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            name.replace('\\', "\\\\").replace('"', "\\\""),
            shape.join(","),
            offset + bytes.len()
        ));
        offset += bytes.len();
        blobs.push(bytes);
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for b in blobs {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// Write bytes to `path` through a temporary file in the same directory, fsync, rename,
/// fsync the directory ([`crate::io::atomic::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::atomic::write_atomic(path, bytes)
}

/// As [`write_atomic`], but never replaces an existing file ([`crate::io::atomic::write_new`]).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::atomic::write_new(path, bytes)
}
