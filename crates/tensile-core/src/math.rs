//! `exp` and `tanh` for `f32` written so that a kernel's loop over a slice compiles to vector
//! instructions: no calls and no branches, only multiplies, adds, bit moves and selects. libm's
//! `expf` and `tanhf` are calls per element; in a recurrent layer's gates they took about a sixth
//! of the time (BENCHMARKS.md). The polynomials are Cephes' (`expf`, `tanhf`), evaluated with
//! separate multiplies and adds (never fused), so every vector width gives the same bits.
//!
//! Accuracy (checked by the tests below against f64): `exp` within 2 ulp where the result is a
//! normal number, `tanh` within 3 ulp. Where `exp` would be subnormal (x below about -87.3) it
//! returns 0, an absolute error below 1.2e-38.

/// ln(f32::MAX): above this `exp` is infinite.
const EXP_HI: f32 = 88.722_84;
/// ln(2^-126), the smallest normal number: below this `exp` returns 0.
const EXP_LO: f32 = -87.336_55;
/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude below 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;
/// ln 2 split so that `n * LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // NaN stays NaN through here (its exponent bits come out as 0) and is returned at the end.
    let c = x.clamp(EXP_LO, EXP_HI);
    // e^c = 2^n * e^r with n = round(c / ln 2), |r| <= ln 2 / 2.
    let shifted = c * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let z = r * r;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5)
        * z
        + r
        + 1.0;
    // n reaches 128 at the very top, where 2^n alone is not finite: 2^127 * 2 there.
    let n1 = n.min(127.0);
    // n as an integer, read from the bits of `shifted` (whose unit in the last place is 1):
    // `n1 as i32` would be a saturating, NaN-checking conversion that does not vectorize.
    let k = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32).min(127);
    let y = p * f32::from_bits((k.wrapping_add(127) << 23) as u32) * (1.0 + (n - n1));
    let y = if x > EXP_HI { f32::INFINITY } else { y };
    let y = if x < EXP_LO { 0.0 } else { y };
    if x.is_nan() { x } else { y }
}

/// tanh(x).
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    // Away from 0: 1 - 2 / (e^{2|x|} + 1), which reaches 1 when the exponential overflows.
    let far = (1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0)).copysign(x);
    // Near 0, where that form would cancel: an odd polynomial.
    let z = x * x;
    let near =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1) * z * x
            + x;
    if a < 0.625 { near } else { far }
}

/// erf(x): FreeBSD's `s_erff.c` (as in the `libm` crate), its four ranges computed side by side
/// and one chosen per element, with [`exp_f32`] for its exponential. The three rational
/// functions share one division (the range's own numerator and denominator are selected first),
/// and `erfc`'s two exponentials are one.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    // |x| < 0.84375: x + x * P(x²) / Q(x²).
    let z = x * x;
    let r = 1.2837917e-1 + z * (-3.250_421e-1 + z * (-2.848_175e-2 + z * (-5.7702702e-3 + z * -2.3763017e-5)));
    let s = 1.0 + z * (3.979172e-1 + z * (6.502225e-2 + z * (5.081306e-3 + z * (1.3249474e-4 + z * -3.9602282e-6))));
    // 0.84375 <= |x| < 1.25: erx + P(|x| - 1) / Q(|x| - 1).
    let t = a - 1.0;
    let p = -2.3621186e-3
        + t * (4.148_561e-1
            + t * (-3.7220788e-1 + t * (3.1834662e-1 + t * (-1.1089469e-1 + t * (3.5478305e-2 + t * -2.1663755e-3)))));
    let q = 1.0
        + t * (1.0642088e-1
            + t * (5.4039794e-1 + t * (7.1828656e-2 + t * (1.2617122e-1 + t * (1.3637084e-2 + t * 1.19845e-2)))));
    // 1.25 <= |x| < 6: 1 - erfc, erfc = e^{-z² - 0.5625} e^{(z - a)(z + a) + R(1/a²) / S(1/a²)} / a with z
    // the top 11 bits of a's significand (exact z²); the coefficients of R and S change at 1/0.35.
    let ac = a.clamp(1.25, 6.0);
    let w = 1.0 / (ac * ac);
    let lo = ac < 1.0 / 0.35;
    let k = |ra: f32, rb: f32| if lo { ra } else { rb };
    let rr = k(-9.864_944e-3, -9.864_943e-3)
        + w * (k(-6.938_586e-1, -7.992_833e-1)
            + w * (k(-1.0558626e1, -1.7757956e1)
                + w * (k(-6.237_533e1, -1.6063638e2)
                    + w * (k(-1.6239667e2, -6.3756647e2)
                        + w * (k(-1.8460509e2, -1.0250951e3)
                            + w * (k(-8.128_744e1, -4.835_192e2) + w * k(-9.814_329, 0.0)))))));
    let ss = 1.0
        + w * (k(1.9651272e1, 3.033_806e1)
            + w * (k(1.3765776e2, 3.257_925e2)
                + w * (k(4.345_659e2, 1.5367296e3)
                    + w * (k(6.453_873e2, 3.1998582e3)
                        + w * (k(4.2900815e2, 2.5530503e3)
                            + w * (k(1.08635e2, 4.7452853e2)
                                + w * (k(6.570_25, -2.2440952e1) + w * k(-6.0424414e-2, 0.0))))))));
    // One division: the quotient of whichever range |x| is in.
    let (num, den) = if a < 0.843_75 {
        (r, s)
    } else if a < 1.25 {
        (p, q)
    } else {
        (rr, ss)
    };
    let ratio = num / den;
    let near = x + x * ratio;
    let mid = 8.450_629e-1 + ratio;
    // The two exponentials as one, and 1 / a as a · (1 / a²). The exponent (at most about 36.6
    // in magnitude) is rounded once more, a relative error of erfc near 2^-20 at worst, which
    // moves 1 - erfc by far less than its ulp since erfc < 0.08 here.
    let zt = f32::from_bits(ac.to_bits() & 0xffff_e000);
    let erfc = exp_f32((-zt * zt - 0.5625) + ((zt - ac) * (zt + ac) + ratio)) * (ac * w);
    let far = 1.0 - erfc;
    let y = if a < 1.25 {
        mid
    } else if a < 6.0 {
        far
    } else {
        1.0
    };
    let y = y.copysign(x);
    if a < 0.843_75 || x.is_nan() { near } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between `got` and the correctly rounded `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.abs().to_bits() + 1) - w.abs()) as f64;
        (got as f64 - want).abs() / ulp
    }

    /// The largest error in ulp of `f` against the f64 `reference`, and where, over every
    /// `step`-th f32 bit pattern from `lo` up to `hi` of each `(lo, hi, step)`.
    fn worst(f: impl Fn(f32) -> f32, reference: impl Fn(f64) -> f64, ranges: &[(f32, f32, u32)]) -> (f64, f32) {
        let mut worst = (0.0, 0.0f32);
        for &(lo, hi, step) in ranges {
            let mut x = lo;
            while x <= hi {
                let e = ulps(f(x), reference(x as f64));
                if e > worst.0 {
                    worst = (e, x);
                }
                let bits = x.to_bits();
                x = if x < 0.0 {
                    if bits <= 0x8000_0000 + step { 0.0 } else { f32::from_bits(bits - step) }
                } else {
                    f32::from_bits(bits + step)
                };
            }
        }
        worst
    }

    #[test]
    fn exp_is_within_two_ulp_over_the_normal_range() {
        // About two million points over the whole range, then more densely near 0 and every f32 at the top.
        let ranges = [(EXP_LO + 0.5, EXP_HI, 997), (-1e-3, 1e-3, 4099), (88.6, EXP_HI, 1)];
        let worst = worst(exp_f32, f64::exp, &ranges);
        assert!(worst.0 <= 2.0, "exp({}) is {} ulp off", worst.1, worst.0);
    }

    #[test]
    fn exp_edges_follow_ieee() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.72).is_finite() && exp_f32(88.72) > 3.3e38);
        assert!(exp_f32(-87.0) > 0.0);
    }

    #[test]
    fn erf_is_within_two_ulp() {
        // About two million points, then every f32 around the switches between the ranges.
        let mut ranges = vec![(-7.0, 7.0, 997)];
        for edge in [0.843_75f32, 1.25, 1.0 / 0.35, 6.0] {
            ranges.extend([(edge - 1e-3, edge + 1e-3, 1), (-edge - 1e-3, -edge + 1e-3, 1)]);
        }
        let worst = worst(erf_f32, libm::erf, &ranges);
        assert!(worst.0 <= 2.0, "erf({}) is {} ulp off", worst.1, worst.0);
        for (x, want) in [(0.0, 0.0), (10.0, 1.0), (-10.0, -1.0), (f32::INFINITY, 1.0), (f32::NEG_INFINITY, -1.0)] {
            assert_eq!(erf_f32(x), want, "erf({x})");
        }
        assert!(erf_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_is_within_three_ulp() {
        // About two million points, then every f32 around the switch between the two forms.
        let worst = worst(tanh_f32, f64::tanh, &[(-12.0, 12.0, 997), (0.62, 0.63, 1), (-0.63, -0.62, 1)]);
        assert!(worst.0 <= 3.0, "tanh({}) is {} ulp off", worst.1, worst.0);
        for (x, want) in [(0.0, 0.0), (50.0, 1.0), (-50.0, -1.0), (f32::INFINITY, 1.0), (f32::NEG_INFINITY, -1.0)] {
            assert_eq!(tanh_f32(x), want, "tanh({x})");
        }
        assert!(tanh_f32(f32::NAN).is_nan());
    }
}
