//! Reading and writing cgroup interface files.
//!
//! Files are opened without `O_CREAT` (cgroupfs cannot create files, so a missing file is a
//! clear "not found" naming it) and with `O_NOFOLLOW`; every error names the file and value.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn open(dir: &Path, file: &str, write: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().read(!write).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(dir.join(file))
}

fn io_err(dir: &Path, what: String, e: std::io::Error) -> Error {
    Error::Io { context: format!("cgroup {}: {what}", dir.display()), cause: e }
}

/// Writes `value` to `dir/file` in one write(2), as the kernel parses one value per write.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let mut f = open(dir, file, true).map_err(|e| io_err(dir, format!("open {file}"), e))?;
    f.write_all(value.as_bytes()).map_err(|e| io_err(dir, format!("write {file}={value:?}"), e))
}

/// Writes each line of `value` with its own write(2) (files such as io.max take one entry per write).
pub fn write_lines(dir: &Path, file: &str, value: &str) -> Result<()> {
    let mut f = open(dir, file, true).map_err(|e| io_err(dir, format!("open {file}"), e))?;
    for line in value.lines().filter(|l| !l.trim().is_empty()) {
        f.write_all(line.as_bytes()).map_err(|e| io_err(dir, format!("write {file}={line:?}"), e))?;
    }
    Ok(())
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let mut s = String::new();
    open(dir, file, false).and_then(|mut f| f.read_to_string(&mut s)).map_err(|e| io_err(dir, format!("read {file}"), e))?;
    Ok(s)
}

/// Whether `dir/file` exists (interface files appear only where their controller is enabled).
pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// A single-value file as a number; `max` reads as `u64::MAX` (as runc reports it).
pub fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(s.trim()).ok_or_else(|| Error::Cgroup(format!("{}/{file}: not a number: {:?}", dir.display(), s.trim())))
}

pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// A flat-keyed file (`key value` per line, as memory.events or cpu.stat) as pairs.
pub fn read_keyed(dir: &Path, file: &str) -> Result<Vec<(String, u64)>> {
    Ok(parse_keyed(&read(dir, file)?))
}

pub fn parse_keyed(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim())?))
        })
        .collect()
}

/// The value of `key` in a flat-keyed file's text.
pub fn keyed(pairs: &[(String, u64)], key: &str) -> Option<u64> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let p = parse_keyed("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\nbad\nx max\n");
        assert_eq!(keyed(&p, "oom_kill"), Some(1));
        assert_eq!(keyed(&p, "max"), Some(12));
        assert_eq!(keyed(&p, "x"), Some(u64::MAX));
        assert_eq!(keyed(&p, "bad"), None);
    }
}
