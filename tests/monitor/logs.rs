//! The CRI log: record format, partial lines, a fast writer, rotation and reopen.

use crate::*;
use std::fs;
use std::io::Write;

#[test]
fn cri_records_with_partials_and_long_lines() {
    // A 20000-byte line (longer than one read), a line without newline at the end, stderr.
    let (mut m, _b, _rt) = setup("mon-cri", |b| {
        b.sh("echo first; head -c 20000 /dev/zero | tr '\\0' x; echo; echo oops >&2; printf 'no newline'");
    });
    launch_and_start(&mut m, &[]);
    assert_eq!(m.exit_code(T), 0);
    let recs = m.records();
    let mut want = b"first\n".to_vec();
    want.extend(std::iter::repeat_n(b'x', 20000));
    want.extend_from_slice(b"\nno newline");
    assert_eq!(stream_bytes(&recs, "stdout"), want, "stdout reassembles exactly");
    assert_eq!(stream_bytes(&recs, "stderr"), b"oops\n");
    // The long line: from its first record to the first full one, all partial but the end.
    // Only stdout's records: the monitor may read stderr's `oops` between two of them.
    let out: Vec<_> = recs.iter().filter(|r| r.0 == "stdout").collect();
    let first = out.iter().position(|r| r.2.first() == Some(&b'x')).unwrap();
    let end = first + out[first..].iter().position(|r| r.1 == "F").unwrap();
    assert!(end - first >= 2, "a 20000-byte line is split into several records: {}", end - first + 1);
    assert!(out[first..end].iter().all(|r| r.1 == "P"));
    let last = recs.iter().rev().find(|r| r.0 == "stdout").unwrap();
    assert_eq!((last.1.as_str(), last.2.as_slice()), ("P", &b"no newline"[..]), "output without a final newline ends in P");
}

/// Numbered lines 0..n from a writer that goes as fast as it can, split over files.
fn check_sequence(files: &[std::path::PathBuf], n: usize) {
    let mut all = vec![];
    for f in files {
        all.extend(stream_bytes(&records_of(f), "stdout"));
    }
    let text = String::from_utf8(all).unwrap();
    let nums: Vec<usize> = text.lines().map(|l| l.parse().unwrap_or_else(|_| panic!("bad line {l:?}"))).collect();
    assert_eq!(nums.len(), n, "every line logged exactly once");
    assert!(nums.iter().enumerate().all(|(i, v)| i == *v), "in order, none lost or repeated");
}

#[test]
fn a_fast_writer_loses_no_byte() {
    let (mut m, _b, _rt) = setup("mon-fast", |b| {
        b.args(&["seq", "0", "199999"]);
    });
    launch_and_start(&mut m, &[]);
    assert_eq!(m.exit_code(Duration::from_secs(60)), 0);
    check_sequence(&[m.log_path()], 200_000);
}

#[test]
fn reopen_after_rename_loses_no_byte() {
    if skip_unless_berth_mon("reopen_loses_no_byte", "conmon reopens by truncating: a reopen that comes before the rename drops the log") {
        return;
    }
    let (mut m, _b, _rt) = setup("mon-reopen", |b| {
        b.sh("seq 0 299999; sleep 0.2; seq 300000 399999");
    });
    launch_and_start(&mut m, &[]);
    // Rotate as kubelet does: rename the file away, then ask for a reopen (ctl message 2).
    let mut rotated = vec![];
    for i in 0..5 {
        let to = m.path(&format!("ctr.log.{i}"));
        if fs::rename(m.log_path(), &to).is_ok() {
            rotated.push(to);
        }
        // Twice: a reopen with no rename before it must keep the file (and its bytes).
        fs::OpenOptions::new().write(true).open(m.ctl_path()).unwrap().write_all(b"2 0 0\n2 0 0\n").unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(m.exit_code(Duration::from_secs(60)), 0);
    assert!(rotated.len() >= 2, "renamed while being written");
    rotated.push(m.log_path());
    check_sequence(&rotated, 400_000);
}

#[test]
fn rotation_at_the_size_limit() {
    let (mut m, _b, _rt) = setup("mon-rotate", |b| {
        b.args(&["seq", "0", "9999"]);
    });
    launch_and_start(&mut m, &["--log-size-max", "4096"]);
    assert_eq!(m.exit_code(T), 0);
    let len = fs::metadata(m.log_path()).unwrap().len();
    assert!(len <= 4096, "the file stays within --log-size-max: {len}");
    let tail = String::from_utf8(stream_bytes(&m.records(), "stdout")).unwrap();
    assert!(tail.ends_with("9999\n"), "the newest lines are there: {:?}", &tail[tail.len().saturating_sub(40)..]);
    assert!(!tail.starts_with("0\n"), "older lines were rotated away");
}

#[test]
fn journald_entries_through_the_native_protocol() {
    if skip_unless_berth_mon("journald", "Debian's conmon logs to the host's journal only (no socket override)") {
        return;
    }
    let (mut m, _b, _rt) = setup("mon-journal", |b| {
        b.sh("echo to-journal; echo err-journal >&2");
    });
    let sock_path = m.path("journal.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    m.env.push(("BERTH_MON_JOURNAL_SOCKET".into(), sock_path.to_string_lossy().into_owned()));
    let file = format!("k8s-file:{}", m.log_path().display());
    launch_and_start(&mut m, &["-l", "journald:", "-l", &file]);
    let mut got = String::new();
    let mut buf = vec![0u8; 65536];
    while !(got.contains("to-journal") && got.contains("err-journal")) {
        let n = sock.recv(&mut buf).expect("a journal entry");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        got.push('\n');
    }
    assert!(got.contains(&format!("CONTAINER_ID_FULL={}", m.cid)), "{got}");
    assert!(got.contains("CONTAINER_NAME=bt-name") && got.contains("PRIORITY=3"), "{got}");
    assert_eq!(m.exit_code(T), 0);
    assert_eq!(stream_bytes(&m.records(), "stdout"), b"to-journal\n", "and to the k8s-file at the same time");
}
