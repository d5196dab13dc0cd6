//! The OCI runtime call: `create` (or `restore`) for a container, `exec --detach` for an
//! exec session, with conmon's argument order, and the fork+exec that starts it with the
//! container's stdio.
//!
//! fork+exec is written out (not `std::process::Command`) because the child must set
//! `LISTEN_PID` to its *own* pid for socket activation, wait on the start pipe for an
//! attached exec, and do nothing that allocates after the fork.

use crate::cli::Options;
use crate::error::{Error, Result};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn argv(o: &Options, console_socket: Option<&Path>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![o.runtime.clone().unwrap_or_default().into()];
    if !o.exec && o.systemd_cgroup {
        a.push("--systemd-cgroup".into());
    }
    a.extend(o.runtime_args.iter().cloned());
    let pidfile: OsString = o.container_pidfile.clone().unwrap_or_default().into();
    if o.exec {
        a.extend([
            "exec".into(),
            "--pid-file".into(),
            pidfile,
            "--process".into(),
            o.exec_process_spec.clone().unwrap_or_default().into(),
            "--detach".into(),
        ]);
        if o.terminal {
            a.push("--tty".into());
        }
    } else {
        let bundle: OsString = o.bundle.clone().unwrap_or_default().into();
        let cmd = if o.restore.is_some() { "restore" } else { "create" };
        a.extend([cmd.into(), "--bundle".into(), bundle.clone(), "--pid-file".into(), pidfile]);
        if o.no_pivot {
            a.push("--no-pivot".into());
        }
        if o.no_new_keyring {
            a.push("--no-new-keyring".into());
        }
        if let Some(r) = &o.restore {
            // A restored container runs at once: --detach makes the runtime return then.
            a.extend(["--detach".into(), "--image-path".into(), r.clone().into(), "--work-path".into(), bundle]);
        }
    }
    a.extend(o.runtime_opts.iter().cloned());
    if let Some(cs) = console_socket {
        a.push("--console-socket".into());
        a.push(cs.into());
    }
    a.push(o.cid().into());
    a
}

/// The runtime's stdio and what its child does before exec.
pub struct Spawn<'a> {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Read once more before exec (an attached exec waits until the client is attached).
    pub start_pipe: Option<&'a OwnedFd>,
    /// The oom_score_adj the monitor had before lowering its own.
    pub oom_score_adj: Option<Vec<u8>>,
    pub replace_listen_pid: bool,
}

fn cstr(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::Config(format!("argument {s:?} contains a NUL byte")))
}

pub fn spawn(argv: &[OsString], s: &Spawn) -> Result<i32> {
    let args: Vec<CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let mut env: Vec<CString> = Vec::new();
    let mut listen_slot = None;
    let me = std::process::id() as i64;
    for (k, v) in std::env::vars_os() {
        // The caller's pipes are the monitor's, not the runtime's.
        if k.as_bytes().starts_with(b"_OCI_") {
            continue;
        }
        if k == "LISTEN_PID" {
            let lpid: i64 = v.to_string_lossy().parse().unwrap_or(-1);
            if lpid <= 0 {
                return Err(Error::Config(format!("Invalid LISTEN_PID {}", v.to_string_lossy())));
            }
            // Socket activation meant for this monitor (or asked for): it moves to the runtime,
            // whose pid is known only in the child.
            if s.replace_listen_pid || lpid == me {
                listen_slot = Some(env.len());
            }
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(CString::new(kv).map_err(|_| Error::Config("environment contains a NUL byte".into()))?);
    }
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argp.push(std::ptr::null());
    let oom = s.oom_score_adj.clone();
    let start = s.start_pipe.map(|f| f.as_raw_fd());
    let mut listen_buf = [0u8; 40];

    // SAFETY: berth-mon is single-threaded; the child uses only async-signal-safe calls on
    // memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::sys("Failed to fork the runtime", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        return Ok(pid);
    }
    // SAFETY: the forked child of single-threaded berth-mon: async-signal-safe calls on memory prepared before the fork (no allocation),
    // then execve or _exit.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        // A process group of its own, inherited by what the runtime starts (unless it makes a
        // session): the timeout kills that group, never the monitor's.
        libc::setpgid(0, 0);
        if libc::dup2(s.stdin, 0) < 0 || libc::dup2(s.stdout, 1) < 0 || libc::dup2(s.stderr, 2) < 0 {
            libc::_exit(127);
        }
        if let Some(slot) = listen_slot {
            let prefix = b"LISTEN_PID=";
            listen_buf[..prefix.len()].copy_from_slice(prefix);
            let mut digits = [0u8; 20];
            let mut n = libc::getpid() as u64;
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let d = &digits[i..];
            listen_buf[prefix.len()..prefix.len() + d.len()].copy_from_slice(d);
            listen_buf[prefix.len() + d.len()] = 0;
            envp[slot] = listen_buf.as_ptr().cast();
        }
        if let Some(fd) = start {
            let mut b = [0u8; 8192];
            while libc::read(fd, b.as_mut_ptr().cast(), b.len()) < 0 && *libc::__errno_location() == libc::EINTR {}
        }
        if let Some(v) = &oom {
            // The runtime must be killable again; the container's own value comes from its spec.
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, v.as_ptr().cast(), v.len());
                libc::close(fd);
            }
        }
        libc::execve(argp[0], argp.as_ptr(), envp.as_ptr());
        libc::_exit(127);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_in_conmons_order() {
        let o = Options::parse(
            [
                "-c",
                "id",
                "-u",
                "id",
                "-r",
                "/bin/rt",
                "-b",
                "/b",
                "-p",
                "/b/pid",
                "--runtime-arg",
                "--log-format=json",
                "--no-pivot",
                "--runtime-opt",
                "--x",
                "-s",
            ]
            .map(OsString::from),
        )
        .unwrap();
        let a = argv(&o, Some(Path::new("/tmp/cs")));
        let s: Vec<_> = a.iter().map(|x| x.to_string_lossy().into_owned()).collect();
        assert_eq!(
            s,
            [
                "/bin/rt",
                "--systemd-cgroup",
                "--log-format=json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/b/pid",
                "--no-pivot",
                "--x",
                "--console-socket",
                "/tmp/cs",
                "id"
            ]
        );
        let o = Options::parse(
            ["-c", "id", "-u", "x", "-r", "/bin/rt", "-p", "/p", "-e", "--exec-process-spec", "/s", "-t", "-s"].map(OsString::from),
        )
        .unwrap();
        let s: Vec<_> = argv(&o, None).iter().map(|x| x.to_string_lossy().into_owned()).collect();
        assert_eq!(s, ["/bin/rt", "exec", "--pid-file", "/p", "--process", "/s", "--detach", "--tty", "id"]);
    }
}
