//! One module per `tensile` subcommand; each has its `Args` (clap), `EXAMPLES` for its help and
//! a `run` function.

pub mod eval;
pub mod lr_find;
pub mod predict;
pub mod report;
pub mod summary;
pub mod train;
