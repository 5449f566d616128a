//! End-to-end tests of the Mirror workspace. One binary, one module per feature.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod across;
mod admin;
mod cache;
mod config;
mod config_props;
mod demo;
mod disconnect;
mod faults_client;
mod faults_upstream;
mod gateway;
mod litellm_fixtures;
mod messages;
mod per_core;
mod relay;
mod report;
mod responses;
mod scale_out;
mod support;
mod ui;
