//! The one integration-test binary of pgimg (fast tests, no external programs).

mod support;

mod schema_drift;
