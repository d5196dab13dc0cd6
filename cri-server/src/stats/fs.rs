//! The writable layer's usage: bytes (allocated blocks, as `du` counts them) and inodes of
//! the container's overlay upper directory, walked without following symlinks and without
//! leaving its filesystem.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DirUsage {
    pub bytes: u64,
    pub inodes: u64,
}

/// Usage of the tree at `root` (`None` when it does not exist). Hard links count once.
pub fn usage(root: &Path) -> Option<DirUsage> {
    let meta = std::fs::symlink_metadata(root).ok()?;
    let dev = meta.dev();
    let mut u = DirUsage::default();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    count(&meta, &mut u, &mut seen);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            // symlink_metadata: a symlink is counted as itself, never followed.
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            count(&m, &mut u, &mut seen);
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(u)
}

fn count(m: &std::fs::Metadata, u: &mut DirUsage, seen: &mut std::collections::HashSet<u64>) {
    if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
        return;
    }
    u.inodes += 1;
    u.bytes += m.blocks() * 512;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_dirs_and_links_once() {
        let d = std::env::temp_dir().join(format!("berth-fs-usage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(d.join("a/b/f"), d.join("a/g")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        let u = usage(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        // root, a, a/b, the file (once), the symlink.
        assert_eq!(u.inodes, 5);
        assert!(u.bytes >= 64 * 1024 && u.bytes < 200 * 1024, "{u:?}");
        assert_eq!(usage(Path::new("/nonexistent/berth")), None);
    }
}
