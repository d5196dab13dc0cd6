//! `berth`: runc-compatible command line over the berth_runtime library.

use anyhow::Context;
use berth_runtime::container::{create, delete, kill, list, run, spec, start};
use berth_runtime::{console, logger};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "berth", version, about = "berth: an OCI container runtime (runc-compatible CLI)")]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/berth")]
    root: PathBuf,
    /// Write log records to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug records.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (not supported: berth manages cgroupfs directly).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (checkpointing is not supported).
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct CreateArgs {
    id: String,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Keep the caller's session keyring instead of giving the container its own.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many fds beyond stdio (3, 4, ...) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (or all its processes).
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a starting config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
}

fn opts(root: &std::path::Path, a: CreateArgs) -> (create::CreateOpts, Option<PathBuf>) {
    (
        create::CreateOpts {
            root: root.to_path_buf(),
            id: a.id,
            bundle: a.bundle,
            pid_file: a.pid_file,
            no_pivot: a.no_pivot,
            no_new_keyring: a.no_new_keyring,
            preserve_fds: a.preserve_fds,
        },
        a.console_socket,
    )
}

fn exec(cli: Cli) -> anyhow::Result<i32> {
    if cli.systemd_cgroup {
        anyhow::bail!("--systemd-cgroup is not supported: berth manages cgroupfs paths");
    }
    let root = cli.root;
    match cli.cmd {
        Cmd::Create(a) => {
            let (o, sock) = opts(&root, a);
            let console = sock.as_deref().map(console::connect).transpose()?;
            create::create(&o, console)?;
        }
        Cmd::Start { id } => {
            start::start(&root, &id)?;
        }
        Cmd::Run { create, detach, keep } => {
            let (o, sock) = opts(&root, create);
            return Ok(run::run(&o, sock, detach, keep)?);
        }
        Cmd::State { id } => {
            let s = list::state(&root, &id)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Cmd::Kill { id, signal, all } => kill::kill(&root, &id, &signal, all)?,
        Cmd::Delete { id, force } => delete::delete(&root, &id, force)?,
        Cmd::List { format, quiet } => {
            let items = list::list(&root)?;
            if quiet {
                for s in &items {
                    println!("{}", s.id);
                }
            } else if format == "json" {
                println!("{}", serde_json::to_string(&items)?);
            } else {
                print!("{}", list::table(&items));
            }
        }
        Cmd::Spec { bundle, rootless } => spec::write(&bundle, rootless).context("spec")?,
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => logger::Format::Text,
        LogFormat::Json => logger::Format::Json,
    };
    logger::init(cli.log.clone(), format, cli.debug);
    match exec(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            if logger::has_file() {
                logger::error(&msg);
            }
            eprintln!("berth: {msg}");
            std::process::exit(1);
        }
    }
}
