//! `berth-pause --pidfile FILE`: the PID 1 of a pod that shares one PID namespace between its
//! containers (`shareProcessNamespace`). A pod needs a process only then: its other
//! namespaces are pinned by bind mounts, but a PID namespace dies with its init.
//!
//! It unshares a PID namespace and forks: the child is that namespace's init — it reaps the
//! orphans the pod's containers leave and otherwise sleeps; the parent writes the child's pid
//! to FILE and exits. berth-cri ends the pod's init with SIGKILL. Only libc (and the sealed
//! re-exec, itself libc only): this is one tiny process per such pod, and it must not carry a
//! runtime. The init confines itself (see `confine`) before it waits.

#![deny(unsafe_code)]
// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

fn main() {
    pause::main()
}

/// The whole program: libc system calls around one fork, no runtime (see above).
#[allow(unsafe_code)]
mod pause {
    use std::io::Write;

    extern "C" fn on_signal(_: libc::c_int) {}

    fn die(what: &str) -> ! {
        let _ = writeln!(std::io::stderr(), "berth-pause: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1)
    }

    /// The init's confinement: containers of the pod see it as their PID 1, so `/proc/1/root`,
    /// `/proc/1/environ`, `/proc/1/exe` and its fds must show nothing of the host even to one
    /// granted CAP_SYS_PTRACE. A mount namespace of its own whose root is an empty read-only
    /// tmpfs, no capabilities (all five sets), no_new_privs, non-dumpable; the environment is
    /// already empty (berth-cri starts it so) and the binary is a sealed copy.
    ///
    /// # Safety
    /// Only in the forked init, single-threaded: system calls on static C strings and live
    /// structs; it changes this process's mount namespace, root and credentials.
    unsafe fn confine() -> Result<(), String> {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(fail("unshare(CLONE_NEWNS)"));
        }
        // Nothing of this namespace propagates back to the host.
        if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(fail("make / private"));
        }
        // The new root is mounted over /tmp of this namespace only (the host's /tmp is untouched).
        let root = c"/tmp";
        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if libc::mount(c"berth-pause".as_ptr(), root.as_ptr(), c"tmpfs".as_ptr(), flags, c"size=4k,mode=0555".as_ptr().cast()) != 0 {
            return Err(fail("mount the empty root"));
        }
        if libc::chdir(root.as_ptr()) != 0 || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(fail("pivot_root into the empty root"));
        }
        // The old root is stacked under the new one: detach it.
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            return Err(fail("detach the host root"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("no_new_privs"));
        }
        // Bounding set first (needs CAP_SETPCAP), then ambient, then the three others.
        for cap in 0..=63 {
            if libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) == 1 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut h = Header { version: 0x2008_0522, pid: 0 };
        let d = [Data { effective: 0, permitted: 0, inheritable: 0 }, Data { effective: 0, permitted: 0, inheritable: 0 }];
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
            return Err(fail("drop capabilities"));
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(fail("non-dumpable"));
        }
        Ok(())
    }

    fn fail(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    pub fn main() {
        // A container sharing this PID namespace must never reach the host's berth-pause binary
        // through /proc/1/exe (CVE-2019-5736): run from a sealed copy.
        if let Err(e) = sealed_exe::ensure(c"berth-pause") {
            eprintln!("berth-pause: cannot run from a sealed copy of itself: {e}");
            std::process::exit(1);
        }
        let args: Vec<String> = std::env::args().collect();
        let pidfile = match args.as_slice() {
            [_, flag, path] if flag == "--pidfile" => path.clone(),
            _ => {
                eprintln!("usage: berth-pause --pidfile FILE");
                std::process::exit(2)
            }
        };
        // SAFETY: plain syscalls; the process is single-threaded here.
        unsafe {
            if libc::unshare(libc::CLONE_NEWPID) != 0 {
                die("unshare(CLONE_NEWPID)");
            }
            // The child reports a failed confinement on this pipe; EOF means it is confined.
            let mut p = [0; 2];
            if libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                die("pipe");
            }
            let pid = libc::fork();
            if pid < 0 {
                die("fork");
            }
            if pid > 0 {
                libc::close(p[1]);
                let mut buf = [0u8; 512];
                let n = libc::read(p[0], buf.as_mut_ptr().cast(), buf.len());
                if n != 0 {
                    libc::kill(pid, libc::SIGKILL);
                    let msg = if n > 0 { String::from_utf8_lossy(&buf[..n as usize]).into_owned() } else { "no word from the init".into() };
                    eprintln!("berth-pause: confine the init: {msg}");
                    std::process::exit(1);
                }
                let tmp = format!("{pidfile}.tmp");
                if std::fs::write(&tmp, pid.to_string()).and_then(|_| std::fs::rename(&tmp, &pidfile)).is_err() {
                    libc::kill(pid, libc::SIGKILL);
                    die("write the pid file");
                }
                std::process::exit(0);
            }
            // The namespace's init: its own session, confined, then no fds at all (stdio too: it
            // writes nothing, and a closed fd shows no host file in /proc/1/fd).
            libc::close(p[0]);
            libc::setsid();
            if let Err(e) = confine() {
                libc::write(p[1], e.as_ptr().cast(), e.len());
                libc::_exit(1);
            }
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            // An init ignores signals it has no handler for; SIGCHLD needs one to wake pause().
            libc::signal(libc::SIGCHLD, on_signal as *const () as usize);
            loop {
                while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
                libc::pause();
            }
        }
    }
}
