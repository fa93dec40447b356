//! ssh_config, /etc/hosts and Prometheus file_sd: one entry per host.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{header, ExportError, Fleet, Options};

/// Prometheus options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PrometheusOptions {
    /// Port of the exporter on every host (node_exporter: 9100).
    pub port: u16,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self { port: 9100 }
    }
}

/// A config value going into ssh_config: one word, no quoting games.
fn ssh_word(what: &str, v: &str) -> Result<String, ExportError> {
    if v.is_empty()
        || v.len() > 255
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '#'))
    {
        return Err(ExportError(format!(
            "{what} {v:?} must be one word without quotes or '#'"
        )));
    }
    Ok(v.to_owned())
}

/// `Host name fqdn` blocks.
pub fn ssh_config(fleet: &Fleet, opts: &Options) -> Result<String, ExportError> {
    let user = opts
        .ssh_user
        .as_deref()
        .map(|u| ssh_word("ssh-user", u))
        .transpose()?;
    let jump = opts
        .jump_host
        .as_deref()
        .map(|j| ssh_word("jump-host", j))
        .transpose()?;
    let known_hosts = opts
        .known_hosts
        .as_deref()
        .map(|k| ssh_word("known-hosts", k))
        .transpose()?;
    let mut region_jump = std::collections::BTreeMap::new();
    for (region, j) in &opts.region_jump_hosts {
        region_jump.insert(region.as_str(), ssh_word("jump-host", j)?);
    }
    let mut out = header("#", fleet);
    for h in &fleet.hosts {
        let Some(addr) = h.address(opts.address) else {
            let _ = writeln!(out, "\n# {}: no {:?} address", h.name, opts.address);
            continue;
        };
        let _ = writeln!(out, "\nHost {} {}", h.name, h.fqdn);
        let _ = writeln!(out, "    HostName {addr}");
        if let Some(u) = &user {
            let _ = writeln!(out, "    User {u}");
        }
        if let Some(j) = region_jump.get(h.region.as_str()).or(jump.as_ref()) {
            let _ = writeln!(out, "    ProxyJump {j}");
        }
        if let Some(k) = &known_hosts {
            let _ = writeln!(out, "    HostKeyAlias {}", h.fqdn);
            let _ = writeln!(out, "    UserKnownHostsFile {k}");
            let _ = writeln!(out, "    StrictHostKeyChecking yes");
        }
    }
    Ok(out)
}

/// `/etc/hosts` lines: private addresses under `.private`, public under `.public`.
pub fn hosts(fleet: &Fleet) -> String {
    let mut out = header("#", fleet);
    for h in &fleet.hosts {
        if let Some(ip) = h.private_ip {
            let _ = writeln!(out, "{ip}\t{} {}", h.fqdn, h.name);
        }
    }
    for h in &fleet.hosts {
        if let Some(ip) = h.public_ip {
            let _ = writeln!(out, "{ip}\t{}.{}.public", h.name, fleet.product);
        }
    }
    out
}

#[derive(Serialize)]
struct Target<'a> {
    targets: Vec<String>,
    labels: std::collections::BTreeMap<&'static str, &'a str>,
}

/// file_sd JSON: one target group per host, labelled.
pub fn prometheus(fleet: &Fleet, opts: &Options) -> String {
    let groups: Vec<Target<'_>> = fleet
        .hosts
        .iter()
        .filter_map(|h| {
            let addr = h.address(opts.address)?;
            let target = match addr {
                std::net::IpAddr::V4(a) => format!("{a}:{}", opts.prometheus.port),
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", opts.prometheus.port),
            };
            let mut labels = std::collections::BTreeMap::from([
                ("hostname", h.name.as_str()),
                ("fqdn", h.fqdn.as_str()),
                ("group", h.group.as_str()),
                ("product", fleet.product.as_str()),
                ("region", h.region.as_str()),
                ("instance_id", h.instance_id.as_str()),
            ]);
            if let Some(z) = &h.zone {
                labels.insert("zone", z.as_str());
            }
            if let Some(p) = &h.profile {
                labels.insert("profile", p.as_str());
            }
            Some(Target {
                targets: vec![target],
                labels,
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}
