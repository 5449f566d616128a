//! A bounded window of recent records, analysed on demand by the report's own pairing and
//! statistics: what the gateway's live page (`GET /ui`) shows, so the page and `mirror report`
//! agree on the same calls.

use std::collections::VecDeque;

use mirror_core::CallRecord;

use super::{Analyzer, Report, ReportOptions};

/// Records the gateway's live window keeps at most.
pub const LIVE_MAX_RECORDS: usize = 4_096;
/// Bytes the gateway's live window keeps at most (estimated, see [`RecentRecords`]).
pub const LIVE_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Added to a record's JSON size for its in-memory overhead (the struct, string headers, the
/// deque slot).
const RECORD_OVERHEAD: usize = 512;

/// The most recent call records, bounded in count and in bytes; the oldest go first.
///
/// A record's size is estimated as the length of its JSON (what the JSONL sink would write) plus a
/// fixed overhead. Conversations (`messages`) are dropped on entry: the report reads them only
/// for a judge, and the live page has none. A record larger than the whole byte budget is not
/// kept, and counted with the evicted ones.
#[derive(Debug)]
pub struct RecentRecords {
    records: VecDeque<(CallRecord, usize)>,
    bytes: usize,
    max_records: usize,
    max_bytes: usize,
    seen: u64,
    evicted: u64,
}

/// How full a [`RecentRecords`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowStats {
    /// Records held.
    pub records: usize,
    /// Estimated bytes held.
    pub bytes: usize,
    /// The record limit.
    pub max_records: usize,
    /// The byte limit.
    pub max_bytes: usize,
    /// Records ever offered.
    pub seen: u64,
    /// Records that left the window (or never entered it) to stay within its limits.
    pub evicted: u64,
}

impl RecentRecords {
    /// A window of at most `max_records` records and `max_bytes` estimated bytes.
    pub fn new(max_records: usize, max_bytes: usize) -> Self {
        RecentRecords {
            records: VecDeque::new(),
            bytes: 0,
            max_records: max_records.max(1),
            max_bytes,
            seen: 0,
            evicted: 0,
        }
    }

    /// Adds `record`, evicting the oldest records as needed.
    pub fn push(&mut self, mut record: CallRecord) {
        record.messages = None;
        let size = estimated_bytes(&record);
        self.push_estimated(record, size);
    }

    /// Adds `record` whose [`estimated_bytes`] are `size`, measured by the caller (without its
    /// `messages`, which are dropped here).
    pub fn push_estimated(&mut self, mut record: CallRecord, size: usize) {
        self.seen += 1;
        record.messages = None;
        if size > self.max_bytes {
            self.evicted += 1;
            return;
        }
        while self.records.len() >= self.max_records || self.bytes + size > self.max_bytes {
            let Some((_, old)) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old;
            self.evicted += 1;
        }
        self.bytes += size;
        self.records.push_back((record, size));
    }

    /// How full the window is.
    pub fn stats(&self) -> WindowStats {
        WindowStats {
            records: self.records.len(),
            bytes: self.bytes,
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            seen: self.seen,
            evicted: self.evicted,
        }
    }

    /// The report over the records held, in the order they came, exactly as `mirror report`
    /// computes it from a log holding the same records (the pairing window is the whole window).
    pub fn report(&self, options: &ReportOptions) -> Report {
        let mut analyzer = Analyzer::new(ReportOptions {
            window: self.records.len().max(1),
            judge_samples: 0,
            ..options.clone()
        });
        for (record, _) in &self.records {
            analyzer.push(record);
        }
        analyzer.finish()
    }
}

/// Counts bytes written.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A record's JSON length plus 512 bytes for its in-memory overhead.
pub fn estimated_bytes(record: &CallRecord) -> usize {
    let mut counter = Counter(0);
    // Serialising a record to a writer that cannot fail does not fail; were it to, the overhead
    // alone is counted.
    let _ = serde_json::to_writer(&mut counter, record);
    counter.0 + RECORD_OVERHEAD
}
