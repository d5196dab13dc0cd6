//! Recursive mount attributes (`rro`, `rnosuid`, ... as runc 1.2 and crun spell them):
//! mount_setattr(2) with AT_RECURSIVE changes a whole mount tree at once, which
//! MS_REMOUNT cannot (it changes only the top mount of an `rbind`). Raw syscall: neither
//! nix nor std wraps mount_setattr, and the call is one struct and one number.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Attributes to set and clear on every mount of a tree.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

impl RecAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

/// Every recursive option berth accepts.
pub const REC_OPTIONS: &[&str] = &[
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
];

/// Folds one `r*` option into `attr`; false when `opt` is not a recursive option.
pub fn apply_option(attr: &mut RecAttr, opt: &str) -> bool {
    use libc::{
        MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW,
        MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
    };
    let flag = |attr: &mut RecAttr, f: u64, on: bool| {
        if on {
            attr.set |= f;
            attr.clr &= !f;
        } else {
            attr.clr |= f;
            attr.set &= !f;
        }
    };
    // The atime mode is one field of three bits: setting a mode clears the field first,
    // which is how the kernel expects MOUNT_ATTR__ATIME to be used.
    let atime = |attr: &mut RecAttr, mode: u64| {
        attr.clr |= MOUNT_ATTR__ATIME;
        attr.set = (attr.set & !MOUNT_ATTR__ATIME) | mode;
    };
    match opt {
        "rro" => flag(attr, MOUNT_ATTR_RDONLY, true),
        "rrw" => flag(attr, MOUNT_ATTR_RDONLY, false),
        "rnosuid" => flag(attr, MOUNT_ATTR_NOSUID, true),
        "rsuid" => flag(attr, MOUNT_ATTR_NOSUID, false),
        "rnodev" => flag(attr, MOUNT_ATTR_NODEV, true),
        "rdev" => flag(attr, MOUNT_ATTR_NODEV, false),
        "rnoexec" => flag(attr, MOUNT_ATTR_NOEXEC, true),
        "rexec" => flag(attr, MOUNT_ATTR_NOEXEC, false),
        "rnodiratime" => flag(attr, MOUNT_ATTR_NODIRATIME, true),
        "rdiratime" => flag(attr, MOUNT_ATTR_NODIRATIME, false),
        "rnosymfollow" => flag(attr, MOUNT_ATTR_NOSYMFOLLOW, true),
        "rsymfollow" => flag(attr, MOUNT_ATTR_NOSYMFOLLOW, false),
        "rrelatime" => atime(attr, MOUNT_ATTR_RELATIME),
        "rnoatime" => atime(attr, MOUNT_ATTR_NOATIME),
        "rstrictatime" => atime(attr, MOUNT_ATTR_STRICTATIME),
        // Leaving relatime / noatime / strictatime means the kernel's default (relatime),
        // as the non-recursive `norelatime` / `atime` / `nostrictatime` leave it to mount(2).
        "rnorelatime" | "ratime" | "rnostrictatime" => atime(attr, MOUNT_ATTR_RELATIME),
        _ => return false,
    }
    true
}

/// Applies `attr` to the mount `fd` names and to every mount below it.
pub fn set_recursive(fd: BorrowedFd, attr: RecAttr) -> Result<(), Errno> {
    let mut a = libc::mount_attr { attr_set: attr.set, attr_clr: attr.clr, propagation: 0, userns_fd: 0 };
    // SAFETY: a valid fd, a NUL-terminated empty path, and a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &mut a as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_option_is_recognised() {
        for o in REC_OPTIONS {
            assert!(apply_option(&mut RecAttr::default(), o), "{o}");
        }
        assert!(!apply_option(&mut RecAttr::default(), "ro"));
    }

    #[test]
    fn later_options_override_earlier() {
        let mut a = RecAttr::default();
        apply_option(&mut a, "rro");
        assert_eq!(a, RecAttr { set: libc::MOUNT_ATTR_RDONLY, clr: 0 });
        apply_option(&mut a, "rrw");
        assert_eq!(a, RecAttr { set: 0, clr: libc::MOUNT_ATTR_RDONLY });
        let mut a = RecAttr::default();
        apply_option(&mut a, "rnoatime");
        assert_eq!(a.set & libc::MOUNT_ATTR__ATIME, libc::MOUNT_ATTR_NOATIME);
        assert_eq!(a.clr, libc::MOUNT_ATTR__ATIME);
    }
}
