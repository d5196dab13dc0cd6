//! A pod's network counters, read from `/proc/thread-self/net/dev` by a short-lived thread
//! that joined the pod's network namespace: the namespace is pinned by a bind mount, so it
//! may have no process to read `/proc/<pid>/net/dev` from. The thread is never reused
//! (setns changes it for good), so no tokio worker ever changes namespace.

use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses /proc/net/dev: two header lines, then `name: rx_bytes packets errs drop fifo
/// frame compressed multicast tx_bytes packets errs ...`.
pub fn parse_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if v.len() < 12 {
                return None;
            }
            Some(Interface {
                name: name.trim().to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            })
        })
        .collect()
}

/// The interfaces of the namespace pinned at `netns` (loopback left out, as kubelet
/// does).
pub fn interfaces(netns: &Path) -> std::io::Result<Vec<Interface>> {
    let f = std::fs::File::open(netns)?;
    let t = std::thread::Builder::new().name("berth-netstats".into()).spawn(move || -> std::io::Result<String> {
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })?;
    let text = t.join().map_err(|_| std::io::Error::other("network stats thread failed"))??;
    Ok(parse_dev(&text).into_iter().filter(|i| i.name != "lo").collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_is_parsed() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0: 123456     100    1    4    0     0          0         0    65432      90    2    5    0     0       0          0\n";
        let v = parse_dev(text);
        assert_eq!(v.len(), 2);
        let want = Interface {
            name: "eth0".into(),
            rx_bytes: 123456,
            rx_packets: 100,
            rx_errors: 1,
            rx_dropped: 4,
            tx_bytes: 65432,
            tx_packets: 90,
            tx_errors: 2,
            tx_dropped: 5,
        };
        assert_eq!(v[1], want);
    }

    #[test]
    fn our_own_namespace_can_be_read() {
        let v = interfaces(Path::new("/proc/self/ns/net")).unwrap();
        assert!(v.iter().all(|i| i.name != "lo"));
    }
}
