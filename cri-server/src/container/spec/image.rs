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
            stop_signal: r.stop_signal.filter(|s| !s.is_empty()),
            volumes: r.volumes.map(|m| m.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect()).unwrap_or_default(),
        })
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
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
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
