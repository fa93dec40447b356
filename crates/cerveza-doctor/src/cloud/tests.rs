use std::collections::BTreeMap;

use cerveza_core::model::{AllocationId, InstanceId, VolumeId};
use cerveza_core::names::{Hostname, Product, ProfileName, Region, Zone};
use cerveza_core::tags;

use super::*;

fn instance(host: &str, zone: &str, state: InstanceState, private_ip: &str) -> Instance {
    let zone = Zone::parse(zone).unwrap();
    Instance {
        state_reason: None,
        imds_v1: None,
        id: InstanceId::new(format!("i-{host}")),
        region: zone.region(),
        zone: Some(zone),
        state,
        instance_type: None,
        image_id: None,
        private_ip: Some(private_ip.into()),
        public_ip: None,
        launch_time: None,
        security_groups: Vec::new(),
        tags: BTreeMap::from([
            (tags::HOST.to_owned(), host.to_owned()),
            (tags::PROFILE.to_owned(), "Web".to_owned()),
        ]),
    }
}

fn fleet() -> Vec<Instance> {
    vec![
        instance("web01", "us-east-1a", InstanceState::Running, "10.0.1.5"),
        instance("ns01", "us-east-1b", InstanceState::Running, "10.0.2.2"),
        instance("ns02", "us-east-1c", InstanceState::Running, "10.0.3.2"),
        instance("ns03", "eu-west-1a", InstanceState::Running, "10.1.0.2"),
    ]
}

fn rule(cidr: &str) -> SecurityRule {
    SecurityRule {
        group_id: "sg-1".into(),
        group_name: "mysql".into(),
        region: "us-east-1".into(),
        direction: "ingress",
        traffic: "tcp 3306".into(),
        cidr: cidr.into(),
    }
}

#[test]
fn security_group_rules_naming_a_private_address_are_found() {
    let ok = [rule("10.0.0.0/16"), rule("54.1.2.3/32"), rule("0.0.0.0/0")];
    assert!(security_groups(&ok, &fleet()).is_empty());
    let f = security_groups(&[rule("10.0.1.5/32"), rule("10.9.9.9/32")], &fleet());
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].subject, "sg-1 (mysql, us-east-1)");
    assert_eq!(
        f[0].problem,
        "ingress tcp 3306 from 10.0.1.5/32: web01's private address, which changes when it is relaunched"
    );
    assert!(f[1].problem.contains("no host of the fleet has now"));
}

#[test]
fn one_server_or_one_region_is_a_single_point_of_failure() {
    let good = ConfigFacts {
        directory_uris: vec![
            "ldaps://ns01.noc.private".into(),
            "ldaps://ns03.noc.private".into(),
        ],
        client_uris: vec![
            "ldaps://ldap-a.example".into(),
            "ldaps://ldap-b.example".into(),
        ],
        nameservers: vec!["10.0.2.2".into(), "10.1.0.2".into()],
        product: "noc".into(),
    };
    assert!(config_spof(&good, &fleet()).is_empty());
    let bad = ConfigFacts {
        directory_uris: vec!["ldap://127.0.0.1:389".into()],
        client_uris: Vec::new(),
        nameservers: vec!["10.0.2.2".into(), "10.0.3.2".into()],
        product: "noc".into(),
    };
    let f = config_spof(&bad, &fleet());
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        f[0].problem,
        "[directory] uris names one server (ldap://127.0.0.1:389): grants and LDAP-served DNS names stop with it"
    );
    assert_eq!(
        f[1].problem,
        "[userdata] nameservers names 2 servers, all in us-east-1: when that region is down, every host's lookups stop with it"
    );
}

#[test]
fn the_registry_needs_backups_and_a_strong_replica() {
    let mut facts = RegistryFacts {
        table: "cerveza-hosts".into(),
        region: "us-east-1".into(),
        point_in_time_recovery: true,
        replicas: vec!["us-east-2".into(), "us-west-2".into()],
        strong: true,
    };
    assert!(registry(&facts).is_empty());
    facts.strong = false;
    assert!(registry(&facts)[0].problem.contains("MREC"));
    facts.replicas.clear();
    facts.point_in_time_recovery = false;
    let f = registry(&facts);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].subject, "table cerveza-hosts (us-east-1)");
    assert!(f[0].problem.starts_with("no point-in-time recovery"));
    assert!(f[1]
        .problem
        .contains("while us-east-1 is down, new hostnames cannot be claimed"));
}

fn record(host: &str, zone: &str, state: InstanceState) -> HostRecord {
    HostRecord {
        product: Product::parse("noc").unwrap(),
        hostname: Hostname::parse(host).unwrap(),
        profile: ProfileName::parse("Web").unwrap(),
        zone: Zone::parse(zone).unwrap(),
        instance_id: Some(InstanceId::new(format!("i-{host}"))),
        state,
        generation: 1,
        updated_at: 0,
        updated_by: "t".into(),
        claim: String::new(),
    }
}

#[test]
fn records_and_tags_that_disagree() {
    let fleet = fleet();
    let records = vec![
        record("web01", "us-east-1a", InstanceState::Pending),
        record("ns01", "us-east-1b", InstanceState::Running),
        record("ns02", "us-east-1c", InstanceState::Running),
        record("ns03", "eu-west-1a", InstanceState::Running),
    ];
    assert!(registry_tags(&records, &fleet, &[]).is_empty());
    let mut changed = records.clone();
    changed[0].state = InstanceState::Stopped;
    changed[1].zone = Zone::parse("us-east-1d").unwrap();
    changed[2].instance_id = Some(InstanceId::new("i-old"));
    changed.pop();
    changed.push(record("gone01", "us-east-1a", InstanceState::Running));
    let f = registry_tags(&changed, &fleet, &[]);
    let text: Vec<String> = f
        .iter()
        .map(|f| format!("{}: {}", f.subject, f.problem))
        .collect();
    assert_eq!(
        text,
        [
            "web01: the record says stopped i-web01, its tags are on running i-web01",
            "ns01: zone us-east-1d in the record, us-east-1b in the cloud",
            "ns02: the record says running i-old, its tags are on running i-ns02",
            "gone01: the record says running i-gone01; no live instance has its tags",
            "ns03: running i-ns03 has its tags but no record",
        ]
    );
    // A region that could not be listed is not judged.
    let f = registry_tags(&changed, &fleet, &["us-east-1".into()]);
    assert_eq!(f.len(), 1, "{f:?}");
}

fn volume(host: &str, created_days_ago: i64, attached: bool) -> Volume {
    Volume {
        id: VolumeId::new(format!("vol-{host}")),
        region: Region::parse("us-east-1").unwrap(),
        zone: Zone::parse("us-east-1a").ok(),
        size_gb: 100,
        volume_type: None,
        state: if attached {
            VolumeState::InUse
        } else {
            VolumeState::Available
        },
        attached_to: attached.then(|| InstanceId::new("i-x")),
        attached_as: None,
        created: Some(1_000_000_000 - created_days_ago * 86_400),
        tags: BTreeMap::from([
            (tags::HOST.to_owned(), host.to_owned()),
            (tags::DEVICE.to_owned(), "/dev/sdf".to_owned()),
        ]),
    }
}

#[test]
fn old_unattached_volumes_of_hosts_that_are_gone() {
    let v = [
        volume("gone01", 30, false),
        volume("gone02", 2, false),
        volume("web01", 30, false),
        volume("gone03", 30, true),
    ];
    let f = orphan_volumes(&v, &fleet(), 1_000_000_000, 7);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].subject, "vol-gone01 (us-east-1)");
    assert_eq!(
        f[0].problem,
        "100 GiB for gone01 /dev/sdf, created 30 day(s) ago, attached to nothing; gone01 has no live instance"
    );
}

#[test]
fn elastic_ips_associated_with_nothing() {
    let a = |instance: Option<&str>| TaggedAddress {
        region: "eu-west-1".into(),
        host: Some("vpn01".into()),
        address: Address {
            allocation: AllocationId::new("eipalloc-1"),
            ip: "54.1.2.3".into(),
            instance: instance.map(InstanceId::new),
        },
    };
    assert!(idle_addresses(&[a(Some("i-1"))]).is_empty());
    let f = idle_addresses(&[a(None)]);
    assert_eq!(f[0].subject, "54.1.2.3 (eipalloc-1, eu-west-1)");
    assert_eq!(f[0].problem, "allocated for vpn01, associated with nothing");
}

#[test]
fn instances_that_still_allow_imdsv1_are_found() {
    let mut old = instance("web01", "us-east-1a", InstanceState::Running, "10.0.1.5");
    old.imds_v1 = Some(true);
    let mut gone = instance("web02", "us-east-1a", InstanceState::Terminated, "10.0.1.6");
    gone.imds_v1 = Some(true);
    let mut v2 = instance("web03", "us-east-1a", InstanceState::Running, "10.0.1.7");
    v2.imds_v1 = Some(false);
    let unknown = instance("web04", "us-east-1a", InstanceState::Stopped, "10.0.1.8");
    assert_eq!(
        imds(&[old, gone, v2, unknown]),
        [Finding::new(
            "web01",
            "i-web01 (us-east-1) allows IMDSv1 (HttpTokens optional)"
        )]
    );
}

#[test]
fn hosts_with_data_and_no_recent_complete_set_or_copy() {
    use cerveza_core::backup::{self, Snapshot, SnapshotState};
    let now = 1_000_000_000;
    let snap = |id: &str, host: &str, set: &str, region: &str, hours_ago: i64, state| Snapshot {
        id: id.into(),
        region: Region::parse(region).unwrap(),
        volume_id: None,
        size_gb: 100,
        state,
        started: Some(now - hours_ago * 3_600),
        tags: BTreeMap::from([
            (tags::HOST.to_owned(), host.to_owned()),
            (tags::DEVICE.to_owned(), "/dev/sdf".to_owned()),
            (backup::SET.to_owned(), set.to_owned()),
            (backup::MEMBERS.to_owned(), "1".to_owned()),
        ]),
    };
    let sets = backup::sets(vec![
        // web01: a fresh set, copied to us-west-1.
        snap(
            "snap-1",
            "web01",
            "w1",
            "us-east-1",
            2,
            SnapshotState::Completed,
        ),
        snap(
            "snap-2",
            "web01",
            "w1",
            "us-west-1",
            2,
            SnapshotState::Completed,
        ),
        // db01: a fresh set still pending, and a complete one three days old.
        snap(
            "snap-3",
            "db01",
            "d2",
            "us-east-1",
            1,
            SnapshotState::Pending,
        ),
        snap(
            "snap-4",
            "db01",
            "d1",
            "us-east-1",
            72,
            SnapshotState::Completed,
        ),
    ]);
    let volumes = [
        volume("web01", 10, true),
        volume("db01", 10, true),
        volume("gone03", 10, false),
    ];
    let west = [Region::parse("us-west-1").unwrap()];
    let f = backups(&volumes, &sets, now, 86_400, &west);
    let got: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (f.subject.as_str(), f.problem.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("db01", "its newest complete backup set, d1 (us-east-1), was taken 3 days ago (at most 24 hours wanted)"),
            ("db01", "its newest complete backup set, d1, has no complete copy in us-west-1 ([backup] copy-to)"),
            ("gone03", "its data (us-east-1) has no complete backup set"),
        ]
    );
    // Within a week, without copies: only the host with no set at all.
    let f = backups(&volumes, &sets, now, 7 * 86_400, &[]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].subject, "gone03");
}
