// Shared by every kernel (prepended by context.rs).

// Flat invocation index for a grid made by grid_1d(): x spills into y past 65535 groups.
fn flat_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, per_group: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * per_group + lid;
}

// f16 storage: two halves per u32 word, little-endian (element 2i in the low half).
// Call as f16_at(words[i >> 1u], i).
fn f16_at(word: u32, i: u32) -> f32 {
    let pair = unpack2x16float(word);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// bf16 storage: the high 16 bits of an f32. Call as bf16_at(words[i >> 1u], i).
fn bf16_at(word: u32, i: u32) -> f32 {
    let h = select(word & 0xffffu, word >> 16u, (i & 1u) == 1u);
    return bitcast<f32>(h << 16u);
}

// Activations; codes from act_code() in src/backend/cpu/activation.rs (the CPU twin):
// 0 none, 1 quick_gelu (x * sigmoid(1.702 x)), 2 exact erf GELU.
fn erf_approx(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (same as the CPU twin).
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
    let r = 1.0 - poly * exp(-z * z);
    return select(-r, r, x >= 0.0);
}

fn sigmoid_f(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

fn act_apply(x: f32, code: u32) -> f32 {
    if (code == 1u) { return x * sigmoid_f(1.702 * x); }
    if (code == 2u) { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678)); }
    return x;
}

fn act_grad(x: f32, code: u32) -> f32 {
    if (code == 1u) {
        let s = sigmoid_f(1.702 * x);
        return s + 1.702 * x * s * (1.0 - s);
    }
    if (code == 2u) {
        return 0.5 * (1.0 + erf_approx(x * 0.70710678)) + x * 0.39894228 * exp(-0.5 * x * x);
    }
    return 1.0;
}
