//! Why a report failed.

use std::path::PathBuf;

use mirror_logging::S3ReadError;

/// Why `mirror report` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A log could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error("cannot write the report to `{}`", path.display())]
    Write {
        /// Where (`-` for standard output).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The judge's configuration is unusable.
    #[error("cannot set up the judge from `{}`", path.display())]
    JudgeConfig {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Listing or reading an S3 prefix failed.
    #[error("cannot read `{location}`")]
    S3 {
        /// `s3://bucket/prefix`.
        location: String,
        /// Why.
        #[source]
        source: S3ReadError,
    },
    /// The S3 parameters are missing or unusable.
    #[error("cannot read logs from S3: {message}")]
    S3Config {
        /// What is wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The judge's group is not in its configuration.
    #[error("the judge's model group `{group}` is not in `{}`", path.display())]
    UnknownJudge {
        /// The group asked for.
        group: String,
        /// The configuration file.
        path: PathBuf,
    },
    /// The gate's specification is unusable.
    #[error("invalid gate")]
    Gate(#[source] crate::GateError),
}
