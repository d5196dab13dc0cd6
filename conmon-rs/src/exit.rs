//! What is left when the container has exited: its status in the exit files, the exit
//! command, and no zombie.

use crate::diag;
use nix::sys::wait::WaitStatus;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// conmon's exit code of a wait status: the code, or 128 + the signal.
pub fn code(ws: &WaitStatus) -> i32 {
    match ws {
        WaitStatus::Exited(_, c) => *c,
        WaitStatus::Signaled(_, s, _) => 128 + *s as i32,
        _ => -1,
    }
}

/// Write `contents` to `path` atomically (a watcher of the directory never reads a partial
/// file; a crash leaves either no file or the whole one).
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.berth-mon-tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `<persist-dir>/exit` and `<exit-dir>/<cid>`.
pub fn write_files(persist: Option<&Path>, exit_dir: Option<&Path>, cid: &str, status: i32) -> crate::error::Result<()> {
    let s = status.to_string();
    if let Some(d) = persist {
        let p = d.join("exit");
        write_atomic(&p, &s)
            .map_err(|e| crate::error::Error::sys(format!("Failed to write {s} to container exit file {}", p.display()), e))?;
    }
    if let Some(d) = exit_dir {
        let p = d.join(cid);
        write_atomic(&p, &s).map_err(|e| crate::error::Error::sys(format!("Failed to write {s} to exit file {}", p.display()), e))?;
    }
    Ok(())
}

/// Run the exit command after `delay` seconds and wait for it (conmon exits only after its
/// exit command did, and with its status when it failed). The monitor stops being a
/// subreaper first, so that what the exit command leaves behind is not ours to wait for.
pub fn run_command(cmd: &Path, args: &[OsString], delay: i64) -> Option<i32> {
    let mut argv: Vec<CString> = Vec::with_capacity(args.len() + 1);
    for a in std::iter::once(cmd.as_os_str()).chain(args.iter().map(|a| a.as_os_str())) {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => {
                diag::warn("exit command argument contains a NUL byte; not running it");
                return None;
            }
        }
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 0) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    // SAFETY: single-threaded process; the child only calls async-signal-safe functions
    // (close_range, nanosleep, execv, _exit) before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        diag::warn(&format!("Failed to fork the exit command: {}", std::io::Error::last_os_error()));
        return None;
    }
    if pid == 0 {
        // SAFETY: the child of single-threaded berth-mon: no other thread held a lock (the
        // allocator's included) at the fork, so even the pointer array it allocates is sound;
        // system calls on memory the child owns (argv's strings, built before the fork), then
        // execv or _exit.
        unsafe {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            if delay > 0 {
                let ts = libc::timespec { tv_sec: delay as libc::time_t, tv_nsec: 0 };
                let mut rem = ts;
                while libc::nanosleep(&rem, &mut rem) == -1 {}
            }
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut result = None;
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status to a live int.
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r == pid {
            result = Some(if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) });
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    result
}
