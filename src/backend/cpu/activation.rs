//! Activation math shared by the CPU kernels (matmul epilogue, standalone act).
//! WGSL twin: `act_apply`/`act_grad` in shaders/common.wgsl (same formulas).
use crate::backend::Act;

/// erf in f32 with max abs error 1.5e-7 (Abramowitz & Stegun 7.1.26), branch-free
/// so activation loops vectorise (the f64 version cost more than the GEMM it follows).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let r = 1.0 - poly * exp_fast(-z * z);
    r.copysign(x)
}

/// e^x to ~1 ulp (Cephes expf polynomial) in plain arithmetic that auto-vectorises:
/// 3x faster than libm's `expf` here. For x <= 88 (softmax passes x - max <= 0).
/// Exactly 0 below e^-87 (masked -inf logits stay 0); NaN stays NaN.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer without an SSE4.1 round.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33654, 88.0);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut q = 1.987_569_2e-4f32;
    q = q * r + 1.398_199_9e-3;
    q = q * r + 8.333_452e-3;
    q = q * r + 4.166_579_6e-2;
    q = q * r + 1.666_666_5e-1;
    q = q * r + 0.5;
    let e = q * r * r + r + 1.0;
    // t's low mantissa bits hold n: no float-to-int conversion (that would not vectorise).
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    if x < -87.33654 {
        0.0
    } else {
        e * scale
    }
}

const SQRT_2_INV: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
pub fn act_apply(x: f32, act: Act) -> f32 {
    match act {
        Act::None => x,
        Act::QuickGelu => x * sigmoid(1.702 * x),
        Act::Gelu => 0.5 * x * (1.0 + erf(x * SQRT_2_INV)),
    }
}

/// Apply `act` to a whole slice in place. The match is outside the loop so each
/// loop is monomorphic and auto-vectorises (per-element dispatch cost ~3x here).
pub fn act_inplace(xs: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::QuickGelu => xs.iter_mut().for_each(|x| *x = act_apply(*x, Act::QuickGelu)),
        Act::Gelu => xs.iter_mut().for_each(|x| *x = act_apply(*x, Act::Gelu)),
    }
}

/// `out = act(xs)` elementwise, vectorised like [`act_inplace`].
pub fn act_into(out: &mut [f32], xs: &[f32], act: Act) {
    match act {
        Act::None => out.copy_from_slice(xs),
        Act::QuickGelu => out
            .iter_mut()
            .zip(xs)
            .for_each(|(o, &x)| *o = act_apply(x, Act::QuickGelu)),
        Act::Gelu => out.iter_mut().zip(xs).for_each(|(o, &x)| *o = act_apply(x, Act::Gelu)),
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
        Act::Gelu => 0.5 * (1.0 + erf(x * SQRT_2_INV)) + x * INV_SQRT_2PI * exp_fast(-0.5 * x * x),
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
