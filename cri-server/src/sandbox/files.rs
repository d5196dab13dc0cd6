//! The files a pod's containers share: /etc/resolv.conf from the pod's DNSConfig (or the
//! host's when it has none, as kubelet's "Default" policy expects), /etc/hosts,
//! /etc/hostname, and the pod's /dev/shm (a tmpfs, unless the pod uses the host's IPC).

use k8s_cri::v1 as cri;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::io;
use std::path::{Path, PathBuf};

/// Validate DNS settings: values go into a file other programs parse line by line.
pub fn check_dns(d: &cri::DnsConfig) -> Result<(), String> {
    for v in d.servers.iter().chain(&d.searches).chain(&d.options) {
        if v.is_empty() || v.len() > 253 || v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#') {
            return Err(format!("invalid DNS config value {v:?}"));
        }
    }
    for s in &d.servers {
        if s.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("DNS server {s:?} is not an IP address"));
        }
    }
    Ok(())
}

pub fn resolv_conf(d: Option<&cri::DnsConfig>) -> io::Result<String> {
    match d {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            let mut s = String::new();
            if !d.searches.is_empty() {
                s.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for n in &d.servers {
                s.push_str(&format!("nameserver {n}\n"));
            }
            if !d.options.is_empty() {
                s.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            Ok(s)
        }
        _ => Ok(std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
    }
}

pub fn hosts(hostname: &str, ips: &[String]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for ip in ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

pub fn write(dir: &Path, name: &str, content: &str) -> io::Result<PathBuf> {
    let p = dir.join(name);
    // Bound into the pod's containers, whose processes may run as any user: world-readable.
    crate::persist::write_atomic_mode(&p, content.as_bytes(), 0o644)?;
    Ok(p)
}

/// The pod's /dev/shm: a 64 MiB tmpfs, as the runtimes' default.
pub fn mount_shm(dir: &Path) -> io::Result<PathBuf> {
    let p = dir.join("shm");
    std::fs::create_dir_all(&p)?;
    mount(Some("shm"), &p, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("mode=1777,size=65536k"))
        .map_err(io::Error::from)?;
    Ok(p)
}

pub fn unmount_shm(p: &Path) -> io::Result<()> {
    match umount2(p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let d = cri::DnsConfig {
            servers: vec!["10.0.0.10".into()],
            searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        check_dns(&d).unwrap();
        assert_eq!(
            resolv_conf(Some(&d)).unwrap(),
            "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n"
        );
        assert!(check_dns(&cri::DnsConfig { servers: vec!["x\nnameserver 1.2.3.4".into()], ..Default::default() }).is_err());
        assert!(check_dns(&cri::DnsConfig { servers: vec!["not-an-ip".into()], ..Default::default() }).is_err());
    }
}
