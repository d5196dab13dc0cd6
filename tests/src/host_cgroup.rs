//! The host's cgroup hierarchies as clients use them: finding and removing the cgroup trees a
//! client's containers were placed in, and reading whether a process is frozen.
//!
//! Clients name cgroups themselves (podman's `--cgroup-parent`, containerd's `/<namespace>/<id>`)
//! and create them in every hierarchy the runtime under test uses: runc on this hybrid host
//! uses each v1 controller plus the cgroup2 mount, berth the cgroup2 mount. The runtime removes
//! the container's leaf at `delete`; the parent stays (podman and containerd never remove it),
//! so each fixture gets a unique parent name and removes that tree itself.

use std::fs;
use std::path::{Path, PathBuf};

/// Mount points of every cgroup (v1) and cgroup2 file system, from mountinfo.
pub fn hierarchies() -> Vec<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mountpoint = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .collect()
}

fn check_rel(rel: &str) {
    assert!(!rel.trim_matches('/').is_empty() && !rel.split('/').any(|c| c == ".."), "refusing to touch cgroup path {rel:?}");
}

/// Every directory of the tree `rel` (relative to each hierarchy's root), deepest first.
pub fn tree(rel: &str) -> Vec<PathBuf> {
    check_rel(rel);
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(p.to_path_buf());
    }
    let mut out = vec![];
    for h in hierarchies() {
        let top = h.join(rel.trim_start_matches('/'));
        if top.is_dir() {
            walk(&top, &mut out);
        }
    }
    out
}

/// Remove the tree `rel` from every hierarchy (rmdir only: a cgroup that still holds a
/// process cannot be removed and is returned with the error).
pub fn remove_tree(rel: &str) -> Vec<(PathBuf, std::io::Error)> {
    tree(rel).into_iter().filter_map(|d| fs::remove_dir(&d).err().map(|e| (d, e))).collect()
}

/// Whether the kernel has frozen `pid`'s cgroup: the v1 freezer's `freezer.state` or the
/// cgroup2 `cgroup.events` `frozen` key, whichever the runtime used. `None` if neither applies
/// (the process is gone or sits in no freezable cgroup).
pub fn frozen(pid: i32) -> Option<bool> {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hier = hierarchies();
    let mount_of = |want_v2: bool, ctrl: &str| -> Option<PathBuf> {
        hier.iter()
            .find(|h| {
                let is_v2 = crate::cgroup2::fs_magic(h).ok() == Some(0x63677270);
                if want_v2 {
                    is_v2
                } else {
                    !is_v2 && h.file_name().is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == ctrl))
                }
            })
            .cloned()
    };
    let mut answer = None;
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            let Some(m) = mount_of(true, "") else { continue };
            if let Ok(ev) = fs::read_to_string(m.join(rel).join("cgroup.events")) {
                let f = ev.lines().any(|l| l == "frozen 1");
                answer = Some(answer.unwrap_or(false) || f);
            }
        } else if ctrls.split(',').any(|c| c == "freezer") {
            let Some(m) = mount_of(false, "freezer") else { continue };
            if let Ok(st) = fs::read_to_string(m.join(rel).join("freezer.state")) {
                let f = st.trim() == "FROZEN";
                answer = Some(answer.unwrap_or(false) || f);
            }
        }
    }
    answer
}
