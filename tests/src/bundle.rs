//! Busybox OCI bundles for the runtime tests.
//!
//! Every `Bundle` is a fresh temp directory `/tmp/bt-<name>-<pid>-<n>/` holding `rootfs/`
//! (a copy of busybox-static plus a symlink per applet, minimal `/etc/passwd` and `/etc/group`,
//! empty `proc sys dev tmp ...`) and a `config.json` written from `config` (a
//! `serde_json::Value` the test edits through the helpers) just before the runtime sees it.
//! Dropping a `Bundle` detaches any mount left under it (only ever a leak from a failed test)
//! before it removes the directory, so a leaked bind mount can never make it delete host files.

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// busybox-static on the host (runs applets in-process).
pub const BUSYBOX: &str = "/bin/busybox";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique temp directory (`/tmp/<prefix>-<pid>-<n>`), removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!("/tmp/{prefix}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        detach_mounts_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Mount points (from this process's mountinfo) at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().to_string();
    let mut v: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(|s| s.to_string()))
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

fn detach_mounts_under(dir: &Path) {
    for m in mounts_under(dir) {
        if let Ok(c) = std::ffi::CString::new(m.clone()) {
            // SAFETY: umount2 of a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        eprintln!("cleanup: detached leaked mount {m}");
    }
}

fn applets() -> &'static Vec<String> {
    static A: OnceLock<Vec<String>> = OnceLock::new();
    A.get_or_init(|| {
        let out = std::process::Command::new(BUSYBOX).arg("--list").output().expect("busybox --list");
        String::from_utf8_lossy(&out.stdout).lines().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    })
}

/// Populate `rootfs` with busybox, its applets and a minimal /etc.
pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "mnt", "run", "var", "home"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
    for a in applets() {
        if a != "busybox" {
            let _ = symlink("busybox", rootfs.join("bin").join(a));
        }
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\nusers:x:100:\nnogroup:x:65534:\n").unwrap();
}

/// The starting config (like `runc spec`, but non-terminal, writable root, PATH=/bin and no
/// cgroup mount or device cgroup rules, so that each test adds only what it checks).
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A busybox bundle in its own temp directory.
pub struct Bundle {
    tmp: TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(name: &str) -> Bundle {
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
        let tmp = TempDir::new(&format!("bt-{safe}"));
        make_rootfs(&tmp.path().join("rootfs"));
        Bundle { tmp, config: default_config() }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
    pub fn dir_str(&self) -> String {
        self.dir().to_string_lossy().into_owned()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.json")
    }

    /// Write `config` to `config.json` (the runtime helpers call this before create/run).
    pub fn write(&self) {
        fs::write(self.config_path(), serde_json::to_vec_pretty(&self.config).unwrap()).expect("write config.json");
    }

    /// Container stdout / stderr files (the stdio the runtime and the container inherit).
    pub fn stdout_path(&self) -> PathBuf {
        self.dir().join("ctr.stdout")
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.dir().join("ctr.stderr")
    }
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Set the value at a JSON pointer (`/process/cwd`), creating objects on the way.
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let mut cur = &mut self.config;
        for p in &parts[..parts.len() - 1] {
            if !cur.get(*p).is_some_and(|x| x.is_object()) {
                cur[*p] = json!({});
            }
            cur = cur.get_mut(*p).unwrap();
        }
        cur[parts[parts.len() - 1]] = v;
        self
    }

    /// Remove the value at a JSON pointer, if present.
    pub fn unset(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = self.config.pointer_mut(if parent.is_empty() { "" } else { parent }) {
            m.remove(key);
        }
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    pub fn env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"].as_array_mut().unwrap().push(json!(kv));
        self
    }

    pub fn terminal(&mut self, on: bool) -> &mut Self {
        self.set("/process/terminal", json!(on))
    }

    pub fn namespaces(&mut self) -> &mut Vec<Value> {
        self.config["linux"]["namespaces"].as_array_mut().unwrap()
    }
    pub fn has_namespace(&self, t: &str) -> bool {
        self.config["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == t)
    }
    /// Add namespace `t` (optionally joining `path`), replacing an entry of the same type.
    pub fn add_namespace(&mut self, t: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(t);
        let mut n = json!({"type": t});
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        self.namespaces().push(n);
        self
    }
    pub fn remove_namespace(&mut self, t: &str) -> &mut Self {
        self.namespaces().retain(|n| n["type"] != t);
        self
    }

    /// A user namespace mapping container 0..size to host `host_id`..: the rootfs is chowned
    /// to the mapped root so the container's root owns it.
    pub fn userns(&mut self, host_id: u32, size: u32) -> &mut Self {
        self.add_namespace("user", None);
        self.set("/linux/uidMappings", json!([{"containerID": 0, "hostID": host_id, "size": size}]));
        self.set("/linux/gidMappings", json!([{"containerID": 0, "hostID": host_id, "size": size}]));
        chown_tree(&self.rootfs(), host_id, host_id);
        // The bundle directory must be searchable (it is 0755) and the rootfs owned by the
        // mapped root.
        self
    }

    pub fn mounts(&mut self) -> &mut Vec<Value> {
        self.config["mounts"].as_array_mut().unwrap()
    }
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.mounts().push(m);
        self
    }
    pub fn remove_mount(&mut self, dest: &str) -> &mut Self {
        self.mounts().retain(|m| m["destination"] != dest);
        self
    }

    /// A host directory `<bundle>/<name>` (0777) bind-mounted read-write at `dest`.
    pub fn bind_dir(&mut self, name: &str, dest: &str) -> PathBuf {
        let host = self.dir().join(name);
        fs::create_dir_all(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
        self.add_mount(json!({"destination": dest, "type": "bind", "source": host, "options": ["rbind", "rw"]}));
        host
    }

    /// Append a hook of `kind` (prestart, createRuntime, ...).
    pub fn add_hook(&mut self, kind: &str, hook: Value) -> &mut Self {
        if !self.config.get("hooks").is_some_and(|h| h.is_object()) {
            self.config["hooks"] = json!({});
        }
        let hooks = &mut self.config["hooks"];
        if !hooks.get(kind).is_some_and(|h| h.is_array()) {
            hooks[kind] = json!([]);
        }
        hooks[kind].as_array_mut().unwrap().push(hook);
        self
    }

    /// A host-side busybox sh hook: `{"path": "/bin/busybox", "args": ["sh","-c",script]}`.
    pub fn sh_hook(&mut self, kind: &str, script: &str) -> &mut Self {
        self.add_hook(kind, json!({"path": BUSYBOX, "args": ["sh", "-c", script]}))
    }

    pub fn caps(&mut self, caps: &[&str]) -> &mut Self {
        for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
            self.set(&format!("/process/capabilities/{set}"), json!(caps));
        }
        self
    }
}

/// chown -R (symlinks themselves, not targets).
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: lchown of a NUL-terminated path; integers otherwise.
    unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    if let Ok(md) = fs::symlink_metadata(p) {
        if md.is_dir() {
            for e in fs::read_dir(p).unwrap().flatten() {
                chown_tree(&e.path(), uid, gid);
            }
        }
    }
}
