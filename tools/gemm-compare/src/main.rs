//! f32 C = A B^T (B a Linear weight [n, k]) at CLIP shapes: the `gemm` crate vs
//! `matrixmultiply` (threading), both on every core, best of 15. Prints GFLOP/s.
use std::time::Instant;
fn main() {
    for &(m, n, k) in &[(1600usize, 768usize, 768usize), (1600, 3072, 768), (1600, 768, 3072), (200, 1536, 512)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) * 0.01).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32) * 0.01).collect();
        let mut c = vec![0f32; m * n];
        let mut best_g = f64::MAX;
        let mut best_m = f64::MAX;
        for _ in 0..15 {
            let t = Instant::now();
            // C = A * B^T (B stored [n, k] like a Linear weight)
            unsafe {
                gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), k as isize, 1, 0.0f32, 1.0f32, false, false, false, gemm::Parallelism::Rayon(2));
            }
            best_g = best_g.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            unsafe {
                matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), 1, k as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
            }
            best_m = best_m.min(t.elapsed().as_secs_f64());
        }
        let fl = 2.0 * (m * n * k) as f64;
        println!("{m}x{n}x{k}: gemm {:.1} GFLOP/s, matrixmultiply(threading) {:.1} GFLOP/s", fl / best_g / 1e9, fl / best_m / 1e9);
    }
}
