//! Garbage collection of unreferenced blobs and layers, and disk usage of the store.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use super::store::{ioe, Store, StoreError};

impl Store {
    /// After a failed pull/import: removes the blobs and layers of `digests` that no image
    /// references, so a failure leaves the store as it was. Takes the exclusive gc lock
    /// (the caller must not hold the shared one).
    pub fn discard_unreferenced(&self, digests: &[String]) -> Result<(), StoreError> {
        let _gc = self.gc_exclusive()?;
        self.collect_garbage_in(Some(digests))
    }

    /// Removes blobs and layers no image references. Caller holds the exclusive gc lock.
    pub(crate) fn collect_garbage(&self) -> Result<(), StoreError> {
        self.collect_garbage_in(None)
    }

    fn collect_garbage_in(&self, only: Option<&[String]>) -> Result<(), StoreError> {
        let mut keep = BTreeSet::new();
        for i in self.list_images()? {
            keep.insert(i.id.trim_start_matches("sha256:").to_string());
            if let Some(h) = i.manifest_digest.strip_prefix("sha256:") {
                keep.insert(h.to_string());
            }
            for l in &i.layers {
                keep.insert(l.digest.trim_start_matches("sha256:").to_string());
            }
            // The index a multi-platform image was pulled through.
            for d in &i.repo_digests {
                if let Some((_, h)) = d.split_once("@sha256:") {
                    keep.insert(h.to_string());
                }
            }
        }
        for sub in ["blobs/sha256", "layers"] {
            let dir = self.root().join(sub);
            for e in fs::read_dir(&dir).map_err(ioe(&dir))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let selected = only.is_none_or(|o| o.iter().any(|d| d.strip_prefix("sha256:") == Some(name.as_str())));
                if selected && !keep.contains(&name) {
                    let p = e.path();
                    let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                    r.map_err(ioe(p))?;
                }
            }
        }
        Ok(())
    }

    /// Disk usage of the store as `du` counts it (allocated bytes, hard links once), and inodes.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        let mut seen = BTreeSet::new();
        let mut bytes = 0u64;
        let mut inodes = 0u64;
        let mut stack = vec![self.root().to_path_buf()];
        let dev = fs::symlink_metadata(self.root()).map_err(ioe(self.root()))?.dev();
        while let Some(d) = stack.pop() {
            let md = match fs::symlink_metadata(&d) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if md.dev() != dev {
                continue; // a mounted container rootfs
            }
            if seen.insert(md.ino()) {
                bytes += md.blocks() * 512;
                inodes += 1;
            }
            if md.is_dir() {
                if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten() {
                        let p = e.path();
                        match e.file_type() {
                            Ok(t) if t.is_dir() => stack.push(p),
                            Ok(_) => {
                                if let Ok(m) = fs::symlink_metadata(&p) {
                                    if seen.insert(m.ino()) {
                                        bytes += m.blocks() * 512;
                                        inodes += 1;
                                    }
                                }
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        Ok((bytes, inodes))
    }
}
