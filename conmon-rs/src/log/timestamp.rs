//! The timestamp of a CRI log line: RFC 3339 with nanoseconds and the local UTC offset, the
//! same fixed-width form conmon writes (`2026-12-02T05:51:23.699943209+00:00`).

/// Format `now` (CLOCK_REALTIME) into `out`.
pub fn now(out: &mut Vec<u8>) {
    // localtime_r, not a hand-written UTC conversion: the offset must be the node's, as
    // conmon's is, so that podman and kubelet show the times they show for conmon.
    let (ts, tm) = crate::sys::local_now();
    let (sign, off) = if tm.tm_gmtoff < 0 { ('-', -tm.tm_gmtoff) } else { ('+', tm.tm_gmtoff) };
    use std::io::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}{}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ts.tv_nsec,
        sign,
        off / 3600,
        (off % 3600) / 60
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_width_rfc3339nano() {
        let mut v = Vec::new();
        super::now(&mut v);
        let s = String::from_utf8(v).unwrap();
        assert_eq!(s.len(), 35, "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], "T");
        assert_eq!(&s[19..20], ".");
        assert!(s[29..30] == *"+" || s[29..30] == *"-", "{s}");
    }
}
