//! Networks as a 2026 account has them, through the real binary against the lab cloud:
//! an account whose default VPC was deleted (the lab refuses a launch without a subnet
//! with VPCIdNotSpecified, and group names with a subnet with
//! InvalidParameterCombination, as EC2 does), a VPC named in the config, subnets chosen
//! by tags or named per zone, groups by name or id. The end state read with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{cloud, cloud_py, cmd, live, product, Run};

const PROFILES: &str = "\
--- !InstanceProfile
name: Private
extends: UbuntuBase
aws: !InstanceAws
  security-groups: [default, web]
  subnet-tags: { tier: private }
--- !InstanceProfile
name: Public
extends: UbuntuBase
aws: !InstanceAws
  security-groups: [SG_WEB]
  subnets: { us-east-1a: SUBNET_PUBLIC_A }
  public-ip: true
--- !InstanceProfile
name: Database
extends: UbuntuBase
aws: !InstanceAws
  security-groups: [db]
--- !InstanceProfile
name: Dmz
extends: UbuntuBase
aws: !InstanceAws
  subnet-tags: { tier: dmz }
";

/// The lab account of product `p` has no default VPC in us-east-1.
fn without_default_vpc(p: &str) {
    support::limits(p, "us-east-1", r#"{"no-default-vpc": true}"#);
}

struct Account {
    _profiles: tempfile::TempDir,
    profiles: std::path::PathBuf,
    config: tempfile::NamedTempFile,
    net: Value,
}

impl Account {
    /// A VPC of its own in us-east-1 (support/cloud.py `vpc`), the profiles above naming
    /// its ids, and a config that names the VPC (or not).
    fn new(with_vpc_config: bool) -> Self {
        let net: Value = serde_json::from_str(&cloud_py(&["vpc", "us-east-1"])).unwrap();
        let yaml = PROFILES
            .replace("SG_WEB", net["groups"]["web"].as_str().unwrap())
            .replace(
                "SUBNET_PUBLIC_A",
                net["subnets"]["public-a"].as_str().unwrap(),
            );
        let profiles = support::profiles_with(&yaml);
        let config = tempfile::NamedTempFile::new().unwrap();
        let text = if with_vpc_config {
            format!("[regions.us-east-1]\nvpc = {}\n", net["vpc"])
        } else {
            String::new()
        };
        std::fs::write(config.path(), text).unwrap();
        Self {
            profiles: profiles.path().to_owned(),
            _profiles: profiles,
            config,
            net,
        }
    }

    fn run(&self, p: &str, args: &[&str]) -> Run {
        cmd(p)
            .env("CERVEZA_PROFILES", &self.profiles)
            .env("CERVEZA_CONFIG", self.config.path())
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn start(&self, p: &str, host: &str, zone: &str, profile: &str) -> Run {
        self.run(p, &["start", host, "--zone", zone, "--profile", profile])
    }

    fn id(&self, path: &[&str]) -> String {
        path.iter()
            .fold(&self.net, |v, k| &v[*k])
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A refusal before anything was made: usage (2), the words, no record, no instance.
#[track_caller]
fn refused_before_claiming(p: &str, r: &Run, host: &str, words: &[&str]) {
    assert_eq!(r.code, 2, "{r:#?}");
    for w in words {
        assert!(r.stderr.contains(w), "{w:?} missing from {r:#?}");
    }
    let state = cloud(p);
    assert!(
        !state["registry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|rec| rec["hostname"] == host),
        "{host} was claimed: {state:#}"
    );
    assert!(
        !live(p).iter().any(|i| i["tags"]["cerveza:host"] == host),
        "{host} has an instance: {state:#}"
    );
}

#[test]
fn an_account_without_a_default_vpc_launches_into_the_configured_vpc() {
    let p = product();
    without_default_vpc(&p);

    // No VPC named: the region has none to offer, and cerveza says what to write.
    let bare = Account::new(false);
    let r = bare.start(&p, "net01", "us-east-1a", "Private");
    refused_before_claiming(
        &p,
        &r,
        "net01",
        &[
            "net01: region us-east-1 has no default VPC",
            "[regions.us-east-1] vpc = \"vpc-…\"",
        ],
    );

    // The VPC in the config: the private subnet of the zone, both groups by id.
    let acct = Account::new(true);
    let r = acct.start(&p, "net01", "us-east-1a", "Private");
    assert_eq!(r.code, 0, "{r:#?}");
    let i = support::live_instance(&p, "net01");
    assert_eq!(i["vpc"], acct.net["vpc"]);
    assert_eq!(i["subnet"], acct.id(&["subnets", "private-a"]));
    let mut groups = vec![acct.id(&["groups", "default"]), acct.id(&["groups", "web"])];
    groups.sort();
    assert_eq!(i["groups"], serde_json::json!(groups));
    assert_eq!(i["zone"], "us-east-1a");
    assert!(i["public_ip"].is_null(), "a private subnet: {i:#}");

    // Zone b has one private subnet; zone c none: named with what exists.
    acct.start(&p, "net02", "us-east-1b", "Private").ok();
    assert_eq!(
        support::live_instance(&p, "net02")["subnet"],
        acct.id(&["subnets", "private-b"])
    );
    let vpc = acct.id(&["vpc"]);
    let r = acct.start(&p, "net03", "us-east-1c", "Private");
    refused_before_claiming(
        &p,
        &r,
        "net03",
        &[&format!(
            "net03: VPC {vpc} has no subnet in zone us-east-1c (it has subnets in: us-east-1a, us-east-1b)"
        )],
    );
    // Tags no subnet carries, and a group the VPC does not have.
    let r = acct.start(&p, "net04", "us-east-1a", "Dmz");
    refused_before_claiming(
        &p,
        &r,
        "net04",
        &[
            &format!("no subnet of VPC {vpc} in zone us-east-1a carries the tags tier=dmz"),
            &format!("{} (tier=public)", acct.id(&["subnets", "public-a"])),
        ],
    );
    let r = acct.start(&p, "net05", "us-east-1a", "Database");
    refused_before_claiming(
        &p,
        &r,
        "net05",
        &[&format!(
            "security group db (profile Database) is not in VPC {vpc}; its groups: default, web"
        )],
    );

    // A subnet named for the zone, a group by id, and a public address asked for.
    acct.start(&p, "net06", "us-east-1a", "Public").ok();
    let i = support::live_instance(&p, "net06");
    assert_eq!(i["subnet"], acct.id(&["subnets", "public-a"]));
    assert_eq!(
        i["groups"],
        serde_json::json!([acct.id(&["groups", "web"])])
    );
    assert!(i["public_ip"].is_string(), "{i:#}");
}

#[test]
fn a_vpc_the_region_does_not_have_is_named() {
    let p = product();
    let acct = Account::new(false);
    std::fs::write(
        acct.config.path(),
        "[regions.us-east-1]\nvpc = \"vpc-0123456789abcdef0\"\n",
    )
    .unwrap();
    let r = acct.start(&p, "vpc01", "us-east-1a", "Private");
    refused_before_claiming(
        &p,
        &r,
        "vpc01",
        &["VPC vpc-0123456789abcdef0 (the config's [regions.us-east-1] vpc) does not exist in us-east-1"],
    );
    std::fs::write(acct.config.path(), "[regions.us-east-1]\nvpc = \"main\"\n").unwrap();
    let r = acct.start(&p, "vpc01", "us-east-1a", "Private");
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("[regions.us-east-1] vpc \"main\""),
        "{r:#?}"
    );
}
