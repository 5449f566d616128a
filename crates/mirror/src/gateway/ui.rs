//! The live page (`ui` feature): `GET /ui`, one self-contained HTML page (inline CSS, script and
//! SVG; no external asset, so it works offline), and `GET /ui/data`, its numbers as JSON behind
//! the master key. The numbers are the report crate's (`mirror_report::RecentRecords`) over a
//! bounded window of recent records, so the page and `mirror report` agree on the same calls; the
//! counters and drops by reason are the router's (`mirror_stats`), the breakers its
//! `silent_breakers`.
//!
//! Records reach the window through a bounded channel (`try_send`; a full channel drops and
//! counts), so the call path never waits for the page. They are offered only while the page is
//! watched: from the first answer of `/ui/data` (behind the key; the page asks every second)
//! until [`WATCH_FOR`] after the last one
//! (`mirror demo --ui` watches from the start). Unwatched, offering a record is one clock read,
//! so a gateway nobody looks at pays nothing for the page (copying and sizing a record costs
//! about 20k instructions, a tenth of a mirrored call). Memory: the window holds at most
//! `LIVE_MAX_RECORDS` records and `LIVE_MAX_BYTES` estimated bytes, the channel at most
//! [`FEED_MAX_BYTES`], and one rendered answer is kept for [`FRESH_FOR`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mirror_core::CallRecord;
use mirror_report::{
    estimated_bytes, PairSummary, RecentRecords, ReportOptions, Totals, WindowStats,
    LIVE_MAX_BYTES, LIVE_MAX_RECORDS,
};
use mirror_router::MirrorSnapshot;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::AppState;

/// Records waiting to enter the window, at most.
const FEED_CAPACITY: usize = 1024;
/// Estimated bytes of the records waiting to enter the window, at most.
pub(crate) const FEED_MAX_BYTES: usize = 8 * 1024 * 1024;
/// How long one computed answer of `/ui/data` is served again: pages poll every second, and any
/// number of them cost one computation a second.
pub(crate) const FRESH_FOR: Duration = Duration::from_millis(900);
/// Bootstrap resamples for the page's confidence intervals (`mirror report` uses 1,000).
const LIVE_RESAMPLES: usize = 200;
/// Pairs sampled per group pair for the intervals.
const LIVE_RESAMPLE_PAIRS: usize = 1_000;

/// How long records keep flowing into the window after the page was last viewed.
pub(crate) const WATCH_FOR: Duration = Duration::from_secs(600);

const PAGE: &str = include_str!("ui.html");

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The window of recent records and what feeds it.
pub(crate) struct LivePage {
    feed: mpsc::Sender<(CallRecord, usize)>,
    feed_bytes: Arc<AtomicUsize>,
    feed_dropped: AtomicU64,
    /// Unix seconds until which records are offered to the window (0: never viewed).
    watched_until: AtomicU64,
    window: Arc<Mutex<RecentRecords>>,
    last: Mutex<Option<(Instant, Bytes)>>,
    /// Whether records carry answers (a sink is configured), so agreement can be measured.
    payloads: bool,
}

impl LivePage {
    /// Starts the task that moves records into the window; it ends when the gateway's record
    /// consumers (which hold the sender) are dropped. Must run inside a Tokio runtime.
    pub(crate) fn start(payloads: bool) -> Arc<LivePage> {
        let (feed, mut receiver) = mpsc::channel::<(CallRecord, usize)>(FEED_CAPACITY);
        let window = Arc::new(Mutex::new(RecentRecords::new(
            LIVE_MAX_RECORDS,
            LIVE_MAX_BYTES,
        )));
        let feed_bytes = Arc::new(AtomicUsize::new(0));
        let (into, charged) = (Arc::clone(&window), Arc::clone(&feed_bytes));
        tokio::spawn(async move {
            // The page's computation holds the window for a moment: never block a runtime thread
            // on it; records wait here meanwhile, still charged against FEED_MAX_BYTES.
            let mut pending: Vec<(CallRecord, usize)> = Vec::new();
            while let Some(first) = receiver.recv().await {
                pending.push(first);
                while let Ok(next) = receiver.try_recv() {
                    pending.push(next);
                }
                loop {
                    let pushed = {
                        let window = match into.try_lock() {
                            Ok(window) => Some(window),
                            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                            Err(TryLockError::WouldBlock) => None,
                        };
                        window.map(|mut window| {
                            for (record, size) in pending.drain(..) {
                                charged.fetch_sub(size, Ordering::AcqRel);
                                window.push_estimated(record, size);
                            }
                        })
                    };
                    if pushed.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Arc::new(LivePage {
            feed,
            feed_bytes,
            feed_dropped: AtomicU64::new(0),
            watched_until: AtomicU64::new(0),
            window,
            last: Mutex::new(None),
            payloads,
        })
    }

    /// Records flow into the window for the next [`WATCH_FOR`].
    pub(crate) fn watch(&self) {
        self.watched_until
            .fetch_max(unix_secs() + WATCH_FOR.as_secs(), Ordering::Relaxed);
    }

    /// Appends the feed's drops to a Prometheus text page.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP mirror_live_page_feed_dropped_total Records the live page's window did not take (its feed was full: {FEED_MAX_BYTES} bytes or the channel); logs and sinks still have them.\n# TYPE mirror_live_page_feed_dropped_total counter\nmirror_live_page_feed_dropped_total {}",
            self.feed_dropped.load(Ordering::Relaxed)
        );
    }

    /// Offers a copy of `record` (without its conversation) to the window while the page is
    /// watched; never waits.
    pub(crate) fn offer(&self, record: &mut CallRecord) {
        if unix_secs() >= self.watched_until.load(Ordering::Relaxed) {
            return;
        }
        let messages = record.messages.take();
        let copy = record.clone();
        record.messages = messages;
        let size = estimated_bytes(&copy);
        let charged = self.feed_bytes.fetch_add(size, Ordering::AcqRel);
        if charged + size > FEED_MAX_BYTES {
            self.feed_bytes.fetch_sub(size, Ordering::AcqRel);
            self.feed_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.feed.try_send((copy, size)).is_err() {
            self.feed_bytes.fetch_sub(size, Ordering::AcqRel);
            self.feed_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `GET /ui/data`.
#[derive(Serialize)]
struct Data<'a> {
    /// Milliseconds since the Unix epoch.
    generated_at_ms: u128,
    mirroring: bool,
    payloads: bool,
    mirror: MirrorSnapshot,
    dropped: u64,
    breakers: Vec<Breaker>,
    window: WindowStats,
    /// Records that never reached the window because its feed was full.
    feed_dropped: u64,
    totals: &'a Totals,
    edges: &'a [PairSummary],
}

#[derive(Serialize)]
struct Breaker {
    group: String,
    open: bool,
}

fn render(state: &AppState, live: &LivePage) -> Result<Bytes, serde_json::Error> {
    let (report, window) = {
        let window = live.window.lock().unwrap_or_else(PoisonError::into_inner);
        let options = ReportOptions {
            resamples: LIVE_RESAMPLES,
            resample_pairs: LIVE_RESAMPLE_PAIRS,
            ..ReportOptions::default()
        };
        (window.report(&options), window.stats())
    };
    let router = state.router();
    let mirror = router.mirror_stats();
    let data = Data {
        generated_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis()),
        mirroring: router.is_mirroring(),
        payloads: live.payloads,
        dropped: mirror.dropped(),
        mirror,
        breakers: router
            .silent_breakers()
            .into_iter()
            .map(|(group, open)| Breaker { group, open })
            .collect(),
        window,
        feed_dropped: live.feed_dropped.load(Ordering::Relaxed),
        totals: &report.totals,
        edges: &report.edges,
    };
    serde_json::to_vec(&data).map(Bytes::from)
}

/// `GET /ui/data`: the page's numbers (behind the master key).
pub(crate) async fn data(State(state): State<Arc<AppState>>) -> Response {
    state.page.watch();
    let fresh = {
        let last = state
            .page
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, body)| body.clone())
    };
    let body = match fresh {
        Some(body) => body,
        None => {
            let computing = Arc::clone(&state);
            let rendered =
                tokio::task::spawn_blocking(move || render(&computing, &computing.page)).await;
            match rendered {
                Ok(Ok(body)) => {
                    *state
                        .page
                        .last
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some((Instant::now(), body.clone()));
                    body
                }
                Ok(Err(_)) | Err(_) => {
                    return ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        None,
                        "the live page's numbers could not be computed",
                    )
                    .into_response()
                }
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui`: the page. It holds no data (that is `/ui/data`, behind the master key), so it is
/// served to anyone; with a master key it asks for the key in a form and keeps it in the tab's
/// session storage, never in a URL.
pub(crate) async fn page() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
