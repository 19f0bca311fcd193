//! Fashion-MNIST (Zalando, MIT licence) from the Debian package `dataset-fashion-mnist`,
//! which installs the four IDX files, gzip-compressed, in `/usr/share/datasets/fashion-mnist/`:
//! `train-images-idx3-ubyte.gz` (60,000 images), `train-labels-idx1-ubyte.gz`,
//! `t10k-images-idx3-ubyte.gz` (10,000 images) and `t10k-labels-idx1-ubyte.gz`.
//!
//! Images are 28x28 8-bit grey, row-major, **white garment on a black background** (0 is
//! black). [`to_rgb_image`] keeps them that way: CLIP sees them as they are, and a run that
//! wants dark-on-light images can invert them itself.
//!
//! A directory holding the same files uncompressed (without `.gz`) works too; the
//! uncompressed file is used when both exist.
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Class names in label order (label 0 is "t-shirt", the dataset's "T-shirt/top").
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// Image side length in pixels.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;

const IMAGES_MAGIC: u32 = 0x0000_0803; // unsigned bytes, 3 dimensions
const LABELS_MAGIC: u32 = 0x0000_0801; // unsigned bytes, 1 dimension

/// Which half of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 images (`train-*`).
    Train,
    /// 10,000 images (`t10k-*`).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub fn default_dir() -> PathBuf {
    PathBuf::from("/usr/share/datasets/fashion-mnist")
}

/// Load one split: images (row-major 28x28 grey bytes) and labels (0..=9, indices into
/// [`FASHION_MNIST_CLASSES`]), in file order.
///
/// Errors name the file: missing files (with the `apt-get` line that installs them), corrupt
/// gzip data, a wrong IDX header or size, image and label counts that differ, labels above 9.
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<(Vec<[u8; PIXELS]>, Vec<u8>)> {
    let p = split.prefix();
    let (img_path, img_bytes) = read_idx_file(dir, &format!("{p}-images-idx3-ubyte"))?;
    let (lbl_path, lbl_bytes) = read_idx_file(dir, &format!("{p}-labels-idx1-ubyte"))?;

    let (dims, data) = parse_idx(&img_path, &img_bytes, IMAGES_MAGIC, 3)?;
    if dims[1] != SIDE || dims[2] != SIDE {
        return Err(Error::io(
            img_path.display(),
            format!("images are {}x{}, expected {SIDE}x{SIDE}", dims[1], dims[2]),
        ));
    }
    let images: Vec<[u8; PIXELS]> = data
        .chunks_exact(PIXELS)
        .map(|c| {
            let mut a = [0u8; PIXELS];
            a.copy_from_slice(c);
            a
        })
        .collect();

    let (ldims, labels) = parse_idx(&lbl_path, &lbl_bytes, LABELS_MAGIC, 1)?;
    if ldims[0] != images.len() {
        return Err(Error::io(
            lbl_path.display(),
            format!(
                "{} labels, but {} holds {} images",
                ldims[0],
                img_path.display(),
                images.len()
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= FASHION_MNIST_CLASSES.len())
    {
        return Err(Error::io(
            lbl_path.display(),
            format!("label {l} at index {i} is not a class (0..=9)"),
        ));
    }
    Ok((images, labels.to_vec()))
}

/// One 28x28 image as an RGB image (grey copied to the three channels), white-on-black as
/// stored in the dataset.
pub fn to_rgb_image(pixels: &[u8; PIXELS]) -> image::DynamicImage {
    let mut rgb = image::RgbImage::new(SIDE as u32, SIDE as u32);
    for (dst, &v) in rgb.pixels_mut().zip(pixels.iter()) {
        *dst = image::Rgb([v, v, v]);
    }
    image::DynamicImage::ImageRgb8(rgb)
}

/// Read `dir/name` if present, else `dir/name.gz` decompressed. Returns the path read.
fn read_idx_file(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let plain = dir.join(name);
    if plain.is_file() {
        let bytes = std::fs::read(&plain).map_err(|e| Error::io(plain.display(), e))?;
        return Ok((plain, bytes));
    }
    let gz = dir.join(format!("{name}.gz"));
    let file = match std::fs::File::open(&gz) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::io(
                gz.display(),
                format!(
                    "Fashion-MNIST file not found (nor {name} uncompressed); install the Debian package \
                     with `apt-get install dataset-fashion-mnist` (it puts the files in {}) or pass the \
                     folder that holds them",
                    default_dir().display()
                ),
            ))
        }
        Err(e) => return Err(Error::io(gz.display(), e)),
    };
    let hint = file.metadata().map(|m| m.len() as usize * 6).unwrap_or(0);
    let mut bytes = Vec::with_capacity(hint);
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(gz.display(), format!("corrupt gzip data: {e}")))?;
    Ok((gz, bytes))
}

/// Check an IDX header (magic, dimensions, exact size) and return the dimensions and data.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], magic: u32, ndim: usize) -> Result<(Vec<usize>, &'a [u8])> {
    let head = 4 + 4 * ndim;
    if bytes.len() < head {
        return Err(Error::io(
            path.display(),
            format!("too short for an IDX file ({} bytes)", bytes.len()),
        ));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    if word(0) != magic {
        return Err(Error::io(
            path.display(),
            format!(
                "not an IDX file of the expected kind (magic {:#010x}, expected {magic:#010x})",
                word(0)
            ),
        ));
    }
    let dims: Vec<usize> = (1..=ndim).map(|i| word(i) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let data = &bytes[head..];
    if expected != Some(data.len()) {
        return Err(Error::io(
            path.display(),
            format!(
                "truncated or corrupt IDX file: header says {:?} ({} bytes of data) but it holds {} bytes",
                dims,
                expected.map(|e| e.to_string()).unwrap_or_else(|| "too many".into()),
                data.len()
            ),
        ));
    }
    Ok((dims, data))
}
