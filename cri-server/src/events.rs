//! Container events for GetContainerEvents (kubelet's evented PLEG): every subscriber gets its
//! own bounded queue, so a slow one never makes another miss an event; a subscriber whose
//! queue fills up (it stopped reading) is dropped — its stream ends and kubelet falls back to
//! relisting, instead of the daemon buffering without bound.
//!
//! Each event is published once: `publish_once` takes a key (`stopped:<id>`) and publishing
//! and the check happen under one lock, so the exit watcher and RemoveContainer cannot both
//! report the same stop, nor a stop after the delete.

use k8s_cri::v1 as cri;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Events a subscriber may fall behind by before it is dropped.
pub const QUEUE: usize = 16384;

#[derive(Default)]
pub struct Events {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<mpsc::Sender<cri::ContainerEventResponse>>,
    /// Keys of events published once (forgotten when their object is removed).
    once: HashSet<String>,
}

impl Events {
    pub fn subscribe(&self) -> mpsc::Receiver<cri::ContainerEventResponse> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).subscribers.push(tx);
        rx
    }

    pub fn subscribers(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).subscribers.len()
    }

    fn send(inner: &mut Inner, ev: cri::ContainerEventResponse) {
        inner.subscribers.retain(|s| match s.try_send(ev.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("an event subscriber fell {QUEUE} events behind: dropping it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    pub fn publish(&self, ev: cri::ContainerEventResponse) {
        Self::send(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()), ev);
    }

    /// Publishes unless an event with `key` was; true when it did.
    pub fn publish_once(&self, key: &str, ev: impl FnOnce() -> cri::ContainerEventResponse) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.once.insert(key.to_string()) {
            return false;
        }
        let ev = ev();
        Self::send(&mut inner, ev);
        true
    }

    /// Forgets the once-keys of a removed object.
    pub fn forget(&self, id: &str) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).once.retain(|k| k.split_once(':').map(|(_, i)| i) != Some(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, t: cri::ContainerEventType) -> cri::ContainerEventResponse {
        cri::ContainerEventResponse { container_id: id.into(), container_event_type: t as i32, ..Default::default() }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order_and_once_means_once() {
        let e = Events::default();
        let mut a = e.subscribe();
        let mut b = e.subscribe();
        e.publish(ev("c", cri::ContainerEventType::ContainerCreatedEvent));
        assert!(e.publish_once("stopped:c", || ev("c", cri::ContainerEventType::ContainerStoppedEvent)));
        assert!(!e.publish_once("stopped:c", || ev("c", cri::ContainerEventType::ContainerStoppedEvent)));
        for r in [&mut a, &mut b] {
            assert_eq!(r.recv().await.unwrap().container_event_type, cri::ContainerEventType::ContainerCreatedEvent as i32);
            assert_eq!(r.recv().await.unwrap().container_event_type, cri::ContainerEventType::ContainerStoppedEvent as i32);
            assert!(r.try_recv().is_err());
        }
        e.forget("c");
        assert!(e.publish_once("stopped:c", || ev("c", cri::ContainerEventType::ContainerStoppedEvent)));
    }

    #[tokio::test]
    async fn a_stuck_subscriber_is_dropped_and_a_closed_one_removed() {
        let e = Events::default();
        let _stuck = e.subscribe();
        let reader = e.subscribe();
        drop(reader);
        for _ in 0..=QUEUE {
            e.publish(ev("c", cri::ContainerEventType::ContainerCreatedEvent));
        }
        assert_eq!(e.subscribers(), 0);
    }
}
