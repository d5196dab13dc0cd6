//! `berth`: runc-compatible command line over the berth_runtime library.

#![deny(unsafe_code)]

use anyhow::Context;
use berth_runtime::container::{
    checkpoint, create, delete, events, exec as exec_cmd, features, kill, list, pause, ps, restore, run, spec, start, update,
};
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
    /// Create the container's cgroup as a systemd transient scope (cgroupsPath
    /// `slice:prefix:name`). Later commands follow what `create` recorded.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// The CRIU binary `checkpoint` and `restore` run (default: criu on PATH).
    #[arg(long, global = true, default_value = berth_runtime::criu::DEFAULT_BINARY)]
    criu: PathBuf,
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

#[derive(Args)]
struct ExecArgs {
    /// Unix socket that receives the pty master (with --tty).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory of the process (inside the container).
    #[arg(long)]
    cwd: Option<String>,
    /// Set an environment variable (NAME=VALUE); may be repeated.
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// UID[:GID] of the process.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group ids; may be repeated.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A process.json to run instead of the command line (the other process flags are ignored).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label of the process.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile of the process.
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability (CAP_...); may be repeated.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Pass this many fds beyond stdio (3, 4, ...) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Run in this sub-cgroup of the container's (PATH or CONTROLLER:PATH).
    #[arg(long)]
    cgroup: Option<String>,
    /// Exec even when the container is paused.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct UpdateArgs {
    id: String,
    /// JSON file with the resources to set (the spec's linux.resources shape), `-` for stdin;
    /// all other flags are then ignored.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Block IO weight [10, 1000].
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CFS period (µs).
    #[arg(long = "cpu-period")]
    cpu_period: Option<String>,
    /// CFS quota (µs per period; -1 unlimited).
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<String>,
    /// CFS burst (µs).
    #[arg(long = "cpu-burst")]
    cpu_burst: Option<String>,
    /// CPU shares (converted to cpu.weight).
    #[arg(long = "cpu-share")]
    cpu_share: Option<String>,
    /// Realtime period (cgroup v1 only: refused).
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<String>,
    /// Realtime runtime (cgroup v1 only: refused).
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<String>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    #[arg(long = "cpu-idle")]
    cpu_idle: Option<String>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: 64m; -1 unlimited).
    #[arg(long)]
    memory: Option<String>,
    /// Memory reservation (memory.low).
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 unlimited).
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Obsolete (ignored, as runc does).
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Obsolete (ignored, as runc does).
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
}

/// CRIU options both `checkpoint` and `restore` take (runc's names).
#[derive(Args)]
struct CriuFlags {
    /// Directory of the CRIU images.
    #[arg(long = "image-path", default_value = "checkpoint")]
    image_path: PathBuf,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow established TCP connections.
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs (a controlling terminal shared with the caller).
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// CRIU's cgroup mode: soft (default), full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
}

#[derive(Args)]
struct CheckpointArgs {
    #[command(flatten)]
    criu: CriuFlags,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Iterative pre-dump (refused: not supported).
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    id: String,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    criu: CriuFlags,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Return once the container runs instead of waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Console socket (a container with a terminal cannot be restored yet: refused).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (criu sets up the root).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc compatibility (the keyring is part of the images).
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Checkpoint a running container with CRIU.
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint.
    Restore(RestoreArgs),
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
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// Print the runtime's features (OCI runtime spec "features" JSON).
    Features,
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
    /// Suspend every process of a container (cgroup freezer).
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// List a container's processes: `ps` output filtered to them, or their pids as JSON.
    Ps {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Arguments for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print a container's statistics (and OOM events) as JSON records.
    Events {
        id: String,
        /// Interval between stats records (a Go duration: 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
    },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Write a starting config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
}

fn opts(root: &std::path::Path, systemd_cgroup: bool, a: CreateArgs) -> (create::CreateOpts, Option<PathBuf>) {
    (
        create::CreateOpts {
            root: root.to_path_buf(),
            id: a.id,
            bundle: a.bundle,
            pid_file: a.pid_file,
            no_pivot: a.no_pivot,
            no_new_keyring: a.no_new_keyring,
            preserve_fds: a.preserve_fds,
            systemd_cgroup,
        },
        a.console_socket,
    )
}

fn exec(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root;
    let systemd = cli.systemd_cgroup;
    let criu = cli.criu;
    match cli.cmd {
        Cmd::Checkpoint(a) => checkpoint::checkpoint(&checkpoint::CheckpointOpts {
            root: root.clone(),
            id: a.id,
            criu,
            image_path: a.criu.image_path,
            work_path: a.criu.work_path,
            leave_running: a.leave_running,
            tcp_established: a.criu.tcp_established,
            ext_unix_sk: a.criu.ext_unix_sk,
            shell_job: a.criu.shell_job,
            file_locks: a.criu.file_locks,
            pre_dump: a.pre_dump,
            manage_cgroups_mode: a.criu.manage_cgroups_mode,
        })?,
        Cmd::Restore(a) => {
            let _ = (a.no_pivot, a.no_new_keyring);
            return Ok(restore::restore(&restore::RestoreOpts {
                root: root.clone(),
                id: a.id,
                criu,
                bundle: a.bundle,
                image_path: a.criu.image_path,
                work_path: a.criu.work_path,
                detach: a.detach,
                pid_file: a.pid_file,
                console_socket: a.console_socket,
                tcp_established: a.criu.tcp_established,
                ext_unix_sk: a.criu.ext_unix_sk,
                shell_job: a.criu.shell_job,
                file_locks: a.criu.file_locks,
                manage_cgroups_mode: a.criu.manage_cgroups_mode,
                systemd_cgroup: systemd,
            })?);
        }
        Cmd::Create(a) => {
            let (o, sock) = opts(&root, systemd, a);
            let console = sock.as_deref().map(console::connect).transpose()?;
            create::create(&o, console)?;
        }
        Cmd::Start { id } => {
            start::start(&root, &id)?;
        }
        Cmd::Run { create, detach, keep } => {
            let (o, sock) = opts(&root, systemd, create);
            return Ok(run::run(&o, sock, detach, keep)?);
        }
        Cmd::Exec(a) => {
            let o = exec_cmd::ExecOpts {
                root: root.clone(),
                id: a.id,
                process_file: a.process,
                flags: exec_cmd::ProcessFlags {
                    args: a.command,
                    cwd: a.cwd,
                    env: a.env,
                    tty: a.tty,
                    user: a.user,
                    additional_gids: a.additional_gids,
                    caps: a.cap,
                    no_new_privs: a.no_new_privs,
                    apparmor: a.apparmor,
                    process_label: a.process_label,
                },
                console_socket: a.console_socket,
                detach: a.detach,
                pid_file: a.pid_file,
                preserve_fds: a.preserve_fds,
                cgroup: a.cgroup,
                ignore_paused: a.ignore_paused,
            };
            return Ok(exec_cmd::exec(&o)?);
        }
        Cmd::Features => println!("{}", serde_json::to_string_pretty(&features::features())?),
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
        Cmd::Pause { id } => pause::pause(&root, &id)?,
        Cmd::Resume { id } => pause::resume(&root, &id)?,
        Cmd::Ps { format, id, ps_args } => {
            let pids = ps::pids(&root, &id)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                print!("{}", ps::table(&pids, &ps_args)?);
            }
        }
        Cmd::Events { id, interval, stats } => {
            let interval = events::parse_duration(&interval)?;
            if stats {
                println!("{}", events::stats_once(&root, &id)?);
            } else {
                events::stream(&root, &id, interval, &mut std::io::stdout().lock())?;
            }
        }
        Cmd::Update(a) => {
            if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
                logger::warn("kernel memory settings are ignored (cgroup v2 has none)");
            }
            let flags = update::Flags {
                resources: a.resources,
                blkio_weight: a.blkio_weight,
                cpu_period: a.cpu_period,
                cpu_quota: a.cpu_quota,
                cpu_burst: a.cpu_burst,
                cpu_share: a.cpu_share,
                cpu_rt_period: a.cpu_rt_period,
                cpu_rt_runtime: a.cpu_rt_runtime,
                cpu_idle: a.cpu_idle,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                memory: a.memory,
                memory_reservation: a.memory_reservation,
                memory_swap: a.memory_swap,
                pids_limit: a.pids_limit,
            };
            update::update(&root, &a.id, &update::resources(&flags)?)?;
        }
        Cmd::Spec { bundle, rootless } => spec::write(&bundle, rootless).context("spec")?,
    }
    Ok(0)
}

fn main() {
    // Non-dumpable from the start: while berth runs inside a container's namespaces (exec)
    // or beside them, no container process may open /proc/<pid>/exe (the host's berth
    // binary) or /proc/<pid>/fd of berth. execve of the container's program resets it.
    let _ = nix::sys::prctl::set_dumpable(false);
    let cli = Cli::parse();
    // The verbs that put a process into a container run from a sealed in-memory copy of
    // berth (CVE-2019-5736: the container can never reach the host's binary through
    // /proc/self/exe). The others never enter a container and skip the copy.
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec(_)) {
        if let Err(e) = sealed_exe::ensure(c"berth") {
            eprintln!("berth: cannot run from a sealed copy of itself (refusing to enter a container unprotected): {e}");
            std::process::exit(1);
        }
    }
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
