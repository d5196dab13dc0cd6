//! The checkpoint archive, in CRI-O's layout: one uncompressed tar holding
//!
//! | entry | what |
//! |---|---|
//! | `checkpoint/` | CRIU's images (the runtime's `checkpoint --image-path`) |
//! | `dump.log` | CRIU's log of the dump |
//! | `config.dump` | JSON: the container's id, name, image (name, id, ref), runtime, times |
//! | `spec.dump` | the container's OCI spec (its bundle's config.json) |
//! | `rootfs-diff.tar` | the changes in the container's overlay upper directory, as an OCI layer (whiteouts `.wh.NAME`, opaque directories `.wh..wh..opq`) |
//!
//! Writing goes through a temp file renamed into place, so a failed checkpoint leaves no
//! partial archive. Reading checks the tar magic first: CreateContainer treats an image that
//! is such an archive as a request to restore (as CRI-O does).

use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const IMAGES_DIR: &str = "checkpoint";
pub const CONFIG_DUMP: &str = "config.dump";
pub const SPEC_DUMP: &str = "spec.dump";
pub const ROOTFS_DIFF: &str = "rootfs-diff.tar";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("checkpoint archive {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("checkpoint archive {path}: {what}")]
    Bad { path: String, what: String },
}

fn ioe(p: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: p.display().to_string(), source }
}

/// `config.dump` (CRI-O's field names; `imageId` and `handler` are berth's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDump {
    pub id: String,
    pub name: String,
    pub rootfs_image: String,
    pub rootfs_image_ref: String,
    pub rootfs_image_name: String,
    #[serde(default)]
    pub image_id: String,
    pub runtime: String,
    #[serde(default)]
    pub handler: String,
    pub created_time: String,
    pub checkpointed_time: String,
}

/// Whether `path` names a tar file (the `ustar` magic at offset 257).
pub fn is_archive(path: &str) -> bool {
    let p = Path::new(path);
    if !p.is_absolute() {
        return false;
    }
    let Ok(mut f) = File::open(p) else { return false };
    let mut head = [0u8; 262];
    f.read_exact(&mut head).is_ok() && &head[257..262] == b"ustar"
}

/// Writes the archive of `dir` (images, log, dumps, diff) to `location`, atomically.
/// A new file (replacing any), 0600 whatever the umask.
fn private_file(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::remove_file(p);
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

pub fn write_archive(dir: &Path, location: &Path) -> Result<(), ArchiveError> {
    let name =
        location.file_name().ok_or_else(|| ArchiveError::Bad { path: location.display().to_string(), what: "not a file name".into() })?;
    let tmp = location.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let r = (|| {
        // The archive holds the container's memory and environment: root's alone.
        let f = private_file(&tmp).map_err(ioe(&tmp))?;
        let mut b = tar::Builder::new(io::BufWriter::new(f));
        b.follow_symlinks(false);
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir).map_err(ioe(dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let n = p.file_name().expect("entry has a name").to_owned();
            if p.is_dir() {
                b.append_dir_all(&n, &p).map_err(ioe(&p))?;
            } else {
                b.append_path_with_name(&p, &n).map_err(ioe(&p))?;
            }
        }
        let w = b.into_inner().map_err(ioe(&tmp))?;
        w.into_inner()
            .map_err(|e| ArchiveError::Io { path: tmp.display().to_string(), source: e.into_error() })?
            .sync_all()
            .map_err(ioe(&tmp))
    })();
    match r {
        Ok(()) => std::fs::rename(&tmp, location).map_err(ioe(location)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Reads `config.dump` from an archive without unpacking the rest.
pub fn read_config(archive: &Path) -> Result<ConfigDump, ArchiveError> {
    let f = File::open(archive).map_err(ioe(archive))?;
    let mut a = tar::Archive::new(io::BufReader::new(f));
    for e in a.entries().map_err(ioe(archive))? {
        let mut e = e.map_err(ioe(archive))?;
        let p = e.path().map_err(ioe(archive))?.into_owned();
        if p == Path::new(CONFIG_DUMP) || p == Path::new("./config.dump") {
            let mut s = String::new();
            e.read_to_string(&mut s).map_err(ioe(archive))?;
            return serde_json::from_str(&s)
                .map_err(|e| ArchiveError::Bad { path: archive.display().to_string(), what: format!("{CONFIG_DUMP}: {e}") });
        }
    }
    Err(ArchiveError::Bad { path: archive.display().to_string(), what: format!("no {CONFIG_DUMP}: not a checkpoint archive") })
}

/// Unpacks the archive into the empty directory `dest` (entries may not leave it).
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let f = File::open(archive).map_err(ioe(archive))?;
    let mut a = tar::Archive::new(io::BufReader::new(f));
    a.set_preserve_permissions(true);
    for e in a.entries().map_err(ioe(archive))? {
        let mut e = e.map_err(ioe(archive))?;
        // unpack_in refuses absolute paths and `..`.
        if !e.unpack_in(dest).map_err(ioe(archive))? {
            return Err(ArchiveError::Bad { path: archive.display().to_string(), what: "an entry leaves the archive's directory".into() });
        }
    }
    for need in [IMAGES_DIR, CONFIG_DUMP, SPEC_DUMP] {
        if !dest.join(need).exists() {
            return Err(ArchiveError::Bad { path: archive.display().to_string(), what: format!("no {need}: not a checkpoint archive") });
        }
    }
    Ok(())
}

/// Writes the changes in an overlay upper directory as an OCI layer tar at `out`: overlay
/// whiteouts (0:0 character devices) become `.wh.NAME`, opaque directories get
/// `.wh..wh..opq`. Other device nodes, sockets and fifos are left out.
pub fn write_rootfs_diff(upper: &Path, out: &Path) -> Result<(), ArchiveError> {
    let f = private_file(out).map_err(ioe(out))?;
    let mut b = tar::Builder::new(io::BufWriter::new(f));
    b.follow_symlinks(false);
    walk(&mut b, upper, Path::new(""))?;
    b.into_inner().map_err(ioe(out))?;
    Ok(())
}

fn walk<W: io::Write>(b: &mut tar::Builder<W>, dir: &Path, rel: &Path) -> Result<(), ArchiveError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(ioe(dir))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = rel.join(e.file_name());
        let md = std::fs::symlink_metadata(&path).map_err(ioe(&path))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o600);
            let wh = rel.join(format!(".wh.{}", e.file_name().to_string_lossy()));
            b.append_data(&mut h, wh, io::empty()).map_err(ioe(&path))?;
        } else if ft.is_dir() {
            b.append_path_with_name(&path, &name).map_err(ioe(&path))?;
            if is_opaque(&path) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o600);
                b.append_data(&mut h, name.join(".wh..wh..opq"), io::empty()).map_err(ioe(&path))?;
            }
            walk(b, &path, &name)?;
        } else if ft.is_file() || ft.is_symlink() {
            b.append_path_with_name(&path, &name).map_err(ioe(&path))?;
        }
    }
    Ok(())
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else { return false };
    let mut v = [0u8; 4];
    let n = crate::sys::lgetxattr(&c, c"trusted.overlay.opaque", &mut v);
    n == 1 && v[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn archive_round_trip_and_detection() {
        let d = tmp("rt");
        let src = d.join("src");
        std::fs::create_dir_all(src.join(IMAGES_DIR)).unwrap();
        std::fs::write(src.join(IMAGES_DIR).join("inventory.img"), b"x").unwrap();
        let cfg = ConfigDump { id: "abc".into(), rootfs_image_name: "busybox".into(), ..Default::default() };
        std::fs::write(src.join(CONFIG_DUMP), serde_json::to_vec(&cfg).unwrap()).unwrap();
        std::fs::write(src.join(SPEC_DUMP), b"{}").unwrap();
        let out = d.join("ckpt.tar");
        write_archive(&src, &out).unwrap();
        assert!(is_archive(out.to_str().unwrap()));
        assert!(!is_archive(src.join(SPEC_DUMP).to_str().unwrap()));
        assert!(!is_archive("busybox:latest"));
        assert_eq!(read_config(&out).unwrap().rootfs_image_name, "busybox");
        let dest = d.join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        unpack(&out, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join(IMAGES_DIR).join("inventory.img")).unwrap(), b"x");
        assert!(!d.join(".ckpt.tar.tmp").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rootfs_diff_lists_files_and_whiteouts() {
        let d = tmp("diff");
        let upper = d.join("upper");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/new"), b"hello").unwrap();
        // A 0:0 character device is an overlay whiteout.
        let made = nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .is_ok();
        let out = d.join(ROOTFS_DIFF);
        write_rootfs_diff(&upper, &out).unwrap();
        let mut a = tar::Archive::new(File::open(&out).unwrap());
        let names: Vec<String> = a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        let mut want = vec!["etc", "etc/new"];
        if made {
            want.insert(1, "etc/.wh.gone");
        }
        assert_eq!(names.iter().map(|s| s.trim_end_matches('/')).collect::<Vec<_>>(), want);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
