//! `cerveza fleet export`: the fleet as it is, written as a fleet file that plans to no
//! change. Hosts of one name stem, profile and state share an entry; its `zones:` are
//! the zones they are in (a host already in one of an entry's zones stays there).

use std::collections::{BTreeMap, BTreeSet};

use super::file::DesiredState;
use super::plan::{seen, Survey};
use crate::model::InstanceState;
use crate::names::{Hostname, Product, ProfileName, Zone};
use crate::selection::fold_hostnames;

/// What the export could not write: hosts without a known profile or zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// The fleet file text.
    pub text: String,
    /// Hosts left out, with why.
    pub left_out: Vec<(Hostname, String)>,
    /// How many hosts it holds.
    pub hosts: usize,
}

/// A YAML scalar: plain when it cannot be read as anything but a string.
fn scalar(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.[],".contains(c))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// The fleet of `survey` as a fleet file.
pub fn export(product: &Product, survey: &Survey) -> Exported {
    let now = seen(&[], survey);
    // (stem, profile, state) → hosts with their zones.
    let mut groups: BTreeMap<(String, ProfileName, DesiredState), Vec<(Hostname, Zone)>> =
        BTreeMap::new();
    let mut left_out = Vec::new();
    for (host, have) in &now {
        let (Some(profile), Some(zone)) = (&have.profile, &have.zone) else {
            left_out.push((
                host.clone(),
                "no profile or zone known (no registry record, no cerveza:profile tag)".into(),
            ));
            continue;
        };
        let state = match (&have.instance, &have.state) {
            (None, _) => DesiredState::Terminated,
            (Some(_), Some(InstanceState::Stopped | InstanceState::Stopping)) => {
                DesiredState::Stopped
            }
            _ => DesiredState::Running,
        };
        let stem = host
            .as_str()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_owned();
        groups
            .entry((stem, profile.clone(), state))
            .or_default()
            .push((host.clone(), zone.clone()));
    }
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    for ((_, profile, state), hosts) in groups {
        count += hosts.len();
        let names: Vec<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
        let zones: BTreeSet<&Zone> = hosts.iter().map(|(_, z)| z).collect();
        let mut e = if names.len() == 1 {
            format!("  - name: {}\n", scalar(names[0]))
        } else {
            format!("  - names: {}\n", scalar(&fold_hostnames(&names)))
        };
        e += &format!("    profile: {}\n", scalar(profile.as_str()));
        if zones.len() == 1 {
            e += &format!(
                "    zone: {}\n",
                zones.iter().next().map(|z| z.as_str()).unwrap_or("")
            );
        } else {
            let list: Vec<&str> = zones.iter().map(|z| z.as_str()).collect();
            e += &format!("    zones: [{}]\n", list.join(", "));
        }
        if state != DesiredState::Running {
            e += &format!("    state: {}\n", state.name());
        }
        entries.push((names[0].to_owned(), e));
    }
    entries.sort();
    let mut text = format!(
        "# The fleet of product {product}, written by `cerveza fleet export`:\n# `cerveza plan` of this file changes nothing until the fleet or the file does.\n--- !Fleet\nproduct: {product}\n"
    );
    if entries.is_empty() {
        text += "hosts: []\n";
    } else {
        text += "hosts:\n";
        for (_, e) in entries {
            text += &e;
        }
    }
    for (h, why) in &left_out {
        text += &format!("# left out: {h}: {why}\n");
    }
    Exported {
        text,
        left_out,
        hosts: count,
    }
}
