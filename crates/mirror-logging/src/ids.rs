//! OpenTelemetry ids derived from our call identity, the same way every time.

use std::fmt::Write;

use mirror_core::{CallId, TraceId};
use sha2::{Digest, Sha256};

/// A 16-byte OTLP trace id, as 32 lowercase hex characters.
///
/// A UUID trace id (ours, or a caller's) gives its own bytes; a trace id that is already 32 hex
/// characters is kept; anything else is hashed. A primary and its silent copies share the trace id,
/// so they land in one OpenTelemetry trace.
pub(crate) fn otel_trace_id(trace_id: &TraceId) -> String {
    let raw = trace_id.as_str();
    if let Ok(uuid) = uuid::Uuid::parse_str(raw) {
        if !uuid.is_nil() {
            return hex(uuid.as_bytes());
        }
    }
    if raw.len() == 32
        && raw.bytes().all(|b| b.is_ascii_hexdigit())
        && raw.bytes().any(|b| b != b'0')
    {
        return raw.to_ascii_lowercase();
    }
    let digest = Sha256::digest(raw.as_bytes());
    non_zero(hex(&digest[..16]))
}

/// An 8-byte OTLP span id for a call, as 16 lowercase hex characters.
///
/// It is hashed from the whole call id: the first half of a UUIDv7 is a timestamp and would
/// collide between calls started in the same millisecond.
pub(crate) fn otel_span_id(call_id: &CallId) -> String {
    let digest = Sha256::digest(call_id.as_uuid().as_bytes());
    non_zero(hex(&digest[..8]))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// All-zero ids are invalid in OTLP.
fn non_zero(id: String) -> String {
    if id.bytes().all(|b| b == b'0') {
        let mut id = id;
        id.replace_range(id.len() - 1.., "1");
        id
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids() {
        let uuid = TraceId::from("0192d3a4-5b6c-7d8e-9f00-112233445566".to_owned());
        assert_eq!(otel_trace_id(&uuid), "0192d3a45b6c7d8e9f00112233445566");
        let otel = TraceId::from("4BF92F3577B34DA6A3CE929D0E0E4736".to_owned());
        assert_eq!(otel_trace_id(&otel), "4bf92f3577b34da6a3ce929d0e0e4736");
        let custom = TraceId::from("my-request-42".to_owned());
        let hashed = otel_trace_id(&custom);
        assert_eq!(hashed.len(), 32);
        assert_eq!(hashed, otel_trace_id(&custom), "deterministic");
        assert_ne!(
            hashed,
            otel_trace_id(&TraceId::from("my-request-43".to_owned()))
        );
        let nil = TraceId::from("00000000-0000-0000-0000-000000000000".to_owned());
        assert_ne!(otel_trace_id(&nil), "0".repeat(32));
    }

    #[test]
    fn span_ids() {
        let call = CallId::new();
        let id = otel_span_id(&call);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, otel_span_id(&call));
        assert_ne!(id, otel_span_id(&CallId::new()));
    }
}
