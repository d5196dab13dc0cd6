//! `berth-cri play FILE`: a small kubelet stand-in for one node. It reads a Pod manifest,
//! pulls missing images, runs the pod through the daemon's CRI socket (RunPodSandbox,
//! CreateContainer, StartContainer), prints the containers' logs as they grow (read from the
//! CRI log files, as `kubectl logs -f` ends up doing through kubelet), restarts containers as
//! the restartPolicy says, and tears the pod down on Ctrl-C — or when its containers have
//! ended, with `--rm`.

pub mod manifest;

use anyhow::{anyhow, Context};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct PlayOptions {
    pub socket: PathBuf,
    pub file: PathBuf,
    pub rm: bool,
    pub log_root: PathBuf,
}

pub async fn connect(socket: &Path) -> anyhow::Result<Channel> {
    let sock = socket.to_path_buf();
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
        }))
        .await
        .with_context(|| format!("connect to the CRI socket {}", socket.display()))
}

/// One container being followed.
struct Followed {
    id: String,
    attempt: u32,
    log: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    exit: Option<i32>,
}

/// Print what the log gained since last time (`name | line`).
fn follow(name: &str, f: &mut Followed) {
    let Ok(mut file) = std::fs::File::open(&f.log) else { return };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < f.offset {
        f.offset = 0; // rotated
    }
    if file.seek(SeekFrom::Start(f.offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    // Only whole records: a line the monitor is still writing waits for the next round.
    let upto = buf.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    f.offset += upto as u64;
    let out = std::io::stdout();
    let mut out = out.lock();
    for rec in buf[..upto].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut it = rec.splitn(4, |&b| b == b' ');
        let (_ts, _stream, tag, body) = (it.next(), it.next(), it.next(), it.next().unwrap_or_default());
        f.partial.extend_from_slice(body);
        if tag == Some(b"F") {
            let _ = writeln!(out, "{name} | {}", String::from_utf8_lossy(&f.partial));
            f.partial.clear();
        }
    }
    let _ = out.flush();
}

pub async fn play(o: PlayOptions) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&o.file).with_context(|| format!("read {}", o.file.display()))?;
    let pod = manifest::parse(&text).map_err(|e| anyhow!("{}: {e}", o.file.display()))?;
    let restart = pod.spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    if !["Always", "OnFailure", "Never"].contains(&restart.as_str()) {
        return Err(anyhow!("restartPolicy {restart:?}: expected Always, OnFailure or Never"));
    }
    let ch = connect(&o.socket).await?;
    let mut rt = RuntimeServiceClient::new(ch.clone());
    let mut img = ImageServiceClient::new(ch);

    for c in &pod.spec.containers {
        let spec = Some(cri::ImageSpec { image: c.image.clone(), ..Default::default() });
        let present = img.image_status(cri::ImageStatusRequest { image: spec.clone(), verbose: false }).await?.into_inner().image.is_some();
        if !present {
            eprintln!("pulling {}", c.image);
            img.pull_image(cri::PullImageRequest { image: spec, auth: None, sandbox_config: None })
                .await
                .map_err(|e| anyhow!("pull {}: {}", c.image, e.message()))?;
        }
    }
    let uid = pod.uid();
    let log_dir = o.log_root.join(format!("{}_{}_{}", pod.metadata.namespace, pod.metadata.name, uid));
    let sandbox = pod.sandbox_config(&uid, &log_dir.to_string_lossy());
    let pod_id = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(sandbox.clone()), runtime_handler: String::new() })
        .await
        .map_err(|e| anyhow!("RunPodSandbox: {}", e.message()))?
        .into_inner()
        .pod_sandbox_id;
    eprintln!("pod {}/{} is {}", pod.metadata.namespace, pod.metadata.name, &pod_id[..12]);

    let result = run_containers(&mut rt, &pod, &pod_id, &sandbox, &log_dir, &restart).await;
    let teardown = o.rm || matches!(result, Ok(None)) || result.is_err();
    if teardown {
        let _ = rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod_id.clone() }).await;
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod_id.clone() })
            .await
            .map_err(|e| anyhow!("RemovePodSandbox: {}", e.message()))?;
        eprintln!("pod {} removed", &pod_id[..12]);
    } else {
        eprintln!("pod {} left in place (no --rm): remove it with `crictl rmp -f {}`", &pod_id[..12], &pod_id[..12]);
    }
    match result? {
        // Interrupted.
        None => Ok(130),
        Some(code) => Ok(code),
    }
}

/// Start the containers and follow them until they end for good (Some(exit code of the first
/// that failed, else 0)) or Ctrl-C (None).
async fn run_containers(
    rt: &mut RuntimeServiceClient<Channel>,
    pod: &manifest::Pod,
    pod_id: &str,
    sandbox: &cri::PodSandboxConfig,
    log_dir: &Path,
    restart: &str,
) -> anyhow::Result<Option<i32>> {
    let mut followed: HashMap<String, Followed> = HashMap::new();
    for c in &pod.spec.containers {
        let f = start(rt, c, 0, pod_id, sandbox, log_dir).await?;
        followed.insert(c.name.clone(), f);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        for c in &pod.spec.containers {
            let f = followed.get_mut(&c.name).unwrap();
            follow(&c.name, f);
            if f.exit.is_some() {
                continue;
            }
            let st =
                rt.container_status(cri::ContainerStatusRequest { container_id: f.id.clone(), verbose: false }).await?.into_inner().status;
            if let Some(st) = st.filter(|s| s.state == cri::ContainerState::ContainerExited as i32) {
                follow(&c.name, f);
                eprintln!(
                    "container {} exited with {}{}",
                    c.name,
                    st.exit_code,
                    if st.reason.is_empty() { String::new() } else { format!(" ({})", st.reason) }
                );
                let again = restart == "Always" || (restart == "OnFailure" && st.exit_code != 0);
                if again {
                    let attempt = f.attempt + 1;
                    let _ = rt.remove_container(cri::RemoveContainerRequest { container_id: f.id.clone() }).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    *f = start(rt, c, attempt, pod_id, sandbox, log_dir).await?;
                } else {
                    f.exit = Some(st.exit_code);
                }
            }
        }
        if followed.values().all(|f| f.exit.is_some()) {
            let code = pod.spec.containers.iter().filter_map(|c| followed[&c.name].exit).find(|c| *c != 0).unwrap_or(0);
            return Ok(Some(code));
        }
        tokio::select! {
            _ = &mut ctrl_c => { eprintln!("interrupted: tearing the pod down"); return Ok(None); }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn start(
    rt: &mut RuntimeServiceClient<Channel>,
    c: &manifest::Container,
    attempt: u32,
    pod_id: &str,
    sandbox: &cri::PodSandboxConfig,
    log_dir: &Path,
) -> anyhow::Result<Followed> {
    let cfg = c.config(attempt).map_err(|e| anyhow!("container {}: {e}", c.name))?;
    let log = log_dir.join(&cfg.log_path);
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(cfg),
            sandbox_config: Some(sandbox.clone()),
        })
        .await
        .map_err(|e| anyhow!("CreateContainer {}: {}", c.name, e.message()))?
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest { container_id: id.clone() })
        .await
        .map_err(|e| anyhow!("StartContainer {}: {}", c.name, e.message()))?;
    Ok(Followed { id, attempt, log, offset: 0, partial: Vec::new(), exit: None })
}
