//! pgimg: one declarative cluster spec in, reproducible per-host boot
//! artifacts out.
//!
//! The pipeline, one module per stage:
//!
//! `load` (the only reader) → `spec::parse` (YAML with positions, then the
//! JSON schema) → `model::resolve` (defaults applied once) → `check::run`
//! (semantic rules) → `plan`/`render` (pure: model → in-memory artifact
//! tree) → `write` (the only writer). Diagnostics are collected per stage and
//! gate the next one.

#![warn(unreachable_pub)]

pub mod certs;
pub mod check;
pub mod cli;
pub mod cmd;
pub mod commands;
pub mod diag;
pub(crate) mod digest;
pub mod error;
pub mod explain;
pub mod facts;
pub mod lab;
pub mod load;
pub mod model;
pub(crate) mod ops;
pub mod plan;
pub mod render;
pub mod review;
pub mod schema;
pub mod secret_ops;
pub mod secrets;
pub mod source;
pub mod spec;
pub(crate) mod state;
pub mod write;

pub use error::Error;
pub use ops::{BuildInputs, Validated, build, validate};
