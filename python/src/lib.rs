//! `cliptune._cliptune`: the native half of the Python package. Everything here converts
//! between Python and the cliptune crate; the work (loading, preprocessing, the towers,
//! training, evaluation) is the crate's own code, the same the CLI runs. The pure-Python
//! half (`cliptune/__init__.py`) turns keyword arguments into CLI flags and Python image
//! objects into arrays.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cliptune::adapt::bundle::{load_adapters_named, Adapters};
use cliptune::clip::preprocess::{preprocess, preprocess_files, PreprocessConfig};
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::{probabilities, templates, tokenize};
use cliptune::clip::{Clip, WeightStorage};
use cliptune::{Device, ErrorKind, Tensor};
use image::{DynamicImage, ImageBuffer};
use numpy::{PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Our error as the Python exception its kind calls for, carrying our message. The classes
/// live in `cliptune/_errors.py`: `ValueError` and `FileNotFoundError` subclasses that are
/// also `cliptune.Error`, so one `except cliptune.Error` catches everything of ours.
fn py_err(py: Python<'_>, e: cliptune::Error) -> PyErr {
    // io::Error's Display ends in "(os error 2)" for ENOENT, whatever the OS's wording; our
    // own checks for a missing model, weights or adapter file say "not found".
    let not_found = e.msg.contains("(os error 2)") || e.msg.contains("not found");
    let class = match e.kind {
        ErrorKind::Io if not_found => "NotFoundError",
        ErrorKind::Shape | ErrorKind::Invalid => "InvalidValueError",
        _ => "Error",
    };
    match py.import("cliptune._errors").and_then(|m| m.getattr(class)) {
        Ok(cls) => match cls.call1((e.msg.clone(),)) {
            Ok(v) => PyErr::from_value(v),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

trait OrPy<T> {
    fn or_py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrPy<T> for cliptune::Result<T> {
    fn or_py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| py_err(py, e))
    }
}

fn invalid(py: Python<'_>, msg: String) -> PyErr {
    py_err(py, cliptune::Error::invalid(msg))
}

fn dtype_name(a: &Bound<'_, PyUntypedArray>) -> String {
    a.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into())
}

/// `[n, p]` f32 tensor -> numpy float32 array of that shape.
fn to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = t.shape().to_vec();
    let v = t.to_vec().or_py(py)?;
    Ok(PyArray1::from_vec(py, v).reshape(shape)?.into_any())
}

/// Run `f` on a worker thread with the GIL released, checking for Ctrl-C while it works.
/// On Ctrl-C the cancellation flag is set (a training loop stops after its current step,
/// checkpoint written), the work is waited for, and KeyboardInterrupt is raised with `on_cancel`'s
/// message about what was kept.
fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> cliptune::Result<T> + Send + 'static,
    on_cancel: impl FnOnce(&cliptune::Result<T>) -> String,
) -> PyResult<T> {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    // The GIL-free wait borrows the receiver from another thread's point of view.
    let rx = std::sync::Mutex::new(rx);
    let worker_flag = flag.clone();
    let handle = std::thread::spawn(move || {
        let r = cliptune::cancel::scoped(worker_flag, f);
        let _ = tx.send(r);
    });
    let mut interrupted = None;
    let result = loop {
        let waited = py.allow_threads(|| match rx.lock() {
            Ok(rx) => rx.recv_timeout(Duration::from_millis(100)),
            Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
        });
        match waited {
            Ok(r) => break Some(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interrupted.is_none() {
                    if let Err(e) = py.check_signals() {
                        flag.store(true, Ordering::SeqCst);
                        eprintln!("\n[cliptune] interrupted: finishing the current step ...");
                        interrupted = Some(e);
                    }
                }
            }
        }
    };
    let _ = py.allow_threads(|| handle.join());
    let Some(result) = result else {
        return Err(py_err(
            py,
            cliptune::Error::invalid("internal error: the worker thread panicked (see the message above)"),
        ));
    };
    if let Some(e) = interrupted {
        if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            return Err(PyKeyboardInterrupt::new_err(on_cancel(&result)));
        }
        return Err(e);
    }
    result.or_py(py)
}

/// `cliptune train FLAGS...` run from Python: the summary as a dict.
#[pyfunction]
fn train(py: Python<'_>, args: Vec<String>) -> PyResult<Py<PyDict>> {
    let s = run_interruptible(py, move || cliptune::cli::train(&args), |r| match r {
        Ok(s) => format!(
            "training interrupted after step {}; {} holds a resumable checkpoint (train again with resume=True to continue)",
            s.steps,
            s.out.display()
        ),
        // The loop's own account: the step it stopped after and where its checkpoint is.
        Err(e) if e.kind == ErrorKind::Interrupted => e.msg.clone(),
        Err(e) => format!("training interrupted: {e}"),
    })?;
    let d = PyDict::new(py);
    d.set_item("steps", s.steps)?;
    d.set_item("first_loss", s.first_loss)?;
    d.set_item("last_loss", s.last_loss)?;
    d.set_item("trainable_params", s.trainable)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("out", s.out.display().to_string())?;
    d.set_item("retention_guard", s.guard)?;
    Ok(d.unbind())
}

/// `cliptune eval FLAGS...` run from Python: the report as JSON text.
#[pyfunction]
fn eval(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    let rep = run_interruptible(py, move || cliptune::cli::eval(&args), |_| {
        "evaluation interrupted (it finished the dataset it was on; nothing was written)".into()
    })?;
    Ok(rep.to_json().to_string())
}

/// `cliptune merge FLAGS...` run from Python.
#[pyfunction]
fn merge(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    run_interruptible(py, move || cliptune::cli::merge(&args), |_| {
        "merge interrupted after it finished (the output directory is complete)".into()
    })
}

/// Token ids of each text (BOS .. EOS, no padding), as `cliptune tokenize` prints them.
#[pyfunction]
#[pyo3(signature = (texts, model=None))]
fn tokenize_texts(py: Python<'_>, texts: Vec<String>, model: Option<PathBuf>) -> PyResult<Vec<Vec<u32>>> {
    let tok = match &model {
        Some(dir) => ClipTokenizer::for_model_dir(dir),
        None => ClipTokenizer::embedded(),
    }
    .or_py(py)?;
    texts.iter().map(|t| tok.encode(t).or_py(py)).collect()
}

/// One image handed over from Python: a file, or decoded 8-bit pixels.
enum ImageItem {
    File(PathBuf),
    Pixels(DynamicImage),
}

/// An 8-bit `HxWx3` (RGB), `HxWx4` (RGBA, composited on white like the file path),
/// `HxWx2` (grey + alpha) or `HxW` (grey) numpy array as an image.
fn array_image(py: Python<'_>, what: &str, obj: &Bound<'_, PyAny>) -> PyResult<DynamicImage> {
    let arr = obj.downcast::<PyUntypedArray>()?;
    let shape = arr.shape().to_vec();
    let ok_shape = match shape.len() {
        2 => true,
        3 => matches!(shape[2], 2..=4),
        _ => false,
    } && shape[0] > 0
        && shape[1] > 0;
    let is_u8 = arr.dtype().is_equiv_to(&numpy::dtype::<u8>(py));
    if !is_u8 || !ok_shape {
        return Err(invalid(
            py,
            format!(
                "{what}: an image array must be uint8 HxWx3 (RGB), HxWx4 (RGBA), HxWx2 or HxW (grey); got dtype {} shape {:?}",
                dtype_name(arr),
                shape
            ),
        ));
    }
    let a = obj.downcast::<PyArrayDyn<u8>>()?.readonly();
    let data: Vec<u8> = a.as_array().iter().copied().collect();
    let (h, w) = (shape[0] as u32, shape[1] as u32);
    let c = if shape.len() == 2 { 1 } else { shape[2] };
    let bad = || invalid(py, format!("{what}: {h}x{w}x{c} pixels do not fit an image buffer"));
    Ok(match c {
        1 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, data).ok_or_else(bad)?),
        2 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, data).ok_or_else(bad)?),
        3 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, data).ok_or_else(bad)?),
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, data).ok_or_else(bad)?),
    })
}

/// A loaded CLIP model (Hugging Face `CLIPModel` or open_clip hub directory), optionally
/// with adapters.
#[pyclass(module = "cliptune", name = "Clip", frozen)]
struct PyClip {
    model: Clip,
    tok: ClipTokenizer,
    adapters: Adapters,
    preprocess: PreprocessConfig,
    dir: PathBuf,
    device: Device,
}

impl PyClip {
    /// `[n, 3, H, W]` model input for the items, preprocessed exactly as `cliptune embed` does.
    fn pixels(&self, items: Vec<ImageItem>) -> cliptune::Result<Tensor> {
        let cfg = &self.preprocess;
        let (h, w) = cfg.crop;
        let n = items.len();
        if n == 0 {
            return Err(cliptune::Error::invalid("encode_image: no images given"));
        }
        // Files go through the CLI's own loader (in parallel, same errors); arrays are
        // already decoded.
        let files: Vec<PathBuf> = items
            .iter()
            .filter_map(|i| match i {
                ImageItem::File(p) => Some(p.clone()),
                ImageItem::Pixels(_) => None,
            })
            .collect();
        let (file_px, _, _) = if files.is_empty() {
            (vec![], vec![], vec![])
        } else {
            preprocess_files(&files, cfg, false)?
        };
        let per = 3 * h * w;
        let mut data = Vec::with_capacity(n * per);
        let mut next_file = 0;
        for item in &items {
            match item {
                ImageItem::File(_) => {
                    data.extend_from_slice(&file_px[next_file * per..(next_file + 1) * per]);
                    next_file += 1;
                }
                ImageItem::Pixels(img) => data.extend(preprocess(img, cfg)),
            }
        }
        Tensor::from_vec(data, &[n, 3, h, w], &self.device)
    }

    fn check_pixel_values(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
        let arr = obj.downcast::<PyUntypedArray>()?;
        let shape = arr.shape().to_vec();
        let (h, w) = self.preprocess.crop;
        let is_f32 = arr.dtype().is_equiv_to(&numpy::dtype::<f32>(py));
        if !is_f32 || shape.len() != 4 || shape[1] != 3 || shape[2] != h || shape[3] != w || shape[0] == 0 {
            return Err(invalid(
                py,
                format!(
                    "pixel_values must be float32 [n, 3, {h}, {w}] (n >= 1); got dtype {} shape {:?}",
                    dtype_name(arr),
                    shape
                ),
            ));
        }
        let a = obj.downcast::<PyArrayDyn<f32>>()?.readonly();
        let data: Vec<f32> = a.as_array().iter().copied().collect();
        Tensor::from_vec(data, &shape, &self.device).or_py(py)
    }

    /// Embed `pixels` batch by batch with the GIL released, checking for Ctrl-C between
    /// batches. The batch boundaries are those of `Clip::encode_image(pixels, batch)` (the
    /// CLI's call), so the rows are the CLI's bit for bit.
    fn encode_pixels(&self, py: Python<'_>, pixels: Tensor, batch: usize) -> PyResult<Tensor> {
        let n = pixels.dim(0);
        let batch = batch.max(1);
        if n <= batch {
            return py.allow_threads(|| self.model.encode_image(&pixels, batch)).or_py(py);
        }
        let host = pixels.to_vec().or_py(py)?;
        let per = host.len() / n;
        let mut rows = Vec::with_capacity(n * self.model.config.projection_dim);
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let e = py
                .allow_threads(|| {
                    let mut shape = pixels.shape().to_vec();
                    shape[0] = end - start;
                    let chunk = Tensor::from_slice(&host[start * per..end * per], &shape, &self.device)?;
                    self.model.encode_image(&chunk, batch)?.to_vec()
                })
                .or_py(py)?;
            rows.extend(e);
            py.check_signals()?;
        }
        Tensor::from_vec(rows, &[n, self.model.config.projection_dim], &self.device).or_py(py)
    }

    fn image_tensor(&self, py: Python<'_>, images: &Bound<'_, PyAny>, batch: usize) -> PyResult<Tensor> {
        if images.downcast::<PyUntypedArray>().is_ok() {
            let px = self.check_pixel_values(py, images)?;
            return self.encode_pixels(py, px, batch);
        }
        let list = images.downcast::<PyList>().map_err(|_| {
            invalid(
                py,
                "encode_image: expected a list of images (paths, PIL images, uint8 arrays) or a float32 pixel_values array".into(),
            )
        })?;
        let mut items = Vec::with_capacity(list.len());
        for (i, obj) in list.iter().enumerate() {
            let what = format!("images[{i}]");
            if let Ok(p) = obj.extract::<PathBuf>() {
                items.push(ImageItem::File(p));
            } else if obj.downcast::<PyUntypedArray>().is_ok() {
                items.push(ImageItem::Pixels(array_image(py, &what, &obj)?));
            } else {
                return Err(invalid(
                    py,
                    format!(
                        "{what}: expected a path, a PIL image or a uint8 HxWx3 array; got {}",
                        obj.get_type().name()?
                    ),
                ));
            }
        }
        let px = py.allow_threads(|| self.pixels(items)).or_py(py)?;
        self.encode_pixels(py, px, batch)
    }

    fn text_tensor(&self, py: Python<'_>, texts: Vec<String>, batch: usize) -> PyResult<Tensor> {
        if texts.is_empty() {
            return Err(invalid(py, "encode_text: no texts given".into()));
        }
        py.allow_threads(|| {
            let (input, truncated) = tokenize(&self.model, &self.tok, &texts)?;
            if truncated > 0 {
                eprintln!(
                    "note: {truncated} text(s) longer than the {}-token context were truncated (EOT kept last)",
                    self.model.config.text.context
                );
            }
            self.model.encode_text(&input, batch.max(1))
        })
        .or_py(py)
    }
}

#[pymethods]
impl PyClip {
    #[staticmethod]
    #[pyo3(signature = (path, device="auto", adapters=vec![]))]
    fn load(py: Python<'_>, path: PathBuf, device: &str, adapters: Vec<PathBuf>) -> PyResult<PyClip> {
        py.allow_threads(|| {
            let device = Device::select(device.parse()?)?;
            let mut model = Clip::load(&path, &device, WeightStorage::AsStored)?;
            let mut tok = ClipTokenizer::for_model_dir(&path)?;
            let adapters =
                load_adapters_named(&mut model, &mut tok, &adapters, &format!("the model {}", path.display()))?;
            let preprocess = PreprocessConfig::from_model_dir(&path, model.config.vision.image_size)?;
            Ok(PyClip {
                model,
                tok,
                adapters,
                preprocess,
                dir: path,
                device,
            })
        })
        .or_py(py)
    }

    #[getter]
    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    #[getter]
    fn device(&self) -> String {
        self.device.name()
    }

    #[getter]
    fn projection_dim(&self) -> usize {
        self.model.config.projection_dim
    }

    #[getter]
    fn image_size(&self) -> (usize, usize) {
        self.preprocess.crop
    }

    #[getter]
    fn context_length(&self) -> usize {
        self.model.config.text.context
    }

    #[pyo3(signature = (images, batch=64))]
    fn _encode_image<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>, batch: usize) -> PyResult<Bound<'py, PyAny>> {
        let t = self.image_tensor(py, images, batch)?;
        to_numpy(py, &t)
    }

    #[pyo3(signature = (texts, batch=64))]
    fn _encode_text<'py>(&self, py: Python<'py>, texts: Vec<String>, batch: usize) -> PyResult<Bound<'py, PyAny>> {
        let t = self.text_tensor(py, texts, batch)?;
        to_numpy(py, &t)
    }

    #[pyo3(signature = (images, texts, batch=64))]
    fn _logits<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        texts: Vec<String>,
        batch: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let img = self.image_tensor(py, images, batch)?;
        let txt = self.text_tensor(py, texts, batch)?;
        let l = py.allow_threads(|| self.model.logits(&img, &txt)).or_py(py)?;
        to_numpy(py, &l)
    }

    /// Class embeddings [classes, P] as `cliptune zero-shot` builds them (a prompt adapter's
    /// learned prompts replace the templates).
    #[pyo3(signature = (classes, templates="openai"))]
    fn _class_embeddings<'py>(
        &self,
        py: Python<'py>,
        classes: Vec<String>,
        templates: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = py
            .allow_threads(|| {
                let t = self::templates(templates)?;
                self.adapters.class_embeddings(&self.model, &self.tok, &classes, &t, "classes")
            })
            .or_py(py)?;
        to_numpy(py, &t)
    }

    /// Softmax over classes of exp(logit_scale) * cosine, as `cliptune zero-shot` prints.
    fn _probabilities<'py>(
        &self,
        py: Python<'py>,
        image_embeds: &Bound<'py, PyAny>,
        class_embeds: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.model.config.projection_dim;
        let mut ts = vec![];
        for (name, obj) in [("image_embeds", image_embeds), ("class_embeds", class_embeds)] {
            let arr = obj.downcast::<PyUntypedArray>()?;
            let shape = arr.shape().to_vec();
            if !arr.dtype().is_equiv_to(&numpy::dtype::<f32>(py)) || shape.len() != 2 || shape[1] != p || shape[0] == 0 {
                return Err(invalid(
                    py,
                    format!("{name} must be float32 [n, {p}] (n >= 1); got dtype {} shape {shape:?}", dtype_name(arr)),
                ));
            }
            let data: Vec<f32> = obj.downcast::<PyArrayDyn<f32>>()?.readonly().as_array().iter().copied().collect();
            ts.push(Tensor::from_vec(data, &shape, &self.device).or_py(py)?);
        }
        let pr = py.allow_threads(|| probabilities(&self.model, &ts[0], &ts[1])).or_py(py)?;
        to_numpy(py, &pr)
    }

    /// Token ids (BOS .. EOS, no padding) with this model's tokenizer (and its adapters' words).
    fn tokenize(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.tok.encode(t).or_py(py)).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Clip(path={:?}, device={:?}, projection_dim={})",
            self.dir.display().to_string(),
            self.device.name(),
            self.model.config.projection_dim
        )
    }
}


#[pymodule]
fn _cliptune(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClip>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(eval, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize_texts, m)?)?;
    Ok(())
}
