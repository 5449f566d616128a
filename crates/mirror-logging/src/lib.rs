//! Log sinks and the background writer of Mirror, an LLM router and OpenAI-compatible gateway with
//! traffic mirroring.
//!
//! The router produces one [`mirror_core::CallRecord`] per call, primary or silent. The facade hands
//! each record to a [`LogWriter`], which queues it for every [`LogSink`] without blocking and writes
//! batches from one background task per sink, with bounded retries and counters ([`SinkStats`]).
//!
//! Sinks shipped here:
//! - [`JsonlSink`]: one JSON record per line in a local file, with rotation (the offline default);
//! - [`LangfuseSink`]: Langfuse, through its OpenTelemetry endpoint or the legacy batch endpoint;
//! - [`OtlpSink`]: OpenTelemetry spans to any OTLP/HTTP collector, with the GenAI conventions;
//! - [`S3Sink`]: one JSON object per call in an S3 bucket (or an S3-compatible server), laid out as
//!   LiteLLM's S3 logger lays them out.
//!
//! [`S3Reader`] lists and reads those objects back (for `mirror report`), with the sink's parameters.
//!
//! Implement [`LogSink`] to add your own.
//!
//! This crate does not produce records, read the gateway's `config.yaml`, or know about the router: the
//! facade (`mirror`) builds sinks from configuration and feeds them. It never logs prompts, keys or auth
//! headers itself.

mod error;
mod http;
mod ids;
mod jsonl;
mod langfuse;
mod otlp;
mod s3;
mod sink;
#[cfg(test)]
mod test_support;
mod time_fmt;
mod writer;

pub use error::{BoxError, SinkError};
pub use jsonl::{JsonlConfig, JsonlSink};
pub use langfuse::{
    LangfuseConfig, LangfuseMode, LangfuseSink, LANGFUSE_DEFAULT_HOST, SILENT_EXPERIMENT_TAG,
};
pub use otlp::{OtlpConfig, OtlpSink, OTLP_DEFAULT_ENDPOINT, SILENT_ATTRIBUTE};
pub use s3::{
    ListPage, ObjectInfo, ObjectStream, S3Config, S3Partition, S3ReadError, S3Reader, S3Sink,
};
pub use sink::{ContentPolicy, LogSink, RetryPolicy, SinkOptions, REDACTED};
pub use writer::{DroppedStats, LogWriter, LogWriterBuilder, SinkStats, WriterReport};
