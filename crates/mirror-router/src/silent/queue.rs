//! The silent queue: never awaited by the primary path, bounded by one memory budget for queued and
//! running copies (with counts as backstops), with a ticket per copy that ends it in exactly one
//! counter and gives its bytes back exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mirror_core::{
    AnthropicContent, ChatRequest, EmbeddingsRequest, MessageContent, MessagesRequest, MirrorCopy,
    ResponsesRequest, SystemPrompt,
};
use tokio::sync::mpsc;

use super::stats::{Counts, DropReason, MirrorStats};

/// A silent copy, of one of the mirrored formats.
#[derive(Debug)]
pub(crate) enum SilentCopy {
    Chat(MirrorCopy),
    Responses(MirrorCopy<ResponsesRequest>),
    Embeddings(MirrorCopy<EmbeddingsRequest>),
    Messages(MirrorCopy<MessagesRequest>),
}

/// A silent copy waiting to run.
#[derive(Debug)]
pub(crate) struct SilentJob {
    pub(crate) copy: SilentCopy,
    /// The silent group's index in the router, for its health.
    pub(crate) group: usize,
}

/// A copy in the queue: the job, its ticket, and the runtime it runs on when not the dispatcher's.
pub(crate) type QueuedCopy = (SilentJob, JobTicket, Option<tokio::runtime::Handle>);

thread_local! {
    /// Set by [`silent_copies_stay_on_thread`].
    static STAY_ON_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Silent copies fired on the calling thread from now on run on its runtime (when that is a
/// current-thread one), not where the router's dispatcher runs: for the worker threads of the
/// gateway's per-core layout, so that a copy and its upstream connections stay on the primary's
/// thread and the workers share the silent work. The queue, its budget and its counters are the
/// router's as before.
pub fn silent_copies_stay_on_thread() {
    STAY_ON_THREAD.set(true);
}

/// Where a copy fired now runs: the caller's runtime after [`silent_copies_stay_on_thread`], else
/// (`None`) where the dispatcher runs.
fn home_runtime() -> Option<tokio::runtime::Handle> {
    if !STAY_ON_THREAD.get() {
        return None;
    }
    tokio::runtime::Handle::try_current()
        .ok()
        .filter(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// Tracks one queued copy; whatever happens to it, exactly one terminal counter is bumped.
#[derive(Debug)]
pub(crate) struct JobTicket {
    stats: Arc<MirrorStats>,
    state: TicketState,
    /// Bytes this copy is charged against the budget, from before it is made until it ends
    /// (completed, failed or dropped, also when its task is aborted); given back exactly once.
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketState {
    Queued,
    Running,
    Done,
}

/// How a copy left the queue or the running set.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Completed,
    Failed,
    Dropped(DropReason),
}

impl JobTicket {
    /// A copy accepted into the queue: counted as mirrored and queued in one step. Its `bytes` are
    /// already reserved.
    fn queued(stats: &Arc<MirrorStats>, bytes: u64) -> Self {
        stats.update(|counts| {
            Counts::add(&counts.mirrored);
            Counts::add(&counts.queued);
        });
        JobTicket {
            stats: Arc::clone(stats),
            state: TicketState::Queued,
            bytes,
        }
    }

    fn release_bytes(&mut self) {
        if self.bytes > 0 {
            self.stats.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
            self.bytes = 0;
        }
    }

    pub(crate) fn start(&mut self) {
        // The bytes stay charged: a running call holds its request and its connection.
        if self.state == TicketState::Queued {
            self.stats.update(|counts| {
                Counts::sub(&counts.queued);
                Counts::add(&counts.running);
            });
            self.state = TicketState::Running;
        }
    }

    pub(crate) fn finish(mut self, succeeded: bool) {
        self.end(if succeeded {
            Outcome::Completed
        } else {
            Outcome::Failed
        });
    }

    fn end(&mut self, outcome: Outcome) {
        let gauge = match self.state {
            TicketState::Queued => |counts: &Counts| Counts::sub(&counts.queued),
            TicketState::Running => |counts: &Counts| Counts::sub(&counts.running),
            TicketState::Done => return,
        };
        self.release_bytes();
        self.stats.update(|counts| {
            gauge(counts);
            match outcome {
                Outcome::Completed => Counts::add(&counts.completed),
                Outcome::Failed => Counts::add(&counts.failed),
                Outcome::Dropped(reason) => counts.count_drop(reason),
            }
        });
        self.state = TicketState::Done;
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        // Dropped before it finished: the queue was drained at shutdown, or the task was aborted.
        self.end(Outcome::Dropped(DropReason::Shutdown));
    }
}

/// The queue side of the scheduler, held by the router.
#[derive(Debug)]
pub(crate) struct SilentQueue {
    sender: mpsc::Sender<QueuedCopy>,
    /// The memory budget of queued and running copies together.
    max_bytes: u64,
    pub(crate) stats: Arc<MirrorStats>,
    /// The global switch (shared with the shared-state sync).
    pub(crate) enabled: Arc<AtomicBool>,
    /// Whether `enabled` was set at run time (then a reload keeps it rather than the file's).
    pub(crate) enabled_set: AtomicBool,
    /// Whether `enabled` was set here and is not yet published to the other instances.
    pub(crate) enabled_dirty: Arc<AtomicBool>,
    pub(crate) closed: AtomicBool,
    /// Which silent Responses continue which primary ones.
    pub(crate) links: Arc<super::state::ResponseLinks>,
}

impl SilentQueue {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: u64,
        enabled: bool,
    ) -> (Self, mpsc::Receiver<QueuedCopy>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let queue = SilentQueue {
            sender,
            max_bytes,
            stats: Arc::new(MirrorStats::default()),
            enabled: Arc::new(AtomicBool::new(enabled)),
            enabled_set: AtomicBool::new(false),
            enabled_dirty: Arc::default(),
            closed: AtomicBool::new(false),
            links: Arc::default(),
        };
        (queue, receiver)
    }

    /// Whether no copy waits in the queue.
    pub(crate) fn is_empty(&self) -> bool {
        self.sender.capacity() == self.sender.max_capacity()
    }

    /// Takes over the counters and the run-time switch of the queue of the router this one
    /// replaces: copies still in flight there end in the same counters, which stay balanced.
    pub(crate) fn take_over(&mut self, old: &SilentQueue) {
        self.stats = Arc::clone(&old.stats);
        if old.enabled_set.load(Ordering::Acquire) {
            self.enabled
                .store(old.enabled.load(Ordering::Acquire), Ordering::Release);
            self.enabled_set.store(true, Ordering::Release);
        }
    }

    /// Makes room for a copy whose request is about `request_bytes` before it is made, so a copy
    /// that would be dropped is never made. It is charged `request_bytes` plus [`SILENT_CALL_BYTES`]
    /// until it ends. `None` means dropped, and already counted: shut down, the queue is full by
    /// count, or the budget has no room for it.
    ///
    /// Only atomics: the count check reads the channel's free slots (`try_send` in
    /// [`SilentQueue::send`] still decides), the byte check adds first and takes back on overflow,
    /// so admitted copies never hold more than `max_bytes` together (a running stream's response
    /// bytes are charged as they come, see `StreamCharge`, and may take it over by what they hold).
    pub(crate) fn reserve(&self, request_bytes: u64) -> Option<JobTicket> {
        if self.closed.load(Ordering::Acquire) {
            self.stats.mirrored_and_dropped(DropReason::Shutdown);
            return None;
        }
        if self.sender.capacity() == 0 {
            self.stats.mirrored_and_dropped(DropReason::QueueFull);
            return None;
        }
        let bytes = request_bytes.saturating_add(SILENT_CALL_BYTES);
        let before = self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.max_bytes {
            self.stats.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.stats.mirrored_and_dropped(DropReason::QueueFull);
            return None;
        }
        // Counted queued before it is visible to the worker, so the gauges never go negative.
        Some(JobTicket::queued(&self.stats, bytes))
    }

    /// Queues a copy without waiting: full or closed means dropped and counted.
    pub(crate) fn send(&self, job: SilentJob, ticket: JobTicket) {
        match self.sender.try_send((job, ticket, home_runtime())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_job, mut ticket, _home))) => {
                ticket.end(Outcome::Dropped(DropReason::QueueFull));
            }
            // The ticket's drop counts it as dropped at shutdown.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// What one running silent call holds besides its request and response bodies, charged to every
/// copy against the budget: its task, the router's call state, the upstream client's request and
/// connection buffers. Measured with the release binary: 46.0 kB per held non-streamed call, 48.3 kB
/// per held stream (whose answer so far is charged apart), with one-line requests
/// (docs/benchmarks.md, "Where the bytes of a held call go"). That is the HTTP/1.1 cost (one
/// connection per call, ~29 kB of it hyper's); over HTTP/2 a call costs ~17 kB (10 kB streamed), but
/// a server's stream limit then caps the calls in flight, so HTTP/1.1 is what to plan for.
pub const SILENT_CALL_BYTES: u64 = 45 * 1024;

/// Response bytes a running silent stream holds, charged against the budget as they arrive and
/// given back when the call ends (on drop, so also when its task is aborted).
#[derive(Debug)]
pub(crate) struct StreamCharge<'a> {
    stats: &'a MirrorStats,
    bytes: u64,
}

impl<'a> StreamCharge<'a> {
    pub(crate) fn new(stats: &'a MirrorStats) -> Self {
        StreamCharge { stats, bytes: 0 }
    }

    /// Charges what `chunk` adds to the call's accumulated answer.
    pub(crate) fn add(&mut self, chunk: &mirror_core::ChatChunk) {
        /// A tool-call fragment's struct and JSON nodes.
        const PER_FRAGMENT: usize = 64;
        let mut bytes = 0;
        for choice in &chunk.choices {
            if let Some(delta) = &choice.delta {
                bytes += delta.content.as_ref().map_or(0, String::len);
                bytes += delta.tool_calls.as_ref().map_or(0, |calls| {
                    calls
                        .iter()
                        .map(|call| PER_FRAGMENT + value_bytes(call))
                        .sum()
                });
            }
        }
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

impl StreamCharge<'_> {
    /// Charges `bytes` the call's accumulated answer grew by.
    pub(crate) fn add_bytes(&mut self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

impl Drop for StreamCharge<'_> {
    fn drop(&mut self) {
        self.stats.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Roughly the heap bytes a silent copy of `request` holds: every string in it (message texts, content
/// parts such as base64 images, tool calls and definitions, metadata) plus a fixed allowance per
/// message, part and JSON node for the structs, map entries and allocator slack.
///
/// One pass over the request, no serialization and no allocation; computed once per client request
/// and used for every target. It is an estimate for a memory bound, not an exact size: it errs on
/// the high side for small messages.
pub(crate) fn approx_copy_bytes(request: &ChatRequest) -> u64 {
    /// The request struct, its small fields and the metadata the copy gains.
    const PER_REQUEST: usize = 512;
    /// A message struct, its role and its allocations' slack.
    const PER_MESSAGE: usize = 160;
    /// A content part or tool call struct.
    const PER_PART: usize = 96;
    let mut bytes =
        PER_REQUEST + request.model.len() + request.user.as_ref().map_or(0, String::len);
    for message in &request.messages {
        bytes += PER_MESSAGE + message.role.len();
        match &message.content {
            Some(MessageContent::Text(text)) => bytes += text.len(),
            Some(MessageContent::Parts(parts)) => {
                for part in parts {
                    bytes += PER_PART
                        + part.kind.len()
                        + part.text.as_ref().map_or(0, String::len)
                        + map_bytes(&part.extra);
                }
            }
            None => {}
        }
        bytes += message.name.as_ref().map_or(0, String::len);
        bytes += message.tool_call_id.as_ref().map_or(0, String::len);
        for call in message.tool_calls.iter().flatten() {
            bytes += PER_PART
                + call.id.len()
                + call.kind.len()
                + call.function.name.len()
                + call.function.arguments.len()
                + map_bytes(&call.extra);
        }
        bytes += map_bytes(&message.extra);
    }
    for tool in request.tools.iter().flatten() {
        bytes += PER_PART + tool.kind.len() + tool.function.as_ref().map_or(0, value_bytes);
        bytes += map_bytes(&tool.extra);
    }
    for value in [
        &request.stop,
        &request.tool_choice,
        &request.response_format,
    ]
    .into_iter()
    .flatten()
    {
        bytes += value_bytes(value);
    }
    bytes += request.metadata.as_ref().map_or(0, map_bytes);
    bytes += map_bytes(&request.extra);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Roughly the heap bytes a silent copy of a Responses request holds: its JSON strings and nodes
/// (the input items and tools dominate), as [`approx_copy_bytes`] counts them.
/// The estimated bytes an embeddings copy holds: its input and the metadata.
pub(crate) fn approx_embeddings_copy_bytes(request: &EmbeddingsRequest) -> u64 {
    const PER_REQUEST: usize = 256;
    let bytes = PER_REQUEST
        + request.model.len()
        + request.user.as_ref().map_or(0, String::len)
        + value_bytes(&request.input)
        + request.metadata.as_ref().map_or(0, map_bytes)
        + map_bytes(&request.extra);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

pub(crate) fn approx_responses_copy_bytes(request: &ResponsesRequest) -> u64 {
    const PER_REQUEST: usize = 512;
    let mut bytes =
        PER_REQUEST + request.model.len() + request.user.as_ref().map_or(0, String::len);
    bytes += request
        .tools
        .iter()
        .flatten()
        .map(value_bytes)
        .sum::<usize>();
    bytes += request.conversation.as_ref().map_or(0, value_bytes);
    bytes += request.metadata.as_ref().map_or(0, map_bytes);
    bytes += request.litellm_metadata.as_ref().map_or(0, map_bytes);
    bytes += map_bytes(&request.extra);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Roughly the heap bytes a silent copy of a Messages request holds: its turns' text and blocks
/// (images and documents dominate), the system prompt, tools and metadata, as [`approx_copy_bytes`]
/// counts them.
pub(crate) fn approx_messages_copy_bytes(request: &MessagesRequest) -> u64 {
    const PER_REQUEST: usize = 512;
    const PER_MESSAGE: usize = 160;
    const PER_BLOCK: usize = 96;
    let blocks = |blocks: &[mirror_core::ContentBlock]| -> usize {
        blocks
            .iter()
            .map(|block| PER_BLOCK + block.kind.len() + map_bytes(&block.fields))
            .sum()
    };
    let mut bytes = PER_REQUEST + request.model.len();
    bytes += match &request.system {
        Some(SystemPrompt::Text(text)) => text.len(),
        Some(SystemPrompt::Blocks(list)) => blocks(list),
        None => 0,
    };
    for message in &request.messages {
        bytes += PER_MESSAGE + message.role.len() + map_bytes(&message.extra);
        bytes += match &message.content {
            AnthropicContent::Text(text) => text.len(),
            AnthropicContent::Blocks(list) => blocks(list),
        };
    }
    bytes += request
        .tools
        .iter()
        .flatten()
        .map(value_bytes)
        .sum::<usize>();
    for value in [&request.tool_choice, &request.thinking]
        .into_iter()
        .flatten()
    {
        bytes += value_bytes(value);
    }
    bytes += request.metadata.as_ref().map_or(0, map_bytes);
    bytes += request.litellm_metadata.as_ref().map_or(0, map_bytes);
    bytes += request.beta.as_ref().map_or(0, String::len);
    bytes += map_bytes(&request.extra);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// A JSON node's allowance beyond its strings.
const PER_JSON_NODE: usize = 32;

fn map_bytes(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    map.iter()
        .map(|(key, value)| key.len() + value_bytes(value))
        .sum()
}

fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    PER_JSON_NODE
        + match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(value_bytes).sum(),
            Value::Object(map) => map_bytes(map),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_size_grows_with_message_content() {
        let small = ChatRequest::new("m", vec![mirror_core::ChatMessage::user("hi")]);
        let large = ChatRequest::new(
            "m",
            vec![mirror_core::ChatMessage::user("x".repeat(100_000))],
        );
        let small_bytes = approx_copy_bytes(&small);
        assert!((512..2_048).contains(&small_bytes), "{small_bytes}");
        assert!(approx_copy_bytes(&large) >= 100_000 + small_bytes - 2);
    }
}
