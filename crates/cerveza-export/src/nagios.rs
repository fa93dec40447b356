//! Nagios: a host per cerveza host, hostgroups by security group, host group, zone and
//! region, and the generic services of each cluster from a configurable template.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;

use crate::{header, safe_name, ExportError, Fleet};

/// One generic service, applied to a hostgroup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    /// Hostgroup it applies to (`all`, `sg-mysql`, `group-dev-mysql`, `zone-…`, `region-…`).
    pub hostgroup: String,
    /// `service_description`.
    pub description: String,
    /// `check_command`.
    pub check: String,
}

/// Nagios options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Options {
    /// Host template every host `use`s.
    pub host_template: String,
    /// Service template every service `use`s.
    pub service_template: String,
    /// Generic services.
    pub services: Vec<Service>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host_template: "linux-server".into(),
            service_template: "generic-service".into(),
            services: vec![
                Service {
                    hostgroup: "all".into(),
                    description: "PING".into(),
                    check: "check_ping!100.0,20%!500.0,60%".into(),
                },
                Service {
                    hostgroup: "all".into(),
                    description: "SSH".into(),
                    check: "check_ssh".into(),
                },
            ],
        }
    }
}

fn value(what: &str, v: &str) -> Result<(), ExportError> {
    if v.is_empty() || v.chars().any(|c| c.is_control() || c == ';') {
        return Err(ExportError(format!(
            "nagios {what} {v:?} must be one line without ';'"
        )));
    }
    Ok(())
}

/// The hostgroup names of a host, the product's `all` group first.
fn groups(fleet: &Fleet, h: &crate::Host) -> Vec<(String, String)> {
    let mut g = vec![(
        format!("{}-all", fleet.product),
        format!("every host of product {}", fleet.product),
    )];
    for sg in &h.security_groups {
        g.push((
            format!("sg-{}", safe_name(sg)),
            format!("security group {}", safe_name(sg)),
        ));
    }
    g.push((
        format!("group-{}", h.group.trim_end_matches('*')),
        format!("host group {}", h.group),
    ));
    if let Some(z) = &h.zone {
        g.push((format!("zone-{z}"), format!("zone {z}")));
    }
    g.push((
        format!("region-{}", h.region),
        format!("region {}", h.region),
    ));
    g
}

/// The object definitions.
pub fn config(fleet: &Fleet, opts: &Options) -> Result<String, ExportError> {
    value("host-template", &opts.host_template)?;
    value("service-template", &opts.service_template)?;
    let mut out = header("#", fleet);
    let mut all_groups: BTreeMap<String, String> = BTreeMap::new();
    for h in &fleet.hosts {
        let g = groups(fleet, h);
        let address = h
            .private_ip
            .map(|a| a.to_string())
            .unwrap_or_else(|| h.fqdn.clone());
        let _ = write!(
            out,
            "\ndefine host {{\n    use                 {}\n    host_name           {}\n    alias               {}\n    address             {address}\n    hostgroups          {}\n}}\n",
            opts.host_template,
            h.name,
            h.fqdn,
            g.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(",")
        );
        all_groups.extend(g);
    }
    for (name, alias) in &all_groups {
        let _ = write!(out, "\ndefine hostgroup {{\n    hostgroup_name      {name}\n    alias               {alias}\n}}\n");
    }
    let mut seen = BTreeSet::new();
    for s in &opts.services {
        value("service hostgroup", &s.hostgroup)?;
        value("service description", &s.description)?;
        value("service check", &s.check)?;
        let hg = if s.hostgroup == "all" {
            format!("{}-all", fleet.product)
        } else {
            s.hostgroup.clone()
        };
        // A service for a hostgroup no host is in would make nagios refuse the config.
        if !all_groups.contains_key(&hg) || !seen.insert((hg.clone(), s.description.clone())) {
            continue;
        }
        let _ = write!(
            out,
            "\ndefine service {{\n    use                 {}\n    hostgroup_name      {hg}\n    service_description {}\n    check_command       {}\n}}\n",
            opts.service_template, s.description, s.check
        );
    }
    Ok(out)
}
