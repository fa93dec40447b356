//! Ansible YAML inventory: groups by host group, zone, region, profile; host vars.

use yaml_serde::{Mapping, Value};

use crate::{header, Fleet, Options};

/// A group name Ansible accepts: `[A-Za-z0-9_]`, prefixed.
fn group(prefix: &str, s: &str) -> String {
    let body: String = s
        .trim_end_matches('*')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{body}")
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// The inventory.
pub fn inventory(fleet: &Fleet, opts: &Options) -> String {
    let mut hosts = Mapping::new();
    let mut children: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for h in &fleet.hosts {
        let mut vars = Mapping::new();
        if let Some(a) = h.address(opts.address) {
            vars.insert(s("ansible_host"), s(a.to_string()));
        }
        if let Some(u) = &opts.ssh_user {
            vars.insert(s("ansible_user"), s(u.clone()));
        }
        vars.insert(s("cerveza_fqdn"), s(h.fqdn.clone()));
        vars.insert(s("cerveza_group"), s(h.group.clone()));
        vars.insert(s("cerveza_region"), s(h.region.as_str()));
        if let Some(z) = &h.zone {
            vars.insert(s("cerveza_zone"), s(z.as_str()));
        }
        if let Some(p) = &h.profile {
            vars.insert(s("cerveza_profile"), s(p.clone()));
        }
        vars.insert(s("cerveza_instance_id"), s(h.instance_id.clone()));
        if let Some(ip) = h.private_ip {
            vars.insert(s("cerveza_private_ip"), s(ip.to_string()));
        }
        if let Some(ip) = h.public_ip {
            vars.insert(s("cerveza_public_ip"), s(ip.to_string()));
        }
        hosts.insert(s(h.name.as_str()), Value::Mapping(vars));
        children
            .entry(group("group", &h.group))
            .or_default()
            .push(h.name.as_str());
        children
            .entry(group("region", h.region.as_str()))
            .or_default()
            .push(h.name.as_str());
        if let Some(z) = &h.zone {
            children
                .entry(group("zone", z.as_str()))
                .or_default()
                .push(h.name.as_str());
        }
        if let Some(p) = &h.profile {
            children
                .entry(group("profile", p))
                .or_default()
                .push(h.name.as_str());
        }
        for sg in &h.security_groups {
            children
                .entry(group("sg", sg))
                .or_default()
                .push(h.name.as_str());
        }
    }
    let mut kids = Mapping::new();
    for (name, members) in children {
        let mut m = Mapping::new();
        for h in members {
            m.insert(s(h), Value::Null);
        }
        let mut g = Mapping::new();
        g.insert(s("hosts"), Value::Mapping(m));
        kids.insert(s(name), Value::Mapping(g));
    }
    let mut all = Mapping::new();
    let mut vars = Mapping::new();
    vars.insert(s("cerveza_product"), s(fleet.product.as_str()));
    all.insert(s("vars"), Value::Mapping(vars));
    all.insert(s("hosts"), Value::Mapping(hosts));
    all.insert(s("children"), Value::Mapping(kids));
    let mut root = Mapping::new();
    root.insert(s("all"), Value::Mapping(all));
    let body = yaml_serde::to_string(&Value::Mapping(root)).unwrap_or_default();
    format!("{}{body}", header("#", fleet))
}
