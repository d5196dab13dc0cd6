//! The container's user: uid, gid and additional gids, with names resolved in the image's own
//! `/etc/passwd` and `/etc/group`.
//!
//! Those files are read *inside* the rootfs: with openat2(RESOLVE_IN_ROOT) a symlink (absolute or
//! `../..`) resolves as it would in the container, never to a host file; kernels without openat2
//! get a walk that refuses symlinks. At most [`MAX_FILE`] bytes are read.

use super::{invalid, ImageConfig, SpecError};
use k8s_cri::v1::{LinuxContainerSecurityContext, SupplementalGroupsPolicy};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// passwd/group files bigger than this are refused (real ones are a few KiB).
pub const MAX_FILE: u64 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then /etc/group memberships and supplemental groups (deduplicated).
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Passwd { name: f[0].into(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()? })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            let members = f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default();
            Some(Group { name: f[0].into(), gid: f[2].parse().ok()?, members })
        })
        .collect()
}

fn openat2_in_root(dir: &OwnedFd, rel: &CString) -> std::io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers: all-zero is a valid value (no flags, no resolve).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path, `how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// openat each component with O_NOFOLLOW (a symlink anywhere → ELOOP / ENOTDIR).
fn open_nofollow(dir: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur: Option<OwnedFd> = None;
    for (n, c) in parts.iter().enumerate() {
        let last = n + 1 == parts.len();
        let name = CString::new(*c).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let flags =
            libc::O_NOFOLLOW | libc::O_CLOEXEC | if last { libc::O_RDONLY | libc::O_NOCTTY } else { libc::O_PATH | libc::O_DIRECTORY };
        let at = cur.as_ref().unwrap_or(dir).as_raw_fd();
        // SAFETY: valid fd and path.
        let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new fd we own.
        cur = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    cur.ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Read `rel` (e.g. `etc/passwd`) inside `root`; `Ok(None)` when it does not exist there.
pub(crate) fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let what = format!("{rel} in {}", root.display());
    let io = |source: std::io::Error| SpecError::Io { what: what.clone(), source };
    let croot = CString::new(root.as_os_str().as_encoded_bytes()).map_err(|_| invalid("rootfs path has a NUL byte"))?;
    // SAFETY: NUL-terminated path.
    let dfd = unsafe { libc::open(croot.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dfd < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd we own.
    let dir = unsafe { OwnedFd::from_raw_fd(dfd) };
    let crel = CString::new(rel).map_err(|_| invalid("path has a NUL byte"))?;
    let fd = match openat2_in_root(&dir, &crel) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => open_nofollow(&dir, rel),
        r => r,
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(invalid(format!("{what} is a symlink berth does not follow")));
        }
        Err(e) => return Err(io(e)),
    };
    let mut f = File::from(fd);
    let md = f.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(invalid(format!("{what} is not a regular file")));
    }
    if md.size() > MAX_FILE {
        return Err(invalid(format!("{what} is {} bytes (at most {MAX_FILE})", md.size())));
    }
    let mut buf = Vec::new();
    (&mut f).take(MAX_FILE + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(invalid(format!("{what} is bigger than {MAX_FILE} bytes")));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn id(field: &str, v: i64) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| invalid(format!("{field} {v} is not a valid id (0..=4294967295)")))
}

/// The user and groups, from (first that is set) run_as_username / run_as_user, else the image's
/// `User`; gid from run_as_group, else the group of the image's `User` (only when the user is the
/// image's), else the user's passwd entry, else 0.
pub fn resolve(rootfs: &Path, sc: &LinuxContainerSecurityContext, image: &ImageConfig) -> Result<Resolved, SpecError> {
    if !sc.run_as_username.is_empty() && sc.run_as_user.is_some() {
        return Err(invalid("run_as_user and run_as_username are both set; only one may be"));
    }
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(invalid("run_as_group is set without run_as_user or run_as_username"));
    }
    let policy = SupplementalGroupsPolicy::try_from(sc.supplemental_groups_policy)
        .map_err(|_| invalid(format!("unknown supplemental_groups_policy {}", sc.supplemental_groups_policy)))?;

    // Only read what is needed: a numeric user with a numeric group and no merge needs neither file.
    let mut passwd: Option<Vec<Passwd>> = None;
    let mut group: Option<Vec<Group>> = None;
    let mut passwd_of = |rootfs: &Path| -> Result<Vec<Passwd>, SpecError> {
        if passwd.is_none() {
            passwd = Some(read_in_root(rootfs, "etc/passwd")?.map(|t| parse_passwd(&t)).unwrap_or_default());
        }
        Ok(passwd.clone().unwrap_or_default())
    };
    let mut group_of = |rootfs: &Path| -> Result<Vec<Group>, SpecError> {
        if group.is_none() {
            group = Some(read_in_root(rootfs, "etc/group")?.map(|t| parse_group(&t)).unwrap_or_default());
        }
        Ok(group.clone().unwrap_or_default())
    };

    let (user_part, group_part, from_image): (String, Option<String>, bool) = if !sc.run_as_username.is_empty() {
        (sc.run_as_username.clone(), None, false)
    } else if let Some(u) = &sc.run_as_user {
        (id("run_as_user", u.value)?.to_string(), None, false)
    } else if !image.user.is_empty() {
        match image.user.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string()).filter(|g| !g.is_empty()), true),
            None => (image.user.clone(), None, true),
        }
    } else {
        ("0".into(), None, true)
    };
    let src = if from_image {
        "the image's User"
    } else if sc.run_as_username.is_empty() {
        "run_as_user"
    } else {
        "run_as_username"
    };
    if user_part.is_empty() {
        return Err(invalid(format!("{src} {:?} has no user", image.user)));
    }

    let (uid, entry) = match user_part.parse::<u32>() {
        Ok(uid) => (uid, passwd_of(rootfs)?.into_iter().find(|p| p.uid == uid)),
        Err(_) => {
            let p = passwd_of(rootfs)?
                .into_iter()
                .find(|p| p.name == user_part)
                .ok_or_else(|| invalid(format!("{src}: user {user_part:?} not found in the image's /etc/passwd")))?;
            (p.uid, Some(p))
        }
    };

    let gid = if let Some(g) = &sc.run_as_group {
        id("run_as_group", g.value)?
    } else if let Some(g) = group_part {
        match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_of(rootfs)?
                .into_iter()
                .find(|x| x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| invalid(format!("{src}: group {g:?} not found in the image's /etc/group")))?,
        }
    } else {
        entry.as_ref().map(|p| p.gid).unwrap_or(0)
    };

    let mut gids = vec![gid];
    if policy == SupplementalGroupsPolicy::Merge {
        if let Some(p) = &entry {
            for g in group_of(rootfs)? {
                if g.members.contains(&p.name) {
                    gids.push(g.gid);
                }
            }
        }
    }
    for g in &sc.supplemental_groups {
        gids.push(id("supplemental_groups", *g)?);
    }
    let mut seen = std::collections::HashSet::new();
    gids.retain(|g| seen.insert(*g));
    Ok(Resolved { uid, gid, additional_gids: gids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::tests::TempDir;
    use k8s_cri::v1::Int64Value;
    use std::fs;

    fn rootfs() -> TempDir {
        let t = TempDir::new("user");
        fs::create_dir_all(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\nbroken\nweb:x:33:33::/:/bin/false\n",
        )
        .unwrap();
        fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:app,web\napp:x:1001:\nextra:x:2000:web,app\nwww:x:33:\n").unwrap();
        t
    }

    fn img(u: &str) -> ImageConfig {
        ImageConfig { user: u.into(), ..Default::default() }
    }

    fn r(t: &TempDir, sc: &LinuxContainerSecurityContext, u: &str) -> Result<Resolved, SpecError> {
        resolve(t.path(), sc, &img(u))
    }

    #[test]
    fn image_user_forms() {
        let t = rootfs();
        let sc = LinuxContainerSecurityContext::default();
        assert_eq!(r(&t, &sc, "").unwrap(), Resolved { uid: 0, gid: 0, additional_gids: vec![0] });
        assert_eq!(r(&t, &sc, "app").unwrap(), Resolved { uid: 1000, gid: 1001, additional_gids: vec![1001, 50, 2000] });
        assert_eq!(r(&t, &sc, "1000").unwrap().gid, 1001, "numeric uid takes its passwd gid");
        assert_eq!(r(&t, &sc, "4242").unwrap(), Resolved { uid: 4242, gid: 0, additional_gids: vec![0] });
        assert_eq!(r(&t, &sc, "4242:77").unwrap(), Resolved { uid: 4242, gid: 77, additional_gids: vec![77] });
        assert_eq!(r(&t, &sc, "app:staff").unwrap().gid, 50);
        assert_eq!(r(&t, &sc, "web:2000").unwrap(), Resolved { uid: 33, gid: 2000, additional_gids: vec![2000, 50] });
        let e = r(&t, &sc, "nobody").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.to_string().contains("\"nobody\""), "{e}");
        let e = r(&t, &sc, "app:nogroup").unwrap_err();
        assert!(e.to_string().contains("\"nogroup\""), "{e}");
        assert!(r(&t, &sc, ":5").is_err());
    }

    #[test]
    fn security_context_overrides_image() {
        let t = rootfs();
        let mut sc = LinuxContainerSecurityContext { run_as_user: Some(Int64Value { value: 33 }), ..Default::default() };
        // The image's group is not used when the request names the user.
        assert_eq!(r(&t, &sc, "app:staff").unwrap(), Resolved { uid: 33, gid: 33, additional_gids: vec![33, 50, 2000] });
        sc.run_as_group = Some(Int64Value { value: 7 });
        sc.supplemental_groups = vec![9, 7, 50];
        assert_eq!(r(&t, &sc, "").unwrap().additional_gids, vec![7, 50, 2000, 9]);
        sc.supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        assert_eq!(r(&t, &sc, "").unwrap().additional_gids, vec![7, 9, 50]);

        let sc = LinuxContainerSecurityContext { run_as_username: "app".into(), ..Default::default() };
        assert_eq!(r(&t, &sc, "web").unwrap().uid, 1000);
        let sc = LinuxContainerSecurityContext { run_as_username: "ghost".into(), ..Default::default() };
        let e = r(&t, &sc, "").unwrap_err();
        assert!(e.to_string().contains("run_as_username") && e.to_string().contains("ghost"), "{e}");
    }

    #[test]
    fn bad_security_contexts() {
        let t = rootfs();
        for sc in [
            LinuxContainerSecurityContext { run_as_group: Some(Int64Value { value: 1 }), ..Default::default() },
            LinuxContainerSecurityContext { run_as_user: Some(Int64Value { value: -1 }), ..Default::default() },
            LinuxContainerSecurityContext { run_as_user: Some(Int64Value { value: 1 << 33 }), ..Default::default() },
            LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 1 }),
                run_as_username: "app".into(),
                ..Default::default()
            },
            LinuxContainerSecurityContext { supplemental_groups: vec![-5], ..Default::default() },
            LinuxContainerSecurityContext { supplemental_groups_policy: 9, ..Default::default() },
        ] {
            assert_eq!(r(&t, &sc, "").unwrap_err().code(), tonic::Code::InvalidArgument, "{sc:?}");
        }
    }

    #[test]
    fn no_passwd_file() {
        let t = TempDir::new("user-empty");
        let sc = LinuxContainerSecurityContext::default();
        assert_eq!(r(&t, &sc, "12:34").unwrap().uid, 12);
        assert!(r(&t, &sc, "app").is_err());
    }

    #[test]
    fn symlinks_never_leave_the_rootfs() {
        // A host file with a user the container must not see.
        let host = TempDir::new("user-host");
        fs::write(host.path().join("passwd"), "evil:x:4444:4444::/:/bin/sh\n").unwrap();
        fs::write(host.path().join("group"), "evilgrp:x:4445:\n").unwrap();
        let t = TempDir::new("user-link");
        fs::create_dir_all(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(host.path().join("passwd"), t.path().join("etc/passwd")).unwrap();
        let up = "../".repeat(20) + host.path().join("group").to_str().unwrap().trim_start_matches('/');
        std::os::unix::fs::symlink(&up, t.path().join("etc/group")).unwrap();
        let sc = LinuxContainerSecurityContext::default();
        let e = r(&t, &sc, "evil").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(r(&t, &sc, "0:evilgrp").is_err());
        // Both fallbacks: the O_NOFOLLOW walk refuses the link outright.
        let dir = {
            let c = CString::new(t.path().to_str().unwrap()).unwrap();
            // SAFETY: open of a NUL-terminated path of the test's own temp dir.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
            // SAFETY: the fd was just opened by this test and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        assert_eq!(open_nofollow(&dir, "etc/passwd").unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // A link that stays inside the root is followed (inside it).
        fs::remove_file(t.path().join("etc/passwd")).unwrap();
        fs::write(t.path().join("etc/passwd.real"), "inside:x:5:6::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd.real", t.path().join("etc/passwd")).unwrap();
        assert_eq!(r(&t, &sc, "inside").unwrap().uid, 5);
    }

    #[test]
    fn oversized_and_special_files_refused() {
        let t = TempDir::new("user-big");
        fs::create_dir_all(t.path().join("etc/passwd")).unwrap();
        assert_eq!(r(&t, &LinuxContainerSecurityContext::default(), "app").unwrap_err().code(), tonic::Code::InvalidArgument);
        fs::remove_dir(t.path().join("etc/passwd")).unwrap();
        let f = File::create(t.path().join("etc/passwd")).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        let e = r(&t, &LinuxContainerSecurityContext::default(), "app").unwrap_err();
        assert!(e.to_string().contains("bytes"), "{e}");
    }
}
