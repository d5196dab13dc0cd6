//! `--sdnotify-socket`: the container's `NOTIFY_SOCKET` is `<bundle>/notify/notify.sock`,
//! and berth-mon passes on to the host's socket only `READY=1` and `WATCHDOG=1`, as the
//! runtimes do (a container must not be able to send the host's systemd anything else:
//! MAINPID=, FDSTORE=, …).

use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

pub struct Notify {
    pub sock: OwnedFd,
    host: PathBuf,
    out: UnixDatagram,
}

impl Notify {
    pub fn bind(bundle: &Path, host: &Path) -> Result<Notify> {
        let dir = bundle.join("notify");
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let sock = crate::attach::bind_in(&dir, "notify.sock", libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0o777)?;
        let out = UnixDatagram::unbound().ctx(|| "Failed to create notify socket".into())?;
        Ok(Notify { sock, host: host.to_path_buf(), out })
    }

    pub fn relay(&self) {
        let mut buf = [0u8; 4096];
        loop {
            let n = match nix::sys::socket::recv(self.sock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let msg = &buf[..n];
            let has = |k: &[u8]| msg.split(|&b| b == b'\n').any(|l| l == k);
            let fwd: &[u8] = if has(b"READY=1") {
                b"READY=1"
            } else if has(b"WATCHDOG=1") {
                b"WATCHDOG=1"
            } else {
                continue;
            };
            if let Err(e) = self.out.send_to(fwd, &self.host) {
                crate::diag::warn(&format!("relay to the host notify socket {}: {e}", self.host.display()));
            }
        }
    }
}
