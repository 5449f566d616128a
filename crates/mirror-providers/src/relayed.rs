//! A stream chunk and, while it is exactly what an upstream sent, that event's bytes.

use std::ops::Deref;

use bytes::Bytes;
use mirror_core::ChatChunk;

/// One chunk of a streamed chat completion, with the upstream event's `data:` payload when the
/// chunk was parsed from it and has not been changed since.
///
/// A gateway writes [`raw`](Self::raw) as the event (`data: <raw>\n\n`) instead of serialising the
/// chunk again; what the caller gets is then byte for byte what the upstream sent. The bytes are
/// only ever set by the SSE reader, from the event the chunk was parsed from; a chunk built in
/// process (the mock, a stream translated from another format) has none. Reading goes through
/// `Deref`; the only way to change the chunk is [`chunk_mut`](Self::chunk_mut), which drops the
/// bytes, so a changed chunk is always serialised from what it now says.
#[derive(Debug, Clone)]
pub struct RelayedChunk {
    chunk: ChatChunk,
    /// The event's payload: valid JSON that parses to `chunk`, without a line break (a payload sent
    /// on several `data:` lines has none kept, since one `data:` line could not carry it).
    raw: Option<Bytes>,
}

impl RelayedChunk {
    /// A chunk parsed from `raw`, an event's `data:` payload. A payload with a line break is not
    /// kept: written after one `data: ` it would be several SSE lines.
    pub(crate) fn parsed(chunk: ChatChunk, raw: Bytes) -> Self {
        // One vectorised pass (two `[u8]::contains` byte loops cost ~540 instructions a chunk).
        let raw = memchr::memchr2(b'\n', b'\r', &raw).is_none().then_some(raw);
        RelayedChunk { chunk, raw }
    }

    /// The upstream's `data:` payload for this chunk, unchanged, if it came from an upstream and
    /// has not been changed since.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The chunk, to change: the upstream's bytes no longer say what it says, so they are dropped.
    pub fn chunk_mut(&mut self) -> &mut ChatChunk {
        self.raw = None;
        &mut self.chunk
    }

    /// The chunk, without the upstream's bytes.
    pub fn into_chunk(self) -> ChatChunk {
        self.chunk
    }
}

impl Deref for RelayedChunk {
    type Target = ChatChunk;

    fn deref(&self) -> &ChatChunk {
        &self.chunk
    }
}

/// A chunk built in process: no upstream bytes, serialised when relayed.
impl From<ChatChunk> for RelayedChunk {
    fn from(chunk: ChatChunk) -> Self {
        RelayedChunk { chunk, raw: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> ChatChunk {
        serde_json::from_str(
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}"#,
        )
        .expect("a chunk")
    }

    #[test]
    fn changing_a_chunk_drops_its_bytes() {
        let mut relayed = RelayedChunk::parsed(chunk(), Bytes::from_static(b"{\"id\":\"c\"}"));
        assert_eq!(
            relayed.raw().map(|raw| &raw[..]),
            Some(&b"{\"id\":\"c\"}"[..])
        );
        assert_eq!(relayed.id, "c");
        relayed.chunk_mut().model = "other".to_owned();
        assert!(relayed.raw().is_none());
        assert_eq!(relayed.model, "other");
    }

    #[test]
    fn a_payload_with_a_line_break_is_not_kept() {
        for raw in [&b"{\n\"id\":\"c\"}"[..], b"{\r\"id\":\"c\"}"] {
            let relayed = RelayedChunk::parsed(chunk(), Bytes::copy_from_slice(raw));
            assert!(relayed.raw().is_none());
        }
    }

    #[test]
    fn a_chunk_built_in_process_has_no_bytes() {
        assert!(RelayedChunk::from(chunk()).raw().is_none());
    }
}
