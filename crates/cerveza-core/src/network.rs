//! Where a host launches inside its region: the VPC, a subnet of its zone, and its
//! security groups by id.
//!
//! A region's VPC is the one the config names (`[regions.<name>] vpc = "vpc-…"`), or
//! the region's default VPC. Many accounts have no default VPC (organisations delete
//! it), and security group *names* are only valid in a default VPC, so a launch always
//! sends a subnet and group ids, resolved here from one read of the VPC's subnets and
//! groups per region and command.
//!
//! The subnet of a host in zone Z, in this order:
//! 1. the profile's `subnets: {Z: subnet-…}`, which must be a subnet of the VPC in Z;
//! 2. otherwise the VPC's subnets in Z that carry every `subnet-tags:` of the profile;
//!    among several, the default subnet of the zone (default VPCs have one), then
//!    subnets with free addresses, then the lowest subnet id: the same host gets the
//!    same subnet on every launch while the VPC does not change.

use std::collections::BTreeMap;

use crate::names::{Region, Zone};
use crate::profile::InstanceProfile;

/// A VPC's subnets and security groups, as one region's read found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// `vpc-…`.
    pub vpc_id: String,
    /// Whether it is the region's default VPC.
    pub is_default: bool,
    /// Its subnets.
    pub subnets: Vec<Subnet>,
    /// Its security groups.
    pub groups: Vec<SecurityGroup>,
}

/// One subnet of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// `subnet-…`.
    pub id: String,
    /// Its zone.
    pub zone: Zone,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Whether instances launched into it get a public IPv4 address.
    pub public_ip_on_launch: bool,
    /// The default subnet of its zone (default VPCs only).
    pub default_for_az: bool,
    /// Free IPv4 addresses.
    pub available_ips: u32,
}

/// One security group of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `sg-…`.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Where one host launches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The VPC.
    pub vpc_id: String,
    /// The subnet, in the host's zone.
    pub subnet_id: String,
    /// Security group ids (empty: the VPC's default group).
    pub group_ids: Vec<String>,
    /// A public IPv4 address or not; `None`: as the subnet says.
    pub public_ip: Option<bool>,
}

/// Whether `s` is an EC2 id with `prefix` (`subnet-`, `sg-`, `vpc-`): 8 or 17 hex digits.
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// What EC2 would refuse in a profile's security group entry (a name or an id).
pub fn group_problem(g: &str) -> Option<&'static str> {
    if g.starts_with("sg-") {
        return (!is_id(g, "sg-"))
            .then_some("an id is sg- and 8 or 17 hex digits (a name cannot start with sg-)");
    }
    if g.is_empty() || g.chars().count() > 255 {
        return Some("a name has 1 to 255 characters");
    }
    None
}

/// Why a region has no VPC to launch into: no default VPC (`vpc` `None`), or the
/// configured one does not exist.
pub fn no_such_vpc(region: &Region, vpc: Option<&str>) -> String {
    match vpc {
        None => format!(
            "region {region} has no default VPC (many accounts delete it): name the VPC to launch into with `[regions.{region}] vpc = \"vpc-…\"` in the config"
        ),
        Some(v) => {
            format!("VPC {v} (the config's [regions.{region}] vpc) does not exist in {region}")
        }
    }
}

fn describe_tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a host of `profile` launches in `zone` of `network`, or why it cannot: the
/// error names the zone, the VPC, the tags or groups asked for and what exists.
pub fn place(
    profile: &InstanceProfile,
    zone: &Zone,
    network: &Network,
) -> Result<Placement, String> {
    let vpc = &network.vpc_id;
    let subnet = match profile.subnets.get(zone) {
        Some(id) => match network.subnets.iter().find(|s| &s.id == id) {
            None => {
                return Err(format!(
                    "subnet {id} (profile {}, subnets: {zone}) is not a subnet of VPC {vpc}",
                    profile.name
                ))
            }
            Some(s) if &s.zone != zone => {
                return Err(format!(
                    "subnet {id} (profile {}, subnets: {zone}) is in zone {}, not {zone}",
                    profile.name, s.zone
                ))
            }
            Some(s) => s,
        },
        None => choose_subnet(profile, zone, network)?,
    };
    let mut group_ids = Vec::new();
    for g in &profile.security_groups {
        let found = if g.starts_with("sg-") {
            network.groups.iter().find(|sg| &sg.id == g)
        } else {
            network.groups.iter().find(|sg| &sg.name == g)
        };
        match found {
            Some(sg) => {
                if !group_ids.contains(&sg.id) {
                    group_ids.push(sg.id.clone());
                }
            }
            None => {
                let mut names: Vec<&str> =
                    network.groups.iter().map(|sg| sg.name.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                return Err(format!(
                    "security group {g} (profile {}) is not in VPC {vpc}; its groups: {}",
                    profile.name,
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
    }
    Ok(Placement {
        vpc_id: vpc.clone(),
        subnet_id: subnet.id.clone(),
        group_ids,
        public_ip: profile.public_ip,
    })
}

fn choose_subnet<'n>(
    profile: &InstanceProfile,
    zone: &Zone,
    network: &'n Network,
) -> Result<&'n Subnet, String> {
    let vpc = &network.vpc_id;
    let in_zone: Vec<&Subnet> = network.subnets.iter().filter(|s| &s.zone == zone).collect();
    let mut fit: Vec<&Subnet> = in_zone
        .iter()
        .copied()
        .filter(|s| {
            profile
                .subnet_tags
                .iter()
                .all(|(k, v)| s.tags.get(k) == Some(v))
        })
        .collect();
    // Default subnet first, then free addresses, then the lowest id: stable.
    fit.sort_by_key(|s| (!s.default_for_az, s.available_ips == 0, s.id.clone()));
    if let Some(s) = fit.first() {
        return Ok(s);
    }
    if in_zone.is_empty() {
        let mut zones: Vec<&str> = network.subnets.iter().map(|s| s.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        return Err(format!(
            "VPC {vpc} has no subnet in zone {zone} (it has subnets in: {})",
            if zones.is_empty() {
                "no zone".into()
            } else {
                zones.join(", ")
            }
        ));
    }
    let seen: Vec<String> = in_zone
        .iter()
        .map(|s| {
            if s.tags.is_empty() {
                format!("{} (no tags)", s.id)
            } else {
                format!("{} ({})", s.id, describe_tags(&s.tags))
            }
        })
        .collect();
    Err(format!(
        "no subnet of VPC {vpc} in zone {zone} carries the tags {} (profile {} subnet-tags); its subnets there: {}",
        describe_tags(&profile.subnet_tags),
        profile.name,
        seen.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ProfileSet;

    fn profile_named(name: &str) -> InstanceProfile {
        let yaml = format!(
            "--- !InstanceProfile\nname: {name}\ndesc: d\naws: !InstanceAws\n  ami: {{ us-east-1: ami-00000001 }}\n  instance-type: t3.small\n"
        );
        let set = ProfileSet::from_sources(&[("p.yaml".into(), yaml)]).unwrap();
        set.instance(name).unwrap().clone()
    }

    fn subnet(id: &str, zone: &str, tags: &[(&str, &str)]) -> Subnet {
        Subnet {
            id: id.into(),
            zone: Zone::parse(zone).unwrap(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            public_ip_on_launch: false,
            default_for_az: false,
            available_ips: 250,
        }
    }

    fn network() -> Network {
        Network {
            vpc_id: "vpc-0a1b2c3d".into(),
            is_default: false,
            subnets: vec![
                subnet("subnet-000000b2", "us-east-1a", &[("tier", "private")]),
                subnet("subnet-000000a1", "us-east-1a", &[("tier", "public")]),
                subnet("subnet-000000a3", "us-east-1a", &[("tier", "private")]),
                subnet("subnet-000000c1", "us-east-1b", &[]),
            ],
            groups: vec![
                SecurityGroup {
                    id: "sg-00000001".into(),
                    name: "default".into(),
                },
                SecurityGroup {
                    id: "sg-00000002".into(),
                    name: "web".into(),
                },
            ],
        }
    }

    fn zone(z: &str) -> Zone {
        Zone::parse(z).unwrap()
    }

    #[test]
    fn tags_narrow_the_subnets_and_the_lowest_id_wins() {
        let mut p = profile_named("Web");
        p.subnet_tags.insert("tier".into(), "private".into());
        p.security_groups = vec!["web".into(), "sg-00000001".into(), "default".into()];
        let placed = place(&p, &zone("us-east-1a"), &network()).unwrap();
        assert_eq!(placed.subnet_id, "subnet-000000a3");
        assert_eq!(placed.group_ids, ["sg-00000002", "sg-00000001"]);
        assert_eq!(placed.public_ip, None);
        // Without tags: every subnet of the zone, the lowest id.
        p.subnet_tags.clear();
        let placed = place(&p, &zone("us-east-1a"), &network()).unwrap();
        assert_eq!(placed.subnet_id, "subnet-000000a1");
    }

    #[test]
    fn a_default_subnet_and_free_addresses_come_first() {
        let p = profile_named("Web");
        let mut n = network();
        n.subnets[0].default_for_az = true;
        assert_eq!(
            place(&p, &zone("us-east-1a"), &n).unwrap().subnet_id,
            "subnet-000000b2"
        );
        n.subnets[0].default_for_az = false;
        n.subnets[1].available_ips = 0;
        assert_eq!(
            place(&p, &zone("us-east-1a"), &n).unwrap().subnet_id,
            "subnet-000000a3"
        );
    }

    #[test]
    fn a_subnet_named_per_zone_must_be_in_the_vpc_and_the_zone() {
        let mut p = profile_named("Web");
        p.subnets
            .insert(zone("us-east-1a"), "subnet-000000b2".into());
        assert_eq!(
            place(&p, &zone("us-east-1a"), &network())
                .unwrap()
                .subnet_id,
            "subnet-000000b2"
        );
        // Other zones still choose.
        assert_eq!(
            place(&p, &zone("us-east-1b"), &network())
                .unwrap()
                .subnet_id,
            "subnet-000000c1"
        );
        p.subnets
            .insert(zone("us-east-1a"), "subnet-000000c1".into());
        let e = place(&p, &zone("us-east-1a"), &network()).unwrap_err();
        assert!(e.contains("is in zone us-east-1b, not us-east-1a"), "{e}");
        p.subnets
            .insert(zone("us-east-1a"), "subnet-0000ffff".into());
        let e = place(&p, &zone("us-east-1a"), &network()).unwrap_err();
        assert!(
            e.contains("subnet-0000ffff") && e.contains("not a subnet of VPC vpc-0a1b2c3d"),
            "{e}"
        );
    }

    #[test]
    fn missing_subnets_and_groups_are_named_with_what_exists() {
        let mut p = profile_named("Web");
        let e = place(&p, &zone("us-east-1c"), &network()).unwrap_err();
        assert_eq!(
            e,
            "VPC vpc-0a1b2c3d has no subnet in zone us-east-1c (it has subnets in: us-east-1a, us-east-1b)"
        );
        p.subnet_tags.insert("tier".into(), "db".into());
        let e = place(&p, &zone("us-east-1a"), &network()).unwrap_err();
        assert!(e.starts_with("no subnet of VPC vpc-0a1b2c3d in zone us-east-1a carries the tags tier=db (profile Web subnet-tags)"), "{e}");
        assert!(e.contains("subnet-000000a1 (tier=public)"), "{e}");
        p.subnet_tags.clear();
        p.security_groups = vec!["db".into()];
        let e = place(&p, &zone("us-east-1a"), &network()).unwrap_err();
        assert_eq!(
            e,
            "security group db (profile Web) is not in VPC vpc-0a1b2c3d; its groups: default, web"
        );
        p.security_groups = vec!["sg-0000000f".into()];
        assert!(place(&p, &zone("us-east-1a"), &network()).is_err());
    }

    #[test]
    fn ids_and_group_entries_are_checked_as_ec2_would() {
        assert!(is_id("subnet-0123abcd", "subnet-"));
        assert!(is_id("sg-0123456789abcdef0", "sg-"));
        assert!(!is_id("sg-0123", "sg-"));
        assert!(!is_id("subnet-0123abcx", "subnet-"));
        assert_eq!(group_problem("web"), None);
        assert!(group_problem("sg-web").is_some());
        assert!(group_problem("").is_some());
    }
}
