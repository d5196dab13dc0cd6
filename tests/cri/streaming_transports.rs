//! What crictl's streaming commands do, over both transports, with the tests' own clients
//! (so it stays covered where crictl is not built): exec with separate stdout/stderr and the
//! exit code, attach, an exec on a terminal resized by the client, and port forwarding into
//! a pod's network namespace and on a host-network pod's loopback — over SPDY/3.1, over
//! WebSocket channels (v4/v5), and over SPDY tunnelled in WebSocket (`--transport websocket`
//! for port-forward).

use crate::node::Node;
use crate::spdy_client::Client;
use crate::streaming::{exec_req, exec_url, start_pod, ws_connect, ws_session};
use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(30);

async fn port_forward_url(n: &mut Node, pod: &str, port: u16) -> String {
    let r = cri::PortForwardRequest { pod_sandbox_id: pod.into(), port: vec![port as i32] };
    n.rt.port_forward(r).await.unwrap_or_else(|e| panic!("PortForward: {e:?}")).into_inner().url
}

/// One forwarded connection over a SPDY session (plain or tunnelled): the data and error
/// streams of request 0, a line sent, the echo read back.
fn spdy_echo(mut c: Client, port: u16, line: &[u8]) -> Result<Vec<u8>, String> {
    let p = port.to_string();
    c.syn_stream(1, &[("streamtype", "error"), ("port", &p), ("requestid", "0")]);
    c.syn_stream(3, &[("streamtype", "data"), ("port", &p), ("requestid", "0")]);
    c.data(3, line, false);
    let n = line.len();
    c.read_until(WAIT, |c| c.data.get(&3).is_some_and(|d| d.len() >= n) || c.data.get(&1).is_some_and(|e| !e.is_empty()));
    if let Some(e) = c.data.get(&1).filter(|e| !e.is_empty()) {
        return Err(format!("error stream: {}", String::from_utf8_lossy(e)));
    }
    Ok(c.data.remove(&3).unwrap_or_default())
}

async fn spdy_port_forward(n: &mut Node, pod: &str, port: u16, tunnel: bool) {
    let url = port_forward_url(n, pod, port).await;
    let line = format!("through {} to {port}\n", if tunnel { "a websocket tunnel" } else { "spdy" });
    let l = line.clone().into_bytes();
    let got = tokio::task::spawn_blocking(move || {
        let c = if tunnel {
            Client::connect_ws_tunnel(&url, "SPDY/3.1+portforward.k8s.io")?
        } else {
            let (c, head) = Client::connect(&url, "portforward.k8s.io");
            if !head.starts_with("HTTP/1.1 101") {
                return Err(head);
            }
            c
        };
        spdy_echo(c, port, &l)
    })
    .await
    .unwrap();
    match got {
        Ok(b) => assert_eq!(String::from_utf8_lossy(&b), line, "port {port}, tunnel {tunnel}"),
        Err(e) => panic!("port-forward to {port} (tunnel {tunnel}): {e}\n{}", n.daemon.log()),
    }
}

/// Port forward with v4 WebSocket channels: the two port announcements, then an echo.
async fn ws_port_forward(n: &mut Node, pod: &str, port: u16) {
    let url = port_forward_url(n, pod, port).await;
    let mut ws = ws_connect(&format!("{url}?port={port}"), "v4.channel.k8s.io").await.unwrap();
    for _ in 0..2 {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[1..], &port.to_le_bytes()[..]),
            other => panic!("{other:?}"),
        }
    }
    ws.send(Message::Binary(b"\x00over ws\n".to_vec().into())).await.unwrap();
    let mut echoed = Vec::new();
    while !echoed.ends_with(b"\n") {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => echoed.extend_from_slice(&b[1..]),
            Some(Ok(Message::Binary(b))) if b.first() == Some(&1) => panic!("error channel: {:?}", String::from_utf8_lossy(&b[1..])),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(echoed, b"over ws\n");
}

/// Lines the shell printed (a terminal also echoes the typed input: those lines start with
/// the command, so they never equal an output line).
fn said(out: &str, line: &str) -> bool {
    out.lines().any(|l| l.trim_end_matches('\r') == line)
}

/// A shell on the terminal that waits (bounded) for the size the client set, then reports it.
const TTY_SCRIPT: &[u8] = b"test -t 0 && echo tty-ok; for i in $(seq 100); do s=$(stty size); [ \"$s\" = '45 123' ] && break; sleep 0.1; done; echo size=$s; exit 0\n";

#[tokio::test(flavor = "multi_thread")]
async fn streaming_exec_attach_tty_and_port_forward_over_both_transports() {
    let mut n = Node::start("stream-both").await;
    let (pod, ctr) = start_pod(&mut n, "stream-both", false).await;

    // SPDY exec: stdout and stderr apart, the exit code in the status (v4).
    let url = exec_url(&mut n, exec_req(&ctr, &["sh", "-c", "echo out; echo err >&2; exit 3"], false, false)).await;
    let data = tokio::task::spawn_blocking(move || Client::session(&url, "v4.channel.k8s.io", &["error", "stdout", "stderr"]).read_all())
        .await
        .unwrap();
    let text = |id: u32| String::from_utf8_lossy(data.get(&id).map(Vec::as_slice).unwrap_or(&[])).into_owned();
    assert_eq!(text(3), "out\n");
    assert_eq!(text(5), "err\n");
    let st: serde_json::Value = serde_json::from_str(&text(1)).unwrap_or_else(|e| panic!("{e}: {:?}", text(1)));
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0]["message"], "3", "{st}");

    // SPDY attach: the container's output as it comes.
    let r = cri::AttachRequest { container_id: ctr.clone(), stdin: false, tty: false, stdout: true, stderr: true };
    let url = n.rt.attach(r).await.unwrap().into_inner().url;
    let seen = tokio::task::spawn_blocking(move || {
        let mut c = Client::session(&url, "v4.channel.k8s.io", &["error", "stdout", "stderr"]);
        c.read_until(WAIT, |c| c.text(3).contains("tick-"));
        c.text(3)
    })
    .await
    .unwrap();
    assert!(seen.contains("tick-"), "attach over SPDY saw {seen:?}");

    // SPDY exec on a terminal, resized through the resize stream.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh"], true, true)).await;
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Client::session(&url, "v4.channel.k8s.io", &["error", "stdin", "stdout", "resize"]);
        c.data(7, br#"{"Width":123,"Height":45}"#, false);
        c.data(3, TTY_SCRIPT, false);
        c.read_until(WAIT, |c| c.text(5).lines().any(|l| l.starts_with("size=")));
        c.text(5)
    })
    .await
    .unwrap();
    assert!(said(&out, "tty-ok") && said(&out, "size=45 123"), "tty over SPDY: {out:?}");

    // WebSocket (v5) exec on a terminal: the same script.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh"], true, true)).await;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::Binary([&[4u8][..], br#"{"Width":123,"Height":45}"#].concat().into())).await.unwrap();
    ws.send(Message::Binary([&[0u8][..], TTY_SCRIPT].concat().into())).await.unwrap();
    let (out, _, _) = ws_session(&mut ws).await;
    assert!(said(&out, "tty-ok") && said(&out, "size=45 123"), "tty over WebSocket: {out:?}");

    // Port forward into the pod's network namespace: SPDY, SPDY in a WebSocket, v4 channels.
    spdy_port_forward(&mut n, &pod, 7777, false).await;
    spdy_port_forward(&mut n, &pod, 7777, true).await;
    ws_port_forward(&mut n, &pod, 7777).await;

    // A host-network pod: its ports are on the host's loopback.
    let (hpod, _) = start_pod(&mut n, "stream-both-host", true).await;
    spdy_port_forward(&mut n, &hpod, 17777, false).await;
    spdy_port_forward(&mut n, &hpod, 17777, true).await;
    ws_port_forward(&mut n, &hpod, 17777).await;

    // A port nothing listens on: the error stream says so, the session stays usable.
    let url = port_forward_url(&mut n, &pod, 7778).await;
    let err = tokio::task::spawn_blocking(move || {
        let (c, _) = Client::connect(&url, "portforward.k8s.io");
        spdy_echo(c, 7778, b"nobody\n")
    })
    .await
    .unwrap();
    assert!(err.as_ref().is_err_and(|e| e.contains("7778")), "{err:?}");
    n.rt.version(cri::VersionRequest::default()).await.expect("daemon still up");
}
