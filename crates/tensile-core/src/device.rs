//! Where a tensor lives. Devices are a plain enum chosen at run time (`--device cpu`), not a type
//! parameter, so models and trainers carry no generics; a CUDA variant joins this enum and
//! [`crate::storage::Storage`] together when that backend exists.

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The host CPU, with kernels parallelized over tensile's thread pool.
    #[default]
    Cpu,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
        }
    }
}
