//! Crash-safe files: every record berth-cri keeps is written to a temporary file, fsynced,
//! renamed over the old one and the directory fsynced, so after a kill -9 anywhere the file
//! is either the old record or the new one, never half of each.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Write `data` to `path` atomically, readable by root alone (0600): records, specs and
/// exec processes hold the containers' environment, which holds secrets.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// As `write_atomic`, with the file's mode (for the few files others must read: the pod's
/// resolv.conf, hosts and hostname, a CNI config).
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    // A temp name of this write alone: two writers of one record (a StartContainer and the
    // exit watcher) must never remove or rename each other's file; the last rename wins.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}.{seq}.tmp", name.to_string_lossy(), std::process::id()));
    {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have taken bits away from a wider mode.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

pub fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(v).map_err(io::Error::other)?;
    write_atomic(path, &data)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<T> {
    let data = fs::read(path)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// An object's files: its record (`<record_file>`, JSON, rewritten on every change) and the
/// CRI config it was created with (`config.pb`, protobuf, written once), both 0600. A new
/// object directory is made 0700 (its parents as they are).
pub fn save_record<R: serde::Serialize, C: prost::Message>(dir: &Path, record_file: &str, record: &R, config: &C) -> io::Result<()> {
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(parent) = dir.parent() {
            private_dir(parent, 0o711)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    let cfg = dir.join("config.pb");
    if !cfg.exists() {
        write_atomic(&cfg, &config.encode_to_vec())?;
    }
    write_json(&dir.join(record_file), record)
}

pub fn load_record<R: serde::de::DeserializeOwned, C: prost::Message + Default>(dir: &Path, record_file: &str) -> io::Result<(R, C)> {
    let record = read_json(&dir.join(record_file))?;
    let raw = fs::read(dir.join("config.pb"))?;
    let config = C::decode(raw.as_slice()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((record, config))
}

/// Make `dir` (and its missing parents) exist with exactly `mode` (0700, or 0711 where an
/// unprivileged id must pass through it, as a user-namespaced pod's init does).
pub fn private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// A random 64-hex-digit id (as CRI-O and containerd make them).
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

/// An id as berth-cri makes them: 64 lowercase hex digits (anything else cannot name a
/// directory of ours and is refused before it reaches the file system).
pub fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = std::env::temp_dir().join(format!("berth-persist-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("rec.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(d).unwrap();
        assert!(valid_id(&new_id()));
        assert!(!valid_id("../x"));
    }
}
