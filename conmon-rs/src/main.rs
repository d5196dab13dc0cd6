//! `berth-mon`: parse conmon's command line and monitor one container.

#![deny(unsafe_code)]

use berth_mon::{cli::Options, diag, monitor, CONMON_COMPAT};

fn main() {
    let code = match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-mon: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run() -> anyhow::Result<i32> {
    let o = Options::parse(std::env::args_os().skip(1))?;
    if o.version {
        println!(
            "conmon version {CONMON_COMPAT} (berth-mon {})\ncommit: berth-mon-{}",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    let o = o.validate()?;
    let level = match &o.log_level {
        None => diag::Level::Warn,
        Some(l) => diag::parse_level(l).ok_or_else(|| anyhow::anyhow!("No such log level {l}"))?,
    };
    diag::configure(level, o.syslog, o.cid());
    Ok(monitor::run(o)?)
}
