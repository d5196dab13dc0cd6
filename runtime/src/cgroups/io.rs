//! io controller: blockIO weight → `io.bfq.weight` (as is) or `io.weight` (converted from the
//! blkio range [10, 1000] to [1, 10000]), per-device weights likewise, throttles → `io.max`;
//! byte and operation counts from `io.stat`.

use super::stats::{BlkioEntry, Stats};
use super::{fs, Mode};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxResources, LinuxThrottleDevice};
use std::path::Path;

fn blkio(r: &LinuxResources) -> Option<&LinuxBlockIo> {
    r.block_io().as_ref()
}

/// The four throttle lists with the io.max key each one sets.
fn throttles(b: &LinuxBlockIo) -> [(&'static str, &[LinuxThrottleDevice]); 4] {
    [
        ("rbps", b.throttle_read_bps_device().as_deref().unwrap_or_default()),
        ("wbps", b.throttle_write_bps_device().as_deref().unwrap_or_default()),
        ("riops", b.throttle_read_iops_device().as_deref().unwrap_or_default()),
        ("wiops", b.throttle_write_iops_device().as_deref().unwrap_or_default()),
    ]
}

pub fn wants(r: &LinuxResources) -> Option<&'static str> {
    let b = blkio(r)?;
    let set = b.weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles(b).iter().any(|(_, l)| !l.is_empty());
    set.then_some("linux.resources.blockIO")
}

fn check_weight(what: &str, w: u16) -> Result<()> {
    if (10..=1000).contains(&w) {
        Ok(())
    } else {
        Err(Error::Spec(format!("linux.resources.blockIO.{what} {w}: must be within [10, 1000]")))
    }
}

fn check_dev(what: &str, major: i64, minor: i64) -> Result<()> {
    if major < 0 || minor < 0 || major > u32::MAX as i64 || minor > u32::MAX as i64 {
        return Err(Error::Spec(format!("linux.resources.blockIO.{what}: bad device {major}:{minor}")));
    }
    Ok(())
}

pub fn validate(r: &LinuxResources, _mode: Mode) -> Result<()> {
    let Some(b) = blkio(r) else { return Ok(()) };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        check_weight("weight", w)?;
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        check_dev("weightDevice", d.major(), d.minor())?;
        if let Some(w) = d.weight() {
            check_weight("weightDevice.weight", w)?;
        }
    }
    for (key, list) in throttles(b) {
        for d in list {
            check_dev(key, d.major(), d.minor())?;
        }
    }
    Ok(())
}

/// runc's linear blkio → io weight mapping: [10, 1000] → [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        0
    } else {
        1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
    }
}

pub fn apply(dir: &Path, r: &LinuxResources, _mode: Mode) -> Result<()> {
    let Some(b) = blkio(r) else { return Ok(()) };
    // BFQ takes the blkio range itself; without it the io.weight (iocost) scale applies.
    let bfq = fs::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if bfq {
            fs::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            fs::write(dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
        }
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        let Some(w) = d.weight() else { continue };
        let (file, w) = if bfq { ("io.bfq.weight", u64::from(w)) } else { ("io.weight", blkio_to_io_weight(w)) };
        fs::write(dir, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
    }
    for (key, list) in throttles(b) {
        for d in list {
            fs::write(dir, "io.max", &format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()))?;
        }
    }
    Ok(())
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    if !fs::exists(dir, "io.stat") {
        return Ok(());
    }
    for line in fs::read(dir, "io.stat")?.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else { continue };
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.into(), value });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_weights_convert_as_runc() {
        assert_eq!(blkio_to_io_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }
}
