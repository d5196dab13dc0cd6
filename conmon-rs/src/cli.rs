//! conmon 2.1's command line, as podman 4.3 and CRI-O pass it.
//!
//! GLib's option parser, which conmon uses, takes `--opt VALUE`, `--opt=VALUE`, `-oVALUE` and
//! `-o VALUE`, repeats array options, accepts empty values (podman passes
//! `--exit-command-arg ""`), and leaves words that are not options alone: podman writes
//! `--api-version 1` although `--api-version` is a flag, so the `1` is such a word and is
//! ignored here too. An unknown option is an error, as in conmon.

use crate::error::{Error, Result};
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;

/// Where attach sockets go when `--socket-dir-path` is not given (conmon's default).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/crio";

#[derive(Debug, Default, Clone)]
pub struct Options {
    pub api_version: u32,
    pub bundle: Option<PathBuf>,
    pub cid: Option<String>,
    pub conmon_pidfile: Option<PathBuf>,
    pub container_pidfile: Option<PathBuf>,
    pub cuuid: Option<String>,
    pub exec: bool,
    pub exec_attach: bool,
    pub exec_process_spec: Option<PathBuf>,
    pub exit_command: Option<PathBuf>,
    pub exit_command_args: Vec<OsString>,
    pub exit_delay: i64,
    pub exit_dir: Option<PathBuf>,
    pub leave_stdin_open: bool,
    pub log_level: Option<String>,
    pub log_paths: Vec<String>,
    pub log_size_max: i64,
    pub log_global_size_max: i64,
    pub log_tag: Option<String>,
    pub name: Option<String>,
    pub no_new_keyring: bool,
    pub no_pivot: bool,
    pub no_sync_log: bool,
    pub persist_dir: Option<PathBuf>,
    pub replace_listen_pid: bool,
    pub restore: Option<PathBuf>,
    pub runtime: Option<PathBuf>,
    pub runtime_args: Vec<OsString>,
    pub runtime_opts: Vec<OsString>,
    pub sdnotify_socket: Option<PathBuf>,
    pub socket_dir_path: PathBuf,
    pub stdin: bool,
    pub sync: bool,
    pub syslog: bool,
    pub systemd_cgroup: bool,
    pub terminal: bool,
    pub timeout: i64,
    pub version: bool,
    pub full_attach: bool,
    pub seccomp_notify_socket: Option<PathBuf>,
    pub seccomp_notify_plugins: Option<String>,
}

fn num(name: &str, v: OsString) -> Result<i64> {
    let s = v.to_string_lossy();
    s.trim().parse::<i64>().map_err(|_| Error::Usage(format!("cannot parse integer value “{s}” for --{name}")))
}

fn utf8(name: &str, v: OsString) -> Result<String> {
    v.into_string().map_err(|v| Error::Usage(format!("value {v:?} for --{name} is not UTF-8")))
}

impl Options {
    /// Parse `args` (without the program name).
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options> {
        let mut o = Options { log_size_max: -1, log_global_size_max: -1, socket_dir_path: DEFAULT_SOCKET_DIR.into(), ..Default::default() };
        let mut p = lexopt::Parser::from_args(args);
        let bad = |e: lexopt::Error| Error::Usage(e.to_string());
        while let Some(arg) = p.next().map_err(bad)? {
            // The option's canonical long name, for messages.
            let name: String = match &arg {
                Long(l) => l.to_string(),
                Short(c) => c.to_string(),
                Value(_) => String::new(),
            };
            macro_rules! val {
                () => {
                    p.value().map_err(bad)?
                };
            }
            match arg {
                Long("api-version") => o.api_version = 1,
                Short('b') | Long("bundle") => o.bundle = Some(val!().into()),
                Short('c') | Long("cid") => o.cid = Some(utf8(&name, val!())?),
                Short('P') | Long("conmon-pidfile") => o.conmon_pidfile = Some(val!().into()),
                Short('p') | Long("container-pidfile") | Long("pidfile") => o.container_pidfile = Some(val!().into()),
                Short('u') | Long("cuuid") => o.cuuid = Some(utf8(&name, val!())?),
                Short('e') | Long("exec") => o.exec = true,
                Long("exec-attach") => o.exec_attach = true,
                Long("exec-process-spec") => o.exec_process_spec = Some(val!().into()),
                Long("exit-command") => o.exit_command = Some(val!().into()),
                Long("exit-command-arg") => o.exit_command_args.push(val!()),
                Long("exit-delay") => o.exit_delay = num(&name, val!())?,
                Long("exit-dir") => o.exit_dir = Some(val!().into()),
                Long("leave-stdin-open") => o.leave_stdin_open = true,
                Long("log-level") => o.log_level = Some(utf8(&name, val!())?),
                Short('l') | Long("log-path") => o.log_paths.push(utf8(&name, val!())?),
                Long("log-size-max") => o.log_size_max = num(&name, val!())?,
                Long("log-global-size-max") => o.log_global_size_max = num(&name, val!())?,
                Long("log-tag") => o.log_tag = Some(utf8(&name, val!())?),
                Short('n') | Long("name") => o.name = Some(utf8(&name, val!())?),
                Long("no-new-keyring") => o.no_new_keyring = true,
                Long("no-pivot") => o.no_pivot = true,
                Long("no-sync-log") => o.no_sync_log = true,
                Short('0') | Long("persist-dir") => o.persist_dir = Some(val!().into()),
                Long("replace-listen-pid") => o.replace_listen_pid = true,
                Long("restore") => o.restore = Some(val!().into()),
                Short('r') | Long("runtime") => o.runtime = Some(val!().into()),
                Long("runtime-arg") => o.runtime_args.push(val!()),
                Long("runtime-opt") | Long("restore-arg") => o.runtime_opts.push(val!()),
                Long("sdnotify-socket") => o.sdnotify_socket = Some(val!().into()),
                Long("socket-dir-path") => o.socket_dir_path = val!().into(),
                Short('i') | Long("stdin") => o.stdin = true,
                Long("sync") => o.sync = true,
                Long("syslog") => o.syslog = true,
                Short('s') | Long("systemd-cgroup") => o.systemd_cgroup = true,
                Short('t') | Long("terminal") => o.terminal = true,
                Short('T') | Long("timeout") => o.timeout = num(&name, val!())?,
                Long("version") => o.version = true,
                Long("full-attach") => o.full_attach = true,
                Long("seccomp-notify-socket") => o.seccomp_notify_socket = Some(val!().into()),
                Long("seccomp-notify-plugins") => o.seccomp_notify_plugins = Some(utf8(&name, val!())?),
                // GLib leaves non-option words in argv and conmon never looks at them.
                Value(_) => {}
                Short(c) => return Err(Error::Usage(format!("Unknown option -{c}"))),
                Long(l) => return Err(Error::Usage(format!("Unknown option --{l}"))),
            }
        }
        Ok(o)
    }

    /// conmon's checks of a parsed command line (`process_cli`), plus the defaults it fills in.
    pub fn validate(mut self) -> Result<Options> {
        if self.cid.is_none() {
            return Err(Error::Config("Container ID not provided. Use --cid".into()));
        }
        if self.restore.is_some() && self.exec {
            return Err(Error::Config("Cannot use 'exec' and 'restore' at the same time".into()));
        }
        if !self.exec && self.exec_attach {
            return Err(Error::Config("Attach can only be specified with exec".into()));
        }
        if self.api_version < 1 && self.exec_attach {
            return Err(Error::Config("Attach can only be specified for a non-legacy exec session".into()));
        }
        if self.cuuid.is_none() && (!self.exec || self.api_version >= 1) {
            return Err(Error::Config("Container UUID not provided. Use --cuuid".into()));
        }
        match &self.runtime {
            None => return Err(Error::Config("Runtime path not provided. Use --runtime".into())),
            Some(r) => {
                if nix::unistd::access(r.as_path(), nix::unistd::AccessFlags::X_OK).is_err() {
                    return Err(Error::Config(format!("Runtime path {} is not valid", r.display())));
                }
            }
        }
        if self.exec && self.exec_process_spec.is_none() {
            return Err(Error::Config("Exec process spec path not provided. Use --exec-process-spec".into()));
        }
        if self.exit_delay < 0 {
            return Err(Error::Config("Delay before invoking exit command must be greater than or equal to 0".into()));
        }
        if self.seccomp_notify_socket.is_some() {
            // conmon hands the listener to plugins it loads as shared objects; berth-mon loads
            // no code, so it says so instead of silently dropping the notifications.
            return Err(Error::Config("seccomp notify plugins are not supported by berth-mon".into()));
        }
        if self.log_paths.is_empty() {
            return Err(Error::Config("Log driver not provided. Use --log-path".into()));
        }
        let cwd = std::env::current_dir().map_err(|e| Error::sys("Failed to get working directory", e))?;
        // A bundle in exec mode means "set up an attach socket for this exec session".
        if self.bundle.is_none() && !self.exec {
            self.bundle = Some(cwd.clone());
        }
        if self.container_pidfile.is_none() {
            self.container_pidfile = Some(cwd.join(format!("pidfile-{}", self.cid.as_deref().unwrap_or_default())));
        }
        Ok(self)
    }

    pub fn cid(&self) -> &str {
        self.cid.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Options> {
        Options::parse(a.iter().map(OsString::from))
    }

    #[test]
    fn podman_command_line() {
        let o = parse(&[
            "--api-version",
            "1",
            "-c",
            "abc",
            "-u",
            "def",
            "-r",
            "/bin/true",
            "-b",
            "/b",
            "-p",
            "/b/pid",
            "-n",
            "nm",
            "--exit-dir",
            "/x",
            "--full-attach",
            "-l",
            "k8s-file:/b/ctr.log",
            "--log-level",
            "warning",
            "--runtime-arg",
            "--log-format=json",
            "--runtime-arg",
            "--log",
            "--runtime-arg=/b/oci-log",
            "--exit-command",
            "/usr/bin/podman",
            "--exit-command-arg",
            "--network-config-dir",
            "--exit-command-arg",
            "",
            "-e",
            "--exec-attach",
            "-T5",
        ])
        .unwrap();
        assert_eq!(o.api_version, 1);
        assert_eq!(o.cid.as_deref(), Some("abc"));
        assert_eq!(o.runtime_args, vec![OsString::from("--log-format=json"), "--log".into(), "/b/oci-log".into()]);
        assert_eq!(o.exit_command_args, vec![OsString::from("--network-config-dir"), "".into()]);
        assert!(o.exec && o.exec_attach && o.full_attach);
        assert_eq!(o.timeout, 5);
        assert_eq!(o.log_paths, vec!["k8s-file:/b/ctr.log".to_string()]);
    }

    #[test]
    fn unknown_option_is_an_error() {
        let e = parse(&["--cid", "x", "--frobnicate"]).unwrap_err().to_string();
        assert!(e.contains("Unknown option --frobnicate"), "{e}");
        assert!(parse(&["-Z"]).is_err());
        assert!(parse(&["--log-size-max", "lots"]).is_err());
        assert!(parse(&["--cid"]).is_err(), "missing value");
    }

    #[test]
    fn validation_follows_conmon() {
        let e = parse(&["-u", "x", "-r", "/bin/true", "-l", "none"]).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("Use --cid"), "{e}");
        let e = parse(&["-c", "x", "-r", "/bin/true", "-l", "none"]).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("Use --cuuid"), "{e}");
        let e = parse(&["-c", "x", "-u", "x", "-r", "/nonexistent", "-l", "none"]).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("not valid"), "{e}");
        let e = parse(&["-c", "x", "-u", "x", "-r", "/bin/true", "-l", "none", "--exec-attach"]).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("only be specified with exec"));
        let e = parse(&["-c", "x", "-u", "x", "-r", "/bin/true"]).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("--log-path"));
        let o = parse(&["-c", "x", "-u", "x", "-r", "/bin/true", "-l", "none"]).unwrap().validate().unwrap();
        assert!(o.bundle.is_some() && o.container_pidfile.unwrap().ends_with("pidfile-x"));
    }
}
