//! Spec mounts, masked/readonly paths, /dev, linux.devices, sysctls.

use crate::*;
use std::fs;

fn host_dir_with_file(b: &Bundle, name: &str) -> std::path::PathBuf {
    let d = b.dir().join(name);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("f"), "host-data\n").unwrap();
    d
}

#[test]
fn bind_mount_ro_and_rw() {
    let (mut b, rt, id) = setup!("bind_ro");
    let ro = host_dir_with_file(&b, "ro");
    let rw = host_dir_with_file(&b, "rw");
    b.add_mount(json!({"destination": "/ro", "type": "bind", "source": ro, "options": ["bind", "ro"]}));
    b.add_mount(json!({"destination": "/rw", "type": "bind", "source": rw, "options": ["bind", "rw"]}));
    b.sh("cat /ro/f; touch /ro/new 2>/dev/null && echo ro=writable || echo ro=readonly; echo x > /rw/new && echo rw=writable");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.contains("host-data"), "bind mount shows host file: {}", o.stdout);
    assert_eq!(field(&o.stdout, "ro"), Some("readonly"), "{}", o.stdout);
    assert_eq!(field(&o.stdout, "rw"), Some("writable"), "{}", o.stdout);
    assert!(!ro.join("new").exists());
    assert!(rw.join("new").exists(), "write through the rw bind reaches the host");
}

#[test]
fn rbind_mount_ro() {
    let (mut b, rt, id) = setup!("rbind_ro");
    let d = host_dir_with_file(&b, "rb");
    fs::create_dir_all(d.join("sub")).unwrap();
    b.add_mount(json!({"destination": "/data", "type": "none", "source": d, "options": ["rbind", "ro"]}));
    b.sh("cat /data/f; ls /data; touch /data/new 2>/dev/null && echo w=yes || echo w=no");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.contains("host-data") && o.stdout.contains("sub"), "{}", o.stdout);
    assert_eq!(field(&o.stdout, "w"), Some("no"), "rbind,ro is read-only: {}", o.stdout);
}

/// `rro` (mount_setattr with AT_RECURSIVE): the submounts of an rbind are read-only too,
/// where `ro` alone leaves them writable.
#[test]
fn rbind_rro_makes_submounts_read_only() {
    let (mut b, rt, id) = setup!("rbind_rro");
    let d = host_dir_with_file(&b, "rr");
    let sub = d.join("sub");
    fs::create_dir_all(&sub).unwrap();
    // A submount on the host side; the bundle's TempDir detaches it even if the test fails.
    let st = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&sub).status().unwrap();
    assert!(st.success(), "mount tmpfs on {}", sub.display());
    b.add_mount(json!({"destination": "/plain", "type": "none", "source": d, "options": ["rbind", "ro"]}));
    b.add_mount(json!({"destination": "/rec", "type": "none", "source": d, "options": ["rbind", "rprivate", "ro", "rro"]}));
    b.sh("touch /plain/sub/x 2>/dev/null && echo plain=writable || echo plain=readonly; \
          touch /rec/sub/x 2>/dev/null && echo rec=writable || echo rec=readonly; \
          touch /rec/y 2>/dev/null && echo top=writable || echo top=readonly");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(field(&o.stdout, "plain"), Some("writable"), "ro alone leaves the submount writable: {}", o.stdout);
    assert_eq!(field(&o.stdout, "rec"), Some("readonly"), "rro reaches the submount: {}", o.stdout);
    assert_eq!(field(&o.stdout, "top"), Some("readonly"), "{}", o.stdout);
}

#[test]
fn bind_mount_file() {
    let (mut b, rt, id) = setup!("bind_file");
    let f = b.dir().join("single");
    fs::write(&f, "single-file\n").unwrap();
    fs::write(b.rootfs().join("etc/target"), "").unwrap();
    b.add_mount(json!({"destination": "/etc/target", "type": "bind", "source": f, "options": ["bind", "ro"]}));
    b.sh("cat /etc/target");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(o.stdout.trim(), "single-file");
}

#[test]
fn tmpfs_size_and_mode() {
    let out = sh_output(
        "tmpfs",
        |b| {
            b.add_mount(
                json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=1750"]}),
            );
        },
        "stat -c mode=%a /scratch; grep ' /scratch ' /proc/self/mounts; echo x > /scratch/f && echo w=ok",
    );
    assert_eq!(field(&out, "mode"), Some("1750"), "{out}");
    let line = out.lines().find(|l| l.contains(" /scratch ")).unwrap_or_else(|| panic!("tmpfs mounted: {out}"));
    assert!(line.starts_with("tmpfs /scratch tmpfs") && line.contains("size=1024k") && line.contains("nosuid"), "{line}");
    assert_eq!(field(&out, "w"), Some("ok"));
}

#[test]
fn default_filesystems_mounted() {
    let out = sh_output("fstypes", |_| {}, "cat /proc/self/mounts");
    for (dest, ty) in
        [("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "tmpfs"), ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs"), ("/dev/mqueue", "mqueue")]
    {
        assert!(
            out.lines().any(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.len() > 3 && f[1] == dest && f[2] == ty
            }),
            "{ty} at {dest}: {out}"
        );
    }
    let sys = out.lines().find(|l| l.split(' ').nth(1) == Some("/sys")).unwrap();
    assert!(sys.split(' ').nth(3).unwrap().split(',').any(|o| o == "ro"), "/sys is ro as asked: {sys}");
}

#[test]
fn cgroup2_mount() {
    let (mut b, rt, id) = setup!("cgroup2_mount");
    b.add_namespace("cgroup", None);
    b.add_mount(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    );
    b.sh("grep ' /sys/fs/cgroup ' /proc/self/mounts; ls /sys/fs/cgroup");
    let o = rt.run(&id, &b);
    o.ok();
    assert!(o.stdout.contains(" /sys/fs/cgroup cgroup2 "), "cgroup2 mounted: {}", o.stdout);
    assert!(o.stdout.contains("cgroup.procs"), "the container sees its cgroup: {}", o.stdout);
}

#[test]
fn cgroup_mount_type_cgroup() {
    let out = sh_output(
        "cgroup_mount",
        |b| {
            b.add_mount(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
        },
        "grep /sys/fs/cgroup /proc/self/mounts",
    );
    assert!(
        out.lines().any(|l| l.contains(" /sys/fs/cgroup") && (l.contains(" cgroup ") || l.contains(" cgroup2 ") || l.contains(" tmpfs "))),
        "a cgroup file system at /sys/fs/cgroup: {out}"
    );
}

#[test]
fn mount_propagation_flags() {
    let (mut b, rt, id) = setup!("mount_propagation");
    let d = host_dir_with_file(&b, "p");
    b.add_mount(json!({"destination": "/shared", "type": "bind", "source": d, "options": ["rbind", "rshared"]}));
    b.add_mount(json!({"destination": "/private", "type": "bind", "source": d, "options": ["rbind", "rprivate"]}));
    b.sh("grep -E ' /(shared|private) ' /proc/self/mountinfo");
    let o = rt.run(&id, &b);
    o.ok();
    let line = |m: &str| {
        o.stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(m))
            .map(|s| s.to_string())
            .unwrap_or_else(|| panic!("{m} in mountinfo: {}", o.stdout))
    };
    assert!(line("/shared").contains("shared:"), "rshared mount is shared: {}", o.stdout);
    assert!(!line("/private").contains("shared:") && !line("/private").contains("master:"), "rprivate mount is private: {}", o.stdout);
}

#[test]
fn masked_paths() {
    let (mut b, rt, id) = setup!("masked");
    fs::write(b.rootfs().join("etc/secret"), "top-secret\n").unwrap();
    fs::create_dir_all(b.rootfs().join("secretdir")).unwrap();
    fs::write(b.rootfs().join("secretdir/inner"), "x").unwrap();
    let mut masked = b.config["linux"]["maskedPaths"].as_array().unwrap().clone();
    masked.push(json!("/etc/secret"));
    masked.push(json!("/secretdir"));
    b.set("/linux/maskedPaths", json!(masked));
    b.sh("echo secret=$(cat /etc/secret 2>&1); echo dir=$(ls /secretdir); echo keys=$(stat -c %t:%T /proc/keys)");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(field(&o.stdout, "secret"), Some(""), "masked file reads empty: {}", o.stdout);
    assert_eq!(field(&o.stdout, "dir"), Some(""), "masked dir lists empty: {}", o.stdout);
    assert_eq!(field(&o.stdout, "keys"), Some("1:3"), "/proc/keys masked (bind of /dev/null): {}", o.stdout);
    assert_eq!(read(b.rootfs().join("etc/secret")), "top-secret\n", "host file untouched");
}

#[test]
fn readonly_paths() {
    let (mut b, rt, id) = setup!("readonly_paths");
    fs::create_dir_all(b.rootfs().join("rodir")).unwrap();
    let mut ro = b.config["linux"]["readonlyPaths"].as_array().unwrap().clone();
    ro.push(json!("/rodir"));
    b.set("/linux/readonlyPaths", json!(ro));
    b.sh("touch /rodir/x 2>/dev/null && echo rodir=rw || echo rodir=ro; \
          (echo bt > /proc/sys/kernel/hostname) 2>/dev/null && echo procsys=rw || echo procsys=ro; \
          touch /tmp/x && echo tmp=rw");
    let o = rt.run(&id, &b);
    o.ok();
    assert_eq!(field(&o.stdout, "rodir"), Some("ro"), "{}", o.stdout);
    assert_eq!(field(&o.stdout, "procsys"), Some("ro"), "{}", o.stdout);
    assert_eq!(field(&o.stdout, "tmp"), Some("rw"), "{}", o.stdout);
}

#[test]
fn default_dev_entries() {
    let out = sh_output(
        "dev_defaults",
        |_| {},
        "for d in null zero full random urandom tty; do test -c /dev/$d && echo $d=char || echo $d=missing; done; \
         echo ptmx=$(readlink /dev/ptmx); \
         for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done; \
         test -d /dev/shm && echo shm=dir; \
         echo null=$(stat -c %t:%T /dev/null) zero=$(stat -c %t:%T /dev/zero); \
         echo -n abc > /dev/null && echo write-null=ok; echo zero-bytes=$(head -c 5 /dev/zero | wc -c)",
    );
    for d in ["zero", "full", "random", "urandom", "tty"] {
        assert_eq!(field(&out, d), Some("char"), "/dev/{d} is a char device: {out}");
    }
    assert!(out.contains("null=char"));
    assert_eq!(field(&out, "ptmx"), Some("pts/ptmx"), "/dev/ptmx links to the devpts instance: {out}");
    assert_eq!(field(&out, "fd"), Some("/proc/self/fd"), "{out}");
    assert_eq!(field(&out, "stdin"), Some("/proc/self/fd/0"), "{out}");
    assert_eq!(field(&out, "stdout"), Some("/proc/self/fd/1"), "{out}");
    assert_eq!(field(&out, "stderr"), Some("/proc/self/fd/2"), "{out}");
    assert_eq!(field(&out, "shm"), Some("dir"), "{out}");
    assert!(out.contains("null=1:3 zero=1:5"), "device numbers: {out}");
    assert_eq!(field(&out, "write-null"), Some("ok"));
    assert_eq!(field(&out, "zero-bytes"), Some("5"));
}

#[test]
fn spec_devices_are_created() {
    let out = sh_output(
        "devices",
        |b| {
            b.set(
                "/linux/devices",
                json!([
                    {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 1000, "gid": 100},
                    {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 0, "gid": 0}
                ]),
            );
            b.set("/linux/resources/devices", json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]));
        },
        "stat -c 'mynull=%F %t:%T %a %u:%g' /dev/mynull; stat -c 'fuse=%F %t:%T %a' /dev/fuse; echo x > /dev/mynull && echo write=ok",
    );
    assert_eq!(field(&out, "mynull"), Some("character special file 1:3 666 1000:100"), "{out}");
    assert_eq!(field(&out, "fuse"), Some("character special file a:e5 600"), "{out}");
    assert_eq!(field(&out, "write"), Some("ok"), "{out}");
}

#[test]
fn spec_devices_in_user_namespace() {
    // In a user namespace mknod is not allowed; runtimes bind-mount the host's node instead.
    let out = sh_output(
        "devices_userns",
        |b| {
            b.userns(300000, 65536);
            b.set(
                "/linux/devices",
                json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 0, "gid": 0}]),
            );
        },
        "stat -c 'fuse=%F %t:%T' /dev/fuse; echo id=$(id -u)",
    );
    assert_eq!(field(&out, "fuse"), Some("character special file a:e5"), "{out}");
    assert_eq!(field(&out, "id"), Some("0"));
}

/// Restores a host sysctl file on drop (in case a broken runtime changed it).
struct RestoreSysctl(&'static str, String);
impl Drop for RestoreSysctl {
    fn drop(&mut self) {
        if read(self.0) != self.1 {
            eprintln!("restoring host {} to {:?} (the runtime changed it)", self.0, self.1.trim());
            let _ = fs::write(self.0, &self.1);
        }
    }
}

/// One test (not two in parallel) so the host-value checks cannot see each other's effects.
#[test]
fn sysctls_applied_in_new_namespaces_and_refused_for_host_ones() {
    let host_fwd = read("/proc/sys/net/ipv4/ip_forward");
    let host_shmmax = read("/proc/sys/kernel/shmmax");
    let _g1 = RestoreSysctl("/proc/sys/net/ipv4/ip_forward", host_fwd.clone());
    let _g2 = RestoreSysctl("/proc/sys/kernel/shmmax", host_shmmax.clone());
    let new_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let out = sh_output(
        "sysctl",
        |b| {
            b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": new_fwd, "kernel.shmmax": "123456789"}));
        },
        "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shmmax=$(cat /proc/sys/kernel/shmmax)",
    );
    assert_eq!(field(&out, "fwd"), Some(new_fwd), "{out}");
    assert_eq!(field(&out, "shmmax"), Some("123456789"), "{out}");
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), host_fwd, "host ip_forward untouched");
    assert_eq!(read("/proc/sys/kernel/shmmax"), host_shmmax, "host shmmax untouched");

    // A net.* sysctl without a network namespace (or kernel.shm* without an ipc namespace)
    // would change the host: it must be refused.
    let o = sh_run(
        "sysctl_hostns",
        |b| {
            b.remove_namespace("network");
            b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": new_fwd}));
        },
        "true",
    );
    let changed = read("/proc/sys/net/ipv4/ip_forward") != host_fwd;
    assert!(!changed, "the runtime changed the HOST's net.ipv4.ip_forward (container without a netns): {}", o.describe());
    o.fails_mentioning(&["sysctl", "net.ipv4.ip_forward", "namespace"]);
    let o = sh_run(
        "sysctl_hostipc",
        |b| {
            b.remove_namespace("ipc");
            b.set("/linux/sysctl", json!({"kernel.shmmax": "123456789"}));
        },
        "true",
    );
    let changed = read("/proc/sys/kernel/shmmax") != host_shmmax;
    assert!(!changed, "the runtime changed the HOST's kernel.shmmax (container without an ipc ns): {}", o.describe());
    o.fails_mentioning(&["sysctl", "kernel.shmmax", "namespace"]);
}
