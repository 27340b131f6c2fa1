//! Shares of a scarce resource per client network: connections, long polls, password checks.
//! One source holds at most `cap` at a time, so a single client (or a single /64) cannot take
//! every slot and turn everyone else away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
#[cfg(any(feature = "server", test))]
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::SourceNet;

/// At most `cap` concurrent holders per [`SourceNet`]. The map holds one fixed-size entry per
/// source with something in flight, and none for an idle source.
#[derive(Debug)]
pub struct PerSourceSlots {
    cap: usize,
    held: Mutex<HashMap<SourceNet, usize>>,
    freed: Notify,
}

impl PerSourceSlots {
    /// Slots of `cap` per source (0 means no limit).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            held: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        })
    }

    /// The per-source limit (0: none).
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for `source`, held until the returned guard is dropped; `None` when `source`
    /// already holds its share.
    pub fn try_take(self: &Arc<Self>, source: SourceNet) -> Option<SourceSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(source).or_insert(0);
        if self.cap != 0 && *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            slots: Arc::clone(self),
            source,
        })
    }

    /// A slot for `source`, waiting up to `deadline` for one of its own to be given back;
    /// `None` if none was. A source's waiters queue behind its own share only, never behind
    /// another source's. The CA's long polls wait so; a relying service's listener does not.
    #[cfg(any(feature = "server", test))]
    pub async fn take(
        self: &Arc<Self>,
        source: SourceNet,
        deadline: Duration,
    ) -> Option<SourceSlot> {
        let wait = async {
            loop {
                let freed = self.freed.notified();
                tokio::pin!(freed);
                // Registered before the check, so a slot given back in between still wakes us.
                freed.as_mut().enable();
                if let Some(slot) = self.try_take(source) {
                    return slot;
                }
                freed.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }

    /// How many sources hold a slot now (the tests check slots are given back).
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.held.lock().map_or(0, |h| h.len())
    }
}

/// A slot taken from [`PerSourceSlots`]; given back when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    slots: Arc<PerSourceSlots>,
    source: SourceNet,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.source);
            }
        }
        drop(held);
        self.slots.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_share_and_no_more_and_leaves_no_trace() {
        let slots = PerSourceSlots::new(2);
        let a = SourceNet::from("192.0.2.1".parse::<std::net::IpAddr>().unwrap());
        let b = SourceNet::from("192.0.2.2".parse::<std::net::IpAddr>().unwrap());
        let first = slots.try_take(a).unwrap();
        let second = slots.try_take(a).unwrap();
        assert!(slots.try_take(a).is_none());
        let other = slots.try_take(b).unwrap();
        drop(first);
        let again = slots.try_take(a).unwrap();
        drop((second, again, other));
        assert_eq!(slots.sources(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_its_source_gives_back() {
        let slots = PerSourceSlots::new(1);
        let a = SourceNet::from("192.0.2.1".parse::<std::net::IpAddr>().unwrap());
        let held = slots.try_take(a).unwrap();
        assert!(slots.take(a, Duration::from_millis(50)).await.is_none());
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.take(a, Duration::from_secs(5)).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
