//! Route53 as the DNS backend, against moto; records read back with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cloud_py, cmd, product, Run};

fn r53(p: &str, args: &[&str]) -> Run {
    r53_with(p, &[], args)
}

/// [`r53`] with more environment.
fn r53_with(p: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let vpc = cloud_py(&["default-vpc", "us-east-1"]).trim().to_owned();
    cmd(p)
        .env("CERVEZA_DNS_BACKEND", "route53")
        .env("CERVEZA_DNS_VPC_ID", vpc)
        .env("CERVEZA_DNS_VPC_REGION", "us-east-1")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn zone(name: &str) -> serde_json::Value {
    serde_json::from_str(&cloud_py(&["route53", name])).unwrap()
}

#[test]
fn route53_zones_follow_the_fleet() {
    let p = product();
    r53(
        &p,
        &["start", "web01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let show = r53(&p, &["show", "web01", "-o", "json"]).ok().json();
    let private = show["instance"]["private_ip"].as_str().unwrap();
    let public = show["instance"]["public_ip"].as_str().unwrap();
    let z = zone(&format!("{p}.private"));
    assert_eq!(z["zones"], serde_json::json!([{"private": true}]), "{z}");
    assert_eq!(
        z["records"][format!("web01.{p}.private")],
        serde_json::json!([private])
    );
    // The private zone is associated with the VPC of every configured region, so
    // hosts in each of them resolve the others.
    let vpcs: serde_json::Value =
        serde_json::from_str(&cloud_py(&["route53-vpcs", &format!("{p}.private")])).unwrap();
    let mut want: Vec<(String, String)> = support::REGIONS
        .split(',')
        .map(|r| {
            (
                r.to_owned(),
                cloud_py(&["default-vpc", r]).trim().to_owned(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(vpcs, serde_json::json!(want), "{vpcs}");
    let z = zone(&format!("{p}.public"));
    assert_eq!(z["zones"], serde_json::json!([{"private": false}]), "{z}");
    assert_eq!(
        z["records"][format!("web01.{p}.public")],
        serde_json::json!([public])
    );

    r53(&p, &["stop", "web01"]).ok();
    assert!(zone(&format!("{p}.public"))["records"]
        .get(format!("web01.{p}.public"))
        .is_none());

    let list = r53(&p, &["dns", "list", "-o", "json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    r53(&p, &["start", "web01"]).ok();
    let sync = r53(&p, &["dns", "sync", "-o", "json"]).ok().json();
    assert_eq!(
        sync,
        serde_json::json!([]),
        "start already published everything"
    );

    r53(&p, &["terminate", "web01"]).ok();
    assert_eq!(
        zone(&format!("{p}.private"))["records"],
        serde_json::json!({})
    );
    assert_eq!(
        zone(&format!("{p}.public"))["records"],
        serde_json::json!({})
    );
}

#[test]
fn dns_sync_wait_returns_once_route53_serves_the_changes() {
    // The lab's Route53 answers each change PENDING, and INSYNC a second later
    // (GetChange), as Route53 does once its name servers have it.
    let p = product();
    r53(
        &p,
        &[
            "start",
            "sync01",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    // The names are removed behind cerveza's back (dns sync's job is to put them back).
    cloud_py(&["route53-clear", &format!("{p}.private")]);
    let r = r53(&p, &["dns", "sync", "--wait"]).ok();
    assert!(
        r.stdout.contains(&format!("+ sync01.{p}.private A ")),
        "{r:#?}"
    );
    assert!(
        r.stderr
            .contains("1 change(s) in sync: the DNS servers serve them"),
        "{r:#?}"
    );
    // Route53 slow to apply (an hour, for this account): the wait ends at its limit
    // with exit 6, saying what is still pending.
    support::limits(&p, "us-east-1", r#"{"route53-insync": 3600}"#);
    cloud_py(&["route53-clear", &format!("{p}.private")]);
    let r = r53_with(
        &p,
        &[("CERVEZA_WAIT_TIMEOUT", "2s")],
        &["dns", "sync", "--wait"],
    );
    assert_eq!(r.code, 6, "{r:#?}");
    assert!(
        r.stderr.contains("1 of 1 Route53 change(s) still PENDING"),
        "{r:#?}"
    );
}
