//! Test support for the Mirror workspace, shared by the tests of several crates.
//!
//! [`records`] builds `CallRecord`s as the router writes them, for report and sink tests.
//!
//! It is not shipped (`publish = false`) and is only ever a dev-dependency. It depends on
//! `mirror-core` alone, so every crate can use it without a dependency cycle; helpers that need the
//! router, the providers or the facade stay in the suites that use them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod records;
