//! The cloud-side checks: judgements over facts read from the APIs and the config.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use cerveza_core::model::{
    Address, HostRecord, Instance, InstanceState, SecurityRule, Volume, VolumeState,
};
use serde::Serialize;

use crate::host::uri_host;
use crate::Finding;

/// The host whose private address `ip` is, among the fleet.
fn owner<'i>(instances: &'i [Instance], ip: &str) -> Option<&'i Instance> {
    instances
        .iter()
        .find(|i| i.private_ip.as_deref() == Some(ip) || i.public_ip.as_deref() == Some(ip))
}

/// Rules that name one private address: a fleet host's (which changes when it is
/// relaunched), or one no host has any more (the rule already points at nothing).
pub fn security_groups(rules: &[SecurityRule], instances: &[Instance]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in rules {
        let Some((ip, bits)) = r.cidr.split_once('/') else {
            continue;
        };
        let Ok(v4) = ip.parse::<Ipv4Addr>() else {
            continue;
        };
        if bits != "32" || !v4.is_private() {
            continue;
        }
        let whose = match owner(instances, ip).and_then(Instance::host) {
            Some(h) => format!("{h}'s private address, which changes when it is relaunched"),
            None => "a private address no host of the fleet has now".into(),
        };
        let dir = if r.direction == "egress" {
            "to"
        } else {
            "from"
        };
        out.push(Finding::new(
            format!("{} ({}, {})", r.group_id, r.group_name, r.region),
            format!("{} {} {dir} {}: {whose}", r.direction, r.traffic, r.cidr),
        ));
    }
    out
}

/// The configuration the paper's single points of failure hide in.
#[derive(Debug, Clone, Default)]
pub struct ConfigFacts {
    /// `[directory] uris` (empty: no directory).
    pub directory_uris: Vec<String>,
    /// The hosts' nslcd URIs (`[userdata] ldap-client-uri`; empty: not configured).
    pub client_uris: Vec<String>,
    /// The hosts' nameservers (`[userdata] nameservers`; empty: not configured).
    pub nameservers: Vec<String>,
    /// The product, to read `<host>.<product>.private` names.
    pub product: String,
}

/// The region of a server named by address or by `<host>.<product>.private|public`.
fn region_of(server: &str, product: &str, instances: &[Instance]) -> Option<String> {
    if server.parse::<IpAddr>().is_ok() {
        return owner(instances, server).map(|i| i.region.to_string());
    }
    let host = server
        .strip_suffix(&format!(".{product}.private"))
        .or_else(|| server.strip_suffix(&format!(".{product}.public")))?;
    instances
        .iter()
        .find(|i| i.host() == Some(host))
        .map(|i| i.region.to_string())
}

/// One server, or servers that all live in one region of the fleet.
pub fn config_spof(facts: &ConfigFacts, instances: &[Instance]) -> Vec<Finding> {
    let mut out = Vec::new();
    /// A config key, its servers, what stops with them, how to read a server's host.
    type ServerList<'a> = (&'a str, &'a [String], &'a str, fn(&str) -> &str);
    let lists: [ServerList<'_>; 3] = [
        (
            "[directory] uris",
            &facts.directory_uris,
            "grants and LDAP-served DNS names stop with it",
            uri_host,
        ),
        (
            "[userdata] ldap-client-uri",
            &facts.client_uris,
            "every host's LDAP logins stop with it",
            uri_host,
        ),
        (
            "[userdata] nameservers",
            &facts.nameservers,
            "every host's lookups stop with it",
            |s| s,
        ),
    ];
    for (key, servers, consequence, host_of) in lists {
        match servers {
            [] => {}
            [one] => out.push(Finding::new(
                "config",
                format!("{key} names one server ({one}): {consequence}"),
            )),
            many => {
                let regions: Option<BTreeSet<String>> = many
                    .iter()
                    .map(|s| region_of(host_of(s), &facts.product, instances))
                    .collect();
                if let Some(regions) = regions.filter(|r| r.len() == 1) {
                    let region = regions.into_iter().next().unwrap_or_default();
                    out.push(Finding::new(
                        "config",
                        format!(
                            "{key} names {} servers, all in {region}: when that region is down, {consequence}",
                            many.len()
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// What the registry table has to survive its region.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryFacts {
    /// The table.
    pub table: String,
    /// Its home region.
    pub region: String,
    /// Point-in-time recovery is on.
    pub point_in_time_recovery: bool,
    /// Regions of its replicas.
    pub replicas: Vec<String>,
    /// The replicas are strongly consistent (MRSC).
    pub strong: bool,
}

/// Backups and replicas of the registry, and what still works without its region.
pub fn registry(f: &RegistryFacts) -> Vec<Finding> {
    let subject = format!("table {} ({})", f.table, f.region);
    let mut out = Vec::new();
    if !f.point_in_time_recovery {
        out.push(Finding::new(
            &subject,
            "no point-in-time recovery: a bad write or a deleted table cannot be undone",
        ));
    }
    if f.replicas.is_empty() {
        out.push(Finding::new(
            &subject,
            format!(
                "no replica: while {} is down, new hostnames cannot be claimed and `terminate --forget` fails (list, start of known hosts, stop and remote go on from the instances' tags)",
                f.region
            ),
        ));
    } else if !f.strong {
        out.push(Finding::new(
            &subject,
            format!(
                "replicas in {} are eventually consistent (MREC): two regions could claim one name; use multi-Region strong consistency",
                f.replicas.join(", ")
            ),
        ));
    }
    out
}

/// Up, down or gone: states a record and an instance may differ in for a moment
/// (pending and running) count as one.
fn phase(s: &InstanceState) -> &'static str {
    match s {
        InstanceState::Pending | InstanceState::Running => "running",
        InstanceState::Stopping | InstanceState::Stopped => "stopped",
        InstanceState::ShuttingDown | InstanceState::Terminated => "terminated",
        InstanceState::Other(_) => "unknown",
    }
}

/// Records whose host's live instance (by tags) is another, or in another phase,
/// profile or zone; and live instances without a record. Hosts of regions that could
/// not be listed (`unlisted`) are not judged.
pub fn registry_tags(
    records: &[HostRecord],
    instances: &[Instance],
    unlisted: &[String],
) -> Vec<Finding> {
    let live: BTreeMap<&str, &Instance> = instances
        .iter()
        .filter(|i| phase(&i.state) != "terminated")
        .filter_map(|i| Some((i.host()?, i)))
        .collect();
    let mut out = Vec::new();
    for r in records {
        let host = r.hostname.as_str();
        if unlisted.iter().any(|u| u == r.region().as_str()) {
            continue;
        }
        let said = format!(
            "{} {}",
            phase(&r.state),
            r.instance_id.as_ref().map_or("-", |i| i.as_str())
        );
        let Some(i) = live.get(host) else {
            if phase(&r.state) != "terminated" {
                out.push(Finding::new(
                    host,
                    format!("the record says {said}; no live instance has its tags"),
                ));
            }
            continue;
        };
        let mut diffs = Vec::new();
        if r.instance_id.as_ref() != Some(&i.id) || phase(&r.state) != phase(&i.state) {
            diffs.push(format!(
                "the record says {said}, its tags are on {} {}",
                phase(&i.state),
                i.id
            ));
        }
        if let Some(p) = i.profile().filter(|p| *p != r.profile.as_str()) {
            diffs.push(format!(
                "profile {} in the record, {p} in the tags",
                r.profile
            ));
        }
        if let Some(z) = i.zone.as_ref().filter(|z| **z != r.zone) {
            diffs.push(format!("zone {} in the record, {z} in the cloud", r.zone));
        }
        if !diffs.is_empty() {
            out.push(Finding::new(host, diffs.join("; ")));
        }
    }
    let known: BTreeSet<&str> = records.iter().map(|r| r.hostname.as_str()).collect();
    for (host, i) in &live {
        if !known.contains(host) {
            out.push(Finding::new(
                *host,
                format!("{} {} has its tags but no record", phase(&i.state), i.id),
            ));
        }
    }
    out
}

/// Data volumes that are attached to nothing, older than `max_age_days`, of a host
/// with no live instance.
pub fn orphan_volumes(
    volumes: &[Volume],
    instances: &[Instance],
    now: i64,
    max_age_days: u64,
) -> Vec<Finding> {
    let live: BTreeSet<&str> = instances
        .iter()
        .filter(|i| phase(&i.state) != "terminated")
        .filter_map(Instance::host)
        .collect();
    let mut out = Vec::new();
    for v in volumes {
        if v.state != VolumeState::Available || v.attached_to.is_some() {
            continue;
        }
        let host = v.host().unwrap_or("?");
        if live.contains(host) {
            continue;
        }
        let Some(age) = v.created.map(|c| (now - c).max(0) as u64 / 86_400) else {
            continue;
        };
        if age < max_age_days {
            continue;
        }
        out.push(Finding::new(
            format!("{} ({})", v.id, v.region),
            format!(
                "{} GiB for {host}{}, created {age} day(s) ago, attached to nothing; {host} has no live instance",
                v.size_gb,
                v.device().map(|d| format!(" {d}")).unwrap_or_default()
            ),
        ));
    }
    out
}

/// Hosts with data volumes whose newest complete backup set (in any region) is older
/// than `max_age` seconds, or that have none; and, for each region of `copy_to`, hosts
/// whose newest complete set has no complete copy there. A host whose every data
/// volume was replaced by a restore is judged by the volumes it has now.
pub fn backups(
    volumes: &[Volume],
    sets: &[cerveza_core::backup::BackupSet],
    now: i64,
    max_age: i64,
    copy_to: &[cerveza_core::names::Region],
) -> Vec<Finding> {
    use cerveza_core::backup::SetState;
    // Hosts with data, and where it lives.
    let mut with_data: BTreeMap<&str, &cerveza_core::names::Region> = BTreeMap::new();
    for v in volumes.iter().filter(|v| v.device().is_some()) {
        if !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted) {
            if let Some(h) = v.host() {
                with_data.insert(h, &v.region);
            }
        }
    }
    let age = |secs: i64| {
        if secs >= 2 * 86_400 {
            format!("{} days", secs / 86_400)
        } else {
            format!("{} hours", secs / 3_600)
        }
    };
    let mut out = Vec::new();
    for (host, region) in with_data {
        let complete = |s: &&cerveza_core::backup::BackupSet| {
            s.host == host && s.state() == SetState::Complete
        };
        // The newest complete set taken where the data lives (copies carry its time).
        let newest = sets
            .iter()
            .filter(complete)
            .filter(|s| &s.region == region)
            .max_by_key(|s| (s.started(), s.id.clone()))
            .or_else(|| {
                sets.iter()
                    .filter(complete)
                    .max_by_key(|s| (s.started(), s.id.clone()))
            });
        let Some(newest) = newest else {
            out.push(Finding::new(
                host,
                format!("its data ({region}) has no complete backup set"),
            ));
            continue;
        };
        let taken = newest.started().unwrap_or(0);
        if now - taken > max_age {
            out.push(Finding::new(
                host,
                format!(
                    "its newest complete backup set, {} ({}), was taken {} ago (at most {} wanted)",
                    newest.id,
                    newest.region,
                    age(now - taken),
                    age(max_age)
                ),
            ));
        }
        for dest in copy_to.iter().filter(|r| *r != region) {
            let copied = sets
                .iter()
                .filter(complete)
                .any(|s| s.id == newest.id && &s.region == dest);
            if !copied {
                out.push(Finding::new(
                    host,
                    format!(
                        "its newest complete backup set, {}, has no complete copy in {dest} ([backup] copy-to)",
                        newest.id
                    ),
                ));
            }
        }
    }
    out
}

/// An Elastic IP with its region and host tag.
#[derive(Debug, Clone)]
pub struct TaggedAddress {
    /// Its region.
    pub region: String,
    /// The host it was allocated for.
    pub host: Option<String>,
    /// The address.
    pub address: Address,
}

/// Elastic IPs associated with nothing.
pub fn idle_addresses(addresses: &[TaggedAddress]) -> Vec<Finding> {
    addresses
        .iter()
        .filter(|a| a.address.instance.is_none())
        .map(|a| {
            Finding::new(
                format!("{} ({}, {})", a.address.ip, a.address.allocation, a.region),
                format!(
                    "allocated for {}, associated with nothing",
                    a.host.as_deref().unwrap_or("no host")
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// Live instances whose metadata service still answers without a session token.
pub fn imds(instances: &[Instance]) -> Vec<Finding> {
    instances
        .iter()
        .filter(|i| !i.state.is_gone() && i.imds_v1 == Some(true))
        .map(|i| {
            Finding::new(
                i.host().unwrap_or(i.id.as_str()),
                format!(
                    "{} ({}) allows IMDSv1 (HttpTokens optional)",
                    i.id, i.region
                ),
            )
        })
        .collect()
}
