//! What the sessions run: an exec through an attached berth-mon exec session, an attach to
//! the container monitor's attach socket. Both end in `relay`, which moves the monitor's
//! SOCK_SEQPACKET packets (first byte 2 stdout, 3 stderr) to the client and the client's
//! stdin the other way, and turns resize messages into the monitor's `ctl` lines.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use k8s_cri::v1 as cri;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::remotecommand::{Outcome, Output, SessionIo, TermSize};
use crate::container::record::{self, ContainerState};
use crate::server::CriServer;

/// conmon's largest stdin packet.
const STDIN_PACKET: usize = 32 * 1024;

/// Kills the exec'd process unless the session finished normally (the client went away).
struct KillGuard {
    pid: i32,
    armed: bool,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if self.armed && self.pid > 0 {
            // Its own session and group (berth starts every process so): the group first.
            crate::sys::kill(-self.pid, libc::SIGKILL);
            crate::sys::kill(self.pid, libc::SIGKILL);
        }
    }
}

impl CriServer {
    fn running(&self, id: &str, rpc: &str) -> Result<(String, crate::container::record::Container), String> {
        let id = self.resolve_container(id, rpc).map_err(|s| s.message().to_string())?;
        let c = self.registry.container(&id).ok_or_else(|| format!("container {id} not found"))?;
        if c.record.state != ContainerState::Running {
            return Err(format!("container {id} is not running"));
        }
        Ok((id, c))
    }

    pub(crate) async fn stream_exec(&self, r: cri::ExecRequest, io: SessionIo) -> Outcome {
        let (id, c) = match self.running(&r.container_id, "Exec") {
            Ok(x) => x,
            Err(e) => return Outcome::Failed(e),
        };
        let rt = match self.runtime_for(&c.record.handler) {
            Ok(rt) => rt,
            Err(e) => return Outcome::Failed(e.message().to_string()),
        };
        let spec: Option<serde_json::Value> =
            std::fs::read(record::bundle(&self.registry.root, &id).join("config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(spec) = spec else { return Outcome::Failed(format!("container {id} has no readable bundle")) };
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(r.cmd);
        process["terminal"] = serde_json::json!(r.tty);
        if r.tty {
            let env = process["env"].as_array().cloned().unwrap_or_default();
            if !env.iter().any(|e| e.as_str().is_some_and(|s| s.starts_with("TERM="))) {
                let mut env = env;
                env.push(serde_json::json!("TERM=xterm"));
                process["env"] = serde_json::Value::Array(env);
            }
        } else {
            process.as_object_mut().map(|o| o.remove("consoleSize"));
        }
        let work = record::dir(&self.registry.root, &id).join("exec").join(crate::persist::new_id());
        let monitor = self.config.runtime.monitor_path.clone();
        let (w, tty, stdin) = (work.clone(), r.tty, r.stdin);
        // Started on a blocking thread that cannot be cancelled: when the client went away
        // meanwhile (this future dropped), the process it started is ended there.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let w2 = work.clone();
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || {
                crate::container::monitor::exec_attached(&monitor, &rt.path, &rt.root, &id, &w, process.to_string().as_bytes(), tty, stdin)
            })
            .await;
            if let Err(Ok(Ok(ex))) = tx.send(r) {
                drop(KillGuard { pid: ex.pid, armed: true });
                std::thread::spawn(move || {
                    crate::container::monitor::exec_status(&ex.sync);
                    let _ = std::fs::remove_dir_all(&w2);
                });
            }
        });
        let ex = match rx.await {
            Ok(Ok(Ok(ex))) => ex,
            Ok(Ok(Err(e))) => {
                let _ = std::fs::remove_dir_all(&work);
                return Outcome::Failed(e.to_string());
            }
            Ok(Err(e)) => {
                let _ = std::fs::remove_dir_all(&work);
                return Outcome::Failed(e.to_string());
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(&work);
                return Outcome::Failed("exec start was abandoned".into());
            }
        };
        let mut guard = KillGuard { pid: ex.pid, armed: true };
        // The status comes after the process and the monitor's relay end; the work dir goes
        // then, whether or not anyone still waits.
        let (st_tx, st_rx) = tokio::sync::oneshot::channel();
        let sync = ex.sync;
        let w = work.clone();
        std::thread::spawn(move || {
            let code = crate::container::monitor::exec_status(&sync);
            let _ = std::fs::remove_dir_all(&w);
            let _ = st_tx.send(code);
        });
        let ctl = r.tty.then(|| work.join("ctl"));
        if let Err(e) = relay(ex.attach, io, ctl, true, true, r.stdin).await {
            return Outcome::Failed(e.to_string());
        }
        let code = st_rx.await.unwrap_or(-1);
        guard.armed = false;
        if code < 0 {
            return Outcome::Failed("the exec session's monitor ended without an exit status".into());
        }
        Outcome::Exited(code)
    }

    pub(crate) async fn stream_attach(&self, r: cri::AttachRequest, io: SessionIo) -> Outcome {
        let (id, _c) = match self.running(&r.container_id, "Attach") {
            Ok(x) => x,
            Err(e) => return Outcome::Failed(e),
        };
        let dir = self.registry.root.join("attach").join(&id);
        let sock = match tokio::task::spawn_blocking(move || crate::container::monitor::connect_seqpacket(&dir, "attach")).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Outcome::Failed(format!("attach socket of container {}: {e}", r.container_id)),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let ctl = r.tty.then(|| record::bundle(&self.registry.root, &id).join("ctl"));
        match relay(sock, io, ctl, r.stdout, r.stderr, r.stdin).await {
            Ok(()) => Outcome::Ended,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    crate::sys::set_nonblocking(fd.as_fd());
}

/// Relay between an attach socket and a session until the monitor closes the socket (the
/// process or container ended) or the client is gone (`io.out` closed).
pub async fn relay(
    sock: OwnedFd,
    io: SessionIo,
    ctl: Option<PathBuf>,
    stdout: bool,
    stderr: bool,
    close_stdin: bool,
) -> std::io::Result<()> {
    set_nonblocking(&sock);
    #[allow(deprecated)]
    let afd = Arc::new(AsyncFd::new(sock)?);
    let input = tokio::spawn(input_loop(afd.clone(), io.stdin, io.resize, ctl, close_stdin));
    let mut buf = vec![0u8; 64 * 1024];
    let res = loop {
        let mut g = match afd.readable().await {
            Ok(g) => g,
            Err(e) => break Err(e),
        };
        let r = g.try_io(|inner| crate::sys::recv(inner.get_ref().as_fd(), &mut buf, libc::MSG_DONTWAIT));
        let n = match r {
            Err(_would_block) => continue,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ECONNRESET) => break Ok(()),
            Ok(Err(e)) => break Err(e),
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => n,
        };
        let data = Bytes::copy_from_slice(&buf[1..n]);
        let o = match buf[0] {
            2 if stdout => Output::Stdout(data),
            3 if stderr => Output::Stderr(data),
            _ => continue,
        };
        if io.out.send(o).await.is_err() {
            break Ok(());
        }
    };
    input.abort();
    res
}

async fn send_packet(afd: &AsyncFd<OwnedFd>, data: &[u8]) -> std::io::Result<()> {
    loop {
        let mut g = afd.writable().await?;
        let r = g.try_io(|inner| crate::sys::send(inner.get_ref().as_fd(), data, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL).map(drop));
        match r {
            Err(_would_block) => continue,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(r) => return r,
        }
    }
}

fn resize(ctl: &Option<PathBuf>, s: TermSize) {
    let Some(p) = ctl else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(p) {
        let _ = f.write_all(format!("1 {} {}\n", s.height, s.width).as_bytes());
    }
}

async fn input_loop(
    afd: Arc<AsyncFd<OwnedFd>>,
    mut stdin: Option<mpsc::Receiver<Bytes>>,
    mut sizes: Option<mpsc::Receiver<TermSize>>,
    ctl: Option<PathBuf>,
    close_stdin: bool,
) {
    loop {
        tokio::select! {
            d = async { stdin.as_mut().unwrap().recv().await }, if stdin.is_some() => match d {
                Some(d) => {
                    for chunk in d.chunks(STDIN_PACKET) {
                        if send_packet(&afd, chunk).await.is_err() {
                            return;
                        }
                    }
                }
                None => {
                    stdin = None;
                    if close_stdin {
                        crate::sys::shutdown(afd.get_ref().as_fd(), libc::SHUT_WR);
                    }
                }
            },
            s = async { sizes.as_mut().unwrap().recv().await }, if sizes.is_some() => match s {
                Some(s) => resize(&ctl, s),
                None => sizes = None,
            },
            else => return,
        }
    }
}
