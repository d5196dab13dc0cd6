//! One container's monitor, from the caller's start signal to the exit files: detach, run
//! the runtime, report the pid, relay output to the logs and attached clients, follow
//! control messages and OOM kills, and record the exit.
//!
//! Single-threaded: the loop while the container runs is `relay.rs`.

use crate::attach::Attach;
use crate::cli::Options;
use crate::console::ConsoleSocket;
use crate::ctl::Ctl;
use crate::diag;
use crate::error::{Context, Error, Result};
use crate::exit;
use crate::log::{LogConfig, Logs};
use crate::notify::Notify;
use crate::oom::{self, OomWatch};
use crate::parent_pipe;
use crate::relay::{drop_signals, main_loop, read_fd, set_nonblocking, wait_for, Children, Io, STDIO_BUF};
use crate::runtime;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const TIMED_OUT_MESSAGE: &str = "command timed out";

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "create a pipe".into())
}

fn dev_null(write: bool) -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new().read(!write).write(write).open("/dev/null").ctx(|| "Failed to open /dev/null".into())?;
    Ok(f.into())
}

/// Lower our own oom_score_adj to -1000 (the monitor must outlive an OOM in the container)
/// and return the old value for the runtime. Without CAP_SYS_RESOURCE the kernel refuses;
/// that is not an error.
fn protect_from_oom() -> Option<Vec<u8>> {
    let old = std::fs::read("/proc/self/oom_score_adj").ok()?;
    if std::fs::write("/proc/self/oom_score_adj", b"-1000").is_err() {
        return None;
    }
    Some(old.trim_ascii_end().to_vec())
}

/// Detach from the caller: the caller's child exits at once, after writing the monitor's pid
/// to `--conmon-pidfile`; the grandchild carries on.
fn detach(o: &Options) -> Result<()> {
    if o.sync {
        if let Some(p) = &o.conmon_pidfile {
            exit::write_atomic(p, &std::process::id().to_string()).ctx(|| format!("Failed to write conmon pidfile {}", p.display()))?;
        }
        return Ok(());
    }
    // SAFETY: single-threaded here.
    match unsafe { nix::unistd::fork() }.ctx(|| "Failed to fork".into())? {
        nix::unistd::ForkResult::Parent { child } => {
            if let Some(p) = &o.conmon_pidfile {
                if let Err(e) = exit::write_atomic(p, &child.as_raw().to_string()) {
                    diag::warn(&format!("Failed to write conmon pidfile {}: {e}", p.display()));
                    // SAFETY: kill(2) on the child we just forked; integers only.
                    unsafe { libc::kill(child.as_raw(), libc::SIGKILL) };
                    // SAFETY: _exit ends the parent without running atexit handlers or destructors, as conmon does.
                    unsafe { libc::_exit(1) };
                }
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Child => Ok(()),
    }
}

pub fn run(o: Options) -> Result<i32> {
    let oom_adj = protect_from_oom();
    let start_pipe = parent_pipe::from_env("_OCI_STARTPIPE")?;
    if let Some(sp) = &start_pipe {
        // The caller moves us into our cgroup before letting us go on.
        parent_pipe::wait_start(sp)?;
    }
    let start_pipe = if o.exec_attach { start_pipe } else { None };
    let null_r = dev_null(false)?;
    let null_w = dev_null(true)?;

    let logs = Logs::open(&LogConfig {
        paths: &o.log_paths,
        size_max: o.log_size_max,
        global_size_max: o.log_global_size_max,
        cid: o.cid(),
        name: o.name.as_deref(),
        tag: o.log_tag.as_deref(),
        sync_on_reopen: !o.no_sync_log,
    })?;

    detach(&o)?;
    let sync_pipe = parent_pipe::from_env("_OCI_SYNCPIPE")?;
    let attach_pipe = if o.exec_attach {
        Some(
            parent_pipe::from_env("_OCI_ATTACHPIPE")?
                .ok_or_else(|| Error::Config("--attach specified but _OCI_ATTACHPIPE was not".into()))?,
        )
    } else {
        None
    };
    let key = parent_pipe::key(o.api_version, o.exec);
    let report_failure = |msg: &str| {
        if let Some(sp) = &sync_pipe {
            parent_pipe::send(sp, key, -1, Some(msg));
        }
    };

    let spawned = std::cell::Cell::new(false);
    let result = (|| -> Result<i32> {
        if !logs.passthrough {
            // The caller waits for our stdout to close when its child exits.
            for fd in 0..3 {
                let src = if fd == 0 { &null_r } else { &null_w };
                // SAFETY: dup2 of an fd we own onto the stdio numbers; integers only.
                unsafe { libc::dup2(src.as_raw_fd(), fd) };
            }
            diag::detached();
        }
        // SAFETY: setsid takes no arguments.
        unsafe { libc::setsid() };
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integers only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(Error::sys("Failed to set as subreaper", std::io::Error::last_os_error()));
        }

        let console = if o.terminal { Some(ConsoleSocket::bind()?) } else { None };
        let (mut stdin_w, mut stdin_r, mut stdout_r, mut stdout_w) = (None, None, None, None);
        if !o.terminal {
            if o.stdin {
                let (r, w) = pipe()?;
                set_nonblocking(w.as_raw_fd());
                stdin_r = Some(r);
                stdin_w = Some(w);
            }
            let (r, w) = pipe()?;
            stdout_r = Some(r);
            stdout_w = Some(w);
        }
        // Always a stderr pipe: the runtime's own errors arrive there before any tty exists.
        let (stderr_r, stderr_w) = pipe()?;

        let argv = runtime::argv(&o, console.as_ref().map(|c| c.path.as_path()));
        let mut attach = None;
        let mut ctl = None;
        let mut notify = None;
        if let (Some(bundle), false) = (&o.bundle, logs.passthrough) {
            attach = Some(Attach::bind(bundle, &o.socket_dir_path, o.cuuid.as_deref().unwrap_or(o.cid()), o.full_attach)?);
            ctl = Some(Ctl::create(bundle)?);
            if let Some(ap) = &attach_pipe {
                parent_pipe::send(ap, key, 0, None);
            }
        }
        if let (Some(host), Some(bundle)) = (&o.sdnotify_socket, &o.bundle) {
            notify = Some(Notify::bind(bundle, host)?);
        }
        let mut io = Io {
            stdout: stdout_r,
            stderr: Some(stderr_r),
            stdin: stdin_w,
            stdin_pending: Vec::new(),
            tty: o.terminal,
            tty_parked_until: None,
            logs,
            attach,
            ctl,
            notify,
            oom: None,
        };

        let mut mask = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
            mask.add(s);
        }
        mask.thread_block().ctx(|| "Failed to block signals".into())?;
        let mut sfd =
            SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ctx(|| "Failed to create signalfd".into())?;

        let passthrough = io.logs.passthrough;
        let spawn = runtime::Spawn {
            stdin: if passthrough { 0 } else { stdin_r.as_ref().map(|f| f.as_raw_fd()).unwrap_or(null_r.as_raw_fd()) },
            stdout: if passthrough { 1 } else { stdout_w.as_ref().map(|f| f.as_raw_fd()).unwrap_or(null_w.as_raw_fd()) },
            stderr: if passthrough { 2 } else { stderr_w.as_raw_fd() },
            start_pipe: start_pipe.as_ref(),
            oom_score_adj: oom_adj,
            replace_listen_pid: o.replace_listen_pid,
        };
        let create_pid = runtime::spawn(&argv, &spawn)?;
        spawned.set(true);
        drop(start_pipe);
        if passthrough {
            for fd in 0..3 {
                let src = if fd == 0 { &null_r } else { &null_w };
                // SAFETY: dup2 of an fd we own onto the stdio numbers; integers only.
                unsafe { libc::dup2(src.as_raw_fd(), fd) };
            }
            diag::detached();
        }
        // The runtime has its ends now.
        drop((stdin_r.take(), stdout_w.take(), stderr_w));

        let mut kids = Children { statuses: HashMap::new() };
        // Wait for the runtime, taking the pty master when it sends it.
        let mut console = console;
        while !kids.statuses.contains_key(&create_pid) {
            let mut fds = vec![libc::pollfd { fd: sfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            if let Some(c) = &console {
                fds.push(libc::pollfd { fd: c.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            // SAFETY: poll on a live pollfd array of the length passed.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, -1) } < 0 {
                continue;
            }
            if fds.len() > 1 && fds[1].revents != 0 {
                take_master(&mut console, &mut io)?;
            }
            drop_signals(&mut sfd);
            kids.reap();
        }
        let rt = kids.statuses[&create_pid];
        if !matches!(rt, WaitStatus::Exited(_, 0)) {
            let mut buf = [0u8; STDIO_BUF];
            if let Some(e) = &io.stderr {
                set_nonblocking(e.as_raw_fd());
            }
            let n = io.stderr.as_ref().and_then(|e| read_fd(e.as_raw_fd(), &mut buf).ok()).unwrap_or(0);
            let msg = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
            if let Some(a) = &mut io.attach {
                a.close();
            }
            return Err(Error::Runtime(format!(
                "{} exited with status {}{}{}",
                if o.exec { "exec" } else { "create" },
                exit::code(&rt),
                if msg.is_empty() { "" } else { ": " },
                msg
            )));
        }
        if console.is_some() {
            // The runtime connected before exiting; the connection waits in the backlog.
            set_nonblocking(console.as_ref().unwrap().listener.as_raw_fd());
            take_master(&mut console, &mut io)?;
        }
        if o.terminal && io.stdout.is_none() {
            return Err(Error::Runtime("Runtime did not set up terminal".into()));
        }

        let pidfile = o.container_pidfile.clone().unwrap_or_default();
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ctx(|| format!("Failed to read pidfile {}", pidfile.display()))?
            .trim()
            .parse()
            .map_err(|_| Error::Runtime(format!("pidfile {} does not hold a pid", pidfile.display())))?;
        diag::debug(&format!("container PID: {pid}"));
        if o.api_version >= 1 || !o.exec {
            if let Some(sp) = &sync_pipe {
                parent_pipe::send(sp, key, pid, None);
            }
        }
        io.oom = OomWatch::new(pid);
        // An attached exec's client connected before the process could run.
        if let Some(a) = &mut io.attach {
            a.accept();
        }

        let deadline = (o.timeout > 0).then(|| Instant::now() + Duration::from_secs(o.timeout as u64));
        let timed_out = main_loop(&o, &mut io, &mut sfd, &mut kids, pid, deadline);

        let (status, message) = if timed_out {
            // The whole exec'd process group, unless that is everyone (group 1) or ours.
            // SAFETY: getpgid takes a pid; no memory.
            let pg = unsafe { libc::getpgid(pid) };
            // SAFETY: as above.
            let own = unsafe { libc::getpgid(0) };
            // SAFETY: kill(2) takes integers only; the target is the exec'd process (group) we started.
            unsafe { libc::kill(if pg > 1 && pg != own { -pg } else { pid }, libc::SIGKILL) };
            wait_for(&mut sfd, &mut kids, pid, Duration::from_secs(5));
            (-1, Some(TIMED_OUT_MESSAGE))
        } else {
            (exit::code(&kids.statuses[&pid]), None)
        };
        // A kill counted just before the exit may not have been seen by the loop yet; record
        // it before the exit files, which tell the caller it may delete the cgroup.
        if io.oom.as_mut().is_some_and(|w| w.check()) {
            oom::record(&[o.persist_dir.as_deref(), o.bundle.as_deref()]);
        }
        if !timed_out {
            io.drain();
        }
        if !o.no_sync_log {
            io.logs.sync();
        }
        if let Some(a) = &mut io.attach {
            a.close();
        }
        io.attach = None;
        exit::write_files(o.persist_dir.as_deref(), o.exit_dir.as_deref(), o.cid(), status)?;
        if o.exec {
            if let Some(sp) = &sync_pipe {
                parent_pipe::send(sp, key, status, message);
            }
        }
        Ok(status)
    })();

    let code = match &result {
        Ok(status) => *status,
        Err(e) => {
            report_failure(&e.to_string());
            diag::log(diag::Level::Error, &e.to_string());
            1
        }
    };
    // As conmon, the exit command runs once the runtime was started, also after a failure
    // (podman's cleanup then removes what a failed create left).
    if let (Some(cmd), true) = (&o.exit_command, spawned.get()) {
        if let Some(rc) = exit::run_command(cmd, &o.exit_command_args, o.exit_delay) {
            if rc != 0 && result.is_ok() {
                return Ok(rc);
            }
        }
    } else {
        // Reap whatever is left (processes that were reparented to us).
        // SAFETY: waitpid with a null status pointer, which it accepts.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    }
    result.map(|_| code)
}

fn take_master(console: &mut Option<ConsoleSocket>, io: &mut Io) -> Result<()> {
    let Some(c) = console.as_ref() else { return Ok(()) };
    let master = match c.accept_master() {
        Ok(m) => m,
        Err(Error::Sys { cause, .. }) if cause.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(e),
    };
    // One fd for both directions: stdout (and stderr) come out of it, stdin goes into it.
    let dup = master.try_clone().ctx(|| "Failed to dup console file descriptor".into())?;
    set_nonblocking(master.as_raw_fd());
    io.stdin = Some(dup);
    io.stdout = Some(master);
    c.remove();
    *console = None;
    io.write_stdin();
    Ok(())
}
