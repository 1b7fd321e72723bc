//! Elementwise functions of one tensor. The table below gives, for each op, its value `y = f(x)`
//! and its local derivative `dy/dx` (from `x` or from `y`, whichever is cheaper); the CPU kernel
//! instantiates one tight loop per op from this table, and the gradient rule is one fused pass
//! `grad * dy/dx`.

use crate::dtype::Float;
use crate::error::Result;
use crate::ops::Op;
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// An elementwise function. Parameters are kept as `f64` and converted per dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Square,
    Recip,
    Relu,
    LeakyRelu(f64),
    /// GELU with the exact erf form: `x * Φ(x)`.
    Gelu,
    /// GELU with the tanh approximation used by GPT-2 and BERT.
    GeluTanh,
    Sigmoid,
    Tanh,
    /// `ln(1 + e^x)`, computed without overflow for large `x`.
    Softplus,
    Silu,
    Powf(f64),
    Clamp(f64, f64),
    /// `x * mul + add`: scalar arithmetic in one pass.
    Affine(f64, f64),
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    // e^{-|x|} never overflows; both forms are computed and one chosen, so that a loop over a
    // slice has no branch and vectorizes.
    let e = (-x.abs()).exp();
    let (pos, neg) = (T::ONE / (T::ONE + e), e / (T::ONE + e));
    if x >= T::ZERO { pos } else { neg }
}

impl UnaryOp {
    /// `y = f(x)`.
    #[inline(always)]
    pub(crate) fn fwd<T: Float>(self, x: T) -> T {
        let c = T::from_f64;
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Square => x * x,
            UnaryOp::Recip => T::ONE / x,
            UnaryOp::Relu => {
                if x > T::ZERO {
                    x
                } else {
                    T::ZERO
                }
            }
            UnaryOp::LeakyRelu(a) => {
                if x > T::ZERO {
                    x
                } else {
                    x * c(a)
                }
            }
            UnaryOp::Gelu => c(0.5) * x * (T::ONE + (x * c(INV_SQRT_2)).erf()),
            UnaryOp::GeluTanh => {
                let inner = c(SQRT_2_OVER_PI) * (x + c(0.044715) * x * x * x);
                c(0.5) * x * (T::ONE + inner.tanh())
            }
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Softplus => x.max(T::ZERO) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::Powf(e) => x.powf(c(e)),
            UnaryOp::Clamp(lo, hi) => x.max(c(lo)).min(c(hi)),
            UnaryOp::Affine(m, a) => x * c(m) + c(a),
        }
    }

    /// `dy/dx` at `x`, where `y = f(x)`.
    #[inline(always)]
    pub(crate) fn grad<T: Float>(self, x: T, y: T) -> T {
        let c = T::from_f64;
        match self {
            UnaryOp::Neg => -T::ONE,
            UnaryOp::Exp => y,
            UnaryOp::Log => T::ONE / x,
            UnaryOp::Sqrt => c(0.5) / y,
            UnaryOp::Abs => {
                if x > T::ZERO {
                    T::ONE
                } else if x < T::ZERO {
                    -T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::Square => c(2.0) * x,
            UnaryOp::Recip => -(y * y),
            UnaryOp::Relu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::LeakyRelu(a) => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    c(a)
                }
            }
            // d/dx x·Φ(x) = Φ(x) + x·φ(x), with Φ(x) = y / x read back from the output instead
            // of a second erf (Φ(0) = 1/2; below 1e-30 in magnitude Φ rounds to 1/2 anyway).
            UnaryOp::Gelu => {
                let cdf = if x.abs() > c(1e-30) { y / x } else { c(0.5) };
                cdf + x * c(INV_SQRT_2PI) * (c(-0.5) * x * x).exp()
            }
            UnaryOp::GeluTanh => {
                let inner = c(SQRT_2_OVER_PI) * (x + c(0.044715) * x * x * x);
                let t = inner.tanh();
                let dinner = c(SQRT_2_OVER_PI) * (T::ONE + c(3.0 * 0.044715) * x * x);
                c(0.5) * (T::ONE + t) + c(0.5) * x * (T::ONE - t * t) * dinner
            }
            UnaryOp::Sigmoid => y * (T::ONE - y),
            UnaryOp::Tanh => T::ONE - y * y,
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Silu => {
                let s = sigmoid(x);
                s + x * s * (T::ONE - s)
            }
            UnaryOp::Powf(e) => c(e) * x.powf(c(e - 1.0)),
            // The gradient passes where the value was not clamped (bounds included), as in PyTorch.
            UnaryOp::Clamp(lo, hi) => {
                if x >= c(lo) && x <= c(hi) {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::Affine(m, _) => c(m),
        }
    }
}

/// `[x, y, grad] -> [grad * f'(x)]`.
pub(crate) fn backward(x: &Tensor, y: &Tensor, g: &Tensor, op: UnaryOp) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![Some(input_grad(x, y, g, op)?)])
}

/// `g · f'(x)` for `y = f(x)`: the one gradient of a unary op, for the rules of fused ops that
/// chain it into their own (a folded ReLU, the mean's scale).
pub(crate) fn input_grad(x: &Tensor, y: &Tensor, g: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let (x, y, g) = (x.dense()?, y.dense()?, g.dense()?);
    let storage = {
        let (xs, ys, gs) = (x.storage(), y.storage(), g.storage());
        xs.unary_backward(&ys, &gs, op)?
    };
    Ok(Tensor::from_storage(storage, x.shape().clone(), x.device()))
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self) -> Result<Tensor> {
                self.unary_op($op)
            })*
        }
    };
}

unary_methods! {
    /// `-x`.
    neg => UnaryOp::Neg;
    /// `e^x`.
    exp => UnaryOp::Exp;
    /// Natural logarithm.
    log => UnaryOp::Log;
    /// Square root.
    sqrt => UnaryOp::Sqrt;
    /// `|x|` (gradient 0 at 0).
    abs => UnaryOp::Abs;
    /// `x²`.
    square => UnaryOp::Square;
    /// `1 / x`.
    recip => UnaryOp::Recip;
    /// `max(x, 0)` (gradient 0 at 0, as in PyTorch).
    relu => UnaryOp::Relu;
    /// GELU, exact erf form (PyTorch's default `approximate='none'`).
    gelu => UnaryOp::Gelu;
    /// GELU, tanh approximation (PyTorch's `approximate='tanh'`).
    gelu_tanh => UnaryOp::GeluTanh;
    /// `1 / (1 + e^-x)`.
    sigmoid => UnaryOp::Sigmoid;
    /// Hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// `ln(1 + e^x)`.
    softplus => UnaryOp::Softplus;
    /// `x * sigmoid(x)` (also called swish).
    silu => UnaryOp::Silu;
}

impl Tensor {
    /// `x` for `x > 0`, else `slope * x`.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        self.unary_op(UnaryOp::LeakyRelu(slope))
    }
    /// `x^e` for a scalar exponent.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        self.unary_op(UnaryOp::Powf(e))
    }
    /// Limits every element to `[min, max]`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min > max {
            return crate::error::invalid("clamp", format!("min {min} is greater than max {max}"));
        }
        self.unary_op(UnaryOp::Clamp(min, max))
    }
    /// `x * mul + add` in one pass.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary_op(UnaryOp::Affine(mul, add))
    }
    /// `x + v` for a scalar `v`.
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.affine(1.0, v)
    }
    /// `x * v` for a scalar `v`.
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.affine(v, 0.0)
    }

    /// Applies an elementwise function, recording it for autodiff.
    pub fn unary_op(&self, op: UnaryOp) -> Result<Tensor> {
        self.require_float("unary")?;
        let storage = self.storage().unary(self.layout(), op)?;
        let out = Tensor::from_storage(storage, self.shape().clone(), self.device());
        Ok(out.with_op(|| Op::Unary(self.clone(), op), &[self]))
    }
}
