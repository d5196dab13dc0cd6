//! Terminals: the pty handed to a console socket with SCM_RIGHTS (runc's protocol).

use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Connects to the caller's console socket (done by the parent, on the host).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path).with_ctx(|| format!("connect console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// In the container after pivot_root: opens a pty from the container's devpts, sends its
/// master to the socket, and makes the slave the controlling terminal and stdio.
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>, uid: u32, gid: u32) -> Result<()> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).ctx("open /dev/ptmx")?;
    nix::pty::grantpt(&master).ctx("grantpt")?;
    nix::pty::unlockpt(&master).ctx("unlockpt")?;
    let name = nix::pty::ptsname_r(&master).ctx("ptsname")?;
    if let Some((h, w)) = size {
        let ws = libc::winsize { ws_row: h, ws_col: w, ws_xpixel: 0, ws_ypixel: 0 };
        crate::sys::set_winsize(master.as_fd(), &ws);
    }
    let slave = nix::fcntl::open(name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .with_ctx(|| format!("open {name}"))?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid))).ctx("chown pty")?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(name.as_bytes())], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .ctx("send pty master to console socket")?;
    drop(master);
    // The caller made this process a session leader (setsid), so the slave can become its
    // controlling terminal.
    if crate::sys::set_controlling_tty(slave.as_fd()) < 0 {
        return Err(nix::errno::Errno::last()).ctx("make pty the controlling terminal");
    }
    for target in 0..3 {
        if crate::sys::dup2(slave.as_fd(), target) < 0 {
            return Err(nix::errno::Errno::last()).ctx("dup pty onto stdio");
        }
    }
    Ok(())
}

/// Receives a pty master sent with SCM_RIGHTS (used by `run` for its own terminal).
pub fn recv_master(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).ctx("receive pty master")?;
    let (_, fds) = crate::sys::take_fds(msg).ctx("receive pty master")?;
    if let Some(fd) = fds.into_iter().next() {
        return Ok(fd);
    }
    Err(Error::Init("console socket message carried no fd".into()))
}

/// While alive, copies our stdin to the container's terminal and its output to our
/// stdout, with our own terminal (if any) in raw mode; restores it when dropped.
pub struct Relay {
    saved: Option<nix::sys::termios::Termios>,
}

pub fn relay(master: &OwnedFd) -> Relay {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
    }
    let (Ok(out), Ok(inp)) = (master.try_clone(), master.try_clone()) else { return Relay { saved } };
    std::thread::spawn(move || {
        let mut m = std::fs::File::from(out);
        let _ = std::io::copy(&mut m, &mut std::io::stdout());
    });
    std::thread::spawn(move || {
        let mut m = std::fs::File::from(inp);
        let _ = std::io::copy(&mut std::io::stdin(), &mut m);
    });
    Relay { saved }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
