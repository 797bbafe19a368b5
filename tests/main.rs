//! The one integration-test binary of pgimg (fast tests, no external programs).

mod support;

mod architecture;
mod cli;
mod delivery;
mod diagnostics;
mod firstboot;
mod golden;
mod guide_parity;
mod incremental;
mod no_panic;
mod plan;
mod repro;
mod review;
mod rules;
mod schema_drift;
mod secrets;
