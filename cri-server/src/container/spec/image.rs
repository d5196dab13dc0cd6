//! The parts of an OCI (or docker v2) image config a container's spec is built from.

use super::SpecError;
use serde::Deserialize;
use std::collections::BTreeSet;

/// `config` of an image config blob (`application/vnd.oci.image.config.v1+json`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries, in the image's order.
    pub env: Vec<String>,
    pub working_dir: String,
    /// `user`, `uid`, `user:group`, `uid:gid` (or empty: root).
    pub user: String,
    pub stop_signal: Option<String>,
    /// Declared volume paths (sorted).
    pub volumes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Blob {
    #[serde(default)]
    config: Option<Run>,
}

// Field names as the image spec writes them; docker wrote the same (capitalised) names.
#[derive(Deserialize, Default)]
struct Run {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "StopSignal", default)]
    stop_signal: Option<String>,
    #[serde(rename = "Volumes", default)]
    volumes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An image's `StopSignal` as the signal number berth-cri hands to `<runtime> kill` (the image
/// is untrusted: anything but a signal — e.g. a word that would read as a flag — is refused).
/// Accepts `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`, `RTMAX-1`, any case.
pub fn stop_signal(s: &str) -> Option<String> {
    const RTMIN: i32 = 34;
    const RTMAX: i32 = 64;
    let u = s.trim().to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    let n = if let Ok(n) = name.parse::<i32>() {
        n
    } else if let Some(rest) = name.strip_prefix("RTMIN") {
        RTMIN + if rest.is_empty() { 0 } else { rest.strip_prefix('+')?.parse::<i32>().ok()? }
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        RTMAX - if rest.is_empty() { 0 } else { rest.strip_prefix('-')?.parse::<i32>().ok()? }
    } else {
        format!("SIG{name}").parse::<nix::sys::signal::Signal>().ok()? as i32
    };
    (1..=RTMAX).contains(&n).then(|| n.to_string())
}

/// Config blobs are small; a bigger one is not an image config.
const MAX_CONFIG: usize = 8 << 20;

impl ImageConfig {
    /// Parse an image config blob. `null` fields count as absent, as docker writes them.
    pub fn parse(blob: &[u8]) -> Result<ImageConfig, SpecError> {
        if blob.len() > MAX_CONFIG {
            return Err(super::invalid(format!("image config is {} bytes (at most {MAX_CONFIG})", blob.len())));
        }
        let b: Blob = serde_json::from_slice(blob).map_err(|e| super::invalid(format!("image config: {e}")))?;
        let r = b.config.unwrap_or_default();
        Ok(ImageConfig {
            entrypoint: r.entrypoint.unwrap_or_default(),
            cmd: r.cmd.unwrap_or_default(),
            env: r.env.unwrap_or_default(),
            working_dir: r.working_dir.unwrap_or_default(),
            user: r.user.unwrap_or_default(),
            stop_signal: match r.stop_signal.filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(stop_signal(&s).ok_or_else(|| super::invalid(format!("image config: StopSignal {s:?} is not a signal")))?),
            },
            volumes: r.volumes.map(|m| m.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod stop_signal_tests {
    use super::stop_signal;

    #[test]
    fn signals_by_name_number_and_realtime_offset() {
        for (s, n) in
            [("SIGTERM", "15"), ("term", "15"), ("9", "9"), ("SIGQUIT", "3"), ("SIGRTMIN+3", "37"), ("RTMAX-1", "63"), ("SIGRTMIN", "34")]
        {
            assert_eq!(stop_signal(s).as_deref(), Some(n), "{s}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for s in ["--all", "-h", "SIGNOPE", "0", "65", "-9", "RTMIN+40", "SIGRTMIN+", "TERM; rm -rf /", "15x"] {
            assert_eq!(stop_signal(s), None, "{s}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_oci_config() {
        let c = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"User":"app:staff","Env":["PATH=/bin","A=1"],
                "Entrypoint":["/entry"],"Cmd":["serve","--x"],"WorkingDir":"/srv","StopSignal":"SIGQUIT",
                "Volumes":{"/data":{},"/cache":{}}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert_eq!(c.entrypoint, ["/entry"]);
        assert_eq!(c.cmd, ["serve", "--x"]);
        assert_eq!(c.env, ["PATH=/bin", "A=1"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "app:staff");
        assert_eq!(c.stop_signal.as_deref(), Some("3"), "SIGQUIT as the number handed to the runtime");
        assert_eq!(c.volumes, ["/cache", "/data"]);
    }

    #[test]
    fn nulls_and_missing_config_are_empty() {
        let c = ImageConfig::parse(br#"{"config":{"Entrypoint":null,"Cmd":null,"Env":null,"StopSignal":""}}"#).unwrap();
        assert_eq!(c, ImageConfig::default());
        assert_eq!(ImageConfig::parse(b"{}").unwrap(), ImageConfig::default());
        assert_eq!(ImageConfig::parse(b"[1]").unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(ImageConfig::parse(br#"{"config":{"Cmd":"x"}}"#).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
