//! Responses state for silent groups: which silent response continues which primary response.
//!
//! A primary response id means nothing to a silent group's upstream, so it is never sent there.
//! When a primary response and its silent copy both finish, the pair is linked: primary upstream id
//! to the silent call's own routed id, per silent group. A later request with that primary id as
//! `previous_response_id` is mirrored with the silent id instead; without a link it is dropped as
//! `missing_state`.
//!
//! Bounds: at most [`MAX_LINKS`] links and [`MAX_PENDING`] half-finished pairs, the oldest evicted
//! first. Nothing survives a restart. A short critical section on a `Mutex`, taken only by
//! Responses calls of mirrored deployments (never chat), when a call ends or a copy is made.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mirror_core::CallId;

/// Links kept (primary response to silent response, per silent group).
pub(crate) const MAX_LINKS: usize = 10_000;
/// Client requests whose primary or silent response is still missing.
pub(crate) const MAX_PENDING: usize = 10_000;

#[derive(Debug, Default)]
struct Pending {
    primary: Option<String>,
    silent: Vec<(usize, String)>,
}

#[derive(Debug, Default)]
struct Maps {
    pending: HashMap<CallId, Pending>,
    pending_order: VecDeque<CallId>,
    links: HashMap<(usize, String), String>,
    links_order: VecDeque<(usize, String)>,
}

/// The bounded map of response links.
#[derive(Debug, Default)]
pub(crate) struct ResponseLinks(Mutex<Maps>);

impl ResponseLinks {
    /// The silent group's own id for the primary's upstream response id, if linked.
    pub(crate) fn silent_id(&self, group: usize, primary: &str) -> Option<String> {
        let maps = self.0.lock().ok()?;
        maps.links.get(&(group, primary.to_owned())).cloned()
    }

    /// The primary call `call` answered with upstream id `primary`.
    pub(crate) fn primary_done(&self, call: CallId, primary: String) {
        let Ok(mut maps) = self.0.lock() else { return };
        let pending = maps.pending_entry(call);
        pending.primary = Some(primary.clone());
        let silent = std::mem::take(&mut pending.silent);
        for (group, id) in silent {
            maps.link(group, primary.clone(), id);
        }
    }

    /// The silent copy of primary call `call` to `group` answered with routed id `silent`.
    pub(crate) fn silent_done(&self, call: CallId, group: usize, silent: String) {
        let Ok(mut maps) = self.0.lock() else { return };
        let pending = maps.pending_entry(call);
        match pending.primary.clone() {
            Some(primary) => maps.link(group, primary, silent),
            None => pending.silent.push((group, silent)),
        }
    }
}

impl Maps {
    fn pending_entry(&mut self, call: CallId) -> &mut Pending {
        if !self.pending.contains_key(&call) {
            while self.pending_order.len() >= MAX_PENDING {
                if let Some(old) = self.pending_order.pop_front() {
                    self.pending.remove(&old);
                }
            }
            self.pending_order.push_back(call);
        }
        self.pending.entry(call).or_default()
    }

    fn link(&mut self, group: usize, primary: String, silent: String) {
        let key = (group, primary);
        if self.links.insert(key.clone(), silent).is_none() {
            self.links_order.push_back(key);
            while self.links_order.len() > MAX_LINKS {
                if let Some(old) = self.links_order.pop_front() {
                    self.links.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_form_in_either_order_and_stay_bounded() {
        let links = ResponseLinks::default();
        let (a, b) = (CallId::new(), CallId::new());
        links.primary_done(a, "p1".into());
        links.silent_done(a, 0, "s1".into());
        links.silent_done(b, 1, "s2".into());
        links.primary_done(b, "p2".into());
        assert_eq!(links.silent_id(0, "p1").as_deref(), Some("s1"));
        assert_eq!(links.silent_id(1, "p2").as_deref(), Some("s2"));
        assert_eq!(links.silent_id(0, "p2"), None);
        for i in 0..MAX_LINKS + 5 {
            let call = CallId::new();
            links.primary_done(call, format!("x{i}"));
            links.silent_done(call, 0, format!("y{i}"));
        }
        assert_eq!(links.silent_id(0, "p1"), None, "the oldest link is evicted");
        let maps = links.0.lock().unwrap();
        assert!(maps.links.len() <= MAX_LINKS && maps.pending.len() <= MAX_PENDING);
    }
}
