//! Where the router's call records go.

use mirror_core::CallRecord;

/// Receives one [`CallRecord`] per call, primary or silent, success or failure.
///
/// `consume` is called on the request path, so it must not block or wait: hand the record to a
/// bounded queue (the facade's log writer does) and count what does not fit.
pub trait RecordConsumer: Send + Sync + 'static {
    /// Takes one record.
    fn consume(&self, record: CallRecord);

    /// Whether records should carry the payloads: the request's `messages` and the `response`.
    ///
    /// Asked once, when the router is built. A consumer that only counts (metrics without a log
    /// sink) returns false, and the router then skips copying every response into its record; every
    /// other field is the same. Default: true.
    fn wants_payloads(&self) -> bool {
        true
    }
}

impl<F> RecordConsumer for F
where
    F: Fn(CallRecord) + Send + Sync + 'static,
{
    fn consume(&self, record: CallRecord) {
        self(record);
    }
}

/// Sends records into a bounded Tokio channel; a full channel drops the record (and the drop is
/// visible as a gap in what the receiver sees, so prefer the log writer for production use).
impl RecordConsumer for tokio::sync::mpsc::Sender<CallRecord> {
    fn consume(&self, record: CallRecord) {
        if self.try_send(record).is_err() {
            tracing::warn!("Record channel full or closed; record dropped.");
        }
    }
}

/// Keeps every record in an unbounded channel: for tests and small tools only.
impl RecordConsumer for tokio::sync::mpsc::UnboundedSender<CallRecord> {
    fn consume(&self, record: CallRecord) {
        let _ = self.send(record);
    }
}
