//! Garbage collection of unreferenced blobs and layers, and disk usage of the store.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use super::store::{ioe, Store, StoreError};

impl Store {
    /// Collects unreferenced blobs and layers when no pull or import is running, else leaves
    /// it to the last one that ends. `needed` records that something may be garbage now (a
    /// failed pull, a removed image); a collection still pending from earlier runs as well.
    ///
    /// Nobody ever waits here: pulls and imports hold `gc.lock` shared for their whole life
    /// (so GC never sees a half-made image), and this only *tries* the exclusive lock. The
    /// marker is written before trying, and every holder of the shared lock calls this after
    /// releasing it, so the last one to leave always sees the marker and collects.
    pub fn collect_when_idle(&self, needed: bool) -> Result<(), StoreError> {
        let pending = self.root().join("gc.pending");
        if needed {
            fs::write(&pending, b"").map_err(ioe(&pending))?;
        } else if !pending.exists() {
            return Ok(());
        }
        let Some(_gc) = self.try_gc_exclusive()? else {
            tracing::debug!("image store busy: garbage collection deferred");
            return Ok(());
        };
        self.collect_garbage()?;
        match fs::remove_file(&pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ioe(pending)(e)),
            _ => Ok(()),
        }
    }

    /// Removes blobs and layers no image references. Caller holds the exclusive gc lock.
    pub(crate) fn collect_garbage(&self) -> Result<(), StoreError> {
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
                if !keep.contains(&name) {
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

#[cfg(test)]
mod tests {
    use super::super::unpack::UnpackOptions;
    use super::*;

    #[test]
    fn collection_waits_for_no_one_and_is_never_lost() {
        let root = std::env::temp_dir().join(format!("berth-gc-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = Store::open(&root, UnpackOptions { max_size: 1 << 20, allow_devices: false }).unwrap();
        let garbage = store.put_bytes(b"unreferenced").unwrap();
        let pending = root.join("gc.pending");
        // Two pulls running: collecting is deferred at once, not waited for.
        let (a, b) = (store.gc_shared().unwrap(), store.gc_shared().unwrap());
        store.collect_when_idle(true).unwrap();
        assert!(store.has_blob(&garbage) && pending.exists());
        // The first to end finds the other still running: still deferred.
        drop(a);
        store.collect_when_idle(false).unwrap();
        assert!(store.has_blob(&garbage) && pending.exists());
        // The last one to end collects.
        drop(b);
        store.collect_when_idle(false).unwrap();
        assert!(!store.has_blob(&garbage) && !pending.exists());
        // Nothing pending, nothing needed: no collection (a new blob stays).
        let fresh = store.put_bytes(b"fresh").unwrap();
        store.collect_when_idle(false).unwrap();
        assert!(store.has_blob(&fresh));
        // A collection left pending by a killed process runs when the store is next opened.
        fs::write(&pending, b"").unwrap();
        let store = Store::open(&root, UnpackOptions { max_size: 1 << 20, allow_devices: false }).unwrap();
        assert!(!store.has_blob(&fresh) && !pending.exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
