//! CRI streaming (Exec, Attach, PortForward): crictl 1.36 over both transports, and a
//! WebSocket client of the tests' own (v5.channel.k8s.io), plus hostile requests: reused
//! and expired tokens, malformed upgrades and frames.

use crate::crictl::crictl_path;
use crate::node::Node;
use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn crictl_cmd(n: &Node, args: &[&str]) -> Command {
    let ep = format!("unix://{}", n.daemon.socket.display());
    let mut c = Command::new(crictl_path().expect("crictl checked before the node started"));
    c.args(["--runtime-endpoint", &ep, "--image-endpoint", &ep, "--timeout", "60s"]).args(args).env("HOME", n.env.p(""));
    c
}

/// Run crictl with `input` on stdin: (exit code, stdout, stderr).
fn crictl_io(n: &Node, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut c = crictl_cmd(n, args);
    let mut ch = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("crictl");
    ch.stdin.take().unwrap().write_all(input).unwrap();
    let o = ch.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A pod with a long-running talker and a TCP echo server on 127.0.0.1:7777 (pod loopback).
pub(crate) async fn start_pod(n: &mut Node, name: &str, host_network: bool) -> (String, String) {
    let pcfg = n.pod_config(name, host_network);
    let pod = n.run_pod(&pcfg).await;
    let port = if host_network { "17777" } else { "7777" };
    let script = format!("nc -ll -p {port} -e cat & while true; do echo tick-$$; sleep 1; done");
    let mut cfg = Node::container_config("talker", &["sh", "-c", &script]);
    cfg.stdin = true;
    let ctr = n.run(&pod, &pcfg, cfg).await;
    (pod, ctr)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// crictl port-forward LOCAL:REMOTE, then an echo round trip through it.
fn port_forward_round_trip(n: &Node, pod: &str, remote: u16, transport: &str) {
    let local = free_port();
    let mut ch = crictl_cmd(n, &["port-forward", "--transport", transport, pod, &format!("{local}:{remote}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", local)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => {
                let _ = ch.kill();
                let o = ch.wait_with_output().unwrap();
                panic!("port-forward never listened: {e}: {}\n{}", String::from_utf8_lossy(&o.stderr), n.daemon.log());
            }
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let msg = format!("ping-through-{transport}\n");
    s.write_all(msg.as_bytes()).unwrap();
    let mut got = vec![0u8; msg.len()];
    let r = s.read_exact(&mut got);
    let _ = ch.kill();
    let o = ch.wait_with_output().unwrap();
    r.unwrap_or_else(|e| panic!("echo via {transport}: {e}\ncrictl: {}\n{}", String::from_utf8_lossy(&o.stderr), n.daemon.log()));
    assert_eq!(String::from_utf8_lossy(&got), msg);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_with_crictl_over_both_transports() {
    let Some(crictl) = crictl_path() else { return };
    let mut n = Node::start("stream-crictl").await;
    let (pod, ctr) = start_pod(&mut n, "stream-crictl", false).await;
    for transport in ["spdy", "websocket"] {
        let (code, out, err) = crictl_io(&n, &["exec", "-i", "--transport", transport, &ctr, "cat"], b"hello over stdin\n");
        assert_eq!((code, out.as_str()), (0, "hello over stdin\n"), "{transport}: {err}\n{}", n.daemon.log());
        let (code, out, err) = crictl_io(&n, &["exec", "--transport", transport, &ctr, "sh", "-c", "echo out; echo err >&2; exit 3"], b"");
        // crictl exits 1 with the code in its message.
        assert!(code != 0 && err.contains("exit code 3"), "{transport}: exit code: {code} {out} {err}");
        assert!(out.contains("out") && err.contains("err"), "{transport}: {out:?} {err:?}");
        // attach: the container's output as it comes; crictl stays until killed.
        let mut a =
            crictl_cmd(&n, &["attach", "--transport", transport, &ctr]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let _ = a.kill();
        let o = a.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("tick-"), "{transport}: attach saw {out:?}: {}", String::from_utf8_lossy(&o.stderr));
        port_forward_round_trip(&n, &pod, 7777, transport);
        // exec -it on a terminal (script(1) gives crictl one).
        let ep = format!("unix://{}", n.daemon.socket.display());
        let line =
            format!("{} --runtime-endpoint {ep} exec -it --transport {transport} {ctr} sh -c 'test -t 0 && echo tty-ok'", crictl.display());
        let o = Command::new("script").args(["-qec", &line, "/dev/null"]).env("HOME", n.env.p("")).stdin(Stdio::null()).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("tty-ok"), "{transport}: exec -it: {out:?} {}", String::from_utf8_lossy(&o.stderr));
    }
    // Host network: the port is on the host's loopback.
    let (hpod, _) = start_pod(&mut n, "stream-hostnet", true).await;
    port_forward_round_trip(&n, &hpod, 17777, "spdy");
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn ws_connect(url: &str, proto: &str) -> Result<Ws, String> {
    let mut req = url.replace("http://", "ws://").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws).map_err(|e| e.to_string())
}

/// Run a session to its end: (stdout, stderr, status on the error channel).
pub(crate) async fn ws_session(ws: &mut Ws) -> (String, String, String) {
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        match m {
            Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                2 => err.extend_from_slice(&b[1..]),
                3 => status.extend_from_slice(&b[1..]),
                _ => {}
            },
            Ok(Message::Close(_)) | Err(_) => break,
            _ => {}
        }
    }
    let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    (s(out), s(err), s(status))
}

pub(crate) fn exec_req(ctr: &str, cmd: &[&str], stdin: bool, tty: bool) -> cri::ExecRequest {
    cri::ExecRequest { container_id: ctr.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), tty, stdin, stdout: true, stderr: !tty }
}

pub(crate) async fn exec_url(n: &mut Node, r: cri::ExecRequest) -> String {
    n.rt.exec(r).await.unwrap_or_else(|e| panic!("Exec: {e:?}")).into_inner().url
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_websocket_client_and_hostile_requests() {
    let mut n = Node::start("stream-ws").await;
    let (pod, ctr) = start_pod(&mut n, "stream-ws", false).await;

    // Port forward with v4 WebSocket channels: each channel first carries the port (LE).
    let url = n.rt.port_forward(cri::PortForwardRequest { pod_sandbox_id: pod.clone(), port: vec![7777] }).await.unwrap().into_inner().url;
    let mut ws = ws_connect(&format!("{url}?port=7777"), "v4.channel.k8s.io").await.unwrap();
    let mut firsts = Vec::new();
    while firsts.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => firsts.push(b.to_vec()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(firsts, vec![vec![0u8, 0x61, 0x1e], vec![1u8, 0x61, 0x1e]]);
    ws.send(Message::Binary(b"\x00over ws channels\n".to_vec().into())).await.unwrap();
    let mut echoed = Vec::new();
    while !echoed.ends_with(b"\n") {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => echoed.extend_from_slice(&b[1..]),
            Some(Ok(Message::Binary(b))) if b.first() == Some(&1) => panic!("error channel: {:?}", String::from_utf8_lossy(&b[1..])),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(echoed, b"over ws channels\n");
    drop(ws);

    // Echo over stdin, stdin closed by v5's close message.
    let url = exec_url(&mut n, exec_req(&ctr, &["cat"], true, false)).await;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::Binary(b"\x00echo me\n".to_vec().into())).await.unwrap();
    ws.send(Message::Binary(vec![255u8, 0].into())).await.unwrap();
    let (out, _, status) = ws_session(&mut ws).await;
    assert_eq!(out, "echo me\n");
    let st: serde_json::Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status:?}"));
    assert_eq!(st["status"], "Success", "{st}");

    // Two attach clients at once, both see the container's output.
    let mut clients = Vec::new();
    for _ in 0..2 {
        let r = cri::AttachRequest { container_id: ctr.clone(), stdin: false, tty: false, stdout: true, stderr: true };
        let url = n.rt.attach(r).await.unwrap().into_inner().url;
        clients.push(ws_connect(&url, "v5.channel.k8s.io").await.unwrap());
    }
    for ws in &mut clients {
        let mut seen = String::new();
        while !seen.contains("tick-") {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&1) => seen.push_str(&String::from_utf8_lossy(&b[1..])),
                Ok(Some(Ok(_))) => {}
                other => panic!("attach: {other:?} after {seen:?}"),
            }
        }
    }
    drop(clients);

    // The URL was single-use.
    assert!(ws_connect(&url, "v5.channel.k8s.io").await.is_err(), "a used token was accepted");

    // Exit code 3 in the status object (v4).
    let url = exec_url(&mut n, exec_req(&ctr, &["sh", "-c", "exit 3"], false, false)).await;
    let mut ws = ws_connect(&url, "v4.channel.k8s.io").await.unwrap();
    let (_, _, status) = ws_session(&mut ws).await;
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0]["message"], "3", "{st}");

    // A tty whose size the resize channel sets.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh"], true, true)).await;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::Binary([&[4u8][..], br#"{"Width":123,"Height":45}"#].concat().into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(Message::Binary(b"\x00stty size; exit 0\n".to_vec().into())).await.unwrap();
    let (out, _, _) = ws_session(&mut ws).await;
    assert!(out.contains("45 123"), "stty size saw {out:?}");

    // A token is bound to its verb.
    let url = exec_url(&mut n, exec_req(&ctr, &["true"], false, false)).await;
    assert!(ws_connect(&url.replace("/exec/", "/attach/"), "v5.channel.k8s.io").await.is_err());
    assert!(ws_connect(&url, "v5.channel.k8s.io").await.is_err(), "the misused token was consumed");

    // Malformed upgrades and frames: answered or closed, the daemon goes on.
    let url = exec_url(&mut n, exec_req(&ctr, &["cat"], true, false)).await;
    let hostport = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let path = format!("/{}", url.trim_start_matches("http://").split_once('/').unwrap().1);
    for req in [
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: gopher\r\n\r\n"),
        "GARBAGE\r\n\r\n".to_string(),
        "GET /exec/nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_string(),
    ] {
        let mut s = std::net::TcpStream::connect(&hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut b = [0u8; 512];
        let k = s.read(&mut b).unwrap_or(0);
        let head = String::from_utf8_lossy(&b[..k]).to_string();
        assert!(head.is_empty() || head.starts_with("HTTP/1.1 4"), "{req:?} -> {head:?}");
    }
    // A SPDY upgrade followed by garbage frames.
    let mut s = std::net::TcpStream::connect(&hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n").as_bytes()).unwrap();
    let mut b = [0u8; 512];
    let k = s.read(&mut b).unwrap();
    assert!(String::from_utf8_lossy(&b[..k]).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&b[..k]));
    // A SYN_STREAM whose header block is no zlib, then a frame of another SPDY version.
    s.write_all(&[0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'j', b'u', b'n', b'k']).unwrap();
    s.write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    // Still serving: gRPC and a fresh session.
    n.rt.version(cri::VersionRequest::default()).await.expect("daemon still up");
    let url = exec_url(&mut n, exec_req(&ctr, &["echo", "alive"], false, false)).await;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    assert_eq!(ws_session(&mut ws).await.0, "alive\n");

    // Closing the client ends the exec'd process.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh", "-c", "echo started; exec sleep 1234"], false, false)).await;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) if b.starts_with(b"\x01started") => break,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = Command::new("pgrep").args(["-f", "sleep 1234"]).output().unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the exec'd process outlived its client");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Expired tokens: a 1 s lifetime through a drop-in.
    std::fs::create_dir_all(n.env.p("conf.d")).unwrap();
    std::fs::write(n.env.p("conf.d/50-stream.conf"), "[streaming]\ntoken_ttl = 1\n").unwrap();
    n.restart().await;
    let url = exec_url(&mut n, exec_req(&ctr, &["true"], false, false)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(ws_connect(&url, "v5.channel.k8s.io").await.is_err(), "an expired token was accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_100_concurrent_execs() {
    let mut n = Node::start("stream-load").await;
    let (_pod, ctr) = start_pod(&mut n, "stream-load", false).await;
    let mut urls = Vec::new();
    for i in 0..100 {
        urls.push((i, exec_url(&mut n, exec_req(&ctr, &["echo", &format!("exec-{i}")], false, false)).await));
    }
    let begun = Instant::now();
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|(i, url)| {
            tokio::spawn(async move {
                let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.map_err(|e| format!("{i}: {e}"))?;
                let (out, _, status) = ws_session(&mut ws).await;
                if out != format!("exec-{i}\n") || !status.contains("Success") {
                    return Err(format!("{i}: {out:?} {status:?}"));
                }
                Ok(())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(120), t).await.expect("exec timed out").unwrap() {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} failed: {failures:?}\n{}", failures.len(), n.daemon.log());
    eprintln!("100 concurrent execs in {:?}", begun.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_spdy_client_of_our_own() {
    let mut n = Node::start("stream-spdy").await;
    let (_pod, ctr) = start_pod(&mut n, "stream-spdy", false).await;
    // v4: stdin echoed, the status object on the error stream.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh", "-c", "cat; exit 3"], true, false)).await;
    let out = tokio::task::spawn_blocking(move || {
        let (mut c, head) = crate::spdy_client::Client::connect(&url, "v4.channel.k8s.io");
        assert!(
            head.starts_with("HTTP/1.1 101") && head.to_ascii_lowercase().contains("x-stream-protocol-version: v4.channel.k8s.io"),
            "{head}"
        );
        c.syn_stream(1, &[("streamtype", "error")]);
        c.syn_stream(3, &[("streamtype", "stdin")]);
        c.syn_stream(5, &[("streamtype", "stdout")]);
        c.syn_stream(7, &[("streamtype", "stderr")]);
        c.data(3, b"through spdy\n", true);
        c.read_all()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out[&5]), "through spdy\n");
    let st: serde_json::Value = serde_json::from_slice(&out[&1]).unwrap();
    assert_eq!(st["details"]["causes"][0]["message"], "3", "{st}");
    // v2: no resize stream, plain-text errors; an unknown protocol is refused.
    let url = exec_url(&mut n, exec_req(&ctr, &["sh", "-c", "exit 4"], false, false)).await;
    let out = tokio::task::spawn_blocking(move || {
        let (mut c, head) = crate::spdy_client::Client::connect(&url, "v2.channel.k8s.io");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        c.syn_stream(1, &[("streamtype", "error")]);
        c.syn_stream(3, &[("streamtype", "stdout")]);
        c.syn_stream(5, &[("streamtype", "stderr")]);
        c.read_all()
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&out[&1]).contains("exit status 4"), "{out:?}");
    let url = exec_url(&mut n, exec_req(&ctr, &["true"], false, false)).await;
    let head = tokio::task::spawn_blocking(move || crate::spdy_client::Client::connect(&url, "v9.channel.k8s.io").1).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_over_tls_with_a_configured_certificate() {
    let mut n = Node::start("stream-tls").await;
    let (cert, key) = (n.env.p("stream.crt"), n.env.p("stream.key"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(n.env.p("conf.d")).unwrap();
    std::fs::write(
        n.env.p("conf.d/50-tls.conf"),
        format!("[streaming]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display()),
    )
    .unwrap();
    n.restart().await;
    let (_pod, ctr) = start_pod(&mut n, "stream-tls", false).await;
    let url = exec_url(&mut n, exec_req(&ctr, &["true"], false, false)).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // The server speaks TLS with that certificate: a plain request is answered (400: no upgrade).
    let o = Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"]).arg(&cert).arg(&url).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "400", "{}", String::from_utf8_lossy(&o.stderr));
}
