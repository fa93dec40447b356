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

#[test]
fn public_names_go_into_the_users_zone_and_names_cerveza_does_not_own_are_never_touched() {
    let p = product();
    let domain = format!("{p}.example.com");
    let id = cloud_py(&["public-zone", &domain]).trim().to_owned();
    let env = [
        ("CERVEZA_DNS_PUBLIC_ZONE", domain.as_str()),
        ("CERVEZA_DNS_WAIT", "60s"),
    ];
    let r = r53_with(
        &p,
        &env,
        &["start", "pz01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    // [dns] wait: the start returns once Route53 serves its changes.
    assert!(
        r.stderr.contains("change(s) served by the name servers"),
        "{r:#?}"
    );
    let show = r53_with(&p, &env, &["show", "pz01", "-o", "json"])
        .ok()
        .json();
    let public = show["instance"]["public_ip"].as_str().unwrap().to_owned();
    let z = zone(&domain);
    let name = format!("pz01.{domain}");
    assert_eq!(z["records"][&name], serde_json::json!([public]), "{z}");
    assert_eq!(
        z["txt"][&name],
        serde_json::json!([format!("\"cerveza product={p}\"")]),
        "{z}"
    );
    assert_eq!(
        z["records"][format!("www.{domain}")],
        serde_json::json!(["192.0.2.10"])
    );
    // No zone of cerveza's own for the public names.
    assert_eq!(zone(&format!("{p}.public"))["zones"], serde_json::json!([]));
    let list = r53_with(&p, &env, &["dns", "list", "-o", "json"])
        .ok()
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [name.as_str(), &format!("pz01.{p}.private")],
        "{list}"
    );

    // A host whose public name someone else has there: refused, their record kept.
    let r = r53_with(
        &p,
        &env,
        &[
            "start",
            "clash01",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    );
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains(&format!(
            "clash01.{domain} already has A record(s) in hosted zone {domain} that cerveza did not make"
        )),
        "{r:#?}"
    );
    let z = zone(&domain);
    assert_eq!(
        z["records"][format!("clash01.{domain}")],
        serde_json::json!(["192.0.2.11"])
    );
    assert!(z["txt"].get(format!("clash01.{domain}")).is_none(), "{z}");

    // The same zone named by its id; terminating removes only what cerveza owns.
    let by_id = [("CERVEZA_DNS_PUBLIC_ZONE", id.as_str())];
    r53_with(&p, &by_id, &["terminate", "pz01", "clash01"]).ok();
    let z = zone(&domain);
    assert!(z["records"].get(&name).is_none(), "{z}");
    assert!(z["txt"].get(&name).is_none(), "{z}");
    assert_eq!(
        z["records"][format!("clash01.{domain}")],
        serde_json::json!(["192.0.2.11"]),
        "someone else's name stays"
    );
    assert_eq!(
        z["records"][format!("www.{domain}")],
        serde_json::json!(["192.0.2.10"])
    );

    // A zone that does not exist is never made.
    let r = r53_with(
        &p,
        &[("CERVEZA_DNS_PUBLIC_ZONE", "nowhere.example.org")],
        &["dns", "sync"],
    );
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("cerveza does not create it"), "{r:#?}");
    assert_eq!(zone("nowhere.example.org")["zones"], serde_json::json!([]));
}
