//! Run the current program from a sealed, in-memory copy of itself (CVE-2019-5736).
//!
//! A process that enters a container's namespaces (`berth create`'s init, `berth exec`'s
//! process, the pod's `berth-pause`) has the host's binary as `/proc/self/exe` until it
//! execs the container's program. A container whose program *is* `/proc/self/exe` (directly,
//! through a symlink, as a `#!` interpreter, with the image's own `ld.so` as the program
//! interpreter) runs that binary inside the container and can keep an fd on it; once the
//! runtime's processes have exited it could reopen that fd for writing and replace the
//! host's binary, which host root runs next.
//!
//! [`ensure`] closes every route at once: before anything else, the program copies itself
//! into a `memfd`, seals it (no write, no resize, no further seal changes) and re-executes
//! from it. `/proc/self/exe` is then that sealed copy, never the host's file: writes to it
//! fail with EPERM, and it is discarded with the last process that maps it. This is what
//! runc 1.1 and crun do (runc's `cloned_binary.c`, crun's `ensure_cloned_binary`); written
//! here on libc alone (no crate does this, and the runtime and the monitor carry no C
//! dependency). A host that forbids executable memfds (`vm.memfd_noexec = 2`) gets a clear
//! error: the runtime fails closed rather than run unprotected.

#![allow(unsafe_code)] // This crate is one of berth's few doors to raw system calls.
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The seals that make a copy immutable: no write, no shrink or growth, no seal removal.
pub const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
/// Linux 6.3+: the exec bits of the memfd cannot change either.
const F_SEAL_EXEC: libc::c_int = 0x0020;
/// Linux 6.3+: ask for an executable memfd explicitly (`vm.memfd_noexec = 1` makes them
/// non-executable by default).
const MFD_EXEC: libc::c_uint = 0x0010;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Is `fd` a memfd carrying every seal in [`SEALS`]?
pub fn is_sealed_fd(fd: &OwnedFd) -> bool {
    // SAFETY: F_GET_SEALS reads the seals of an fd we own; it fails (EINVAL) on other files.
    let s = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    s >= 0 && s & SEALS == SEALS
}

fn open_self() -> io::Result<OwnedFd> {
    // SAFETY: a constant path; the fd is owned at once.
    let fd = cvt(unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Does this process run from a sealed copy already?
pub fn is_sealed() -> io::Result<bool> {
    Ok(is_sealed_fd(&open_self()?))
}

/// A sealed memfd holding the bytes of `src` (read from its start), named `name`
/// (`/memfd:<name> (deleted)` in `/proc/<pid>/exe`).
pub fn sealed_copy(src: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid C string; the fd is owned at once.
    let mut r = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Before Linux 6.3 MFD_EXEC is unknown, and every memfd is executable.
        // SAFETY: as above.
        r = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    let mem = cvt(r).map_err(|e| io::Error::new(e.kind(), format!("memfd_create: {e}")))?;
    // SAFETY: mem was just returned by memfd_create.
    let mem = unsafe { OwnedFd::from_raw_fd(mem) };
    // SAFETY: fstat into a zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat to the live struct.
    cvt(unsafe { libc::fstat(src.as_raw_fd(), &mut st) })?;
    let mut left = st.st_size as usize;
    let mut off: libc::off_t = 0;
    while left > 0 {
        // SAFETY: sendfile between two fds we own, with an offset variable we own.
        let n = unsafe { libc::sendfile(mem.as_raw_fd(), src.as_raw_fd(), &mut off, left) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io::Error::new(e.kind(), format!("copy into the memfd: {e}")));
        }
        if n == 0 {
            return Err(io::Error::other("copy into the memfd: the executable shrank while being copied"));
        }
        left -= n as usize;
    }
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, SEALS | F_SEAL_EXEC) } < 0 {
        // F_SEAL_EXEC is unknown before 6.3: the other seals alone.
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, SEALS) })
            .map_err(|e| io::Error::new(e.kind(), format!("seal the memfd: {e}")))?;
    }
    Ok(mem)
}

/// Re-execute this program, with the same arguments and environment, from a sealed copy of
/// itself, unless it runs from one already. Returns `Ok(())` only in the sealed process;
/// an error means the copy or the exec failed (the caller should refuse to go on).
pub fn ensure(name: &CStr) -> io::Result<()> {
    let exe = open_self()?;
    if is_sealed_fd(&exe) {
        return Ok(());
    }
    let copy = sealed_copy(&exe, name)?;
    drop(exe);
    let argv: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>()?;
    let envp: Vec<CString> =
        std::env::vars_os().map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat())).collect::<Result<_, _>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: execveat with NUL-terminated arrays of valid C strings that outlive the call;
    // it returns only on failure. The memfd is close-on-exec, which an ELF program allows.
    unsafe {
        libc::syscall(libc::SYS_execveat, copy.as_raw_fd(), c"".as_ptr(), argv_p.as_ptr(), envp_p.as_ptr(), libc::AT_EMPTY_PATH);
    }
    let e = io::Error::last_os_error();
    Err(io::Error::new(e.kind(), format!("execveat of the sealed copy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_sealed_copy_has_the_bytes_and_refuses_writes() {
        let mut f = std::fs::File::from(open_self().unwrap());
        let mut want = Vec::new();
        f.read_to_end(&mut want).unwrap();
        f.rewind().unwrap();
        let copy = sealed_copy(&OwnedFd::from(f), c"sealed-exe-test").unwrap();
        assert!(is_sealed_fd(&copy));
        let mut c = std::fs::File::from(copy);
        // sendfile left the memfd's position at its end.
        c.rewind().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert!(got == want, "the copy differs from the executable: {} bytes, want {}", got.len(), want.len());
        // Through the fd and through a reopen of /proc/self/fd/N: no write, no truncate.
        assert!(c.write_all(b"x").is_err());
        assert!(c.set_len(1).is_err());
        let path = format!("/proc/self/fd/{}", c.as_raw_fd());
        if let Ok(mut w) = std::fs::OpenOptions::new().append(true).open(&path) {
            assert!(w.write_all(b"overwritten").is_err(), "a write through a reopened fd went through");
        }
        let mut again = Vec::new();
        std::fs::File::open(&path).unwrap().read_to_end(&mut again).unwrap();
        assert!(again == want);
    }

    #[test]
    fn a_plain_file_is_not_sealed() {
        assert!(!is_sealed().unwrap(), "the test binary runs from its file");
    }
}
