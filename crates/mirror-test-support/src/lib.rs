//! Test support for the Mirror workspace, shared by the tests of several crates.
//!
//! [`upstream`] is the one fake upstream of the workspace's tests: an in-process OpenAI-shaped (and
//! Azure-path-shaped) server on `127.0.0.1:0` whose behaviour each test controls and which records
//! what it saw, Responses API paths included ([`responses`]) and Anthropic's Messages API paths
//! ([`anthropic`]). [`records`] builds `CallRecord`s as the router writes them, for report tests.
//! [`chromium`] finds the headless browser the page tests render in.
//!
//! The benchmark upstream (`mirror mock-upstream`) is not this: it is tuned for speed and lives in
//! the `mirror` binary.
//!
//! It is not shipped (`publish = false`) and is only ever a dev-dependency. It depends on
//! `mirror-core` alone, so every crate can use it without a dependency cycle; helpers that need the
//! router, the providers or the facade stay in the suites that use them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod anthropic;
pub mod records;
pub mod responses;
pub mod upstream;

pub use upstream::{Behaviour, Call, Seen, Upstream, PATIENCE};

/// The headless Chromium to render pages in (`MIRROR_TEST_CHROMIUM`), or `None` when
/// `MIRROR_SKIP_BROWSER_TESTS=1` skips browser tests on purpose; `what` names the test that needs it
/// in the panic that a missing browser otherwise is.
pub fn chromium(what: &str) -> Option<String> {
    if std::env::var("MIRROR_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        return None;
    }
    match std::env::var("MIRROR_TEST_CHROMIUM") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => panic!(
            "MIRROR_TEST_CHROMIUM is not set: {what} needs headless Chromium. \
             Install it with `apt-get install -y chromium` (or run `.ci/setup.sh`, which does) and \
             set MIRROR_TEST_CHROMIUM=/usr/bin/chromium; set MIRROR_SKIP_BROWSER_TESTS=1 to skip on purpose."
        ),
    }
}
