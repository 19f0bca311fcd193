//! Classification and retrieval metrics on score / feature matrices.
//!
//! Ranking convention (used by every metric here): candidates are ordered by a
//! *stable* sort on descending score, so among exactly equal scores the one with
//! the lower index comes first. The rank of candidate `j` is therefore
//! `#{l : s_l > s_j} + #{l < j : s_l == s_j}` (0-based), and it is a hit at `k`
//! when its rank is `< k`. This is computed by counting, without sorting.
use crate::error::{Error, Result};
use rayon::prelude::*;

/// 0-based rank of candidate `j` in `row` under the stable-descending convention.
#[inline]
fn stable_rank(row: &[f32], j: usize) -> usize {
    let s = row[j];
    let mut rank = 0usize;
    for (l, &v) in row.iter().enumerate() {
        if v > s || (v == s && l < j) {
            rank += 1;
        }
    }
    rank
}

fn check_finite(op: &str, what: &str, v: &[f32]) -> Result<()> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(format!(
            "{op}: {what} contains a non-finite value ({}) at flat index {i}",
            v[i]
        )));
    }
    Ok(())
}

/// Top-k accuracy of `scores` (`n x c`, row-major) against `labels` (`n` values
/// in `0..c`), as a fraction in `[0, 1]`.
///
/// Ties: a row counts as correct only if the true class is among the first `k`
/// after a stable sort by descending score, i.e. a tied class with a lower index
/// is ranked ahead of the true class. `k >= c` makes every row correct.
///
/// Errors: `n == 0` or `c == 0`, `k == 0`, `scores.len() != n * c`,
/// `labels.len() != n`, a label `>= c`, or a non-finite score.
pub fn topk_accuracy(scores: &[f32], n: usize, c: usize, labels: &[usize], k: usize) -> Result<f32> {
    const OP: &str = "topk_accuracy";
    if n == 0 || c == 0 {
        return Err(Error::shape(OP, format!("empty score matrix ({n} x {c})")));
    }
    if k == 0 {
        return Err(Error::invalid(format!("{OP}: k must be at least 1")));
    }
    if scores.len() != n * c {
        return Err(Error::shape(
            OP,
            format!(
                "scores has {} values, expected n x c = {n} x {c} = {}",
                scores.len(),
                n * c
            ),
        ));
    }
    if labels.len() != n {
        return Err(Error::shape(OP, format!("{} labels for {n} rows", labels.len())));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
        return Err(Error::invalid(format!(
            "{OP}: label {l} of row {i} is out of range for {c} classes"
        )));
    }
    check_finite(OP, "scores", scores)?;
    let hits = scores
        .par_chunks(c)
        .zip(labels.par_iter())
        .filter(|(row, &y)| stable_rank(row, y) < k)
        .count();
    Ok(hits as f32 / n as f32)
}

/// Recall at 1, 5 and 10 in both retrieval directions, as fractions in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalMetrics {
    /// Image -> text: an image is a hit at `k` if ANY of its captions is in its top `k` texts.
    pub i2t: [f32; 3],
    /// Text -> image: a caption is a hit at `k` if its own image is in its top `k` images.
    pub t2i: [f32; 3],
}

/// The `k` values of [`RetrievalMetrics`]' three entries.
pub const RECALL_KS: [usize; 3] = [1, 5, 10];

/// Rows per block of the similarity matrix (bounds memory to `BLOCK x n_other` floats per task).
const BLOCK: usize = 128;

/// L2-normalise rows into a new buffer (zero rows stay zero).
fn normalise_rows(x: &[f32], d: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    out.par_chunks_mut(d).for_each(|row| {
        let nrm = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt();
        if nrm > 0.0 {
            let inv = (1.0 / nrm) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
    out
}

/// `out (m x n) = a (m x d) * b (n x d)^T`, all row-major.
fn gemm_abt(a: &[f32], m: usize, b: &[f32], n: usize, d: usize, out: &mut [f32]) {
    debug_assert_eq!(a.len(), m * d);
    debug_assert_eq!(b.len(), n * d);
    debug_assert_eq!(out.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices are exactly m x d, n x d (read as d x n with strides 1, d)
    // and m x n, as checked above and by the callers.
    unsafe {
        matrixmultiply::sgemm(
            m,
            d,
            n,
            1.0,
            a.as_ptr(),
            d as isize,
            1,
            b.as_ptr(),
            1,
            d as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// For each query row of `q` (`n_q x d`), the 0-based best rank (stable-descending
/// convention) among the candidates `cand` (`n_c x d`) of any candidate in its
/// positive set, as given by `positives(query) -> &[candidate]`.
fn best_ranks<'a, F>(q: &[f32], n_q: usize, cand: &[f32], n_c: usize, d: usize, positives: F) -> Vec<usize>
where
    F: Fn(usize) -> &'a [usize] + Sync,
{
    let mut ranks = vec![0usize; n_q];
    ranks.par_chunks_mut(BLOCK).enumerate().for_each(|(bi, rank_block)| {
        let r0 = bi * BLOCK;
        let m = rank_block.len();
        let mut sims = vec![0f32; m * n_c];
        gemm_abt(&q[r0 * d..(r0 + m) * d], m, cand, n_c, d, &mut sims);
        for (i, r) in rank_block.iter_mut().enumerate() {
            let row = &sims[i * n_c..(i + 1) * n_c];
            *r = positives(r0 + i)
                .iter()
                .map(|&j| stable_rank(row, j))
                .min()
                .unwrap_or(usize::MAX);
        }
    });
    ranks
}

fn recalls(ranks: &[usize]) -> [f32; 3] {
    let n = ranks.len() as f32;
    RECALL_KS.map(|k| ranks.iter().filter(|&&r| r < k).count() as f32 / n)
}

/// Image-text retrieval recall (R@1, R@5, R@10) in both directions, following the
/// standard COCO/Flickr protocol (as in open_clip's evaluation).
///
/// - `img`: `n_img x d` image features, `txt`: `n_txt x d` caption features
///   (row-major; rows are L2-normalised here, so the score is cosine similarity).
/// - `txt_to_img[t]`: the index of caption `t`'s image. Images may have several captions.
///
/// Image -> text counts a hit at `k` if any of the image's captions is in the
/// image's top `k` captions; text -> image counts a hit if the caption's image is
/// in its top `k` images. Exact score ties are broken by the stable-descending
/// convention of this module (lower index first).
///
/// Errors: `d == 0`, no images or captions, lengths that are not multiples of `d`,
/// `txt_to_img.len() != n_txt`, an image index out of range, an image with no
/// caption (image -> text recall is undefined for it), or non-finite features.
pub fn retrieval(img: &[f32], txt: &[f32], d: usize, txt_to_img: &[usize]) -> Result<RetrievalMetrics> {
    const OP: &str = "retrieval";
    if d == 0 {
        return Err(Error::shape(OP, "feature dimension d is 0"));
    }
    if img.len() % d != 0 || txt.len() % d != 0 {
        return Err(Error::shape(
            OP,
            format!(
                "feature lengths (images {}, captions {}) are not multiples of d = {d}",
                img.len(),
                txt.len()
            ),
        ));
    }
    let (n_img, n_txt) = (img.len() / d, txt.len() / d);
    if n_img == 0 || n_txt == 0 {
        return Err(Error::shape(
            OP,
            format!("{n_img} images and {n_txt} captions: need at least one of each"),
        ));
    }
    if txt_to_img.len() != n_txt {
        return Err(Error::shape(
            OP,
            format!("txt_to_img has {} entries for {n_txt} captions", txt_to_img.len()),
        ));
    }
    if let Some((t, &i)) = txt_to_img.iter().enumerate().find(|(_, &i)| i >= n_img) {
        return Err(Error::invalid(format!(
            "{OP}: caption {t} points to image {i}, but there are only {n_img} images"
        )));
    }
    check_finite(OP, "image features", img)?;
    check_finite(OP, "caption features", txt)?;

    // Captions of each image (ascending caption index).
    let mut caps: Vec<Vec<usize>> = vec![Vec::new(); n_img];
    for (t, &i) in txt_to_img.iter().enumerate() {
        caps[i].push(t);
    }
    if let Some(i) = caps.iter().position(|c| c.is_empty()) {
        let missing = caps.iter().filter(|c| c.is_empty()).count();
        return Err(Error::invalid(format!(
            "{OP}: image {i} has no caption ({missing} image(s) without captions); \
             every image needs at least one caption"
        )));
    }

    let img = normalise_rows(img, d);
    let txt = normalise_rows(txt, d);
    let i2t_ranks = best_ranks(&img, n_img, &txt, n_txt, d, |i| caps[i].as_slice());
    let t2i_ranks = best_ranks(&txt, n_txt, &img, n_img, d, |t| std::slice::from_ref(&txt_to_img[t]));
    Ok(RetrievalMetrics {
        i2t: recalls(&i2t_ranks),
        t2i: recalls(&t2i_ranks),
    })
}
