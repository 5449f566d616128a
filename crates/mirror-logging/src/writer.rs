//! `LogWriter`: bounded queues and one background worker per sink.
//!
//! `submit` is what the request path calls: it only does a `try_send` per sink and bumps atomics.
//! Each worker batches by count and by time, retries retryable failures with backoff, and counts what
//! it writes and what it drops. A slow or failing sink fills only its own queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirror_core::CallRecord;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{LogSink, SinkError, SinkOptions};

/// Extra time `shutdown` waits past its deadline for workers to count what they drop.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// Sends call records to sinks in the background.
///
/// Build it with [`LogWriter::builder`] inside a Tokio runtime, hand it records with
/// [`LogWriter::submit`], read counters with [`LogWriter::stats`], and call
/// [`LogWriter::shutdown`] before the process exits. Dropping it without `shutdown` lets the workers
/// finish what is queued in the background, with no deadline.
pub struct LogWriter {
    slots: Vec<SinkSlot>,
    shutdown: watch::Sender<Option<Instant>>,
    // Only `shutdown` takes this lock; `submit` never does.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("sinks", &self.stats())
            .finish_non_exhaustive()
    }
}

struct SinkSlot {
    name: String,
    queue: mpsc::Sender<Arc<CallRecord>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    accepted: AtomicU64,
    // Records that left the queue: written, failed, or dropped by the worker at shutdown.
    finished: AtomicU64,
    written: AtomicU64,
    retried: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_failed: AtomicU64,
    dropped_shutdown: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        Counters::add(&self.written, n);
        Counters::add(&self.finished, n);
    }

    fn failed(&self, n: usize) {
        Counters::add(&self.dropped_failed, n);
        Counters::add(&self.finished, n);
    }

    fn shut_out(&self, n: usize) {
        Counters::add(&self.dropped_shutdown, n);
        Counters::add(&self.finished, n);
    }

    fn snapshot(&self, name: &str) -> SinkStats {
        // `accepted` is read before `finished`, so `queued` is never larger than what really waits.
        let accepted = self.accepted.load(Ordering::Acquire);
        let finished = self.finished.load(Ordering::Acquire);
        SinkStats {
            name: name.to_owned(),
            submitted: self.submitted.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: DroppedStats {
                queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
                failed: self.dropped_failed.load(Ordering::Relaxed),
                shutdown: self.dropped_shutdown.load(Ordering::Relaxed),
            },
            queued: accepted.saturating_sub(finished),
        }
    }
}

/// Counters of one sink since the writer started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Records handed to `submit`.
    pub submitted: u64,
    /// Records the sink wrote.
    pub written: u64,
    /// Records sent again after a retryable failure (once per retry).
    pub retried: u64,
    /// Records lost, by reason.
    pub dropped: DroppedStats,
    /// Records accepted and not yet written or dropped: in the queue or in the batch being written.
    /// At most the queue capacity plus the batch size.
    pub queued: u64,
}

/// Records a sink lost, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedStats {
    /// The sink's queue was full when the record was submitted.
    pub queue_full: u64,
    /// The sink refused the record, or kept failing until the retry bound.
    pub failed: u64,
    /// The writer was shutting down: submitted late, or still queued at the deadline.
    pub shutdown: u64,
}

impl DroppedStats {
    /// All records lost.
    pub fn total(&self) -> u64 {
        self.queue_full + self.failed + self.shutdown
    }
}

/// What [`LogWriter::shutdown`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterReport {
    /// Final counters per sink.
    pub sinks: Vec<SinkStats>,
    /// Whether every worker finished before the deadline (plus a short grace).
    pub completed: bool,
}

impl WriterReport {
    /// Records lost by all sinks together.
    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|sink| sink.dropped.total()).sum()
    }
}

/// Collects sinks, then starts a [`LogWriter`].
#[derive(Default)]
pub struct LogWriterBuilder {
    sinks: Vec<(Arc<dyn LogSink>, SinkOptions)>,
}

impl std::fmt::Debug for LogWriterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|(sink, _)| sink.name()))
            .finish()
    }
}

impl LogWriterBuilder {
    /// Adds a sink with its [`LogSink::default_options`].
    pub fn sink(self, sink: impl LogSink) -> Self {
        let options = sink.default_options();
        self.shared_sink(Arc::new(sink), options)
    }

    /// Adds a sink with the given options.
    pub fn sink_with(self, sink: impl LogSink, options: SinkOptions) -> Self {
        self.shared_sink(Arc::new(sink), options)
    }

    /// Adds a sink that is already shared.
    pub fn shared_sink(mut self, sink: Arc<dyn LogSink>, options: SinkOptions) -> Self {
        self.sinks.push((sink, options));
        self
    }

    /// Starts one worker task per sink on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] when no Tokio runtime is running, or when a queue capacity, a
    /// batch size or a retry bound is zero.
    pub fn start(self) -> Result<LogWriter, SinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| SinkError::config("the log writer must start inside a Tokio runtime"))?;
        for (sink, options) in &self.sinks {
            if options.queue_capacity == 0
                || options.batch_size == 0
                || options.retry.max_attempts == 0
            {
                return Err(SinkError::config(format!(
                    "sink `{}`: queue_capacity, batch_size and retry.max_attempts must be at least 1",
                    sink.name()
                )));
            }
        }
        let (shutdown, _) = watch::channel(None);
        let mut slots = Vec::with_capacity(self.sinks.len());
        let mut tasks = Vec::with_capacity(self.sinks.len());
        for (sink, options) in self.sinks {
            let (queue, receiver) = mpsc::channel(options.queue_capacity);
            let counters = Arc::new(Counters::default());
            let name = sink.name().to_owned();
            let span = tracing::info_span!("log_sink", sink = %name);
            let worker = Worker {
                sink,
                options,
                receiver,
                counters: Arc::clone(&counters),
                shutdown: shutdown.subscribe(),
                deadline: None,
            };
            tasks.push(runtime.spawn(worker.run().instrument(span)));
            slots.push(SinkSlot {
                name,
                queue,
                counters,
            });
        }
        Ok(LogWriter {
            slots,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }
}

impl LogWriter {
    /// A builder to add sinks to.
    pub fn builder() -> LogWriterBuilder {
        LogWriterBuilder::default()
    }

    /// Queues a record for every sink. Never blocks and never waits: a sink whose queue is full
    /// loses the record, and the loss is counted in its `dropped.queue_full`.
    pub fn submit(&self, record: CallRecord) {
        self.submit_shared(Arc::new(record));
    }

    /// Like [`LogWriter::submit`], for a record that is already shared.
    pub fn submit_shared(&self, record: Arc<CallRecord>) {
        for slot in &self.slots {
            let counters = &slot.counters;
            counters.submitted.fetch_add(1, Ordering::Relaxed);
            match slot.queue.try_send(Arc::clone(&record)) {
                Ok(()) => {
                    counters.accepted.fetch_add(1, Ordering::Release);
                }
                Err(TrySendError::Full(_)) => {
                    counters.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Closed(_)) => {
                    counters.dropped_shutdown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counters per sink, in the order the sinks were added.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.slots
            .iter()
            .map(|slot| slot.counters.snapshot(&slot.name))
            .collect()
    }

    /// Stops accepting records, writes what is queued until `deadline` has passed, flushes the sinks,
    /// and reports. What is still queued at the deadline is counted as `dropped.shutdown`; a write in
    /// flight at the deadline is abandoned and counted the same way, although the sink may have
    /// received it. Records submitted afterwards are counted as `dropped.shutdown` too.
    ///
    /// Calling it again returns the counters at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown: the workers still stop at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> WriterReport {
        let deadline = Instant::now() + deadline;
        self.shutdown.send_replace(Some(deadline));
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let mut completed = true;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline + SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
                completed = false;
            }
        }
        let mut sinks = self.stats();
        if !completed {
            // An aborted worker could not count its queue; count it here.
            for sink in &mut sinks {
                sink.dropped.shutdown += sink.queued;
                sink.queued = 0;
            }
        }
        WriterReport { sinks, completed }
    }
}

/// One sink's background task.
struct Worker {
    sink: Arc<dyn LogSink>,
    options: SinkOptions,
    receiver: mpsc::Receiver<Arc<CallRecord>>,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<Option<Instant>>,
    /// Set once shutdown has begun.
    deadline: Option<Instant>,
}

enum Next {
    Record(Arc<CallRecord>),
    Closed,
    FlushTime,
    Shutdown,
}

impl Worker {
    async fn run(mut self) {
        let mut batch: Vec<Arc<CallRecord>> = Vec::with_capacity(self.options.batch_size);
        loop {
            if self.is_past_deadline() {
                break;
            }
            let flush_at = Instant::now() + self.options.flush_interval;
            while batch.len() < self.options.batch_size {
                self.observe_shutdown();
                let next = if self.deadline.is_some() {
                    // Shutting down: write what is there, without waiting for more.
                    match self.receiver.try_recv() {
                        Ok(record) => Next::Record(record),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => Next::FlushTime,
                    }
                } else if batch.is_empty() {
                    self.next_record(None).await
                } else {
                    self.next_record(Some(flush_at)).await
                };
                match next {
                    Next::Record(record) => batch.push(self.options.content.apply(&record)),
                    Next::Shutdown => self.begin_shutdown(),
                    Next::FlushTime | Next::Closed => break,
                }
            }
            if batch.is_empty() {
                // Closed and drained, or shutting down with nothing left.
                break;
            }
            self.deliver(&batch).await;
            batch.clear();
        }
        self.drop_remaining(&mut batch);
        self.flush().await;
    }

    async fn next_record(&mut self, flush_at: Option<Instant>) -> Next {
        let wait_for_flush = async {
            match flush_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            changed = self.shutdown.changed() => match changed {
                Ok(()) => Next::Shutdown,
                // The writer is gone; its queues are closed too, so `recv` ends the loop.
                Err(_) => match self.receiver.recv().await {
                    Some(record) => Next::Record(record),
                    None => Next::Closed,
                },
            },
            record = self.receiver.recv() => match record {
                Some(record) => Next::Record(record),
                None => Next::Closed,
            },
            () = wait_for_flush => Next::FlushTime,
        }
    }

    /// Notices a shutdown whose change notification another wait already consumed.
    fn observe_shutdown(&mut self) {
        if self.deadline.is_none() && self.shutdown.borrow().is_some() {
            self.begin_shutdown();
        }
    }

    fn begin_shutdown(&mut self) {
        if let Some(deadline) = *self.shutdown.borrow_and_update() {
            self.deadline = Some(deadline);
            // Later submits fail with `Closed`; what is queued can still be received.
            self.receiver.close();
        }
    }

    fn is_past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Resolves when shutdown has begun and its deadline has passed.
    async fn deadline_passed(
        shutdown: &mut watch::Receiver<Option<Instant>>,
        known: Option<Instant>,
    ) -> Instant {
        let mut deadline = known;
        loop {
            if deadline.is_none() {
                // Read the value, not only changes: an earlier, dropped wait may have seen the change.
                deadline = *shutdown.borrow_and_update();
            }
            if let Some(at) = deadline {
                tokio::time::sleep_until(at).await;
                return at;
            }
            if shutdown.changed().await.is_err() {
                // The writer is gone without a shutdown: no deadline, ever.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Writes one batch, retrying retryable failures within the policy and the shutdown deadline.
    async fn deliver(&mut self, batch: &[Arc<CallRecord>]) {
        let retry = self.options.retry.clone();
        let first_attempt = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let res = tokio::select! {
                res = self.sink.write(batch) => res,
                at = Worker::deadline_passed(&mut self.shutdown, self.deadline) => {
                    self.deadline = Some(at);
                    self.receiver.close();
                    self.counters.shut_out(batch.len());
                    tracing::warn!(records = batch.len(), "Write abandoned at the shutdown deadline.");
                    return;
                }
            };
            let err = match res {
                Ok(()) => {
                    self.counters.written(batch.len());
                    return;
                }
                Err(err) => err,
            };
            let age = first_attempt.elapsed();
            if err.is_retryable() && attempts < retry.max_attempts && age < retry.max_age {
                let wait = retry.backoff(attempts);
                tracing::warn!(
                    records = batch.len(),
                    attempt = attempts,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %ErrorChain(&err),
                    "Log sink write failed; retrying."
                );
                Counters::add(&self.counters.retried, batch.len());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    at = Worker::deadline_passed(&mut self.shutdown, self.deadline) => {
                        self.deadline = Some(at);
                        self.receiver.close();
                        self.counters.shut_out(batch.len());
                        tracing::warn!(records = batch.len(), "Retry abandoned at the shutdown deadline.");
                        return;
                    }
                }
                continue;
            }
            let lost = err
                .rejected_records()
                .unwrap_or(batch.len())
                .min(batch.len());
            self.counters.failed(lost);
            self.counters.written(batch.len() - lost);
            tracing::warn!(
                records = batch.len(),
                dropped = lost,
                attempts,
                error = %ErrorChain(&err),
                "Log sink write failed; records dropped."
            );
            return;
        }
    }

    fn drop_remaining(&mut self, batch: &mut Vec<Arc<CallRecord>>) {
        self.receiver.close();
        let mut left = batch.len();
        batch.clear();
        while let Ok(_record) = self.receiver.try_recv() {
            left += 1;
        }
        if left > 0 {
            self.counters.shut_out(left);
            tracing::warn!(
                records = left,
                "Records still queued at the shutdown deadline were dropped."
            );
        }
    }

    async fn flush(&mut self) {
        let res = match self.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, self.sink.flush()).await {
                Ok(res) => res,
                Err(_elapsed) => {
                    tracing::warn!("Log sink flush did not finish before the shutdown deadline.");
                    return;
                }
            },
            None => self.sink.flush().await,
        };
        if let Err(err) = res {
            tracing::warn!(error = %ErrorChain(&err), "Log sink flush failed.");
        }
    }
}

/// Displays an error with its sources, `outer: inner: innermost`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
