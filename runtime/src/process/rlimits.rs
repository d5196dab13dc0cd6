//! process.rlimits.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Sets every limit; raising a hard limit without CAP_SYS_RESOURCE is an error, as the spec says.
pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        if l.soft() > l.hard() {
            return Err(Error::Spec(format!("rlimit {:?}: soft {} above hard {}", l.typ(), l.soft(), l.hard())));
        }
        let r = libc::rlimit { rlim_cur: l.soft(), rlim_max: l.hard() };
        if crate::sys::setrlimit(resource(l.typ()), &r) != 0 {
            return Err(nix::errno::Errno::last()).with_ctx(|| format!("set rlimit {:?} to {}/{}", l.typ(), l.soft(), l.hard()));
        }
    }
    Ok(())
}
