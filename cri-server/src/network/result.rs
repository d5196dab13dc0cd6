//! CNI results: conversion between the versions berth speaks and the pod IPs in them.
//!
//! 0.3.0 through 1.1.0 share one shape (`interfaces`, `ips`, `routes`, `dns`); they differ in
//! `ips[].version` ("4"/"6"), which 0.3.x/0.4.0 require and 1.0.0 removed. A legacy
//! 0.1.0/0.2.0 result (`ip4`/`ip6`) from an old plugin is lifted to that shape. Results are
//! converted to the list's version before they are chained as `prevResult` or cached, as
//! libcni does.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::config::version_cmp;

/// An empty result of `version` (what a list whose plugins print nothing yields).
pub fn empty(version: &str) -> Value {
    json!({ "cniVersion": version })
}

/// Parses a plugin's stdout as a result and converts it to `to`.
pub fn parse(bytes: &[u8], to: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("result is not JSON: {e}"))?;
    convert(v, to)
}

/// Converts a result object to version `to` (one of config::SUPPORTED_VERSIONS).
pub fn convert(v: Value, to: &str) -> Result<Value, String> {
    let Value::Object(mut o) = v else {
        return Err("result is not a JSON object".into());
    };
    let from = o.get("cniVersion").and_then(Value::as_str).ok_or("result has no cniVersion")?.to_string();
    if version_cmp(&from, "0.3.0").is_lt() {
        o = from_legacy(o)?;
    }
    if let Some(ips) = o.get_mut("ips") {
        let ips = ips.as_array_mut().ok_or("result \"ips\" is not an array")?;
        for ip in ips {
            let ip = ip.as_object_mut().ok_or("result ips[] entry is not an object")?;
            if version_cmp(to, "1.0.0").is_lt() {
                if !ip.contains_key("version") {
                    let a = ip.get("address").and_then(Value::as_str).unwrap_or("");
                    ip.insert("version".into(), json!(if a.contains(':') { "6" } else { "4" }));
                }
            } else {
                ip.remove("version");
            }
        }
    }
    o.insert("cniVersion".into(), json!(to));
    Ok(Value::Object(o))
}

/// `{ip4: {ip, gateway, routes}, ip6: …, dns}` → `{ips, routes, dns}`.
fn from_legacy(o: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for (k, ver) in [("ip4", "4"), ("ip6", "6")] {
        let Some(c) = o.get(k) else { continue };
        let addr = c.get("ip").and_then(Value::as_str).ok_or(format!("legacy result {k} has no ip"))?;
        let mut e = Map::new();
        e.insert("version".into(), json!(ver));
        e.insert("address".into(), json!(addr));
        if let Some(g) = c.get("gateway") {
            e.insert("gateway".into(), g.clone());
        }
        ips.push(Value::Object(e));
        if let Some(Value::Array(r)) = c.get("routes") {
            routes.extend(r.iter().cloned());
        }
    }
    let mut n = Map::new();
    n.insert("ips".into(), Value::Array(ips));
    if !routes.is_empty() {
        n.insert("routes".into(), Value::Array(routes));
    }
    if let Some(d) = o.get("dns") {
        n.insert("dns".into(), d.clone());
    }
    Ok(n)
}

/// The pod's IPs: those on the interface `ifname` inside the sandbox (an `ips[]` entry names
/// its interface by index), or every IP when the result ties none to an interface; IPv4 first.
pub fn pod_ips(v: &Value, ifname: &str) -> Vec<IpAddr> {
    let empty = Vec::new();
    let ifaces = v.get("interfaces").and_then(Value::as_array).unwrap_or(&empty);
    let ips = v.get("ips").and_then(Value::as_array).unwrap_or(&empty);
    let on_pod_if = |ip: &Value| -> Option<bool> {
        let i = ip.get("interface")?.as_u64()? as usize;
        let itf = ifaces.get(i)?;
        let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or("");
        Some(itf.get("name").and_then(Value::as_str) == Some(ifname) && !sandbox.is_empty())
    };
    let addr = |ip: &Value| -> Option<IpAddr> {
        let a = ip.get("address")?.as_str()?;
        a.split('/').next()?.parse().ok()
    };
    let tied = ips.iter().any(|ip| on_pod_if(ip).is_some());
    let mut out: Vec<IpAddr> = ips.iter().filter(|ip| !tied || on_pod_if(ip) == Some(true)).filter_map(addr).collect();
    out.sort_by_key(|a| a.is_ipv6());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape Debian's bridge + host-local print (0.3.1 / 0.4.0 carry ips[].version).
    const R031: &str = r#"{"cniVersion":"0.3.1","interfaces":[{"name":"bt0","mac":"aa:bb:cc:dd:ee:01"},{"name":"veth1","mac":"aa:bb:cc:dd:ee:02"},{"name":"eth0","mac":"aa:bb:cc:dd:ee:03","sandbox":"/var/run/netns/p"}],"ips":[{"version":"6","interface":2,"address":"fd00::5/64"},{"version":"4","interface":2,"address":"10.22.0.5/24","gateway":"10.22.0.1"},{"version":"4","interface":0,"address":"10.22.0.1/24"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
    const R100: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"interface":0,"address":"10.1.0.9/16","gateway":"10.1.0.1"}]}"#;

    #[test]
    fn ips_from_031_and_040() {
        for ver in ["0.3.1", "0.4.0"] {
            let raw = R031.replace("0.3.1", ver);
            let v = parse(raw.as_bytes(), ver).unwrap();
            assert_eq!(pod_ips(&v, "eth0"), vec!["10.22.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
        }
    }

    #[test]
    fn ips_from_100_and_untied() {
        let v = parse(R100.as_bytes(), "1.0.0").unwrap();
        assert_eq!(pod_ips(&v, "eth0"), vec!["10.1.0.9".parse::<IpAddr>().unwrap()]);
        let v = parse(br#"{"cniVersion":"1.0.0","ips":[{"address":"fd00::1/64"},{"address":"10.9.0.2/24"}]}"#, "1.0.0").unwrap();
        assert_eq!(pod_ips(&v, "eth0"), vec!["10.9.0.2".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()]);
        assert!(pod_ips(&empty("1.0.0"), "eth0").is_empty());
    }

    #[test]
    fn conversion_adds_and_drops_ip_version() {
        let down = parse(R100.as_bytes(), "0.4.0").unwrap();
        assert_eq!(down["cniVersion"], "0.4.0");
        assert_eq!(down["ips"][0]["version"], "4");
        let up = convert(parse(R031.as_bytes(), "0.3.1").unwrap(), "1.0.0").unwrap();
        assert_eq!(up["cniVersion"], "1.0.0");
        assert!(up["ips"].as_array().unwrap().iter().all(|i| i.get("version").is_none()));
        assert_eq!(up["interfaces"][2]["name"], "eth0");
    }

    #[test]
    fn legacy_is_lifted() {
        let v = parse(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.3.0.4/24","gateway":"10.3.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.3.0.1"]}}"#, "0.3.1").unwrap();
        assert_eq!(v["ips"][0]["address"], "10.3.0.4/24");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(pod_ips(&v, "eth0"), vec!["10.3.0.4".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_results() {
        assert!(parse(b"", "1.0.0").is_err());
        assert!(parse(b"[]", "1.0.0").is_err());
        assert!(parse(br#"{"ips":[]}"#, "1.0.0").unwrap_err().contains("cniVersion"));
        assert!(parse(br#"{"cniVersion":"1.0.0","ips":{}}"#, "1.0.0").is_err());
    }
}
