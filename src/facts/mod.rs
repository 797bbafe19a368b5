//! Facts about the outside world pgimg relies on, kept as committed data
//! under `data/` and embedded in the binary: the package repositories
//! (`repos.rs`), what they ship (`catalog.rs`) and the tz database's zone
//! names (`tz.rs`). Nothing here reads the build machine.

pub mod catalog;
pub(crate) mod repos;
pub(crate) mod tz;
