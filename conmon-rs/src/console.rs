//! The `--console-socket` the runtime sends the pty master to, and what berth-mon does with
//! the master: output post-processing as kubelet expects (ONLCR) and window resizes.
//!
//! The socket lives in a fresh private directory (mkdtemp, mode 0700) rather than at a
//! guessed temporary name (conmon's mkstemp-then-unlink leaves a window for another process
//! to take the name).

use crate::error::{Context, Error, Result};
use nix::sys::socket::{recvmsg, MsgFlags, UnixAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

pub struct ConsoleSocket {
    pub listener: UnixListener,
    dir: PathBuf,
    pub path: PathBuf,
}

impl ConsoleSocket {
    pub fn bind() -> Result<ConsoleSocket> {
        let base = std::env::var_os("TMPDIR").map(PathBuf::from).unwrap_or_else(|| "/tmp".into());
        let dir =
            mkdtemp(&base.join("berth-mon-term.XXXXXX")).ctx(|| format!("create a console socket directory in {}", base.display()))?;
        let path = dir.join("console.sock");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(Error::sys("Failed to bind to console-socket", e));
            }
        };
        Ok(ConsoleSocket { listener, dir, path })
    }

    /// Accept the runtime's connection and take the pty master it sends.
    pub fn accept_master(&self) -> Result<OwnedFd> {
        let (conn, _) = self.listener.accept().ctx(|| "accept on the console socket".into())?;
        let master = recv_fd(&conn)?;
        set_onlcr(&master);
        Ok(master)
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        self.remove();
    }
}

fn mkdtemp(template: &std::path::Path) -> std::io::Result<PathBuf> {
    crate::sys::mkdtemp(template)
}

fn recv_fd(conn: &UnixStream) -> Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut cbuf = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let msg = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut cbuf), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| "receive the pty master".into())?;
    let got = crate::sys::take_fds(msg).ctx(|| "read the console message".into())?.into_iter().next();
    got.ok_or_else(|| Error::Runtime("the runtime connected to the console socket but sent no pty master".into()))
}

/// Kubernetes expects "\n" from the container to reach the client as "\r\n".
fn set_onlcr(fd: &OwnedFd) {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    if let Ok(mut t) = tcgetattr(fd.as_fd()) {
        t.output_flags |= OutputFlags::ONLCR;
        let _ = tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t);
    }
}

pub fn resize(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    if crate::sys::set_winsize(fd.as_fd(), &ws) == -1 {
        crate::diag::warn(&format!("Failed to set process pty terminal size: {}", std::io::Error::last_os_error()));
    }
}
