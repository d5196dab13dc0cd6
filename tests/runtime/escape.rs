//! CVE-2019-5736 as the attacker runs it (see `tests/src/escape.rs`): the container's
//! program is the runtime itself (`/evil/sh` → `/proc/self/exe`), loaded with the image's
//! own program interpreter, so the attacker's code runs with the runtime's binary as its
//! executable, keeps an fd on it, and keeps trying to append to it for as long as the test
//! lets it — after every runtime process has exited. The real binary under test
//! (`target/release/berth`, or runc) must come out unchanged.
//!
//! Routes: the init's program (`create`/`start`), an `exec`'d process, and a `#!` script
//! whose interpreter is the runtime. The CRI routes are in `tests/cri/escape.rs`.

use crate::*;
use berth_tests::escape::{arm, fingerprints, judge, wait_tries, Report};
use berth_tests::runtime::runtime_path;
use std::path::Path;
use std::time::Instant;

fn tries(tmp: &Path) -> u32 {
    read(tmp.join("tries")).trim().parse().unwrap_or(0)
}

/// Stop the attacker in `tmp`, wait for its loop to end, and read its report.
fn stop_and_report(tmp: &Path) -> Report {
    std::fs::write(tmp.join("stop"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read(tmp.join("result")).contains("done") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Report { exe_link: read(tmp.join("exe-link")), result: read(tmp.join("result")) }
}

#[test]
fn cve_2019_5736_init_program_is_the_runtime() {
    let binaries = fingerprints(&[runtime_path()]);
    let (mut b, rt, id) = setup!("cve5736-init");
    arm(&b.rootfs());
    b.args(&["/evil/sh"]);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    // Every runtime process has exited now; the attacker keeps trying for a while.
    let tmp = b.rootfs().join("tmp");
    wait_tries(|| tries(&tmp), 40);
    let r = stop_and_report(&tmp);
    judge("init route", &r, &binaries);
}

#[test]
fn cve_2019_5736_exec_and_shebang_routes() {
    let binaries = fingerprints(&[runtime_path()]);
    let (mut b, rt, id) = setup!("cve5736-exec");
    arm(&b.rootfs());
    // A `#!` script whose interpreter is the runtime (through the symlink).
    let script = b.rootfs().join("evil/script");
    std::fs::write(&script, "#!/evil/sh\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    b.sh("sleep 1000");
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    let tmp = b.rootfs().join("tmp");
    std::fs::write(tmp.join("bg"), "").unwrap();
    for (route, args) in [("exec route", ["/evil/sh"]), ("#! route", ["/evil/script"])] {
        for f in ["exe-link", "result", "stop", "tries"] {
            let _ = std::fs::remove_file(tmp.join(f));
        }
        // Detached, as a shim runs an exec whose client went away; the loop stays behind.
        rt.exec(&["exec", "-d", &id, args[0]]).ok();
        wait_tries(|| tries(&tmp), 40);
        judge(route, &stop_and_report(&tmp), &binaries);
    }
}
