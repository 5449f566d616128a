//! Call identity: who a call is, which trace it belongs to, and whether it is a silent copy.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A UUIDv7: the Unix time in milliseconds, then 74 random bits from the thread's own generator.
///
/// `Uuid::now_v7` takes a process-wide mutex and makes a `getrandom` system call for every id;
/// three ids per mirrored request made that a lock shared by every worker thread and three system
/// calls. Ids stay unique (74 random bits per millisecond) and ordered by the millisecond; within
/// one millisecond they are not ordered, which nothing relies on (records are ordered by time).
fn now_v7() -> Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let random = fastrand::u128(..).to_le_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
}

/// The id of one call (one client request, or one silent copy of it). Fresh for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(Uuid);

impl CallId {
    /// A new, time-ordered id (UUIDv7).
    pub fn new() -> Self {
        CallId(now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for CallId {
    fn default() -> Self {
        CallId::new()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for CallId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(CallId)
    }
}

/// The id shared by a primary call and its silent copies; the key for pairing them.
///
/// A caller may choose it (`metadata.trace_id`), so it is any string, not necessarily a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TraceId(String);

impl TraceId {
    /// A new random trace id.
    pub fn new() -> Self {
        TraceId(now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TraceId {
    fn default() -> Self {
        TraceId::new()
    }
}

impl From<String> for TraceId {
    fn from(value: String) -> Self {
        TraceId(value)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Request-metadata key a caller sets to `true` to keep one request from being mirrored.
pub const OPT_OUT_METADATA_KEY: &str = "disable_mirroring";

/// Request-metadata key a caller may set to choose the trace id (LiteLLM's name).
pub const TRACE_ID_METADATA_KEY: &str = "trace_id";

/// Request-metadata key holding the request's tags (LiteLLM's name).
pub const TAGS_METADATA_KEY: &str = "tags";

/// Identity and routing facts of one call, kept beside the wire request.
///
/// The router creates one per client request with [`CallMeta::for_request`] and one per silent copy
/// with [`crate::ChatRequest::to_mirror`]. `is_silent_experiment` and `mirror_of` are never read from
/// what a caller sent, so a caller cannot make a primary call look like a shadow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallMeta {
    /// Fresh for every call.
    pub call_id: CallId,
    /// Shared by a primary call and its silent copies.
    pub trace_id: TraceId,
    /// The model group the call was made to.
    pub model_group: String,
    /// Whether this call is a silent copy.
    pub is_silent_experiment: bool,
    /// The primary's call id, on a silent copy.
    pub mirror_of: Option<CallId>,
    /// Request tags (from `metadata.tags`).
    pub tags: Vec<String>,
    /// The caller asked for this request not to be mirrored.
    pub mirror_opt_out: bool,
}

impl CallMeta {
    /// Identity for a new client request to `model_group`, reading the caller's `trace_id`, `tags` and
    /// opt-out flag from the request metadata.
    pub fn for_request(
        model_group: impl Into<String>,
        metadata: Option<&Map<String, Value>>,
    ) -> Self {
        let lookup = |key: &str| metadata.and_then(|m| m.get(key));
        let trace_id = match lookup(TRACE_ID_METADATA_KEY) {
            Some(Value::String(id)) if !id.is_empty() => TraceId::from(id.clone()),
            _ => TraceId::new(),
        };
        let tags = match lookup(TAGS_METADATA_KEY) {
            Some(Value::Array(tags)) => tags
                .iter()
                .filter_map(|tag| tag.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mirror_opt_out = matches!(lookup(OPT_OUT_METADATA_KEY), Some(Value::Bool(true)));
        CallMeta {
            call_id: CallId::new(),
            trace_id,
            model_group: model_group.into(),
            is_silent_experiment: false,
            mirror_of: None,
            tags,
            mirror_opt_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn call_ids_are_unique_version_7_uuids_stamped_with_the_current_millisecond() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ids: Vec<CallId> = (0..20_000).map(|_| CallId::new()).collect();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();

        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "an id was repeated");
        for id in &ids {
            let uuid = id.as_uuid();
            assert_eq!(uuid.get_version_num(), 7, "{uuid}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{uuid}");
            let (seconds, nanos) = uuid.get_timestamp().expect("v7 has a time").to_unix();
            let millis = u128::from(seconds) * 1000 + u128::from(nanos / 1_000_000);
            assert!(
                (before.as_millis()..=after.as_millis()).contains(&millis),
                "{uuid} is stamped {millis}, outside {before:?}..{after:?}"
            );
        }
    }

    #[test]
    fn ids_made_on_different_threads_do_not_collide() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..5_000).map(|_| CallId::new()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(all.insert(id), "{id} was made twice");
            }
        }
        assert_eq!(all.len(), 20_000);
    }
}
