//! The monitor's loop while the container runs: its output to the logs and to every attached
//! client, clients' input to its stdin (with back-pressure), control messages, OOM events,
//! SIGCHLD from a signalfd, and the exec timeout — one `poll(2)` over a handful of fds.

use crate::attach::{Attach, STDIN_BUF};
use crate::cli::Options;
use crate::console;
use crate::ctl::{Ctl, Message};
use crate::diag;
use crate::log::{Logs, Stream};
use crate::notify::Notify;
use crate::oom::{self, OomWatch};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Output is read in chunks of conmon's size: podman reads attach packets into a buffer of
/// exactly this plus the stream byte, and a bigger SEQPACKET would be cut.
pub(crate) const STDIO_BUF: usize = 8192;
/// After the pty reports hang-up (no process has the terminal open), look again this often.
const TTY_HUP_RETRY: Duration = Duration::from_millis(100);

pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on an fd number; integers only.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Read once from `fd` into `buf`: Ok(n), Ok(0) at end, Err(errno).
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> std::result::Result<usize, i32> {
    loop {
        // SAFETY: reading into a live buffer of the length passed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Everything the loop watches.
pub(crate) struct Io {
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdin_pending: Vec<u8>,
    pub(crate) tty: bool,
    pub(crate) tty_parked_until: Option<Instant>,
    pub(crate) logs: Logs,
    pub(crate) attach: Option<Attach>,
    pub(crate) ctl: Option<Ctl>,
    pub(crate) notify: Option<Notify>,
    pub(crate) oom: Option<OomWatch>,
}

impl Io {
    /// Read one chunk of a stream; false at its end.
    pub(crate) fn pump(&mut self, s: Stream) -> bool {
        let fd = match s {
            Stream::Stdout => self.stdout.as_ref(),
            Stream::Stderr => self.stderr.as_ref(),
        };
        let Some(fd) = fd.map(|f| f.as_raw_fd()) else { return false };
        let mut buf = [0u8; STDIO_BUF];
        match read_fd(fd, &mut buf) {
            Ok(0) => {
                self.close(s);
                false
            }
            Ok(n) => {
                self.logs.write(s, &buf[..n]);
                if let Some(a) = &mut self.attach {
                    a.broadcast(s.attach_tag(), &buf[..n]);
                }
                true
            }
            Err(libc::EAGAIN) => false,
            // A pty master reads EIO while no process has the terminal open.
            Err(libc::EIO) if self.tty && s == Stream::Stdout => {
                self.tty_parked_until = Some(Instant::now() + TTY_HUP_RETRY);
                false
            }
            Err(e) => {
                diag::warn(&format!("read {}: {}", s.name(), std::io::Error::from_raw_os_error(e)));
                self.close(s);
                false
            }
        }
    }

    pub(crate) fn close(&mut self, s: Stream) {
        match s {
            Stream::Stdout => self.stdout = None,
            Stream::Stderr => self.stderr = None,
        }
    }

    /// Whatever the streams still hold, without waiting (a process that kept the pipe open
    /// after the container's init exited must not keep the monitor alive).
    pub(crate) fn drain(&mut self) {
        for s in [Stream::Stdout, Stream::Stderr] {
            let fd = match s {
                Stream::Stdout => self.stdout.as_ref(),
                Stream::Stderr => self.stderr.as_ref(),
            };
            if let Some(fd) = fd {
                set_nonblocking(fd.as_raw_fd());
            }
            self.tty_parked_until = None;
            while self.pump(s) {}
        }
        self.logs.flush();
    }

    pub(crate) fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            // SAFETY: writing from a live buffer of the length passed, on an fd we own.
            let n = unsafe { libc::write(fd.as_raw_fd(), self.stdin_pending.as_ptr().cast(), self.stdin_pending.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error().raw_os_error();
                if e == Some(libc::EINTR) {
                    continue;
                }
                if e != Some(libc::EAGAIN) {
                    diag::warn("Failed to write container stdin");
                    self.stdin_pending.clear();
                }
                return;
            }
            self.stdin_pending.drain(..n as usize);
        }
    }
}

/// What the runtime and the reaper saw.
pub(crate) struct Children {
    pub(crate) statuses: HashMap<i32, WaitStatus>,
}

impl Children {
    pub(crate) fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    if let Some(p) = ws.pid() {
                        self.statuses.insert(p.as_raw(), ws);
                    }
                }
            }
        }
    }
}

pub(crate) fn drop_signals(sfd: &mut SignalFd) {
    while let Ok(Some(si)) = sfd.read_signal() {
        if si.ssi_signo != libc::SIGCHLD as u32 {
            // SIGTERM, SIGINT, SIGQUIT, SIGHUP: the container keeps running and being
            // monitored; stop it through the runtime.
            diag::info(&format!("ignoring signal {}", si.ssi_signo));
        }
    }
}

/// Wait (bounded) for `pid` to be reaped.
pub(crate) fn wait_for(sfd: &mut SignalFd, kids: &mut Children, pid: i32, limit: Duration) {
    let end = Instant::now() + limit;
    kids.reap();
    while !kids.statuses.contains_key(&pid) && Instant::now() < end {
        let mut p = libc::pollfd { fd: sfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one live pollfd.
        unsafe { libc::poll(&mut p, 1, 100) };
        drop_signals(sfd);
        kids.reap();
    }
}

/// Run until the container's process exits (false) or the timeout passes (true).
pub(crate) fn main_loop(o: &Options, io: &mut Io, sfd: &mut SignalFd, kids: &mut Children, pid: i32, deadline: Option<Instant>) -> bool {
    #[derive(Clone, Copy)]
    enum Src {
        Sig,
        Out,
        Err,
        Listen,
        Client(usize),
        StdinOut,
        Ctl,
        Notify,
        Oom,
    }
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(16);
    let mut srcs: Vec<Src> = Vec::with_capacity(16);
    let mut stdin_buf = vec![0u8; STDIN_BUF];
    loop {
        if kids.statuses.contains_key(&pid) {
            return false;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return true;
        }
        if io.tty_parked_until.is_some_and(|t| now >= t) {
            io.tty_parked_until = None;
        }
        fds.clear();
        srcs.clear();
        fn add(fd: RawFd, ev: libc::c_short, s: Src, fds: &mut Vec<libc::pollfd>, srcs: &mut Vec<Src>) {
            fds.push(libc::pollfd { fd, events: ev, revents: 0 });
            srcs.push(s);
        }
        add(sfd.as_raw_fd(), libc::POLLIN, Src::Sig, &mut fds, &mut srcs);
        // Clients first: one that connected before output arrived must not miss it.
        if let Some(a) = &io.attach {
            add(a.listener.as_raw_fd(), libc::POLLIN, Src::Listen, &mut fds, &mut srcs);
        }
        if let (Some(f), None) = (&io.stdout, io.tty_parked_until) {
            add(f.as_raw_fd(), libc::POLLIN, Src::Out, &mut fds, &mut srcs);
        }
        if let Some(f) = &io.stderr {
            add(f.as_raw_fd(), libc::POLLIN, Src::Err, &mut fds, &mut srcs);
        }
        if let Some(a) = &io.attach {
            // Back-pressure: no more stdin is taken while some still waits for the container.
            if io.stdin_pending.is_empty() {
                for (i, c) in a.clients.iter().enumerate().filter(|(_, c)| c.readable) {
                    add(c.fd.as_raw_fd(), libc::POLLIN, Src::Client(i), &mut fds, &mut srcs);
                }
            }
        }
        if let (Some(f), false) = (&io.stdin, io.stdin_pending.is_empty()) {
            add(f.as_raw_fd(), libc::POLLOUT, Src::StdinOut, &mut fds, &mut srcs);
        }
        if let Some(c) = &io.ctl {
            add(c.reader.as_raw_fd(), libc::POLLIN, Src::Ctl, &mut fds, &mut srcs);
        }
        if let Some(n) = &io.notify {
            add(n.sock.as_raw_fd(), libc::POLLIN, Src::Notify, &mut fds, &mut srcs);
        }
        if let Some(w) = &io.oom {
            add(w.fd().as_raw_fd(), libc::POLLIN, Src::Oom, &mut fds, &mut srcs);
        }
        let wake = [deadline, io.tty_parked_until].into_iter().flatten().min();
        let timeout_ms = wake.map(|w| w.saturating_duration_since(now).as_millis().min(i32::MAX as u128) as i32 + 1).unwrap_or(-1);
        // SAFETY: poll on a live pollfd array of the length passed.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, timeout_ms) } <= 0 {
            continue;
        }
        let mut closed_client = false;
        for (i, src) in srcs.iter().copied().enumerate() {
            let rev = fds[i].revents;
            if rev == 0 {
                continue;
            }
            match src {
                Src::Sig => {
                    drop_signals(sfd);
                    kids.reap();
                }
                Src::Out => {
                    if rev & libc::POLLIN != 0 {
                        io.pump(Stream::Stdout);
                    } else if io.tty {
                        // Hang-up with nothing to read: nobody has the terminal open right now.
                        io.tty_parked_until = Some(Instant::now() + TTY_HUP_RETRY);
                    } else {
                        io.close(Stream::Stdout);
                    }
                }
                Src::Err => {
                    if rev & libc::POLLIN != 0 {
                        io.pump(Stream::Stderr);
                    } else {
                        io.close(Stream::Stderr);
                    }
                }
                Src::Listen => {
                    if let Some(a) = &mut io.attach {
                        a.accept();
                    }
                }
                Src::Client(c) => {
                    let Some(a) = &mut io.attach else { continue };
                    match a.read_client(c, &mut stdin_buf) {
                        Some(0) => closed_client = true,
                        Some(n) => {
                            io.stdin_pending.extend_from_slice(&stdin_buf[..n]);
                            io.write_stdin();
                        }
                        None => {}
                    }
                }
                Src::StdinOut => io.write_stdin(),
                Src::Ctl => {
                    let msgs = io.ctl.as_mut().map(|c| c.read()).unwrap_or_default();
                    for m in msgs {
                        match m {
                            Message::Resize { rows, cols } => {
                                if let (true, Some(f)) = (io.tty, &io.stdout) {
                                    console::resize(f, rows, cols);
                                }
                            }
                            Message::ReopenLogs => io.logs.reopen(),
                        }
                    }
                }
                Src::Notify => {
                    if let Some(n) = &io.notify {
                        n.relay();
                    }
                }
                Src::Oom => {
                    if io.oom.as_mut().is_some_and(|w| w.check()) {
                        oom::record(&[o.persist_dir.as_deref(), o.bundle.as_deref()]);
                    }
                }
            }
        }
        if closed_client {
            if let Some(a) = &mut io.attach {
                a.prune();
            }
            // A client that stopped sending ends the container's stdin, unless told otherwise.
            if o.stdin && !o.leave_stdin_open && io.stdin.is_some() {
                io.write_stdin();
                io.stdin = None;
                io.stdin_pending.clear();
            }
        }
    }
}
