//! `berth-pause --pidfile FILE`: the PID 1 of a pod that shares one PID namespace between its
//! containers (`shareProcessNamespace`). A pod needs a process only then: its other
//! namespaces are pinned by bind mounts, but a PID namespace dies with its init.
//!
//! It unshares a PID namespace and forks: the child is that namespace's init — it reaps the
//! orphans the pod's containers leave and otherwise sleeps; the parent writes the child's pid
//! to FILE and exits. berth-cri ends the pod's init with SIGKILL. Only libc: this is one tiny
//! process per such pod, and it must not carry a runtime.

use std::io::Write;

extern "C" fn on_signal(_: libc::c_int) {}

fn die(what: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "berth-pause: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1)
}

fn main() {
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
        let pid = libc::fork();
        if pid < 0 {
            die("fork");
        }
        if pid > 0 {
            let tmp = format!("{pidfile}.tmp");
            if std::fs::write(&tmp, pid.to_string()).and_then(|_| std::fs::rename(&tmp, &pidfile)).is_err() {
                libc::kill(pid, libc::SIGKILL);
                die("write the pid file");
            }
            std::process::exit(0);
        }
        // The namespace's init: its own session, no inherited fds but stdio on /dev/null.
        libc::setsid();
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        // An init ignores signals it has no handler for; SIGCHLD needs one to wake pause().
        libc::signal(libc::SIGCHLD, on_signal as *const () as usize);
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            libc::pause();
        }
    }
}
