//! Ganglia as in the paper: EC2 has no multicast, so the management box runs one gmond
//! per security group, each on its own port, and one gmetad collecting them all. Hosts
//! report (unicast) to the gmond of their cluster.
//!
//! Files: `gmetad.conf`; `gmond-<cluster>.conf` (the collector on the management box);
//! `gmond-client-<cluster>.conf` (what hosts of that cluster run).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::{header, safe_name, ExportError, File, Fleet};

/// Ganglia options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Options {
    /// First port; clusters get ports in `base-port .. base-port + span`.
    pub base_port: u16,
    /// Size of the port range.
    pub span: u16,
    /// Explicit ports per security group (win over the computed ones).
    pub ports: BTreeMap<String, u16>,
    /// Where hosts send their metrics; `ganglia.<product>.private` when unset.
    pub collector: Option<String>,
    /// Address the collector gmonds receive the hosts' metrics on (UDP): every
    /// address of the management box unless narrowed to the one hosts send to.
    pub listen: String,
    /// Address the collector gmonds answer gmetad's polls on (TCP) and gmetad polls:
    /// gmetad runs on the management box, so loopback.
    pub poll_address: String,
    /// gmetad's grid name; the product when unset.
    pub grid: Option<String>,
    /// gmetad's RRD directory.
    pub rrd_dir: String,
    /// gmetad's XML port.
    pub xml_port: u16,
    /// gmetad's interactive port.
    pub interactive_port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base_port: 8630,
            span: 100,
            ports: BTreeMap::new(),
            collector: None,
            listen: "0.0.0.0".into(),
            poll_address: "127.0.0.1".into(),
            grid: None,
            rrd_dir: "/var/lib/ganglia/rrds".into(),
            xml_port: 8651,
            interactive_port: 8652,
        }
    }
}

/// The cluster of a host: its alphabetically first security group.
fn cluster(h: &crate::Host) -> String {
    h.security_groups
        .iter()
        .min()
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// A stable port per cluster: explicit ones first, then a hash of the name within the
/// span, probing upward on collision (in name order). A cluster keeps its port when
/// others come and go, unless two names collide.
pub fn ports(clusters: &[String], opts: &Options) -> Result<BTreeMap<String, u16>, ExportError> {
    let mut out: BTreeMap<String, u16> = BTreeMap::new();
    let mut used: std::collections::BTreeSet<u16> = opts.ports.values().copied().collect();
    for c in clusters {
        if let Some(p) = opts.ports.get(c) {
            out.insert(c.clone(), *p);
        }
    }
    let span = opts.span.max(1);
    let rest: Vec<&String> = clusters.iter().filter(|c| !out.contains_key(*c)).collect();
    for c in rest {
        let mut h: u32 = 0x811c_9dc5;
        for b in c.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        let start = (h % u32::from(span)) as u16;
        let port = (0..span)
            .map(|i| opts.base_port.saturating_add((start + i) % span))
            .find(|p| !used.contains(p))
            .ok_or_else(|| {
                ExportError(format!(
                    "more clusters than the {span} ports from {}",
                    opts.base_port
                ))
            })?;
        used.insert(port);
        out.insert(c.clone(), port);
    }
    Ok(out)
}

/// Escapes a string for a quoted gmond/gmetad value.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' || c == '\\' { '_' } else { c })
        .collect()
}

/// The Ganglia files.
pub fn files(fleet: &Fleet, opts: &Options) -> Result<Vec<File>, ExportError> {
    let mut members: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for h in &fleet.hosts {
        members.entry(cluster(h)).or_default().push(h.name.as_str());
    }
    let names: Vec<String> = members.keys().cloned().collect();
    let ports = ports(&names, opts)?;
    let collector = opts
        .collector
        .clone()
        .unwrap_or_else(|| format!("ganglia.{}.private", fleet.product));
    let grid = quoted(opts.grid.as_deref().unwrap_or(fleet.product.as_str()));
    let listen = quoted(&opts.listen);
    let poll = quoted(&opts.poll_address);

    let mut gmetad = header("#", fleet);
    let _ = writeln!(gmetad, "gridname \"{grid}\"");
    for (c, port) in &ports {
        let _ = writeln!(gmetad, "# {}: {}", safe_name(c), members[c].join(" "));
        let _ = writeln!(gmetad, "data_source \"{}\" {poll}:{port}", quoted(c));
    }
    let _ = writeln!(gmetad, "rrd_rootdir \"{}\"", quoted(&opts.rrd_dir));
    let _ = writeln!(
        gmetad,
        "xml_port {}\ninteractive_port {}",
        opts.xml_port, opts.interactive_port
    );
    let mut files = vec![File {
        name: "gmetad.conf".into(),
        content: gmetad,
    }];

    for (c, port) in &ports {
        let cname = quoted(c);
        let common = format!(
            "globals {{\n  daemonize = yes\n  setuid = no\n  debug_level = 0\n  max_udp_msg_len = 1472\n  mute = {mute}\n  deaf = {deaf}\n  host_dmax = 86400\n  cleanup_threshold = 300\n  send_metadata_interval = 60\n}}\ncluster {{\n  name = \"{cname}\"\n  owner = \"{}\"\n}}\n",
            quoted(fleet.product.as_str()),
            mute = "{mute}",
            deaf = "{deaf}",
        );
        let mut server = header("#", fleet);
        server.push_str(&common.replace("{mute}", "yes").replace("{deaf}", "no"));
        let _ = write!(
            server,
            "udp_recv_channel {{\n  bind = {listen}\n  port = {port}\n}}\ntcp_accept_channel {{\n  bind = {poll}\n  port = {port}\n}}\n"
        );
        files.push(File {
            name: format!("gmond-{}.conf", safe_name(c)),
            content: server,
        });

        let mut client = header("#", fleet);
        client.push_str(&common.replace("{mute}", "no").replace("{deaf}", "yes"));
        let _ = write!(
            client,
            "udp_send_channel {{\n  host = {}\n  port = {port}\n  ttl = 1\n}}\nmodules {{\n  module {{\n    name = \"core_metrics\"\n  }}\n  module {{\n    name = \"load_module\"\n    path = \"modload.so\"\n  }}\n}}\ncollection_group {{\n  collect_once = yes\n  time_threshold = 60\n  metric {{\n    name = \"heartbeat\"\n  }}\n}}\ncollection_group {{\n  collect_every = 20\n  time_threshold = 60\n  metric {{\n    name = \"load_one\"\n    value_threshold = \"1.0\"\n  }}\n}}\n",
            quoted(&collector)
        );
        files.push(File {
            name: format!("gmond-client-{}.conf", safe_name(c)),
            content: client,
        });
    }
    Ok(files)
}
