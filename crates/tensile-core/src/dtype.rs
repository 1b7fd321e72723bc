//! Element types. `f32` is what models train in; `f64` exists so gradient checks can run in
//! double precision through the very same kernels; `u32` holds indices (class labels, argmax,
//! gather/index_select) and `u8` holds masks (comparisons, `where_cond`). Half precision joins
//! here as new variants with their storage in [`crate::storage::CpuStorage`].

use crate::storage::CpuStorage;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    U8,
    U32,
}

impl DType {
    /// Every dtype, each at the index `dtype as usize`.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::U8, DType::U32];

    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F64 => 8,
            DType::U8 => 1,
        }
    }

    /// Whether this is a floating-point type (one that can carry gradients).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// A Rust type that can be stored in a tensor.
pub trait WithDType: Copy + Default + Send + Sync + std::fmt::Debug + PartialOrd + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

macro_rules! with_dtype {
    ($t:ty, $variant:ident) => {
        impl WithDType for $t {
            const DTYPE: DType = DType::$variant;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
with_dtype!(f32, F32);
with_dtype!(f64, F64);
with_dtype!(u8, U8);
with_dtype!(u32, U32);

/// A floating-point element type: what the math kernels are generic over, so `f32` and `f64`
/// share one implementation and monomorphize to separate tight loops.
pub trait Float:
    WithDType
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    const INFINITY: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn ln_1p(self) -> Self;
    fn is_finite(self) -> bool;
    fn is_nan(self) -> bool;
}

macro_rules! float {
    ($t:ty, $exp:path, $tanh:path, $erf:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const INFINITY: Self = <$t>::INFINITY;
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                // NaN propagates, as in PyTorch: a NaN must never be silently dropped.
                if self.is_nan() || self > o { self } else { o }
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                if self.is_nan() || self < o { self } else { o }
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
// f32's exp, tanh and erf vectorize (crate::math); f64 keeps the standard library's and libm's.
float!(f32, crate::math::exp_f32, crate::math::tanh_f32, crate::math::erf_f32);
float!(f64, f64::exp, f64::tanh, libm::erf);
