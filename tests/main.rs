//! The one integration-test binary of pgimg (fast tests, no external programs).

mod support;

mod cli;
mod delivery;
mod diagnostics;
mod golden;
mod guide_parity;
mod harden;
mod no_panic;
mod plan;
mod repro;
mod rules;
mod schema_drift;
mod string_fields;
