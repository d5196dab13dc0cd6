//! The CRI log file (`k8s-file`): one record per line of output,
//! `<timestamp> <stdout|stderr> <F|P> <bytes>\n`. A line that does not end within the
//! chunk read from the container (a long line, or output without a final newline) is
//! written as a `P`artial record; kubelet and podman join partials up to the next `F`.
//!
//! Rotation at `--log-size-max` replaces the file with an empty one (conmon's behaviour: the
//! file never grows past the limit by more than one record). A reopen request
//! (`ReopenContainerLog`, after kubelet renamed the file away) opens the path again in append
//! mode: unlike conmon, which truncates, a reopen that comes before any rename loses nothing.

use super::{timestamp, Stream};
use crate::diag;
use crate::error::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct CriLog {
    path: PathBuf,
    file: File,
    /// Bytes in the current file (for `--log-size-max`).
    written: i64,
    /// Bytes over the container's life (for `--log-global-size-max`).
    total: i64,
    size_max: i64,
    global_max: i64,
    sync_on_reopen: bool,
    buf: Vec<u8>,
}

fn open_append(p: &PathBuf) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)
        .ctx(|| format!("Failed to open log file {}", p.display()))
}

impl CriLog {
    pub fn open(path: PathBuf, size_max: i64, global_max: i64, sync_on_reopen: bool) -> Result<CriLog> {
        let file = open_append(&path)?;
        let written = file.metadata().map(|m| m.len() as i64).unwrap_or(0);
        Ok(CriLog { path, file, written, total: 0, size_max, global_max, sync_on_reopen, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Append `chunk` as records; all records of one chunk share one timestamp.
    pub fn write(&mut self, s: Stream, chunk: &[u8]) {
        let mut ts = Vec::with_capacity(48);
        timestamp::now(&mut ts);
        ts.push(b' ');
        ts.extend_from_slice(s.name().as_bytes());
        ts.push(b' ');
        self.buf.clear();
        let mut rest = chunk;
        while !rest.is_empty() {
            let (line, partial) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..=i], false),
                None => (rest, true),
            };
            let len = (ts.len() + 2 + line.len() + partial as usize) as i64;
            if self.global_max > 0 && self.total >= self.global_max {
                break;
            }
            if self.size_max > 0 && self.written + len > self.size_max {
                self.flush_buf();
                self.rotate();
            }
            self.buf.extend_from_slice(&ts);
            self.buf.extend_from_slice(if partial { b"P " } else { b"F " });
            self.buf.extend_from_slice(line);
            if partial {
                self.buf.push(b'\n');
            }
            self.written += len;
            self.total += len;
            rest = &rest[line.len()..];
        }
        self.flush_buf();
    }

    fn flush_buf(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            diag::warn(&format!("write to log file {}: {e}", self.path.display()));
        }
        self.buf.clear();
    }

    /// Start an empty file at the path (written as a new file and renamed over the old one,
    /// so a reader never sees a half-truncated file).
    fn rotate(&mut self) {
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let new = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_APPEND)
            .open(&tmp);
        match new.and_then(|f| std::fs::rename(&tmp, &self.path).map(|_| f)) {
            Ok(f) => {
                self.file = f;
                self.written = 0;
            }
            Err(e) => diag::warn(&format!("rotate log file {}: {e}", self.path.display())),
        }
    }

    pub fn reopen(&mut self) {
        if self.sync_on_reopen {
            let _ = self.file.sync_all();
        }
        match open_append(&self.path) {
            Ok(f) => {
                self.written = f.metadata().map(|m| m.len() as i64).unwrap_or(0);
                self.file = f;
            }
            Err(e) => diag::warn(&e.to_string()),
        }
    }

    pub fn sync(&mut self) {
        let _ = self.file.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-mon-cri-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    fn records(p: &PathBuf) -> Vec<(String, String, String)> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let _ts = it.next().unwrap();
                (it.next().unwrap().into(), it.next().unwrap().into(), it.next().unwrap_or("").into())
            })
            .collect()
    }

    #[test]
    fn lines_partials_and_streams() {
        let p = tmp("lines");
        let mut l = CriLog::open(p.clone(), -1, -1, false).unwrap();
        l.write(Stream::Stdout, b"one\ntwo\nthr");
        l.write(Stream::Stdout, b"ee\n");
        l.write(Stream::Stderr, b"err\n\n");
        let r = records(&p);
        let want = [
            ("stdout", "F", "one"),
            ("stdout", "F", "two"),
            ("stdout", "P", "thr"),
            ("stdout", "F", "ee"),
            ("stderr", "F", "err"),
            ("stderr", "F", ""),
        ];
        assert_eq!(r.len(), want.len(), "{r:?}");
        for (got, w) in r.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), w);
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn rotation_keeps_the_file_under_the_limit() {
        let p = tmp("rotate");
        let mut l = CriLog::open(p.clone(), 400, -1, false).unwrap();
        for i in 0..100 {
            l.write(Stream::Stdout, format!("line {i}\n").as_bytes());
            assert!(std::fs::metadata(&p).unwrap().len() <= 400);
        }
        let r = records(&p);
        assert_eq!(r.last().unwrap().2, "line 99");
        assert!(!PathBuf::from(format!("{}.tmp", p.display())).exists());
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn global_limit_stops_logging() {
        let p = tmp("global");
        let mut l = CriLog::open(p.clone(), -1, 200, false).unwrap();
        for _ in 0..100 {
            l.write(Stream::Stdout, b"xxxxxxxxxx\n");
        }
        let n = std::fs::metadata(&p).unwrap().len();
        assert!((200..300).contains(&n), "{n}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn reopen_after_rename_starts_a_new_file_and_loses_nothing() {
        let p = tmp("reopen");
        let moved = PathBuf::from(format!("{}.1", p.display()));
        let mut l = CriLog::open(p.clone(), -1, -1, true).unwrap();
        l.write(Stream::Stdout, b"a\n");
        std::fs::rename(&p, &moved).unwrap();
        l.write(Stream::Stdout, b"b\n");
        l.reopen();
        l.write(Stream::Stdout, b"c\n");
        l.reopen(); // no rename in between: appends
        l.write(Stream::Stdout, b"d\n");
        let old: Vec<_> = records(&moved).into_iter().map(|r| r.2).collect();
        let new: Vec<_> = records(&p).into_iter().map(|r| r.2).collect();
        assert_eq!(old, ["a", "b"]);
        assert_eq!(new, ["c", "d"]);
        std::fs::remove_file(p).unwrap();
        std::fs::remove_file(moved).unwrap();
    }
}
