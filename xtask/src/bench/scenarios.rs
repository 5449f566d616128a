//! The benchmark scenarios (S0 to S13): what each sends, through what, to which mocks.

use std::time::Duration;

use super::procs::MockOptions;

/// Where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Straight to the primary mock.
    Direct,
    /// Through the gateway.
    Gateway,
}

/// The API a scenario calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/responses` (the Responses API).
    Responses,
    /// `POST /v1/messages` (Anthropic's Messages API).
    Messages,
}

#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub(super) id: &'static str,
    pub(super) title: &'static str,
    pub(super) via: Via,
    /// The model group asked for (`bench-direct` has no `silent_model`).
    pub(super) model: &'static str,
    pub(super) stream: bool,
    pub(super) api: Api,
    pub(super) primary: MockOptions,
    pub(super) shadow: MockOptions,
    /// `silent_queue_size` and `silent_max_in_flight`, when not the defaults.
    pub(super) queue: Option<(usize, usize)>,
    /// Keep the gateway up at least this long (the S6 memory target reads after 60 s).
    pub(super) min_uptime: Duration,
    /// The rates to measure, unless `--rates` is given (S9: real-model rates).
    pub(super) rates: Option<&'static [f64]>,
    /// Wait up to this long after each measured rate for the silent copies it started to end, so
    /// delivery (completed / mirrored) is read when nothing is in flight; also skips the search for
    /// the maximum rate, which would pile up slow copies.
    pub(super) settle: Option<Duration>,
    /// Pad the user message to about this many bytes of body (0: the standard ~0.5 KB body).
    pub(super) prompt_bytes: usize,
    /// Start the gateway with `general_settings.master_key` and send it as the bearer key.
    pub(super) master_key: bool,
    /// A second load sent at the same time as each measured rate, reported as its own row.
    pub(super) background: Option<Background>,
    /// One client in a closed loop (as `wrk -c1`) instead of the rates: one row labelled `c=1`,
    /// no search for the maximum.
    pub(super) closed_loop: bool,
}

/// A load that runs alongside the measured one (S10h's large requests, S11's invalid keys).
#[derive(Debug, Clone, Copy)]
pub(super) struct Background {
    /// The row's label suffix, e.g. `invalid keys`.
    pub(super) label: &'static str,
    pub(super) rate: f64,
    pub(super) prompt_bytes: usize,
    pub(super) stream: bool,
    /// The bearer key it sends (`None`: the scenario's).
    pub(super) key: Option<&'static str>,
}

/// The key S11's flood sends: never the master key.
pub(super) const INVALID_KEY: &str = "sk-bench-invalid-0000000000";

/// S10's rates: large bodies are heavy on two cores.
const LARGE_RATES: &[f64] = &[100.0, 500.0];

/// S9's rates: a busy deployment, a large one, and twice that.
const REAL_RATES: &[f64] = &[200.0, 1000.0, 2000.0];

pub(super) fn scenarios() -> Vec<Scenario> {
    let healthy = MockOptions::HEALTHY;
    let slow_model = MockOptions {
        latency_ms: 60,
        ..healthy
    };
    let base = Scenario {
        id: "",
        title: "",
        via: Via::Gateway,
        model: "bench-mirror",
        stream: false,
        api: Api::Chat,
        primary: healthy,
        shadow: healthy,
        queue: None,
        min_uptime: Duration::ZERO,
        rates: None,
        settle: None,
        prompt_bytes: 0,
        master_key: false,
        background: None,
        closed_loop: false,
    };
    // S10: mirrored requests with long prompts; each row waits for its copies, and there is no
    // search for the maximum.
    let large = |id: &'static str, title: &'static str, prompt_bytes: usize| Scenario {
        id,
        title,
        prompt_bytes,
        rates: Some(LARGE_RATES),
        settle: Some(Duration::from_secs(10)),
        ..base.clone()
    };
    let real =
        |id: &'static str, title: &'static str, shadow: MockOptions, stream: bool| Scenario {
            id,
            title,
            stream,
            shadow,
            rates: Some(REAL_RATES),
            settle: Some(Duration::from_secs(60)),
            ..base.clone()
        };
    vec![
        // S0: the added latency that public gateway benchmarks report, one client at a time.
        Scenario {
            id: "S0d",
            title: "one client (closed loop, c=1), direct to the mock",
            via: Via::Direct,
            closed_loop: true,
            ..base.clone()
        },
        Scenario {
            id: "S0",
            title: "one client (closed loop, c=1), gateway, no mirroring",
            model: "bench-direct",
            closed_loop: true,
            ..base.clone()
        },
        Scenario {
            id: "S0m",
            title: "one client (closed loop, c=1), gateway, 100% mirrored",
            closed_loop: true,
            ..base.clone()
        },
        Scenario {
            id: "S1",
            title: "direct to the mock",
            via: Via::Direct,
            ..base.clone()
        },
        Scenario {
            id: "S2",
            title: "gateway, no mirroring",
            model: "bench-direct",
            ..base.clone()
        },
        Scenario {
            id: "S3",
            title: "gateway, 100% mirrored to a healthy shadow",
            ..base.clone()
        },
        Scenario {
            id: "S4",
            title: "shadow slow (2 s)",
            shadow: MockOptions {
                latency_ms: 2000,
                ..healthy
            },
            ..base.clone()
        },
        Scenario {
            id: "S5",
            title: "shadow failing (50% 500s, 50% connection resets)",
            shadow: MockOptions {
                failure_rate: 0.5,
                reset_rate: 0.5,
                ..healthy
            },
            ..base.clone()
        },
        Scenario {
            id: "S6",
            title: "shadow saturated (queue 16, 4 in flight, shadow 50 ms)",
            shadow: MockOptions {
                latency_ms: 50,
                ..healthy
            },
            queue: Some((16, 4)),
            min_uptime: Duration::from_secs(60),
            ..base.clone()
        },
        Scenario {
            id: "S7d",
            title: "streaming, direct to the mock (8 chunks)",
            via: Via::Direct,
            stream: true,
            ..base.clone()
        },
        Scenario {
            id: "S7",
            title: "streaming through the gateway, mirrored (8 chunks)",
            stream: true,
            ..base.clone()
        },
        Scenario {
            id: "S8d",
            title: "mock at 60 ms, direct",
            via: Via::Direct,
            primary: slow_model,
            shadow: slow_model,
            ..base.clone()
        },
        Scenario {
            id: "S8",
            title: "mock at 60 ms, gateway, mirrored",
            primary: slow_model,
            shadow: slow_model,
            ..base.clone()
        },
        // S12: the Responses API, whole and streamed, beside S3 and S7 (same mocks, same rates).
        Scenario {
            id: "S12d",
            title: "Responses API, direct to the mock",
            via: Via::Direct,
            api: Api::Responses,
            ..base.clone()
        },
        Scenario {
            id: "S12",
            title: "Responses API through the gateway, 100% mirrored",
            api: Api::Responses,
            ..base.clone()
        },
        Scenario {
            id: "S12sd",
            title: "Responses API streamed, direct to the mock (8 deltas)",
            via: Via::Direct,
            stream: true,
            api: Api::Responses,
            ..base.clone()
        },
        Scenario {
            id: "S12s",
            title: "Responses API streamed through the gateway, mirrored (8 deltas)",
            stream: true,
            api: Api::Responses,
            ..base.clone()
        },
        // S9: real model latencies with default settings; S9n and S9ns are the same loads without
        // mirroring, for the primary's Δp99.
        Scenario {
            id: "S9n",
            title: "real-latency rates, no mirroring",
            model: "bench-direct",
            rates: Some(REAL_RATES),
            ..base.clone()
        },
        Scenario {
            id: "S9ns",
            title: "real-latency rates, streamed, no mirroring",
            model: "bench-direct",
            stream: true,
            rates: Some(REAL_RATES),
            ..base.clone()
        },
        real(
            "S9a",
            "real-latency delivery, shadow at 2 s, defaults",
            MockOptions {
                latency_ms: 2000,
                ..healthy
            },
            false,
        ),
        real(
            "S9b",
            "real-latency delivery, shadow at 10 s, defaults",
            MockOptions {
                latency_ms: 10_000,
                ..healthy
            },
            false,
        ),
        real(
            "S9c",
            "real-latency delivery, 30 s streams (a chunk every 100 ms), defaults",
            MockOptions {
                stream_chunks: 300,
                chunk_interval_ms: 100,
                ..healthy
            },
            true,
        ),
        large("S10a", "large context, 1k-token prompts (~4 KB bodies), mirrored", 4 * 1024),
        large("S10b", "large context, 10k-token prompts (~40 KB bodies), mirrored", 40 * 1024),
        large("S10c", "large context, 100k-token prompts (~400 KB bodies), mirrored", 400 * 1024),
        Scenario {
            id: "S10h",
            title: "head-of-line: small streamed requests while 100k-token requests run (100 RPS of ~400 KB, mirrored)",
            stream: true,
            rates: Some(&[200.0]),
            settle: Some(Duration::from_secs(10)),
            background: Some(Background {
                label: "400 KB",
                rate: 100.0,
                prompt_bytes: 400 * 1024,
                stream: false,
                key: None,
            }),
            ..base.clone()
        },
        // S11: a flood of invalid keys next to valid traffic; S11n is the valid traffic alone.
        Scenario {
            id: "S11n",
            title: "master key set, valid keys only",
            master_key: true,
            rates: Some(&[1000.0]),
            settle: Some(Duration::from_secs(10)),
            ..base.clone()
        },
        Scenario {
            id: "S11",
            title: "key flood: invalid keys offered at 20,000 RPS next to 1,000 RPS of valid, mirrored traffic",
            master_key: true,
            rates: Some(&[1000.0]),
            settle: Some(Duration::from_secs(10)),
            background: Some(Background {
                label: "invalid keys",
                rate: 20_000.0,
                prompt_bytes: 0,
                stream: false,
                key: Some(INVALID_KEY),
            }),
            ..base.clone()
        },
        // S13: Anthropic's Messages API, streamed (what coding agents send): direct, through the
        // gateway, mirrored in the same format, and mirrored across formats (the copy translated to
        // chat completions for an OpenAI shadow).
        Scenario {
            id: "S13d",
            title: "streamed Messages, direct to the mock (8 deltas)",
            via: Via::Direct,
            stream: true,
            api: Api::Messages,
            ..base.clone()
        },
        Scenario {
            id: "S13n",
            title: "streamed Messages through the gateway, no mirroring",
            model: "bench-claude",
            stream: true,
            api: Api::Messages,
            ..base.clone()
        },
        Scenario {
            id: "S13",
            title: "streamed Messages, mirrored to a Claude shadow",
            model: "bench-claude-mirror",
            stream: true,
            api: Api::Messages,
            ..base.clone()
        },
        Scenario {
            id: "S13x",
            title: "streamed Messages, mirrored across formats to a GPT shadow",
            model: "bench-claude-to-gpt",
            stream: true,
            api: Api::Messages,
            ..base.clone()
        },
    ]
}

pub(super) fn describe(scenario: &Scenario) -> String {
    let mut text = format!(
        "{}: primary mock {}",
        scenario.title,
        scenario.primary.describe()
    );
    let mirrored = matches!(
        scenario.model,
        "bench-mirror" | "bench-claude-mirror" | "bench-claude-to-gpt"
    );
    if scenario.via == Via::Gateway && mirrored {
        text.push_str(&format!("; shadow mock {}", scenario.shadow.describe()));
    }
    if scenario.prompt_bytes > 0 {
        text.push_str(&format!(
            "; bodies of ~{} KB",
            (scenario.prompt_bytes + 512) / 1024
        ));
    }
    if scenario.master_key {
        text.push_str("; `master_key` set");
    }
    if let Some(background) = scenario.background {
        text.push_str(&format!(
            "; alongside: {} RPS of {} ({} row)",
            background.rate, background.label, background.label
        ));
    }
    if let Some((queue, in_flight)) = scenario.queue {
        text.push_str(&format!(
            "; `silent_queue_size: {queue}`, `silent_max_in_flight: {in_flight}`"
        ));
    }
    text
}
