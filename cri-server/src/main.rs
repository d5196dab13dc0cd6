//! `berth-cri`: command-line parsing only; the work is in the `berth_cri` library.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_cri::config::{Config, Overrides};
use berth_cri::image::{import, lookup_names, pull::Puller};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-cri", version, about = "berth's CRI v1 daemon (RuntimeService + ImageService)")]
struct Cli {
    /// Main configuration file [default: /etc/berth/berth.conf]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Drop-in directory, *.conf applied in name order [default: /etc/berth/berth.conf.d]
    #[arg(long, global = true)]
    config_dir: Option<PathBuf>,
    /// CRI socket path
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// State root (lock file)
    #[arg(long, global = true)]
    state_root: Option<PathBuf>,
    /// Image store root
    #[arg(long, global = true)]
    image_root: Option<PathBuf>,
    /// trace, debug, info, warn or error
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// containers-registries.conf file
    #[arg(long, global = true)]
    registries_conf: Option<PathBuf>,
    /// containers-registries.conf drop-in directory
    #[arg(long, global = true)]
    registries_conf_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (the default).
    Serve,
    /// Print the effective configuration as documented TOML.
    Config,
    /// Operate on the image store directly (same locks as the daemon).
    #[command(subcommand)]
    Image(ImageCmd),
    /// Run a Kubernetes Pod manifest through the daemon's CRI socket and follow its logs
    /// (a one-node kubelet stand-in). Ctrl-C tears the pod down.
    Play {
        /// The Pod manifest (YAML).
        file: PathBuf,
        /// Also remove the pod when its containers have ended.
        #[arg(long)]
        rm: bool,
        /// Where pod log directories go (kubelet's default).
        #[arg(long, default_value = "/var/log/pods")]
        log_root: PathBuf,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Load an OCI archive (oci-layout tar) or docker-archive (`docker save`) tarball.
    Import {
        file: PathBuf,
        /// Name for images the archive does not fully name (e.g. example.com/app:1).
        #[arg(long)]
        name: Option<String>,
    },
    /// List stored images.
    List,
    /// Remove images by id, tag or digest.
    Rm { images: Vec<String> },
    /// Pull an image from a registry into the store.
    Pull { image: String },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("berth-cri: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let ov = Overrides {
        config_file: cli.config.clone(),
        config_dir: cli.config_dir.clone(),
        socket_path: cli.socket.clone(),
        state_root: cli.state_root.clone(),
        image_root: cli.image_root.clone(),
        log_level: cli.log_level.clone(),
        registries_conf: cli.registries_conf.clone(),
        registries_conf_dir: cli.registries_conf_dir.clone(),
    };
    let cfg = Config::load(&ov)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!("{},h2=info,hyper=info,tower=info", cfg.daemon.log_level)))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().context("starting tokio")?;
    match cli.cmd.unwrap_or(Cmd::Serve) {
        Cmd::Serve => rt.block_on(berth_cri::daemon::run(cfg))?,
        Cmd::Config => print!("{}", cfg.to_documented_toml()),
        Cmd::Play { file, rm, log_root } => {
            let code = rt.block_on(berth_cri::play::play(berth_cri::play::PlayOptions {
                socket: cfg.daemon.socket_path.clone(),
                file,
                rm,
                log_root,
            }))?;
            std::process::exit(code);
        }
        Cmd::Image(ic) => {
            let store = Arc::new(berth_cri::daemon::open_store(&cfg)?);
            let puller = Puller::new(store.clone(), &cfg.image);
            match ic {
                ImageCmd::Import { file, name } => {
                    for rec in import::import_archive(&store, &file, name.as_deref())? {
                        println!("{} {}", rec.id, rec.repo_tags.join(","));
                    }
                }
                ImageCmd::List => {
                    println!("{:<71} {:>12}  TAGS", "ID", "SIZE");
                    for rec in store.list_images()? {
                        println!("{:<71} {:>12}  {}", rec.id, rec.size, rec.repo_tags.join(","));
                    }
                }
                ImageCmd::Rm { images } => {
                    let regs = puller.registries()?;
                    for i in images {
                        let names = lookup_names(&i, &regs);
                        if !store.remove_image(&i, &names)? {
                            anyhow::bail!("image {i:?} not found");
                        }
                        println!("removed {i}");
                    }
                }
                ImageCmd::Pull { image } => {
                    let rec = rt.block_on(puller.pull(&image, None))?;
                    println!("{}", rec.id);
                }
            }
        }
    }
    Ok(())
}
