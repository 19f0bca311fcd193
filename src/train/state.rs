//! The trainer state (`trainer_state.safetensors`): trainable values, AdamW moments and
//! the step, so `--resume` continues a run exactly.
use std::path::Path;

use super::AdamW;
use crate::autograd::Param;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Device;

pub(crate) const STATE_FILE: &str = "trainer_state.safetensors";

/// Trainable values + AdamW moments + the step, keyed by parameter name; the run's
/// arguments in the metadata (checked by `--resume`).
pub(crate) fn write_state(
    out: &Path,
    params: &[&mut Param],
    opt: &AdamW,
    step: usize,
    record: &crate::guard::resume::RunRecord,
) -> Result<()> {
    let mut ts: Vec<(String, Tensor)> = vec![];
    for p in params {
        ts.push((format!("param/{}", p.name), p.value.clone()));
        if let Some((m, v)) = opt.moments(p.id) {
            ts.push((format!("m/{}", p.name), m.clone()));
            ts.push((format!("v/{}", p.name), v.clone()));
        }
    }
    let dev = params.first().map(|p| p.value.device().clone()).unwrap_or(Device::Cpu);
    ts.push((
        "step".into(),
        Tensor::from_u32(vec![step as u32, opt.step], &[2], &dev)?,
    ));
    let refs: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t)| (n.as_str(), t)).collect();
    crate::tensor::io::write_safetensors_with_metadata(&out.join(STATE_FILE), &refs, &record.metadata())
}

/// Load what `write_state` wrote into `params` and `opt`; returns the step to continue from.
pub(crate) fn read_state(out: &Path, params: &mut [&mut Param], opt: &mut AdamW) -> Result<usize> {
    let path = out.join(STATE_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| Error::io(path.display(), format!("{e} (nothing to --resume from)")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::io(path.display(), format!("not a valid trainer state: {e}")))?;
    let get = |name: &str, want: &[usize], dev: &Device| -> Result<Option<Tensor>> {
        let Ok(v) = st.tensor(name) else { return Ok(None) };
        if v.shape().iter().product::<usize>() != want.iter().product::<usize>() {
            return Err(Error::shape(
                "resume",
                format!(
                    "{}: '{name}' has shape {:?}, the run needs {want:?}",
                    path.display(),
                    v.shape()
                ),
            ));
        }
        let data: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Tensor::from_vec(data, want, dev)?))
    };
    for p in params.iter_mut() {
        let (shape, dev) = (p.value.shape().to_vec(), p.value.device().clone());
        p.value = get(&format!("param/{}", p.name), &shape, &dev)?.ok_or_else(|| {
            Error::invalid(format!(
                "{}: no saved value for '{}' (a state from another method or model?)",
                path.display(),
                p.name
            ))
        })?;
        if let (Some(m), Some(v)) = (
            get(&format!("m/{}", p.name), &shape, &dev)?,
            get(&format!("v/{}", p.name), &shape, &dev)?,
        ) {
            opt.set_moments(p.id, m, v);
        }
    }
    let s = st
        .tensor("step")
        .map_err(|_| Error::invalid(format!("{}: no 'step'", path.display())))?;
    let w: Vec<u32> = s
        .data()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    opt.step = w[1];
    Ok(w[0] as usize)
}
