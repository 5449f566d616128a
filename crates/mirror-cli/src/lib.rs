//! The `mirror` command's subcommands, as a library so that end-to-end tests call them directly.
//!
//! `serve` and `check` ([`cli`]), `demo` ([`demo`]), `report` ([`report`]: arguments, configuration
//! and the judge's router around the `mirror-report` library) and `mock-upstream`
//! ([`mock_upstream`], the benchmark upstream). `src/main.rs` only parses arguments and dispatches.
//!
//! It is not a library to build on: use the `mirror` facade (router, gateway, configuration) or
//! `mirror-report` instead. This crate exists so that the facade does not compile the command's
//! dependencies (clap, indicatif, mimalloc, tracing-subscriber, anyhow).

pub mod cli;
pub mod demo;
pub mod mock_upstream;
pub mod report;
