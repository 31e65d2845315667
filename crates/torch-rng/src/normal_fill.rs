//! Box-Muller on blocks of 16 floats, as torch's x86-64 `NormalFill16<float>` (AVX2) computes it.
//!
//! torch evaluates `log` and `sincos` with the Cephes-style polynomials of `avx_mathfun.h`
//! (`log256_ps`, `sincos256_ps`), and the compiler contracted each multiply that feeds an add into a
//! fused multiply-add. Rounding only once there moves about 1 % of the f32 outputs by 1–2 ulp, so
//! every `mul_add` below stands exactly where the compiled kernel has a `vfmadd`; a plain `a * b + c`
//! is only written where the kernel keeps two roundings. The scalar lane code is written without
//! branches so that LLVM can vectorise the 8 lanes of a block.
#![allow(
    clippy::excessive_precision,
    clippy::unreadable_literal,
    clippy::approx_constant
)]

/// `float(2 * pi)`: torch rounds the double constant to f32 before the product with the uniform.
const TWO_PI: f32 = (2.0 * std::f64::consts::PI) as f32;

// Constants of avx_mathfun.h. They are double literals there, rounded to f32 by the constant's
// type; `as f32` repeats that double rounding (decimal -> f64 -> f32) instead of parsing to f32.
// log256_ps (Cephes logf).
const SQRTHF: f32 = 0.707106781186547524_f64 as f32;
const LOG_P: [f32; 9] = [
    7.0376836292E-2_f64 as f32,
    -1.1514610310E-1_f64 as f32,
    1.1676998740E-1_f64 as f32,
    -1.2420140846E-1_f64 as f32,
    1.4249322787E-1_f64 as f32,
    -1.6668057665E-1_f64 as f32,
    2.0000714765E-1_f64 as f32,
    -2.4999993993E-1_f64 as f32,
    3.3333331174E-1_f64 as f32,
];
const LOG_Q1: f32 = -2.12194440e-4_f64 as f32;
const LOG_Q2: f32 = 0.693359375_f64 as f32;
/// Smallest normal f32: the kernel clamps its input here to skip denormals.
const MIN_NORM_POS: f32 = f32::MIN_POSITIVE;

// sincos256_ps (Cephes sinf/cosf).
const FOPI: f32 = 1.27323954473516_f64 as f32; // 4 / pi
const DP1: f32 = -0.78515625_f64 as f32;
const DP2: f32 = -2.4187564849853515625e-4_f64 as f32;
const DP3: f32 = -3.77489497744594108e-8_f64 as f32;
const SIN_P: [f32; 3] = [
    -1.9515295891E-4_f64 as f32,
    8.3321608736E-3_f64 as f32,
    -1.6666654611E-1_f64 as f32,
];
const COS_P: [f32; 3] = [
    2.443315711809948E-005_f64 as f32,
    -1.388731625493765E-003_f64 as f32,
    4.166664568298827E-002_f64 as f32,
];

/// `log256_ps` for one lane.
#[inline(always)]
fn log_lane(x: f32) -> f32 {
    let invalid = x <= 0.0;
    let x = x.max(MIN_NORM_POS);
    let bits = x.to_bits();
    // Exponent and mantissa in [0.5, 1).
    let mut e = ((bits >> 23) as i32 - 0x7f) as f32 + 1.0;
    let mut m = f32::from_bits((bits & !0x7f80_0000) | 0.5f32.to_bits());
    // if m < sqrt(1/2) { e -= 1; m = 2m - 1 } else { m -= 1 }, in the kernel's order of operations.
    let below = m < SQRTHF;
    let tmp = if below { m } else { 0.0 };
    m -= 1.0;
    e -= if below { 1.0 } else { 0.0 };
    m += tmp;

    let z = m * m;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(m, p);
    }
    y = (y * m).mul_add(z, e * LOG_Q1);
    y -= z * 0.5;
    let r = e.mul_add(LOG_Q2, m + y);
    if invalid { f32::NAN } else { r }
}

/// `sincos256_ps` for one lane: `(sin x, cos x)`.
#[inline(always)]
fn sincos_lane(x: f32) -> (f32, f32) {
    const SIGN: u32 = 0x8000_0000;
    let sign_in = x.to_bits() & SIGN;
    let mut x = x.abs();

    // Octant j, rounded up to even (Cephes: j = (j + 1) & ~1).
    let j = (((x * FOPI) as i32).wrapping_add(1)) & !1;
    let y = j as f32;
    let swap_sign_sin = ((j & 4) as u32) << 29;
    let poly_is_cos = (j & 2) == 0;
    let sign_cos = ((!(j.wrapping_sub(2)) & 4) as u32) << 29;
    let sign_sin = sign_in ^ swap_sign_sin;

    // Extended-precision range reduction x - j*pi/4.
    x = y.mul_add(DP1, x);
    x = y.mul_add(DP2, x);
    x = y.mul_add(DP3, x);

    let z = x * x;
    let mut c = COS_P[0].mul_add(z, COS_P[1]).mul_add(z, COS_P[2]);
    c *= z;
    c = c.mul_add(z, -(z * 0.5));
    c += 1.0;

    let mut s = SIN_P[0].mul_add(z, SIN_P[1]).mul_add(z, SIN_P[2]);
    s *= z;
    s = s.mul_add(x, x);

    // The kernel selects with and/andnot and then adds the masked-out zero, so a -0.0 becomes +0.0.
    let (sin, cos) = if poly_is_cos {
        (s + 0.0, c + 0.0)
    } else {
        (c + 0.0, s + 0.0)
    };
    (
        f32::from_bits(sin.to_bits() ^ sign_sin),
        f32::from_bits(cos.to_bits() ^ sign_cos),
    )
}

/// One block: `d[j]` (j < 8) and `d[j + 8]` hold uniforms in [0, 1) on entry and standard normals
/// on return (`r cos θ` and `r sin θ` with `r = sqrt(-2 ln(1 - d[j]))`, `θ = 2π d[j + 8]`).
#[inline(always)]
fn block16(d: &mut [f32; 16]) {
    let (lo, hi) = d.split_at_mut(8);
    for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
        let radius = (-2.0 * log_lane(1.0 - *a)).sqrt();
        let (sin, cos) = sincos_lane(TWO_PI * *b);
        // torch's final `fmadd(n, std, mean)` with std = 1, mean = 0: exact, but turns -0.0 into +0.0.
        *a = (radius * cos).mul_add(1.0, 0.0);
        *b = (radius * sin).mul_add(1.0, 0.0);
    }
}

/// Inlined into both callers so that the FMA variant really compiles `mul_add` to `vfmadd`
/// (target features do not reach a function that is called rather than inlined).
#[inline(always)]
fn blocks(data: &mut [f32]) {
    for chunk in data.chunks_exact_mut(16) {
        if let Ok(block) = <&mut [f32; 16]>::try_from(chunk) {
            block16(block);
        }
    }
}

/// The same code compiled with hardware FMA and AVX2, so `mul_add` is one instruction and the 8
/// lanes vectorise. Results are identical to [`blocks_portable`] (a fused multiply-add rounds once
/// whether done by `vfmadd` or by libm's `fmaf`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn blocks_fma(data: &mut [f32]) {
    blocks(data)
}

/// Without hardware FMA, `mul_add` is libm's correctly rounded `fmaf`: slower, same bits.
fn blocks_portable(data: &mut [f32]) {
    blocks(data)
}

/// Box-Muller over every full block of 16 in `data` (a trailing partial block is left untouched).
pub(crate) fn fill_blocks(data: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `blocks_fma` is compiled for (checked just above).
        unsafe { blocks_fma(data) };
        return;
    }
    blocks_portable(data)
}

/// torch's scalar `NormalFill16<double>`: libm `log`, `cos`, `sin` in f64, no contraction.
pub(crate) fn fill_blocks_f64(data: &mut [f64]) {
    const TWO_PI_F64: f64 = 2.0 * std::f64::consts::PI;
    for chunk in data.chunks_exact_mut(16) {
        let (lo, hi) = chunk.split_at_mut(8);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let radius = (-2.0 * (1.0 - *a).ln()).sqrt();
            let theta = TWO_PI_F64 * *b;
            *a = (radius * theta.cos()).mul_add(1.0, 0.0);
            *b = (radius * theta.sin()).mul_add(1.0, 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_are_accurate() {
        // Not a parity check (the goldens do that): the constants and signs are wired correctly.
        for i in 1..=1000 {
            let x = i as f32 / 1000.0;
            assert!(
                (log_lane(x) - x.ln()).abs() <= 2e-7 * x.ln().abs().max(1.0),
                "log {x}"
            );
            let t = x * TWO_PI;
            let (s, c) = sincos_lane(t);
            assert!(
                (s - t.sin()).abs() < 3e-7 && (c - t.cos()).abs() < 3e-7,
                "sincos {t}"
            );
        }
        assert_eq!(log_lane(1.0), 0.0);
        assert!(log_lane(0.0).is_nan());
    }
}
