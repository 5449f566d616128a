//! Reading logs: JSON lines, streamed, with a progress bar on a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal as _, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror_core::CallRecord;

use super::{Analyzer, Report, ReportError, ReportOptions};

/// Lines between progress-bar updates.
const PROGRESS_EVERY: u64 = 4096;

/// Feeds every JSON line of `reader` to `analyzer`, one line in memory at a time.
///
/// Blank lines are skipped; a line that is not a record (including a last line cut short by a
/// writer) is counted in `Totals::malformed_lines`.
///
/// # Errors
///
/// Fails when reading fails.
pub fn analyze_reader(reader: impl BufRead, analyzer: &mut Analyzer) -> Result<(), std::io::Error> {
    feed(reader, analyzer, &ProgressBar::hidden())
}

fn feed(
    mut reader: impl BufRead,
    analyzer: &mut Analyzer,
    progress: &ProgressBar,
) -> Result<(), std::io::Error> {
    let mut line = String::new();
    let mut lines: u64 = 0;
    let mut bytes: u64 = 0;
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        lines += 1;
        if lines.is_multiple_of(PROGRESS_EVERY) {
            progress.inc(bytes);
            bytes = 0;
        }
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<CallRecord>(text) {
            Ok(record) => analyzer.push(&record),
            Err(_) => analyzer.skip_malformed(),
        }
    }
    progress.inc(bytes);
    Ok(())
}

fn progress_bar(paths: &[PathBuf], show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Feeds the files at `paths` (`-` is standard input), in order, to `analyzer`; `show_progress`
/// draws a progress bar on standard error when it is a terminal.
///
/// # Errors
///
/// [`ReportError::Read`] when a file cannot be opened or read.
pub fn feed_paths(
    paths: &[PathBuf],
    analyzer: &mut Analyzer,
    show_progress: bool,
) -> Result<(), ReportError> {
    let progress = progress_bar(paths, show_progress);
    for path in paths {
        progress.set_message(path.display().to_string());
        let io_error = |source| ReportError::Read {
            path: path.clone(),
            source,
        };
        let reader: Box<dyn Read> = if path == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(io_error)?)
        };
        feed(
            BufReader::with_capacity(1 << 16, reader),
            analyzer,
            &progress,
        )
        .map_err(io_error)?;
    }
    progress.finish_and_clear();
    Ok(())
}

/// Reads the JSONL logs at `paths` (`-` is standard input), in order, and builds the report.
/// `show_progress` draws a progress bar on standard error when it is a terminal.
///
/// # Errors
///
/// Fails when a file cannot be opened or read.
pub fn analyze_paths(
    paths: &[PathBuf],
    options: &ReportOptions,
    show_progress: bool,
) -> Result<Report, ReportError> {
    let mut analyzer = Analyzer::new(options.clone());
    feed_paths(paths, &mut analyzer, show_progress)?;
    Ok(analyzer.finish())
}
