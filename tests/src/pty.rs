//! A pseudo-terminal owned by the test, for driving interactive clients (`podman exec -it`)
//! exactly as a user's shell would: the client runs as a session leader whose controlling
//! terminal and stdio are the pty's slave; the test reads and writes the master.

use crate::console::Master;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A master/slave pair (24x80); the master is close-on-exec, so only the child we hand the
/// slave to holds the terminal.
pub struct Pty {
    pub master: Master,
    slave: File,
}

impl Pty {
    pub fn open() -> std::io::Result<Pty> {
        let m = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open("/dev/ptmx")?;
        let fd = m.as_raw_fd();
        let unlock: libc::c_int = 0;
        let mut n: libc::c_uint = 0;
        // SAFETY: ioctls on our own ptmx fd with correctly typed arguments.
        unsafe {
            if libc::ioctl(fd, libc::TIOCSPTLCK, &unlock) < 0 || libc::ioctl(fd, libc::TIOCGPTN, &mut n) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ws = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
            libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
        }
        let name = format!("/dev/pts/{n}");
        let slave = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(&name)?;
        Ok(Pty { master: Master { name, file: m }, slave })
    }

    /// Spawn `cmd` in a new session with the slave as stdin, stdout, stderr and controlling
    /// terminal. The test's copy of the slave is closed afterwards, so reading the master
    /// ends (EIO/HUP) once the client and its children let go of the terminal.
    pub fn spawn(self, mut cmd: Command) -> std::io::Result<(Master, Child)> {
        let Pty { master, slave } = self;
        cmd.stdin(Stdio::from(slave.try_clone()?)).stdout(Stdio::from(slave.try_clone()?)).stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok((master, child))
    }
}
