//! GetContainerEvents: two subscribers see the same events, in order, for a pod's whole
//! lifecycle — pod created/started, each container created/started/stopped/deleted, pod
//! stopped/deleted — with the statuses kubelet's evented PLEG reads, and none lost when a
//! dozen containers come and go at once.

use crate::node::Node;
use k8s_cri::v1 as cri;
use k8s_cri::v1::ContainerEventType as T;
use std::time::Duration;

type Stream = tonic::Streaming<cri::ContainerEventResponse>;

async fn subscribe(n: &mut Node) -> Stream {
    n.rt.get_container_events(cri::GetEventsRequest {}).await.unwrap().into_inner()
}

/// The next `count` events (bounded wait).
async fn take(s: &mut Stream, count: usize) -> Vec<cri::ContainerEventResponse> {
    let mut out = vec![];
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(30), s.message()).await {
            Ok(Ok(Some(e))) => out.push(e),
            other => panic!("after {} of {count} events: {other:?}", out.len()),
        }
    }
    out
}

fn kinds(evs: &[cri::ContainerEventResponse], id: &str) -> Vec<i32> {
    evs.iter().filter(|e| e.container_id == id).map(|e| e.container_event_type).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_in_order_for_two_subscribers() {
    let mut n = Node::start("events").await;
    let mut a = subscribe(&mut n).await;
    let mut b = subscribe(&mut n).await;
    let pcfg = n.pod_config("ev", true);
    let pod = n.run_pod(&pcfg).await;
    let c = n.run(&pod, &pcfg, Node::container_config("once", &["sh", "-c", "exit 3"])).await;
    n.wait_exited(&c, Duration::from_secs(30)).await;
    // A dozen containers at once: every one of their 4 events arrives.
    let mut many = vec![];
    for i in 0..12 {
        many.push(n.run(&pod, &pcfg, Node::container_config(&format!("m{i}"), &["true"])).await);
    }
    for id in &many {
        n.wait_exited(id, Duration::from_secs(30)).await;
    }
    n.rt.remove_container(cri::RemoveContainerRequest { container_id: c.clone() }).await.unwrap();
    n.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();

    // pod: created, started, stopped, deleted; 13 containers × 4.
    let total = 4 + 13 * 4;
    let ea = take(&mut a, total).await;
    let eb = take(&mut b, total).await;
    let key = |e: &cri::ContainerEventResponse| (e.container_id.clone(), e.container_event_type);
    assert_eq!(ea.iter().map(key).collect::<Vec<_>>(), eb.iter().map(key).collect::<Vec<_>>(), "both subscribers see the same sequence");
    let lifecycle = vec![
        T::ContainerCreatedEvent as i32,
        T::ContainerStartedEvent as i32,
        T::ContainerStoppedEvent as i32,
        T::ContainerDeletedEvent as i32,
    ];
    assert_eq!(kinds(&ea, &pod), lifecycle, "the pod's events");
    assert_eq!(kinds(&ea, &c), lifecycle, "the container's events");
    for id in &many {
        assert_eq!(kinds(&ea, id), lifecycle, "container {id}");
    }
    // The pod's events come around its containers'.
    let pos = |id: &str, t: T| ea.iter().position(|e| e.container_id == id && e.container_event_type == t as i32).unwrap();
    assert!(pos(&pod, T::ContainerStartedEvent) < pos(&c, T::ContainerCreatedEvent));
    assert!(pos(&c, T::ContainerDeletedEvent) < pos(&pod, T::ContainerDeletedEvent));
    assert!(ea.windows(2).all(|w| w[0].created_at <= w[1].created_at), "timestamps in order");
    // What kubelet reads from them.
    let stopped = &ea[pos(&c, T::ContainerStoppedEvent)];
    let ps = stopped.pod_sandbox_status.as_ref().expect("pod status in a container event");
    assert_eq!(ps.id, pod);
    assert_eq!(ps.metadata.as_ref().unwrap().uid, pcfg.metadata.as_ref().unwrap().uid);
    let me = stopped.containers_statuses.iter().find(|s| s.id == c).expect("the container's own status");
    assert_eq!(me.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(me.exit_code, 3);
    let started = &ea[pos(&c, T::ContainerStartedEvent)];
    let me = started.containers_statuses.iter().find(|s| s.id == c).unwrap();
    assert!(me.state == cri::ContainerState::ContainerRunning as i32 || me.state == cri::ContainerState::ContainerExited as i32);
    let deleted = &ea[pos(&c, T::ContainerDeletedEvent)];
    assert!(deleted.containers_statuses.iter().all(|s| s.id != c), "a deleted container is not among the statuses");
}
