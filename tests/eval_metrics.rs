//! Top-k accuracy and image-text retrieval recall on hand-made examples.
use cliptune::error::ErrorKind;
use cliptune::eval::metrics::{retrieval, topk_accuracy};

#[test]
fn topk_basic() {
    // 3 rows x 4 classes.
    let s = [
        0.1, 0.9, 0.3, 0.2, // order 1,2,3,0
        0.5, 0.1, 0.2, 0.7, // order 3,0,2,1
        0.0, 0.0, 1.0, 0.5, // order 2,3,0,1
    ];
    let y = [1, 0, 1];
    assert_eq!(topk_accuracy(&s, 3, 4, &y, 1).unwrap(), 1.0 / 3.0);
    assert_eq!(topk_accuracy(&s, 3, 4, &y, 2).unwrap(), 2.0 / 3.0);
    assert_eq!(topk_accuracy(&s, 3, 4, &y, 3).unwrap(), 2.0 / 3.0);
    assert_eq!(topk_accuracy(&s, 3, 4, &y, 4).unwrap(), 1.0);
    assert_eq!(topk_accuracy(&s, 3, 4, &y, 10).unwrap(), 1.0);
}

#[test]
fn topk_ties_use_stable_descending_order() {
    // All equal: stable order is 0,1,2,3, so class j has rank j.
    let s = [0.5f32; 4];
    for (label, first_k) in [(0usize, 1usize), (1, 2), (2, 3), (3, 4)] {
        for k in 1..=4 {
            let acc = topk_accuracy(&s, 1, 4, &[label], k).unwrap();
            assert_eq!(acc, if k >= first_k { 1.0 } else { 0.0 }, "label {label} k {k}");
        }
    }
    // Partial tie: [0.2, 0.9, 0.9, 0.1], true class 2 is tied with class 1 which
    // comes first, so it is rank 1: wrong at k=1, right at k=2.
    let s = [0.2, 0.9, 0.9, 0.1];
    assert_eq!(topk_accuracy(&s, 1, 4, &[2], 1).unwrap(), 0.0);
    assert_eq!(topk_accuracy(&s, 1, 4, &[2], 2).unwrap(), 1.0);
    assert_eq!(topk_accuracy(&s, 1, 4, &[1], 1).unwrap(), 1.0);
}

#[test]
fn topk_bad_inputs() {
    let s = [0.1f32, 0.2, 0.3, 0.4];
    assert_eq!(
        topk_accuracy(&s, 2, 2, &[0, 2], 1).unwrap_err().kind,
        ErrorKind::Invalid
    ); // label >= c
    assert_eq!(topk_accuracy(&s, 2, 3, &[0, 1], 1).unwrap_err().kind, ErrorKind::Shape); // size
    assert_eq!(topk_accuracy(&s, 2, 2, &[0], 1).unwrap_err().kind, ErrorKind::Shape); // labels
    assert!(topk_accuracy(&s, 2, 2, &[0, 1], 0).is_err()); // k = 0
    assert!(topk_accuracy(&[], 0, 2, &[], 1).is_err()); // empty
    assert!(topk_accuracy(&[0.1, f32::NAN, 0.3, 0.4], 2, 2, &[0, 1], 1).is_err());
}

// Hand-made retrieval examples use vectors whose entries are 0, +-0.5 or +-1 with
// norm exactly 1 (or one-hot candidates), so every similarity is exact and ties are
// real ties.
const H: f32 = 0.5;

fn small_example() -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    // Images: e0, e1, e2 (d = 4).
    let img = vec![
        1.0, 0.0, 0.0, 0.0, //
        0.0, 1.0, 0.0, 0.0, //
        0.0, 0.0, 1.0, 0.0,
    ];
    // Captions (t -> image): t0 -> 0, t1 -> 0, t2 -> 1, t3 -> 2, t4 -> 2.
    let txt = vec![
        H, H, H, H, // t0
        1.0, 0.0, 0.0, 0.0, // t1
        H, H, H, -H, // t2
        0.0, 1.0, 0.0, 0.0, // t3
        -H, H, H, H, // t4
    ];
    (img, txt, vec![0, 0, 1, 2, 2])
}

#[test]
fn retrieval_hand_computed() {
    let (img, txt, t2i) = small_example();
    // Similarities (rows: images, columns: captions t0..t4):
    //   I0: [.5, 1, .5, 0, -.5]  order t1,t0,t2,t3,t4; own {t0,t1}: best rank 0
    //   I1: [.5, 0, .5, 1, .5]   order t3,t0,t2,t4,t1; own {t2}: rank 2
    //   I2: [.5, 0, .5, 0, .5]   order t0,t2,t4,t1,t3; own {t3,t4}: t4 rank 2, t3 rank 4 -> 2
    // i2t ranks [0, 2, 2]: R@1 = 1/3, R@5 = R@10 = 1.
    // Text -> image (columns): t0 [.5,.5,.5] own I0 rank 0 (ties: lower index first);
    //   t1 [1,0,0] rank 0; t2 [.5,.5,.5] own I1 rank 1; t3 [0,1,0] own I2: I1 higher,
    //   I0 tied and lower -> rank 2; t4 [-.5,.5,.5] own I2: I1 tied and lower -> rank 1.
    // t2i ranks [0,0,1,2,1]: R@1 = 2/5, R@5 = R@10 = 1.
    let m = retrieval(&img, &txt, 4, &t2i).unwrap();
    assert_eq!(m.i2t, [1.0 / 3.0, 1.0, 1.0]);
    assert_eq!(m.t2i, [2.0 / 5.0, 1.0, 1.0]);
}

/// 16 one-hot vectors and 16 "designed" vectors with own index t whose own
/// coordinate has a known rank r_t: the own coordinate is 1, r_t others are 2.
fn ranked_example() -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let n = 16;
    let mut onehot = vec![0f32; n * n];
    for i in 0..n {
        onehot[i * n + i] = 1.0;
    }
    let ranks = [0usize, 0, 0, 0, 1, 2, 4, 4, 5, 6, 9, 9, 10, 12, 15, 3];
    let mut designed = vec![0f32; n * n];
    for t in 0..n {
        designed[t * n + t] = 1.0;
        for j in 1..=ranks[t] {
            designed[t * n + (t + j) % n] = 2.0;
        }
    }
    // Ties: t5 gets a 1 at index 0 (tied, lower index: rank 2 -> 3);
    // t4 gets a 1 at index 10 (tied, higher index: rank stays 1).
    designed[5 * n] = 1.0;
    designed[4 * n + 10] = 1.0;
    // Final ranks: [0,0,0,0,1,3,4,4,5,6,9,9,10,12,15,3]
    // R@1 = 4/16, R@5 = 9/16 (ranks < 5), R@10 = 13/16 (ranks < 10).
    (onehot, designed, (0..n).collect())
}

#[test]
fn retrieval_recall_at_5_and_10() {
    let (onehot, designed, ident) = ranked_example();
    let expected = [4.0 / 16.0, 9.0 / 16.0, 13.0 / 16.0];
    // Text -> image: captions are the designed vectors, images one-hot.
    let m = retrieval(&onehot, &designed, 16, &ident).unwrap();
    assert_eq!(m.t2i, expected);
    // Image -> text: images are the designed vectors, captions one-hot.
    let m = retrieval(&designed, &onehot, 16, &ident).unwrap();
    assert_eq!(m.i2t, expected);
}

#[test]
fn retrieval_scale_invariant() {
    // Features need not be normalised: rows are normalised inside (powers of two
    // keep it exact).
    let (img, txt, t2i) = small_example();
    let base = retrieval(&img, &txt, 4, &t2i).unwrap();
    let img2: Vec<f32> = img
        .iter()
        .enumerate()
        .map(|(i, v)| v * [2.0, 0.25, 8.0][i / 4])
        .collect();
    let txt2: Vec<f32> = txt
        .iter()
        .enumerate()
        .map(|(i, v)| v * [4.0, 0.5, 1.0, 16.0, 2.0][i / 4])
        .collect();
    assert_eq!(retrieval(&img2, &txt2, 4, &t2i).unwrap(), base);
}

#[test]
fn retrieval_bigger_than_one_block() {
    // 300 images, 2 captions each equal to their image: everything retrieved at 1.
    let (n, d) = (300usize, 8usize);
    let mut state = 12345u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let img: Vec<f32> = (0..n * d).map(|_| rnd()).collect();
    let mut txt = Vec::new();
    let mut t2i = Vec::new();
    for i in 0..n {
        for _ in 0..2 {
            txt.extend_from_slice(&img[i * d..(i + 1) * d]);
            t2i.push(i);
        }
    }
    let m = retrieval(&img, &txt, d, &t2i).unwrap();
    assert_eq!(m.i2t, [1.0, 1.0, 1.0]);
    assert_eq!(m.t2i, [1.0, 1.0, 1.0]);
}

#[test]
fn retrieval_bad_inputs() {
    let img = vec![1.0, 0.0, 0.0, 1.0];
    let txt = vec![1.0, 0.0, 0.0, 1.0, H, H];
    // caption index out of range
    assert_eq!(
        retrieval(&img, &txt, 2, &[0, 1, 2]).unwrap_err().kind,
        ErrorKind::Invalid
    );
    // wrong number of mappings
    assert_eq!(retrieval(&img, &txt, 2, &[0, 1]).unwrap_err().kind, ErrorKind::Shape);
    // length not a multiple of d
    assert_eq!(
        retrieval(&img[..3], &txt, 2, &[0, 1, 1]).unwrap_err().kind,
        ErrorKind::Shape
    );
    // image without caption
    assert!(retrieval(&img, &txt, 2, &[0, 0, 0]).is_err());
    // d = 0, empty
    assert!(retrieval(&img, &txt, 0, &[0, 1, 1]).is_err());
    assert!(retrieval(&[], &txt, 2, &[0, 1, 1]).is_err());
    // non-finite
    let mut bad = txt.clone();
    bad[1] = f32::INFINITY;
    assert!(retrieval(&img, &bad, 2, &[0, 1, 1]).is_err());
}
