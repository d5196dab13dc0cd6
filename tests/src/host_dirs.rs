//! Fixed host directories that clients create whatever their configuration says, removed again
//! when the last fixture of this test process that uses them is dropped — if they did not exist
//! before the first one.
//!
//! - podman (containers/image) keeps its blob-info cache at `/var/lib/containers/cache` for
//!   root: `podman import` writes it and no flag or containers.conf key moves it in 4.3.
//! - containerd's shims put their sockets in `/run/containerd/s` (a constant in 1.6).
//!
//! Only the files named here and then empty directories are removed, never anything else, so a
//! directory that gained other content meanwhile (another user of podman or containerd) stays.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Use {
    users: usize,
    existed: bool,
}

static USES: Mutex<Option<HashMap<PathBuf, Use>>> = Mutex::new(None);

/// A claim on `root`; dropping the last claim cleans `root` up as described above.
pub struct HostDir {
    root: PathBuf,
    known_files: &'static [&'static str],
}

impl HostDir {
    /// Claim `root`, whose only files a client creates are `known_files` (relative paths).
    pub fn claim(root: &str, known_files: &'static [&'static str]) -> HostDir {
        let root = PathBuf::from(root);
        let mut g = USES.lock().unwrap_or_else(|e| e.into_inner());
        let m = g.get_or_insert_with(HashMap::new);
        let u = m.entry(root.clone()).or_insert(Use { users: 0, existed: false });
        if u.users == 0 {
            u.existed = root.exists();
        }
        u.users += 1;
        HostDir { root, known_files }
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let mut g = USES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(u) = g.as_mut().and_then(|m| m.get_mut(&self.root)) else { return };
        u.users -= 1;
        if u.users > 0 || u.existed {
            return;
        }
        for f in self.known_files {
            let _ = fs::remove_file(self.root.join(f));
        }
        remove_empty_dirs(&self.root);
    }
}

/// rmdir every empty directory under and including `dir`, deepest first.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
