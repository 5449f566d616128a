//! `JsonlSink`: one JSON record per line, appended to a local file, with rotation.
//!
//! Every write call holds only complete lines: a batch is encoded into one buffer, each record followed
//! by `\n`, and appended with one `write_all` on a file opened with `O_APPEND`. The kernel moves the
//! offset to the end of the file for every write, so two writers (two sinks, or two processes) never
//! overwrite each other, and a reader that keeps an unterminated last line until its `\n` arrives never
//! sees half a record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use mirror_core::CallRecord;
use time::{Date, OffsetDateTime};

use crate::{LogSink, SinkError};

/// Where and how a [`JsonlSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonlConfig {
    /// The live file, e.g. `logs/mirror.jsonl`. Its directory is created when missing.
    pub path: PathBuf,
    /// Rotate before a write would make the live file larger than this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate when the UTC day changes.
    pub daily: bool,
}

impl JsonlConfig {
    /// Appends to `path`, without rotation.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlConfig {
            path: path.into(),
            max_bytes: None,
            daily: false,
        }
    }

    /// Rotates before the file would grow past `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Rotates when the UTC day changes.
    pub fn with_daily_rotation(mut self, daily: bool) -> Self {
        self.daily = daily;
        self
    }
}

/// Appends records to a JSON-lines file; the offline default sink.
///
/// Rotation renames the live file to `{stem}.{YYYY-MM-DD}.{N}.{ext}` (for `mirror.jsonl`:
/// `mirror.2025-01-16.1.jsonl`, `mirror.2025-01-16.2.jsonl`, ...), where the date is the UTC day the
/// file was opened and `N` the first free number, then starts a new live file. Rotation is meant for one
/// writing process per file; several sinks in one process should share one `JsonlSink`.
#[derive(Debug)]
pub struct JsonlSink {
    config: JsonlConfig,
    state: Arc<Mutex<FileState>>,
    clock: fn() -> OffsetDateTime,
}

#[derive(Debug, Default)]
struct FileState {
    file: Option<OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    size: u64,
    day: Date,
}

impl JsonlSink {
    /// A sink writing to `config.path`. The file is opened on the first write.
    pub fn new(config: JsonlConfig) -> Self {
        JsonlSink {
            config,
            state: Arc::new(Mutex::new(FileState::default())),
            clock: OffsetDateTime::now_utc,
        }
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }
}

fn lock(state: &Mutex<FileState>) -> MutexGuard<'_, FileState> {
    // A panic while holding the lock leaves at worst a stale handle, which the next write replaces.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Encodes records as JSON lines into one buffer.
pub(crate) fn encode_lines(batch: &[Arc<CallRecord>]) -> Result<Vec<u8>, SinkError> {
    let mut buffer = Vec::with_capacity(batch.len() * 1024);
    for record in batch {
        serde_json::to_writer(&mut buffer, &**record)
            .map_err(|source| SinkError::Encode { source })?;
        buffer.push(b'\n');
    }
    Ok(buffer)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_owned(),
        source,
    }
}

fn open(path: &Path, now: OffsetDateTime) -> Result<OpenFile, SinkError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    let mut metadata = file.metadata().map_err(io_error(path))?;
    if metadata.len() > 0 && !ends_with_newline(path).map_err(io_error(path))? {
        // A process killed in the middle of a write left half a line; appending to it would make
        // this batch's first record part of that broken line. Ending it loses only the torn record
        // (a reader counts it as one malformed line) and keeps every later record whole.
        (&file).write_all(b"\n").map_err(io_error(path))?;
        metadata = file.metadata().map_err(io_error(path))?;
    }
    let day = metadata
        .modified()
        .ok()
        .filter(|_| metadata.len() > 0)
        .map_or(now.date(), |modified| OffsetDateTime::from(modified).date());
    Ok(OpenFile {
        file,
        size: metadata.len(),
        day,
    })
}

/// Whether a non-empty file's last byte is `\n`.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The path a rotated file gets: `{stem}.{YYYY-MM-DD}.{N}.{ext}` with the first free `N`.
fn rotated_path(path: &Path, day: Date) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "mirror".into(), |s| s.to_string_lossy().into_owned());
    let extension = path
        .extension()
        .map_or_else(|| "jsonl".into(), |s| s.to_string_lossy().into_owned());
    let date = crate::time_fmt::date(day);
    let mut n = 1u32;
    loop {
        let candidate = path.with_file_name(format!("{stem}.{date}.{n}.{extension}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

fn append(
    config: &JsonlConfig,
    state: &mut FileState,
    buffer: &[u8],
    now: OffsetDateTime,
) -> Result<(), SinkError> {
    let path = &config.path;
    let mut current = match state.file.take() {
        Some(current) => current,
        None => open(path, now)?,
    };
    let too_big = config.max_bytes.is_some_and(|max| {
        current.size > 0 && current.size + u64::try_from(buffer.len()).unwrap_or(u64::MAX) > max
    });
    let new_day = config.daily && current.size > 0 && current.day != now.date();
    if too_big || new_day {
        let target = rotated_path(path, current.day);
        drop(current);
        std::fs::rename(path, &target).map_err(io_error(path))?;
        current = open(path, now)?;
    }
    // One call for the whole buffer; on failure the handle is dropped and reopened next time.
    current.file.write_all(buffer).map_err(io_error(path))?;
    current.size += u64::try_from(buffer.len()).unwrap_or(u64::MAX);
    state.file = Some(current);
    Ok(())
}

#[async_trait]
impl LogSink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let buffer = encode_lines(batch)?;
        let config = self.config.clone();
        let state = Arc::clone(&self.state);
        let now = (self.clock)();
        tokio::task::spawn_blocking(move || append(&config, &mut lock(&state), &buffer, now))
            .await
            .map_err(|err| SinkError::Io {
                path: self.config.path.clone(),
                source: std::io::Error::other(err),
            })?
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let state = Arc::clone(&self.state);
        let path = self.config.path.clone();
        tokio::task::spawn_blocking(move || {
            let guard = lock(&state);
            match guard.file.as_ref() {
                Some(open) => open.file.sync_data().map_err(io_error(&path)),
                None => Ok(()),
            }
        })
        .await
        .map_err(|err| SinkError::Io {
            path: self.config.path.clone(),
            source: std::io::Error::other(err),
        })?
    }
}

#[cfg(test)]
mod tests;
