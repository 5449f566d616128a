//! The provider adapters over real HTTP, against an in-process upstream that records what it receives
//! and answers as OpenAI and Azure OpenAI do.

// Helpers outside `#[test]` functions panic on purpose too.
#![allow(clippy::unwrap_used)]

mod anthropic;
mod azure;
mod errors;
mod hostile;
mod openai;
mod responses;
mod silent_lane;
mod streams;
mod support;
mod threads;
mod transports;
mod versions;
