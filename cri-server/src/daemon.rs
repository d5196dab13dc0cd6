//! The daemon: single-instance lock, the unix socket, serving both CRI services, and clean
//! shutdown on SIGTERM/SIGINT.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::image::store::{flock, Store, StoreError};
use crate::image::unpack::UnpackOptions;
use crate::metrics::layer::RpcMetricsLayer;
use crate::server::{CriServer, ImageServiceServer, RuntimeServiceServer};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another berth-cri already runs on state root {0} (lock file is held)")]
    AlreadyRunning(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("socket path {0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Streaming(#[from] crate::streaming::StreamError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::http::MetricsError),
    #[error("config: metrics.address: {0}")]
    MetricsAddress(String),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn io_at(path: &std::path::Path) -> impl FnOnce(io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io { path: path.to_path_buf(), source }
}

pub fn open_store(cfg: &Config) -> Result<Store, StoreError> {
    Store::open(&cfg.image.root, UnpackOptions { max_size: cfg.image.max_layer_size, allow_devices: cfg.image.allow_device_nodes })
}

/// Raise the soft open-files limit to the hard one (as containerd and CRI-O do): every pod,
/// container, stream and client connection costs the daemon fds, and a local user opening
/// connections in a loop must not make CreateContainer fail at the default soft 1024.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise RLIMIT_NOFILE");
            }
        }
        _ => {}
    }
}

pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    raise_nofile();
    let state = cfg.daemon.state_root.clone();
    if !state.is_dir() {
        // Passable but not listable by others: a user-namespaced pod's init walks below it.
        crate::persist::private_dir(&state, 0o711).map_err(io_at(&state))?;
    }
    let lock_path = cfg.lock_path();
    let _lock = match flock(&lock_path, true, true) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Err(DaemonError::AlreadyRunning(state)),
        Err(e) => return Err(io_at(&lock_path)(e)),
    };
    let store = Arc::new(open_store(&cfg)?);

    let sock = cfg.daemon.socket_path.clone();
    if let Some(parent) = sock.parent() {
        fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    match fs::symlink_metadata(&sock) {
        // We hold the lock, so a socket left here belongs to a dead daemon.
        Ok(m) if m.file_type().is_socket() => {
            tracing::info!(socket = %sock.display(), "removing stale socket");
            fs::remove_file(&sock).map_err(io_at(&sock))?;
        }
        Ok(_) => return Err(DaemonError::NotASocket(sock)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(&sock)(e)),
    }
    let config = Arc::new(cfg);
    let srv = CriServer::new(config.clone(), store);
    srv.recover().await;
    let _exits = srv.watch_exits().map_err(io_at(&srv.registry.root))?;
    crate::streaming::start(srv.clone()).await?;
    if config.metrics.enable {
        start_metrics(&srv).await?;
    }
    // The socket appears last: a client that finds it finds the daemon recovered and every
    // listener (streaming, metrics) up.
    let listener = UnixListener::bind(&sock).map_err(io_at(&sock))?;
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o660)).map_err(io_at(&sock))?;
    tracing::info!(socket = %sock.display(), image_root = %config.image.root.display(), "berth-cri serving CRI v1");

    let mut term = signal(SignalKind::terminate()).map_err(io_at(&sock))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_at(&sock))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let res = tonic::transport::Server::builder()
        .layer(RpcMetricsLayer::new(srv.metrics.clone()))
        .add_service(RuntimeServiceServer::new(srv.clone()))
        .add_service(ImageServiceServer::new(srv))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = fs::remove_file(&sock);
    tracing::info!("stopped");
    res.map_err(DaemonError::from)
}

/// Serves `/metrics` on the configured loopback address; the object gauges are taken from
/// the registry at each scrape.
async fn start_metrics(srv: &CriServer) -> Result<(), DaemonError> {
    let addr = crate::config::check_metrics_address(&srv.config.metrics.address).map_err(DaemonError::MetricsAddress)?;
    let s = srv.clone();
    let render: crate::metrics::http::Render = Arc::new(move || {
        s.count_objects();
        s.metrics.encode()
    });
    let local = crate::metrics::http::start(addr, render).await?;
    tracing::info!(address = %local, "metrics endpoint listening");
    Ok(())
}
