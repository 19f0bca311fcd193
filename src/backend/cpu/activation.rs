//! Activation math shared by the CPU kernels (matmul epilogue, standalone act).
//! WGSL twin: `act_apply`/`act_grad` in shaders/common.wgsl (same formulas).
use crate::backend::Act;

/// erf with max abs error 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), in f64
/// so the f32 result is correctly rounded in practice.
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * (-z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
        .exp();
    (if x >= 0.0 { 1.0 - r } else { r - 1.0 }) as f32
}

const SQRT_2_INV: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[inline]
pub fn act_apply(x: f32, act: Act) -> f32 {
    match act {
        Act::None => x,
        Act::QuickGelu => x * sigmoid(1.702 * x),
        Act::Gelu => 0.5 * x * (1.0 + erf(x * SQRT_2_INV)),
    }
}

/// d act(x) / dx.
#[inline]
pub fn act_grad(x: f32, act: Act) -> f32 {
    match act {
        Act::None => 1.0,
        Act::QuickGelu => {
            let s = sigmoid(1.702 * x);
            s + 1.702 * x * s * (1.0 - s)
        }
        Act::Gelu => 0.5 * (1.0 + erf(x * SQRT_2_INV)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp(),
    }
}

/// Activation code passed to WGSL kernels (`act_apply(x, code)`).
pub fn act_code(act: Act) -> u32 {
    match act {
        Act::None => 0,
        Act::QuickGelu => 1,
        Act::Gelu => 2,
    }
}
