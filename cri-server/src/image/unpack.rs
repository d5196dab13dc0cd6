//! Unpacking one layer tarball (plain, gzip or zstd) into an empty directory, safely.
//!
//! Every entry is created relative to the layer root with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` for its parent directory and `*at` syscalls without following the
//! final component, so neither `..`, absolute paths, nor symlinks created by earlier entries
//! can make a write land outside the layer. Whiteouts become overlayfs whiteouts (0:0 char
//! devices, `trusted.overlay.opaque=y`). The decompressed stream is size-limited and hashed
//! (the layer's diff_id).

use std::cell::Cell;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::rc::Rc;

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {path:?}: absolute paths are not allowed in a layer")]
    Absolute { path: String },
    #[error("layer entry {path:?}: '..' components are not allowed in a layer")]
    DotDot { path: String },
    #[error("layer entry {path:?}: resolving it would leave the layer root (through a symlink)")]
    Escape { path: String },
    #[error("layer entry {path:?}: device nodes are not allowed (image.allow_device_nodes = false)")]
    Device { path: String },
    #[error("layer entry {path:?}: unsupported tar entry type {kind}")]
    Unsupported { path: String, kind: u8 },
    #[error("layer entry {path:?}: invalid whiteout")]
    BadWhiteout { path: String },
    #[error("layer decompresses to more than the limit of {limit} bytes (image.max_layer_size)")]
    TooLarge { limit: u64 },
    #[error("layer entry {path:?}: {op}: {source}")]
    Io { path: String, op: &'static str, source: io::Error },
    #[error("reading layer: {0}")]
    Read(io::Error),
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    pub max_size: u64,
    pub allow_devices: bool,
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream (`sha256:<hex>`).
    pub diff_id: String,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// Compression of a blob, from its magic bytes (media types can lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Counts and hashes the decompressed stream, failing past the limit.
struct Meter<R> {
    inner: R,
    hasher: Sha256,
    count: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get() + n as u64;
        self.count.set(total);
        if total > self.limit {
            return Err(io::Error::other("decompressed layer exceeds the size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens a directory strictly beneath `root`.
fn open_beneath(root: RawFd, rel: &[OsString]) -> io::Result<OwnedFd> {
    let mut p = Vec::new();
    for (i, c) in rel.iter().enumerate() {
        if i > 0 {
            p.push(b'/');
        }
        p.extend_from_slice(c.as_bytes());
    }
    if p.is_empty() {
        p.push(b'.');
    }
    let path = CString::new(p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain integers: all-zero is a valid value (no flags, no resolve).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid pointers for the duration of the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root, path.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

struct Ctx {
    root: OwnedFd,
    opts: UnpackOptions,
}

fn io_err<'a>(path: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| {
        if source.raw_os_error() == Some(libc::EXDEV) || source.raw_os_error() == Some(libc::ELOOP) {
            UnpackError::Escape { path: path.to_string() }
        } else {
            UnpackError::Io { path: path.to_string(), op, source }
        }
    }
}

impl Ctx {
    /// Opens (creating missing directories) the parent directory `comps`.
    fn parent(&self, comps: &[OsString], shown: &str) -> Result<OwnedFd, UnpackError> {
        match open_beneath(self.root.as_raw_fd(), comps) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io_err(shown, "open parent")(e)),
        }
        let mut cur = open_beneath(self.root.as_raw_fd(), &[]).map_err(io_err(shown, "open root"))?;
        for i in 0..comps.len() {
            match open_beneath(self.root.as_raw_fd(), &comps[..=i]) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = cstr(&comps[i]).map_err(io_err(shown, "name"))?;
                    // SAFETY: valid fd and C string.
                    let r = unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o755) };
                    if r < 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(io_err(shown, "mkdir parent")(e));
                        }
                    }
                    cur = open_beneath(self.root.as_raw_fd(), &comps[..=i]).map_err(io_err(shown, "open parent"))?;
                }
                Err(e) => return Err(io_err(shown, "open parent")(e)),
            }
        }
        Ok(cur)
    }
}

/// Removes whatever is at `name` in `dir` (a directory only if `keep_dir` is false).
fn remove_existing(dir: RawFd, name: &CStr, keep_dir: bool) -> io::Result<bool> {
    // SAFETY: libc::stat is plain integers: all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) { Ok(false) } else { Err(e) };
    }
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && keep_dir {
        return Ok(true);
    }
    if is_dir {
        // Replace a directory by a non-directory: remove the subtree beneath the layer root.
        // SAFETY: valid fd / string.
        let fd =
            check(unsafe { libc::openat(dir, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) })?;
        // SAFETY: a non-negative openat result is a new fd nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        remove_tree_at(owned)?;
        // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })?;
    } else {
        // SAFETY: as above.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) })?;
    }
    Ok(false)
}

fn remove_tree_at(dir: OwnedFd) -> io::Result<()> {
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let names: Vec<OsString> = std::fs::read_dir(&path)?.flatten().map(|e| e.file_name()).collect();
    for n in names {
        let c = cstr(&n)?;
        remove_existing(dir.as_raw_fd(), &c, false)?;
    }
    Ok(())
}

fn set_meta(fd: RawFd, uid: u64, gid: u64, mode: u32, mtime: u64, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(fd, uid as libc::uid_t, gid as libc::gid_t) })?;
    // SAFETY: fchmod on an fd number; integers only.
    check(unsafe { libc::fchmod(fd, (mode & 0o7777) as libc::mode_t) })?;
    for (k, v) in xattrs {
        let key = CString::new(k.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: NUL-terminated key, live value buffer of the length passed.
        check(unsafe { libc::fsetxattr(fd, key.as_ptr(), v.as_ptr().cast(), v.len(), 0) })?;
    }
    let ts = [libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 }, libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 }];
    // SAFETY: futimens reads two live timespecs.
    check(unsafe { libc::futimens(fd, ts.as_ptr()) })?;
    Ok(())
}

/// Splits and checks an entry path; an empty result means the layer root itself.
fn components(raw: &Path, shown: &str) -> Result<Vec<OsString>, UnpackError> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(UnpackError::Absolute { path: shown.into() }),
            Component::ParentDir => return Err(UnpackError::DotDot { path: shown.into() }),
        }
    }
    Ok(out)
}

/// Unpacks `blob` into the existing empty directory `dest`.
pub fn unpack_layer(blob: &Path, dest: &Path, opts: UnpackOptions) -> Result<Unpacked, UnpackError> {
    let mut f = File::open(blob).map_err(UnpackError::Read)?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(UnpackError::Read)?;
    drop(f);
    let f = io::BufReader::with_capacity(1 << 20, File::open(blob).map_err(UnpackError::Read)?);
    let reader: Box<dyn Read> = match sniff(&head[..n]) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f).map_err(UnpackError::Read)?),
        Compression::None => Box::new(f),
    };
    unpack_stream(reader, dest, opts)
}

pub fn unpack_stream(reader: Box<dyn Read>, dest: &Path, opts: UnpackOptions) -> Result<Unpacked, UnpackError> {
    let count = Rc::new(Cell::new(0u64));
    let meter = Meter { inner: reader, hasher: Sha256::new(), count: count.clone(), limit: opts.max_size };
    let root = File::open(dest).map_err(UnpackError::Read)?;
    let ctx = Ctx { root: root.into(), opts };
    let mut archive = tar::Archive::new(meter);
    let too_large = |e: UnpackError| {
        if count.get() > opts.max_size {
            UnpackError::TooLarge { limit: opts.max_size }
        } else {
            e
        }
    };
    let res = (|| -> Result<(), UnpackError> {
        let entries = archive.entries().map_err(UnpackError::Read)?;
        for entry in entries {
            let entry = entry.map_err(UnpackError::Read)?;
            unpack_entry(&ctx, entry)?;
        }
        Ok(())
    })();
    res.map_err(too_large)?;
    let mut meter = archive.into_inner();
    // Hash what follows the end-of-archive marker too: the diff_id covers the whole stream.
    io::copy(&mut meter, &mut io::sink()).map_err(|e| too_large(UnpackError::Read(e)))?;
    // SAFETY: valid fd; flush the unpacked files before the layer is published.
    unsafe { libc::syncfs(ctx.root.as_raw_fd()) };
    Ok(Unpacked { diff_id: format!("sha256:{}", hex::encode(meter.hasher.finalize())), size: count.get() })
}

fn unpack_entry<R: Read>(ctx: &Ctx, mut entry: tar::Entry<R>) -> Result<(), UnpackError> {
    let raw_path = entry.path().map_err(UnpackError::Read)?.into_owned();
    let shown = raw_path.to_string_lossy().into_owned();
    let comps = components(&raw_path, &shown)?;
    let hdr = entry.header().clone();
    let kind = hdr.entry_type();
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            if let Ok(k) = ext.key() {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    let Some((name, parent)) = comps.split_last() else {
        return Ok(()); // the layer root ("./") itself
    };
    let pdir = ctx.parent(parent, &shown)?;
    let pfd = pdir.as_raw_fd();
    let uid = hdr.uid().map_err(UnpackError::Read)?;
    let gid = hdr.gid().map_err(UnpackError::Read)?;
    let mode = hdr.mode().map_err(UnpackError::Read)?;
    let mtime = hdr.mtime().unwrap_or(0);
    let name_b = name.as_bytes();

    // Whiteouts.
    if name_b == b".wh..wh..opq" {
        let key = c"trusted.overlay.opaque";
        // SAFETY: valid fd / pointers.
        check(unsafe { libc::fsetxattr(pfd, key.as_ptr(), b"y".as_ptr().cast(), 1, 0) }).map_err(io_err(&shown, "set opaque xattr"))?;
        return Ok(());
    }
    if let Some(target) = name_b.strip_prefix(b".wh.") {
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(UnpackError::BadWhiteout { path: shown });
        }
        let c = cstr(OsStr::from_bytes(target)).map_err(io_err(&shown, "name"))?;
        remove_existing(pfd, &c, false).map_err(io_err(&shown, "replace"))?;
        // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
        check(unsafe { libc::mknodat(pfd, c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) }).map_err(io_err(&shown, "mknod whiteout"))?;
        return Ok(());
    }

    let cname = cstr(name).map_err(io_err(&shown, "name"))?;
    use tar::EntryType as T;
    match kind {
        T::Directory => {
            let exists = remove_existing(pfd, &cname, true).map_err(io_err(&shown, "replace"))?;
            if !exists {
                // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
                check(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) }).map_err(io_err(&shown, "mkdir"))?;
            }
            let fd = open_beneath(ctx.root.as_raw_fd(), &comps).map_err(io_err(&shown, "open dir"))?;
            set_meta(fd.as_raw_fd(), uid, gid, mode, mtime, &xattrs).map_err(io_err(&shown, "set metadata"))?;
        }
        T::Regular | T::Continuous => {
            remove_existing(pfd, &cname, false).map_err(io_err(&shown, "replace"))?;
            // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
            let fd = check(unsafe {
                libc::openat(pfd, cname.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0o600)
            })
            .map_err(io_err(&shown, "create"))?;
            // SAFETY: check() passed: the fd is the new file openat just created, owned by nobody else.
            let mut file = unsafe { File::from_raw_fd(fd) };
            io::copy(&mut entry, &mut file).map_err(|e| UnpackError::Io { path: shown.clone(), op: "write", source: e })?;
            set_meta(file.as_raw_fd(), uid, gid, mode, mtime, &xattrs).map_err(io_err(&shown, "set metadata"))?;
        }
        T::Symlink => {
            let target = entry
                .link_name()
                .map_err(UnpackError::Read)?
                .ok_or_else(|| UnpackError::Unsupported { path: shown.clone(), kind: b'2' })?;
            remove_existing(pfd, &cname, false).map_err(io_err(&shown, "replace"))?;
            let t = cstr(target.as_os_str()).map_err(io_err(&shown, "name"))?;
            // SAFETY: two NUL-terminated strings and a dir fd.
            check(unsafe { libc::symlinkat(t.as_ptr(), pfd, cname.as_ptr()) }).map_err(io_err(&shown, "symlink"))?;
            // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
            check(unsafe { libc::fchownat(pfd, cname.as_ptr(), uid as u32, gid as u32, libc::AT_SYMLINK_NOFOLLOW) })
                .map_err(io_err(&shown, "chown symlink"))?;
            let ts = [
                libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 },
                libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 },
            ];
            // SAFETY: a dir fd, a NUL-terminated name and two live timespecs.
            check(unsafe { libc::utimensat(pfd, cname.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
                .map_err(io_err(&shown, "utimes symlink"))?;
        }
        T::Link => {
            let target = entry
                .link_name()
                .map_err(UnpackError::Read)?
                .ok_or_else(|| UnpackError::Unsupported { path: shown.clone(), kind: b'1' })?
                .into_owned();
            let tshown = format!("{shown} -> {}", target.to_string_lossy());
            let tcomps = components(&target, &tshown)?;
            let Some((tname, tparent)) = tcomps.split_last() else {
                return Err(UnpackError::Escape { path: tshown });
            };
            let tdir = open_beneath(ctx.root.as_raw_fd(), tparent).map_err(io_err(&tshown, "open link target"))?;
            let ctname = cstr(tname).map_err(io_err(&shown, "name"))?;
            if tdir.as_raw_fd() >= 0 && tparent == parent && tname == name {
                return Ok(()); // a link to itself
            }
            remove_existing(pfd, &cname, false).map_err(io_err(&shown, "replace"))?;
            // SAFETY: two dir fds and two NUL-terminated names.
            check(unsafe { libc::linkat(tdir.as_raw_fd(), ctname.as_ptr(), pfd, cname.as_ptr(), 0) })
                .map_err(io_err(&tshown, "hard link"))?;
        }
        T::Char | T::Block | T::Fifo => {
            let fmt = match kind {
                T::Char => libc::S_IFCHR,
                T::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            if fmt != libc::S_IFIFO && !ctx.opts.allow_devices {
                return Err(UnpackError::Device { path: shown });
            }
            let major = hdr.device_major().ok().flatten().unwrap_or(0);
            let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
            remove_existing(pfd, &cname, false).map_err(io_err(&shown, "replace"))?;
            // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
            check(unsafe { libc::mknodat(pfd, cname.as_ptr(), fmt | (mode & 0o7777), libc::makedev(major, minor)) })
                .map_err(io_err(&shown, "mknod"))?;
            // SAFETY: a dir fd and a NUL-terminated name; integers otherwise.
            check(unsafe { libc::fchownat(pfd, cname.as_ptr(), uid as u32, gid as u32, libc::AT_SYMLINK_NOFOLLOW) })
                .map_err(io_err(&shown, "chown"))?;
        }
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
        other => {
            return Err(UnpackError::Unsupported { path: shown, kind: other.as_byte() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_reject() {
        assert!(matches!(components(Path::new("/etc/x"), "x"), Err(UnpackError::Absolute { .. })));
        assert!(matches!(components(Path::new("a/../../x"), "x"), Err(UnpackError::DotDot { .. })));
        assert_eq!(components(Path::new("./a/b"), "x").unwrap().len(), 2);
    }
}
