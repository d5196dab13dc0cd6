//! OCI hooks: run a hook's program with the container state on stdin.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

/// Runs hooks in order, stopping at the first failure.
pub fn run_all(kind: Kind, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    for h in hooks {
        run(kind, h, state_json)?;
    }
    Ok(())
}

/// Runs hooks in order, logging failures instead of stopping (poststart, poststop).
pub fn run_all_warn(kind: Kind, hooks: &[Hook], state_json: &[u8]) {
    for h in hooks {
        if let Err(e) = run(kind, h, state_json) {
            crate::logger::warn(&e.to_string());
        }
    }
}

fn run(kind: Kind, hook: &Hook, state_json: &[u8]) -> Result<()> {
    let path = hook.path();
    let fail = |why: String| Error::Hook { kind: kind.name().into(), path: path.display().to_string(), why };
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook.timeout().filter(|t| *t > 0).map(|t| Instant::now() + std::time::Duration::from_secs(t as u64));
    let status = match deadline {
        None => child.wait().map_err(|e| fail(e.to_string()))?,
        Some(deadline) => match wait_until(child.id() as i32, deadline) {
            true => child.wait().map_err(|e| fail(e.to_string()))?,
            false => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {}s", hook.timeout().unwrap_or(0))));
            }
        },
    };
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    Ok(())
}

/// Waits for a child to exit without reaping it; false when the deadline passes first.
fn wait_until(pid: i32, deadline: Instant) -> bool {
    let Some(pidfd) = crate::process::pidfd::open(pid) else { return true };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}
