//! The one integration-test binary of pgimg (fast tests, no external programs).

mod support;

mod architecture;
mod cli;
mod commands;
mod daytwo;
mod delivery;
mod diagnostics;
mod firstboot;
mod golden;
mod guide_parity;
mod harden;
mod incremental;
mod no_panic;
mod overlays;
mod plan;
mod repro;
mod review;
mod rules;
mod schema_drift;
mod secrets;
mod string_fields;
