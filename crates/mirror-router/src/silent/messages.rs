//! Mirroring Messages calls: chat's eligibility chain, and MCP servers as for Responses.
//!
//! A copy is dropped as `mcp_tools` when the request names remote MCP servers (the upstream would
//! call them again) unless the deployment sets `silent_mirror_mcp_tools`. The copy keeps the
//! caller's `anthropic-beta` header, so a same-format silent call sees what the primary saw.

use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{CallMeta, MessagesRequest, MirrorCopy};

use super::queue::{self, SilentCopy, SilentJob};
use super::DropReason;
use crate::deployment::Deployment;
use crate::messages::{Messages, MessagesStreamed};
use crate::router::Inner;
use crate::RouterError;

impl Inner {
    /// Offers a copy of a Messages `request` to each silent group of `deployment`; never waits.
    pub(crate) fn fire_silent_messages(
        &self,
        deployment: &Deployment,
        request: &MessagesRequest,
        meta: &CallMeta,
    ) {
        if deployment.silent.is_empty() || meta.is_silent_experiment {
            return;
        }
        let silent = &self.silent;
        let stats = &silent.stats;
        let key = request.user_id().or_else(|| {
            let name = self.mirror_settings.sample_key.as_deref()?;
            request.gateway_metadata()?.get(name)?.as_str()
        });
        let mut bytes = None;
        for target in &deployment.silent {
            let group = &self.groups[target.group];
            if meta.mirror_opt_out {
                stats.mirrored_and_dropped(DropReason::OptedOut);
            } else if let Err(reason) = self.target_admits(deployment, group, key) {
                stats.mirrored_and_dropped(reason);
            } else if request.has_mcp_tools()
                && deployment.params.silent_mirror_mcp_tools != Some(true)
            {
                stats.mirrored_and_dropped(DropReason::McpTools);
            } else if !self.is_silent_group_healthy(group) {
                stats.mirrored_and_dropped(DropReason::Unhealthy);
            } else if !self.silent_budget_admits(group) {
                stats.mirrored_and_dropped(DropReason::RateCapped);
            } else {
                let bytes =
                    *bytes.get_or_insert_with(|| queue::approx_messages_copy_bytes(request));
                if let Some(ticket) = silent.reserve(bytes) {
                    let job = SilentJob {
                        copy: SilentCopy::Messages(request.to_mirror(meta, &target.name)),
                        group: target.group,
                    };
                    silent.send(job, ticket);
                }
            }
        }
    }

    /// Runs one Messages copy; a stream is read to its end, its events charged to the budget.
    pub(crate) async fn run_silent_messages(
        self: &Arc<Self>,
        copy: MirrorCopy<MessagesRequest>,
    ) -> Result<(), RouterError> {
        let MirrorCopy { request, meta } = copy;
        if request.is_stream() {
            let routed = self.call::<MessagesStreamed>(request, meta).await?;
            let mut stream = routed.response;
            let mut charge = queue::StreamCharge::new(&self.silent.stats);
            while let Some(item) = stream.next().await {
                let event = item?;
                if event.kind() == "content_block_delta" {
                    charge.add_bytes(event.data.len());
                }
            }
            // An `error` event is relayed as an event but recorded as a failure: counted as one.
            stream.take_failure().map_or(Ok(()), Err)
        } else {
            self.call::<Messages>(request, meta).await.map(|_| ())
        }
    }
}
