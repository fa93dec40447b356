//! Capacity and account quotas at launch, through the real binary against the lab cloud
//! (scripts/labcloud.py refuses as EC2 does, per account, with EC2's codes and words);
//! the end state read with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{cerveza, cloud, live, product};

/// Sets the lab's limits for the test's account in us-east-1.
fn limits(p: &str, json: &str) {
    support::limits(p, "us-east-1", json);
}

fn record(p: &str, host: &str) -> Value {
    cloud(p)["registry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == host)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The start failed as partial (5) with EC2's words and cerveza's hint.
#[track_caller]
fn refused(r: &support::Run, ec2_says: &str, hint: &str) {
    assert_eq!(r.code, 5, "{r:#?}");
    assert!(
        r.stderr.contains(ec2_says) && r.stderr.contains(hint),
        "{r:#?}"
    );
}

#[test]
fn a_zone_without_capacity_fails_its_host_and_the_claim_moves_to_another_zone() {
    let p = product();
    limits(&p, r#"{"capacity": {"us-east-1a": {"m1.small": 1}}}"#);
    let r = cerveza(
        &p,
        &[
            "start",
            "cap01",
            "cap02",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
            "-o",
            "json",
        ],
    );
    // One host got the zone's last m1.small; the other failed with EC2's words and
    // what to do, and the command says "partly".
    assert_eq!(r.code, 5, "{r:#?}");
    let rows = r.json();
    let refused: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["ok"] == false)
        .map(|row| row["host"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 1, "{rows:#}");
    let host = refused[0];
    assert!(
        r.stderr.contains("InsufficientInstanceCapacity: We currently do not have sufficient m1.small capacity in the Availability Zone you requested (us-east-1a)")
            && r.stderr.contains("or in another zone (`--zone`"),
        "{r:#?}"
    );
    assert_eq!(live(&p).len(), 1);
    assert_eq!(record(&p, host)["zone"], "us-east-1a");

    // The claim never got an instance: started in another zone, it moves there.
    let r = cerveza(&p, &["start", host, "--zone", "us-east-1b"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr
            .contains("moving its claim from us-east-1a to us-east-1b"),
        "{r:#?}"
    );
    let mine: Vec<Value> = live(&p)
        .into_iter()
        .filter(|i| i["tags"]["cerveza:host"] == host)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["zone"], "us-east-1b");
    assert_eq!(mine[0]["tags"]["cerveza:zone"], "us-east-1b");
    let rec = record(&p, host);
    assert_eq!(
        (&rec["zone"], &rec["generation"]),
        (&Value::from("us-east-1b"), &Value::from("2")),
        "{rec:#}"
    );

    // The host that has an instance does not move.
    let other = if host == "cap01" { "cap02" } else { "cap01" };
    let r = cerveza(&p, &["start", other, "--zone", "us-east-1b"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("its claim got an instance"), "{r:#?}");
}

#[test]
fn account_quotas_and_images_refuse_one_host_with_the_quota_to_raise() {
    let p = product();
    let start = |host: &str, profile: &str| {
        cerveza(
            &p,
            &["start", host, "--zone", "us-east-1a", "--profile", profile],
        )
    };
    // vCPUs: an m1.small has 1; the quota leaves none.
    limits(&p, r#"{"vcpus": 0}"#);
    let r = start("q01", "UbuntuGeneric32Bit");
    refused(&r, "VcpuLimitExceeded: You have requested more vCPU capacity than your current vCPU limit of 0", "L-1216C47A");
    assert!(live(&p).is_empty());

    // An image without ENA cannot run a current instance type (c5.large).
    limits(
        &p,
        r#"{"vcpus": null, "no-ena": ["ami-0c7217cdde317cfec"]}"#,
    );
    let r = start("web01", "Web");
    refused(&r, "InvalidParameterCombination: Enhanced networking with the Elastic Network Adapter (ENA) is required for the 'c5.large' instance type", "change the profile's instance-type or ami");

    // Elastic IPs: the instance runs, its address is refused; the host says which quota.
    limits(&p, r#"{"no-ena": null, "addresses": 0}"#);
    let r = start("vpn01", "Vpn");
    refused(
        &r,
        "AddressLimitExceeded: The maximum number of addresses has been reached",
        "L-0263D0A3",
    );
    // With the quota raised, the same start finishes the host.
    limits(&p, r#"{"addresses": null}"#);
    let r = start("vpn01", "Vpn");
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(cloud(&p)["addresses"].as_array().unwrap().len(), 1);

    // EBS storage per volume type: MysqlRaid10 wants 4 x 100 GiB gp3.
    limits(&p, r#"{"volume-gib": {"gp3": 250}}"#);
    let r = start("db01", "Mysql");
    refused(&r, "VolumeLimitExceeded: You have exceeded your maximum gp3 storage limit of 250 GiB in this region", "EBS storage quota");
}
