//! Config that follows from the fleet. The paper's management box ran Ganglia (one gmond
//! cluster per security group, each on its own port) and Nagios, and its users reached
//! hosts by name; cerveza knows the whole fleet, so it writes that config.
//!
//! Every generator is a pure function of a [`Fleet`] and its options, and its output is
//! sorted and stable, so it diffs cleanly. Values from the cloud (names, tags, security
//! groups) are untrusted: hostnames and addresses are validated when the fleet is built,
//! everything else is escaped or reduced to safe characters for the format at hand.

mod ansible;
pub mod ganglia;
mod nagios;
mod simple;

use std::collections::BTreeMap;
use std::net::IpAddr;

use cerveza_core::model::Instance;
use cerveza_core::{Hostname, Product, Region, Zone};
use serde::Deserialize;

pub use ganglia::ports as ganglia_ports;

/// One host as the generators see it: validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name.
    pub name: Hostname,
    /// `<name>.<product>.private`.
    pub fqdn: String,
    /// The host group (`dev-mysql*`).
    pub group: String,
    /// Zone, when known.
    pub zone: Option<Zone>,
    /// Region.
    pub region: Region,
    /// Profile, when tagged.
    pub profile: Option<String>,
    /// Private address.
    pub private_ip: Option<IpAddr>,
    /// Public address.
    pub public_ip: Option<IpAddr>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Instance id.
    pub instance_id: String,
    /// Instance type.
    pub instance_type: Option<String>,
    /// EC2 state.
    pub state: String,
}

/// The hosts of a product, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The product.
    pub product: Product,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// Instances left out, with the reason (bad hostname tag, duplicate name).
    pub skipped: Vec<String>,
}

impl Fleet {
    /// Builds the fleet from listed instances, dropping (and reporting) any whose tags
    /// or addresses are not valid.
    pub fn new(product: &Product, instances: &[Instance]) -> Self {
        let mut hosts: BTreeMap<Hostname, Host> = BTreeMap::new();
        let mut skipped = Vec::new();
        for i in instances.iter().filter(|i| !i.state.is_gone()) {
            let raw = i.host().unwrap_or_default();
            let Ok(name) = Hostname::parse(raw) else {
                skipped.push(format!("{}: invalid hostname tag {raw:?}", i.id));
                continue;
            };
            let ip = |s: &Option<String>| s.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
            let host = Host {
                fqdn: name.fqdn(product),
                group: name.group().to_string(),
                zone: i.zone.clone(),
                region: i.region.clone(),
                profile: i.profile().map(str::to_owned),
                private_ip: ip(&i.private_ip),
                public_ip: ip(&i.public_ip),
                security_groups: i.security_groups.clone(),
                instance_id: i.id.to_string(),
                instance_type: i.instance_type.clone(),
                state: i.state.to_string(),
                name: name.clone(),
            };
            if let Some(first) = hosts.get(&name) {
                skipped.push(format!("{}: {name} is also {}", i.id, first.instance_id));
                continue;
            }
            hosts.insert(name, host);
        }
        Self {
            product: product.clone(),
            hosts: hosts.into_values().collect(),
            skipped,
        }
    }
}

/// Which address of a host to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressKind {
    /// The private address (the paper reaches hosts through a VPN).
    #[default]
    Private,
    /// The public address.
    Public,
}

impl Host {
    /// The address of the given kind.
    pub fn address(&self, kind: AddressKind) -> Option<IpAddr> {
        match kind {
            AddressKind::Private => self.private_ip,
            AddressKind::Public => self.public_ip,
        }
    }
}

/// Options of every export (the `[export]` section of the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Options {
    /// Which address ssh-config, ansible and prometheus use.
    pub address: AddressKind,
    /// ssh `User`.
    pub ssh_user: Option<String>,
    /// ssh `ProxyJump` (a bastion or VPN box).
    pub jump_host: Option<String>,
    /// A region's own gateway, over `jump_host` for its hosts (the config's
    /// `[regions.<name>] jump-host`).
    #[serde(skip)]
    pub region_jump_hosts: std::collections::BTreeMap<String, String>,
    /// cerveza's known_hosts file: ssh-config then checks host keys against it by the
    /// host's fqdn (`HostKeyAlias`), as `cerveza remote` does (`[remote] known-hosts`).
    #[serde(skip)]
    pub known_hosts: Option<String>,
    /// Ganglia options.
    pub ganglia: ganglia::Options,
    /// Nagios options.
    pub nagios: nagios::Options,
    /// Prometheus options.
    pub prometheus: simple::PrometheusOptions,
}

/// The kinds of export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `~/.ssh/config` fragment.
    SshConfig,
    /// `/etc/hosts` lines.
    Hosts,
    /// gmetad data sources and a gmond.conf per cluster.
    Ganglia,
    /// Nagios hosts, hostgroups and services.
    Nagios,
    /// Prometheus file_sd JSON.
    Prometheus,
    /// Ansible YAML inventory.
    Ansible,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// File name (for multi-file exports) or the kind's usual name.
    pub name: String,
    /// Content.
    pub content: String,
}

/// Options that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export: {0}")]
pub struct ExportError(pub String);

/// Generates `kind` for `fleet`.
pub fn generate(kind: Kind, fleet: &Fleet, opts: &Options) -> Result<Vec<File>, ExportError> {
    // Output is stable whatever order the hosts came in: by name.
    let sorted;
    let fleet = if fleet.hosts.is_sorted_by(|a, b| a.name <= b.name) {
        fleet
    } else {
        let mut f = fleet.clone();
        f.hosts.sort_by(|a, b| a.name.cmp(&b.name));
        sorted = f;
        &sorted
    };
    let one = |name: &str, content: String| {
        Ok(vec![File {
            name: name.into(),
            content,
        }])
    };
    match kind {
        Kind::SshConfig => one("ssh_config", simple::ssh_config(fleet, opts)?),
        Kind::Hosts => one("hosts", simple::hosts(fleet)),
        Kind::Prometheus => one("targets.json", simple::prometheus(fleet, opts)),
        Kind::Ansible => one("inventory.yml", ansible::inventory(fleet, opts)),
        Kind::Nagios => one("cerveza.cfg", nagios::config(fleet, &opts.nagios)?),
        Kind::Ganglia => ganglia::files(fleet, &opts.ganglia),
    }
}

/// A name reduced to `[A-Za-z0-9_.-]` (others become `_`), for formats with no quoting.
pub(crate) fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

/// The header line every generated file starts with.
pub(crate) fn header(comment: &str, fleet: &Fleet) -> String {
    format!(
        "{comment} Generated by cerveza from product {} ({} hosts). Do not edit: run `cerveza export` again.\n",
        fleet.product,
        fleet.hosts.len()
    )
}
