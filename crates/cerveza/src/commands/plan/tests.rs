#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cerveza_core::model::{HostRecord, Instance, InstanceId, InstanceState};
use cerveza_core::{tags, Product, ProfileName, Region, Zone};

use super::*;

const PROFILES: &str = "--- !InstanceProfile
name: Web
aws: !InstanceAws
  ami: { us-east-1: ami-a6f504cf, eu-west-1: ami-0905a3c9 }
  instance-type: t3.micro
--- !InstanceProfile
name: WebLarge
extends: Web
aws: !InstanceAws
  instance-type: c5.large
";

const FILE: &str = "--- !Fleet
product: noc
hosts:
  - names: web[01-05]
    profile: Web
    zones: [us-east-1a, us-east-1b]
  - name: db01
    profile: WebLarge
    zone: us-east-1b
  - name: vpn01
    profile: Web
    zone: eu-west-1a
    state: stopped
";

fn record(
    host: &str,
    profile: &str,
    zone: &str,
    state: InstanceState,
    id: Option<&str>,
) -> HostRecord {
    HostRecord {
        product: Product::parse("noc").unwrap(),
        hostname: Hostname::parse(host).unwrap(),
        profile: ProfileName::parse(profile).unwrap(),
        zone: Zone::parse(zone).unwrap(),
        instance_id: id.map(InstanceId::new),
        state,
        generation: 1,
        updated_at: 1_790_000_000,
        updated_by: "alice@ops".into(),
        claim: String::new(),
    }
}

fn instance(host: &str, profile: &str, zone: &str, state: InstanceState, id: &str) -> Instance {
    let zone = Zone::parse(zone).unwrap();
    Instance {
        state_reason: None,
        imds_v1: None,
        id: InstanceId::new(id),
        region: zone.region(),
        zone: Some(zone),
        state,
        instance_type: Some("t3.micro".into()),
        image_id: Some("ami-a6f504cf".into()),
        private_ip: None,
        public_ip: None,
        launch_time: Some(1_790_000_000),
        security_groups: vec![],
        tags: BTreeMap::from([
            (tags::PRODUCT.into(), "noc".into()),
            (tags::HOST.into(), host.into()),
            (tags::PROFILE.into(), profile.into()),
        ]),
    }
}

/// A plan with every kind of change: web01 as is, web02 stopped (start), web03 gone
/// (relaunch), web04 new (launch), web05 in a zone the file no longer lists (replace,
/// held), db01 with another profile (replace, allowed), vpn01 running (stop), and
/// old01 not in the file (unmanaged).
fn every_kind() -> Plan {
    use InstanceState::*;
    let profiles = ProfileSet::from_sources(&[(PathBuf::from("p.yaml"), PROFILES.into())]).unwrap();
    let regions = vec![
        Region::parse("us-east-1").unwrap(),
        Region::parse("eu-west-1").unwrap(),
    ];
    let file = FleetFile::parse(Path::new("fleet.yaml"), FILE, &profiles, &regions, None).unwrap();
    let survey = plan::Survey {
        records: vec![
            record("web01", "Web", "us-east-1a", Running, Some("i-01")),
            record("web02", "Web", "us-east-1b", Stopped, Some("i-02")),
            record("web03", "Web", "us-east-1a", Terminated, Some("i-03")),
            record("web05", "Web", "us-east-1c", Running, Some("i-05")),
            record("db01", "Web", "us-east-1b", Running, Some("i-d1")),
            record("vpn01", "Web", "eu-west-1a", Running, Some("i-v1")),
            record("old01", "Web", "us-east-1a", Running, Some("i-o1")),
        ],
        registry_error: None,
        instances: vec![
            instance("web01", "Web", "us-east-1a", Running, "i-01"),
            instance("web02", "Web", "us-east-1b", Stopped, "i-02"),
            instance("web05", "Web", "us-east-1c", Running, "i-05"),
            instance("db01", "Web", "us-east-1b", Running, "i-d1"),
            instance("vpn01", "Web", "eu-west-1a", Running, "i-v1"),
            instance("old01", "Web", "us-east-1a", Running, "i-o1"),
        ],
        failed_regions: vec![],
    };
    let opts = plan::Options {
        replace: vec![Hostname::parse("db01").unwrap()],
        prune: false,
    };
    let mut p = plan::diff(&file, &survey, &opts).unwrap();
    p.regions = regions;
    p
}

#[test]
fn the_plan_table_shows_what_differs_and_a_summary() {
    let plan = every_kind();
    let rows: Vec<&Row> = plan
        .hosts
        .iter()
        .filter(|r| r.change != Change::Nothing || r.held.is_some())
        .collect();
    let text = format!("{}{}\n", table(&rows).render(), summary(&plan));
    insta::assert_snapshot!("plan_table", text);
    assert!(differs(&plan));
}

#[test]
fn the_plan_json_is_the_saved_plan_and_reads_back() {
    let plan = every_kind();
    let json = serde_json::to_string_pretty(&plan).unwrap();
    insta::assert_snapshot!("plan_json", json);
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn a_fleet_as_the_file_says_is_summed_up_in_one_line() {
    let mut plan = every_kind();
    plan.hosts.retain(|r| r.change == Change::Nothing);
    assert!(!differs(&plan));
    assert_eq!(
        summary(&plan),
        "No changes: 1 host(s) of product noc are as the file says."
    );
}
