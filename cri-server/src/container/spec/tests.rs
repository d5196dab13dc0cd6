//! Whole-spec tests of [`build`], helpers for the per-file tests, and a run of berth on the
//! built spec with the RuntimeDefault profile.

use super::*;
use k8s_cri::v1::{
    security_profile::ProfileType, Capability as CriCaps, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerResources, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxMetadata,
    SecurityProfile,
};
use oci_spec::runtime::{Capability, LinuxNamespaceType};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `/tmp/berth-spec-<name>-<pid>-<n>`, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = PathBuf::from(format!("/tmp/berth-spec-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a [`SpecInput`] borrows.
pub struct Parts {
    pub config: ContainerConfig,
    pub sandbox_config: PodSandboxConfig,
    pub image: ImageConfig,
    pub rootfs: TempDir,
    pub sandbox: SandboxPaths,
}

impl Parts {
    pub fn input(&self) -> SpecInput<'_> {
        SpecInput {
            container_id: "c0ffee",
            sandbox_id: "5a4db0x",
            config: &self.config,
            sandbox_config: &self.sandbox_config,
            image: &self.image,
            rootfs: self.rootfs.path(),
            sandbox: &self.sandbox,
            cgroups_path: "/kubepods/pod1/c0ffee".into(),
            target_pid_ns: None,
            oom_score_adj_min: -999,
            seccomp_localhost_root: None,
            apparmor_default: None,
            runtime_features: Default::default(),
        }
    }
}

/// A pod with its own (pinned) namespaces and a container running `/bin/app` as user `app`.
pub fn input_parts() -> Parts {
    let rootfs = TempDir::new("rootfs");
    fs::create_dir_all(rootfs.path().join("etc")).unwrap();
    fs::write(rootfs.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
    fs::write(rootfs.path().join("etc/group"), "root:x:0:\napp:x:1000:\nvideo:x:44:app\n").unwrap();
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata { name: "web".into(), attempt: 0 }),
        image: Some(ImageSpec { image: "docker.io/library/app:1".into(), ..Default::default() }),
        args: vec!["--port=80".into()],
        envs: vec![KeyValue { key: "MODE".into(), value: "prod".into() }],
        annotations: [("team".to_string(), "a".to_string()), (ANN_SANDBOX_ID.to_string(), "spoofed".to_string())].into_iter().collect(),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_shares: 256,
                memory_limit_in_bytes: 64 << 20,
                oom_score_adj: -1000,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                seccomp: Some(SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, localhost_ref: String::new() }),
                no_new_privs: true,
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "pod".into(), uid: "uid-1".into(), namespace: "default".into(), attempt: 0 }),
        hostname: "pod-host".into(),
        linux: Some(LinuxPodSandboxConfig {
            sysctls: [("net.ipv4.ping_group_range".to_string(), "0 2147483647".to_string())].into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let image = ImageConfig {
        entrypoint: vec!["/bin/app".into()],
        cmd: vec!["--default".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "MODE=dev".into()],
        working_dir: "/srv".into(),
        user: "app".into(),
        stop_signal: Some("SIGQUIT".into()),
        volumes: vec![],
    };
    let sandbox = SandboxPaths {
        netns: Some("/run/pod/net".into()),
        ipc_ns: Some("/run/pod/ipc".into()),
        uts_ns: Some("/run/pod/uts".into()),
        pid_ns: Some("/run/pod/pid".into()),
        resolv_conf: "/run/pod/resolv.conf".into(),
        hosts: "/run/pod/hosts".into(),
        hostname: "/run/pod/hostname".into(),
        shm: Some("/run/pod/shm".into()),
        hostname_value: "pod-host".into(),
        user_ns: None,
        idmap: None,
    };
    Parts { config, sandbox_config, image, rootfs, sandbox }
}

fn sc_mut(p: &mut Parts) -> &mut LinuxContainerSecurityContext {
    p.config.linux.as_mut().unwrap().security_context.as_mut().unwrap()
}

#[test]
fn builds_a_complete_spec() {
    let parts = input_parts();
    let b = build(&parts.input()).unwrap();
    let s = &b.spec;
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &["/bin/app", "--port=80"]);
    let env = p.env().as_ref().unwrap();
    assert_eq!(env, &["HOSTNAME=pod-host", "PATH=/usr/bin:/bin", "MODE=prod"]);
    assert_eq!(p.cwd(), Path::new("/srv"));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(p.user().additional_gids().as_deref(), Some(&[1000, 44][..]));
    assert_eq!(b.user, (1000, 1000, vec![1000, 44]));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.oom_score_adj(), Some(-999), "clamped to the daemon's value");
    assert!(p.rlimits().is_none() && p.apparmor_profile().is_none());
    let caps = p.capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
    assert!(caps.bounding().as_ref().unwrap().contains(&Capability::NetBindService));
    assert_eq!(b.stop_signal.as_deref(), Some("SIGQUIT"));

    assert_eq!(s.hostname().as_deref(), Some("pod-host"));
    let root = s.root().as_ref().unwrap();
    assert_eq!((root.path().as_path(), root.readonly()), (parts.rootfs.path(), Some(false)));
    let a = s.annotations().as_ref().unwrap();
    assert_eq!(a["team"], "a");
    assert_eq!(a[ANN_SANDBOX_ID], "5a4db0x", "berth's annotations win over the request's");
    assert_eq!(a[ANN_CONTAINER_TYPE], "container");
    assert_eq!(a[ANN_CONTAINER_NAME], "web");
    assert_eq!(a[ANN_IMAGE_NAME], "docker.io/library/app:1");
    assert_eq!(a[ANN_SANDBOX_NAMESPACE], "default");

    let l = s.linux().as_ref().unwrap();
    assert_eq!(l.cgroups_path().as_deref(), Some(Path::new("/kubepods/pod1/c0ffee")));
    let ns: Vec<_> = l.namespaces().as_ref().unwrap().iter().map(|n| (n.typ(), n.path().clone())).collect();
    assert!(ns.contains(&(LinuxNamespaceType::Network, Some("/run/pod/net".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Uts, Some("/run/pod/uts".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Pid, None)), "PID mode CONTAINER");
    assert!(ns.contains(&(LinuxNamespaceType::Mount, None)));
    assert_eq!(l.sysctl().as_ref().unwrap()["net.ipv4.ping_group_range"], "0 2147483647");
    let sec = l.seccomp().as_ref().expect("RuntimeDefault");
    assert!(sec.syscalls().as_ref().unwrap().iter().any(|c| c.names().iter().any(|n| n == "read")));
    assert!(l.masked_paths().as_ref().unwrap().contains(&"/proc/kcore".to_string()));
    let r = l.resources().as_ref().unwrap();
    assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(256));
    assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert!(!r.devices().as_ref().unwrap()[0].allow(), "device cgroup: deny first");
    let dests: Vec<_> = s.mounts().as_ref().unwrap().iter().map(|m| m.destination().to_string_lossy().into_owned()).collect();
    for d in ["/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/dev/shm"] {
        assert!(dests.contains(&d.to_string()), "{d} in {dests:?}");
    }
    // The JSON a runtime reads.
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["process"]["user"]["uid"], 1000);
    assert_eq!(json["linux"]["cgroupsPath"], "/kubepods/pod1/c0ffee");
}

#[test]
fn privileged_container() {
    let mut parts = input_parts();
    sc_mut(&mut parts).privileged = true;
    sc_mut(&mut parts).capabilities = Some(CriCaps { drop_capabilities: vec!["ALL".into()], ..Default::default() });
    let e = build(&parts.input()).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "a privileged container needs a privileged sandbox");
    parts.sandbox_config.linux.as_mut().unwrap().security_context =
        Some(LinuxSandboxSecurityContext { privileged: true, ..Default::default() });
    let b = build(&parts.input()).unwrap();
    let p = b.spec.process().as_ref().unwrap();
    assert!(p.capabilities().as_ref().unwrap().bounding().as_ref().unwrap().contains(&Capability::SysAdmin));
    assert_eq!(p.no_new_privileges(), Some(false));
    let l = b.spec.linux().as_ref().unwrap();
    assert!(l.seccomp().is_none(), "privileged: unconfined even with RuntimeDefault requested");
    assert!(l.masked_paths().as_ref().unwrap().is_empty() && l.readonly_paths().as_ref().unwrap().is_empty());
    let rules = l.resources().as_ref().unwrap().devices().as_ref().unwrap();
    assert!(rules.len() == 1 && rules[0].allow());
    assert!(l.devices().as_ref().unwrap().iter().any(|d| d.path() == Path::new("/dev/null")));
    let sys = b.spec.mounts().as_ref().unwrap().iter().find(|m| m.destination() == Path::new("/sys")).unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
}

#[test]
fn host_network_pod() {
    let mut parts = input_parts();
    parts.sandbox.netns = None;
    parts.sandbox_config.linux.as_mut().unwrap().sysctls.clear();
    let b = build(&parts.input()).unwrap();
    assert!(b.spec.hostname().is_none(), "the host's UTS namespace: no hostname to set");
    let ns = b.spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network || n.typ() == LinuxNamespaceType::Uts));
    // net.* sysctls need the pod's own network namespace.
    parts.sandbox_config.linux.as_mut().unwrap().sysctls.insert("net.core.somaxconn".into(), "1024".into());
    assert_eq!(build(&parts.input()).unwrap_err().code(), tonic::Code::InvalidArgument);
}

#[test]
fn tty_readonly_root_and_user_override() {
    let mut parts = input_parts();
    parts.config.tty = true;
    sc_mut(&mut parts).readonly_rootfs = true;
    sc_mut(&mut parts).run_as_user = Some(k8s_cri::v1::Int64Value { value: 0 });
    let b = build(&parts.input()).unwrap();
    let p = b.spec.process().as_ref().unwrap();
    assert_eq!(p.terminal(), Some(true));
    assert!(p.env().as_ref().unwrap().contains(&"TERM=xterm".to_string()));
    assert_eq!(b.user, (0, 0, vec![0]));
    assert_eq!(b.spec.root().as_ref().unwrap().readonly(), Some(true));
}

#[test]
fn bad_requests_name_the_problem() {
    let parts = input_parts();
    let mut c = parts.config.clone();
    c.metadata = None;
    assert_eq!(build(&SpecInput { config: &c, ..parts.input() }).unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(build(&SpecInput { container_id: "a/b", ..parts.input() }).unwrap_err().code(), tonic::Code::InvalidArgument);
    let img = ImageConfig { user: "ghost".into(), ..parts.image.clone() };
    let e = build(&SpecInput { image: &img, ..parts.input() }).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.to_string().contains("ghost"), "{e}");
    let mut c = parts.config.clone();
    c.linux.as_mut().unwrap().security_context.as_mut().unwrap().capabilities =
        Some(CriCaps { add_capabilities: vec!["CAP_TELEPORT".into()], ..Default::default() });
    assert!(build(&SpecInput { config: &c, ..parts.input() }).unwrap_err().to_string().contains("CAP_TELEPORT"));
    let mut c = parts.config.clone();
    c.linux.as_mut().unwrap().security_context.as_mut().unwrap().seccomp =
        Some(SecurityProfile { profile_type: ProfileType::Localhost as i32, localhost_ref: "/nonexistent/profile.json".into() });
    assert_eq!(build(&SpecInput { config: &c, ..parts.input() }).unwrap_err().code(), tonic::Code::NotFound);
    let st: tonic::Status = SpecError::Unsupported("x".into()).into();
    assert_eq!(st.code(), tonic::Code::FailedPrecondition);
}

/// The built spec with berth's RuntimeDefault profile, run by berth itself on a busybox rootfs.
#[test]
fn berth_runs_the_built_spec_with_the_default_profile() {
    if crate::sys::geteuid() != 0 {
        eprintln!("SKIP berth_runs_the_built_spec_with_the_default_profile: needs root");
        return;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let berth = target.join("release/berth");
    let busybox = Path::new("/bin/busybox");
    if !berth.exists() || !busybox.exists() {
        eprintln!(
            "SKIP berth_runs_the_built_spec_with_the_default_profile: need {} (cargo build --release -p berth-runtime) and /bin/busybox",
            berth.display()
        );
        return;
    }
    let t = TempDir::new("run");
    let rootfs = t.path().join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
    for f in ["hosts", "resolv.conf", "hostname"] {
        fs::write(t.path().join(f), format!("# {f}\n")).unwrap();
    }
    let sb = SandboxPaths {
        netns: None,
        resolv_conf: t.path().join("resolv.conf"),
        hosts: t.path().join("hosts"),
        hostname: t.path().join("hostname"),
        hostname_value: "spec-test".into(),
        ..Default::default()
    };
    let parts = input_parts();
    let mut c = parts.config.clone();
    c.command = vec!["/bin/sh".into()];
    c.args = vec!["-c".into(), "echo ok; grep '^Seccomp:' /proc/self/status; cat /etc/hosts".into()];
    c.linux.as_mut().unwrap().resources = None;
    c.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options = Some(NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Container as i32,
        ..Default::default()
    });
    let img = ImageConfig::default();
    let pod = PodSandboxConfig::default();
    let id = format!("berth-spec-test-{}", std::process::id());
    let input = SpecInput {
        container_id: &id,
        config: &c,
        sandbox_config: &pod,
        image: &img,
        rootfs: &rootfs,
        sandbox: &sb,
        cgroups_path: format!("/berth-spec-test-{}", std::process::id()),
        ..parts.input()
    };
    let b = build(&input).unwrap();
    assert!(b.spec.linux().as_ref().unwrap().seccomp().is_some());
    fs::write(t.path().join("config.json"), serde_json::to_vec_pretty(&b.spec).unwrap()).unwrap();
    let state = t.path().join("state");
    let out = std::process::Command::new(&berth)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(t.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::process::Command::new(&berth).arg("--root").arg(&state).args(["delete", "--force", &id]).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "berth run failed: {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    assert!(stdout.starts_with("ok\n"), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Seccomp:\t2"), "the filter is installed: {stdout}");
    assert!(stdout.contains("# hosts"), "the sandbox's /etc/hosts is mounted: {stdout}");
}
