//! One module per `tensile` subcommand; each has its `Args` (clap), `EXAMPLES` for its help and
//! a `run` function.

pub mod eval;
pub mod predict;
pub mod summary;
pub mod train;
