//! Test fixtures for the image tests: temp dirs, a real `docker-registry` on 127.0.0.1,
//! OCI layouts built from tar entries (crafted ones too), pushed with `skopeo`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A directory removed on drop (after unmounting anything mounted below it).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("berth-cri-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let prefix = self.0.to_string_lossy().into_owned();
            let mut mounts: Vec<&str> = m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&prefix)).collect();
            mounts.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for mp in mounts {
                if let Ok(c) = std::ffi::CString::new(mp) {
                    // SAFETY: umount2 of a NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A child process killed (by its PID) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process this guard spawned; integers only.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Debian's docker-registry (distribution v2) serving a temp dir on 127.0.0.1.
pub struct Registry {
    pub port: u16,
    pub dir: TempDir,
    _proc: Proc,
}

impl Registry {
    /// `auth`: user and password required (htpasswd, bcrypt).
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().display()
        );
        if let Some((u, p)) = auth {
            let htp = dir.path().join("htpasswd");
            let st = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htp)
                .args([u, p])
                .stderr(Stdio::null())
                .status()
                .expect("htpasswd (apache2-utils)");
            assert!(st.success(), "htpasswd failed");
            yaml += &format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", htp.display());
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, yaml).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/docker-registry");
        let reg = Registry { port, dir, _proc: Proc(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut b = [0u8; 12];
                if s.read(&mut b).is_ok_and(|n| n > 0) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "registry did not start: {}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes `layout:tag` to `<registry>/<name>` with skopeo.
    pub fn push(&self, layout: &Path, tag: &str, name: &str, creds: Option<(&str, &str)>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--all", "--dest-tls-verify=false", "--preserve-digests"]);
        if let Some((u, p)) = creds {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()));
        cmd.arg(format!("docker://{}/{name}:{tag}", self.addr()));
        let out = cmd.output().expect("skopeo");
        assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Path of a blob in the registry's storage (to tamper with it).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// One tar entry of a test layer; built raw so hostile names are possible.
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Mode(&'static str, Vec<u8>, u32),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    CharDev(&'static str, u32, u32),
    /// A path given as raw bytes (e.g. with `..`) holding a file.
    Raw(Vec<u8>, Vec<u8>),
    /// A file with a name longer than 100 bytes (GNU long-name extension).
    Long(String, Vec<u8>),
}

fn header(path: &[u8], kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        assert!(path.len() < 100, "test paths must be short");
        g.name[..path.len()].copy_from_slice(path);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let g = h.as_gnu_mut().unwrap();
    g.linkname[..target.len()].copy_from_slice(target.as_bytes());
}

/// An uncompressed layer tar.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if let Entry::Long(p, d) = e {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, &d[..]).unwrap();
            continue;
        }
        let (mut h, data): (tar::Header, &[u8]) = match e {
            Entry::Dir(p) => (header(p.as_bytes(), tar::EntryType::Directory, 0, 0o755), &[]),
            Entry::File(p, d) => (header(p.as_bytes(), tar::EntryType::Regular, d.len() as u64, 0o644), d),
            Entry::Mode(p, d, m) => (header(p.as_bytes(), tar::EntryType::Regular, d.len() as u64, *m), d),
            Entry::Symlink(p, t) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Symlink, 0, 0o777);
                set_link(&mut h, t);
                (h, &[])
            }
            Entry::Hardlink(p, t) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Link, 0, 0o644);
                set_link(&mut h, t);
                (h, &[])
            }
            Entry::CharDev(p, ma, mi) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                (h, &[])
            }
            Entry::Raw(p, d) => (header(p, tar::EntryType::Regular, d.len() as u64, 0o644), d),
            Entry::Long(..) => unreachable!(),
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(tar: &[u8], c: Comp) -> (Vec<u8>, &'static str) {
    match c {
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (e.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip")
        }
        Comp::Zstd => (zstd::encode_all(tar, 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd"),
    }
}

/// An OCI image layout directory under construction.
pub struct Layout {
    pub dir: TempDir,
    index: Vec<serde_json::Value>,
}

#[derive(Clone, Debug)]
pub struct Built {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
    pub diff_ids: Vec<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    pub fn new() -> Layout {
        let dir = TempDir::new("layout");
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = Layout { dir, index: Vec::new() };
        l.write_index();
        l
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn blob(&self, data: &[u8]) -> String {
        let d = sha256(data);
        std::fs::write(self.path().join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    }

    fn write_index(&self) {
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index});
        std::fs::write(self.path().join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    }

    /// Builds an image manifest (not yet in index.json) for `arch`.
    pub fn image(&self, layers: &[(Vec<u8>, Comp)], arch: &str) -> (Built, serde_json::Value) {
        let mut descs = Vec::new();
        let mut built = Built { manifest: String::new(), config: String::new(), layers: vec![], diff_ids: vec![] };
        for (tar, c) in layers {
            let (blob, mt) = compress(tar, *c);
            let d = self.blob(&blob);
            built.diff_ids.push(sha256(tar));
            built.layers.push(d.clone());
            descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()}));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"User": "1000", "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": built.diff_ids},
        });
        let cb = serde_json::to_vec(&config).unwrap();
        built.config = self.blob(&cb);
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": built.config, "size": cb.len()},
            "layers": descs,
        });
        let mb = serde_json::to_vec(&m).unwrap();
        built.manifest = self.blob(&mb);
        let desc = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": built.manifest, "size": mb.len(),
            "platform": {"architecture": arch, "os": "linux"},
        });
        (built, desc)
    }

    /// Adds a single-platform image tagged `tag`.
    pub fn add_image(&mut self, layers: &[(Vec<u8>, Comp)], tag: &str) -> Built {
        let (b, mut desc) = self.image(layers, "amd64");
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(desc);
        self.write_index();
        b
    }

    /// Adds a multi-platform index tagged `tag`; returns its digest.
    pub fn add_index(&mut self, manifests: Vec<serde_json::Value>, tag: &str) -> String {
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let b = serde_json::to_vec(&idx).unwrap();
        let d = self.blob(&b);
        self.index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": b.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        d
    }

    /// This layout as an OCI archive (tar of the layout directory).
    pub fn archive(&self, out: &Path) {
        let st = Command::new("tar").arg("-C").arg(self.path()).arg("-cf").arg(out).arg(".").status().unwrap();
        assert!(st.success());
    }
}

/// A docker-archive (`docker save` format) with uncompressed layer tars.
pub fn docker_archive(out: &Path, layers: &[Vec<u8>], tag: &str) {
    docker_archive_with(out, layers, tag, serde_json::json!({}))
}

/// A docker-archive whose image config's `config` section is `config` (Cmd, Env, …).
pub fn docker_archive_with(out: &Path, layers: &[Vec<u8>], tag: &str, config: serde_json::Value) {
    let dir = TempDir::new("docker-archive");
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = format!("l{i}");
        std::fs::create_dir_all(dir.path().join(&d)).unwrap();
        std::fs::write(dir.path().join(&d).join("layer.tar"), l).unwrap();
        names.push(format!("{d}/layer.tar"));
        diff_ids.push(sha256(l));
    }
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "config": config, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let cb = serde_json::to_vec(&config).unwrap();
    let cname = format!("{}.json", &sha256(&cb)[7..]);
    std::fs::write(dir.path().join(&cname), cb).unwrap();
    let m = serde_json::json!([{"Config": cname, "RepoTags": [tag], "Layers": names}]);
    std::fs::write(dir.path().join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let st = Command::new("tar").arg("-C").arg(dir.path()).arg("-cf").arg(out).arg(".").status().unwrap();
    assert!(st.success());
}

/// A one-layer busybox image (static busybox, its applets, /etc/passwd and /etc/group with
/// root, nobody and an unprivileged `app` user 1000) as a layer tar.
pub fn busybox_layer() -> Vec<u8> {
    let mut e = vec![
        Entry::Dir("bin"),
        Entry::Dir("etc"),
        Entry::Dir("tmp"),
        Entry::Dir("proc"),
        Entry::Dir("dev"),
        Entry::Dir("sys"),
        Entry::Dir("root"),
    ];
    e.push(Entry::Mode("bin/busybox", busybox(), 0o755));
    for a in [
        "sh", "echo", "cat", "sleep", "ls", "id", "hostname", "ping", "nc", "wget", "httpd", "head", "seq", "true", "false", "grep", "ip",
        "dd", "yes", "env", "pwd", "stty", "tail", "mkdir", "touch",
    ] {
        e.push(Entry::Symlink(Box::leak(format!("bin/{a}").into_boxed_str()), "busybox"));
    }
    e.push(Entry::File(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n".to_vec(),
    ));
    e.push(Entry::File("etc/group", b"root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n".to_vec()));
    layer_tar(&e)
}

/// The contents of /bin/busybox (busybox-static), for realistic layers.
pub fn busybox() -> Vec<u8> {
    std::fs::read("/bin/busybox").expect("/bin/busybox (package busybox-static)")
}
