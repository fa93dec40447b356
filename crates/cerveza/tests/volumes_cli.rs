//! EBS volumes and Elastic IPs through the real binary against moto, end state read
//! with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{cerveza, cloud, cloud_py, live, product};

/// The data volumes (with a device tag) of the product.
fn data_volumes(p: &str) -> Vec<Value> {
    cloud(p)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tags"].get("cerveza:device").is_some())
        .cloned()
        .collect()
}

/// `volumes list [SELECTION] -o json`, data volumes only.
fn listed_data_volumes(p: &str, selection: Option<&str>) -> Vec<Value> {
    let mut args = vec!["volumes", "list", "-o", "json"];
    args.extend(selection);
    cerveza(p, &args)
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tags"].get("cerveza:device").is_some())
        .cloned()
        .collect()
}

#[test]
fn volumes_are_made_once_kept_across_terminate_and_reattached() {
    let p = product();
    support::start_new(&p, "db01", "us-east-1b", "Mysql");
    let first = live(&p).remove(0);
    let vols = data_volumes(&p);
    assert_eq!(vols.len(), 4, "{vols:#?}");
    let mut devices: Vec<&str> = vols
        .iter()
        .map(|v| v["tags"]["cerveza:device"].as_str().unwrap())
        .collect();
    devices.sort();
    assert_eq!(devices, ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi"]);
    for v in &vols {
        assert_eq!(v["zone"], "us-east-1b");
        assert_eq!(v["attached_to"][0], first["id"]);
        assert_eq!(v["tags"]["cerveza:host"], "db01");
        assert_eq!(v["tags"]["cerveza:volume-profile"], "MysqlRaid10");
        assert_eq!(v["tags"]["team"], "data", "profile tags on volumes too");
    }

    let data = listed_data_volumes(&p, None);
    assert_eq!(data.len(), 4);
    assert!(data.iter().all(|v| v["orphan"] == false));

    cerveza(&p, &["terminate", "db01"]).ok();
    let data = listed_data_volumes(&p, Some("db01"));
    assert_eq!(data.len(), 4, "terminate keeps data volumes");
    assert!(data.iter().all(|v| v["orphan"] == true), "{data:#?}");

    cerveza(&p, &["start", "db01"]).ok();
    let second = live(&p).remove(0);
    assert_ne!(second["id"], first["id"]);
    let vols = data_volumes(&p);
    assert_eq!(vols.len(), 4, "re-attached, not re-created");
    assert!(
        vols.iter().all(|v| v["attached_to"][0] == second["id"]),
        "{vols:#?}"
    );

    cerveza(&p, &["terminate", "db01", "--delete-volumes"]).ok();
    let left: Vec<Value> = data_volumes(&p)
        .into_iter()
        .filter(|v| v["state"] != "deleting")
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn the_elastic_ip_follows_the_host() {
    let p = product();
    cerveza(
        &p,
        &["start", "vpn01", "--zone", "eu-west-1a", "--profile", "Vpn"],
    )
    .ok();
    let ip = cerveza(&p, &["show", "vpn01", "-o", "json"]).ok().json()["instance"]["public_ip"]
        .as_str()
        .unwrap()
        .to_owned();
    cerveza(&p, &["stop", "vpn01"]).ok();
    cerveza(&p, &["start", "vpn01"]).ok();
    let again = cerveza(&p, &["show", "vpn01", "-o", "json"]).ok().json()["instance"]["public_ip"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ip, again, "same address after a restart");
    cerveza(&p, &["eip", "detach", "vpn01"]).ok();
    let after = cerveza(&p, &["show", "vpn01", "-o", "json"]).ok().json();
    assert_ne!(after["instance"]["public_ip"].as_str(), Some(ip.as_str()));
    cerveza(&p, &["eip", "attach", "vpn01"]).ok();
    let attached = cerveza(&p, &["show", "vpn01", "-o", "json"]).ok().json();
    // The address is the host's Elastic IP (read from the cloud), associated with its
    // instance; not any public address the instance happens to have.
    let eips = cloud(&p)["addresses"].as_array().unwrap().clone();
    assert_eq!(eips.len(), 1, "one new Elastic IP for the host: {eips:#?}");
    assert_eq!(eips[0]["tags"]["cerveza:host"], "vpn01");
    assert_ne!(eips[0]["ip"], ip, "the released one is gone");
    assert_eq!(eips[0]["instance"], attached["instance"]["id"]);
    assert_eq!(attached["instance"]["public_ip"], eips[0]["ip"]);
}

#[test]
fn a_volume_that_fails_leaves_the_others_attached_and_a_rerun_completes_the_set() {
    let p = product();
    let blocker = cloud_py(&["blocker", "us-east-1", "us-east-1c", &p, "db02", "/dev/sdg"])
        .trim()
        .to_owned();
    let r = cerveza(
        &p,
        &[
            "start",
            "db02",
            "--zone",
            "us-east-1c",
            "--profile",
            "Mysql",
        ],
    );
    assert_eq!(r.code, 4, "a conflict on /dev/sdg: {r:#?}");
    assert!(
        r.stderr
            .contains(&format!("its volume {blocker} (/dev/sdg) is attached to")),
        "{r:#?}"
    );
    let ours = live(&p)
        .into_iter()
        .find(|i| i["tags"]["cerveza:host"] == "db02")
        .unwrap();
    let vols = data_volumes(&p);
    assert_eq!(vols.len(), 4, "three made, one blocked: {vols:#?}");
    let attached: Vec<&Value> = vols
        .iter()
        .filter(|v| v["attached_to"][0] == ours["id"])
        .collect();
    assert_eq!(
        attached.len(),
        3,
        "no unattached volume is left behind: {vols:#?}"
    );

    cloud_py(&["detach", "us-east-1", &blocker]);
    cerveza(&p, &["start", "db02"]).ok();
    let vols = data_volumes(&p);
    assert_eq!(
        vols.len(),
        4,
        "the set is completed, nothing new created: {vols:#?}"
    );
    assert!(
        vols.iter().all(|v| v["attached_to"][0] == ours["id"]),
        "{vols:#?}"
    );
}

#[test]
fn data_volumes_in_another_region_refuse_a_first_start_there() {
    let p = product();
    support::start_new(&p, "vol01", "us-east-1a", "Mysql");
    cerveza(&p, &["terminate", "vol01", "--forget"]).ok();
    let before = data_volumes(&p);
    assert_eq!(before.len(), 4);
    for zone in ["us-east-1b", "eu-west-1a"] {
        let r = cerveza(
            &p,
            &["start", "vol01", "--zone", zone, "--profile", "Mysql"],
        );
        assert_eq!(r.code, 1, "{zone}: {r:#?}");
        assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
        assert!(
            r.stderr.contains("is in us-east-1a, the host is in"),
            "{zone}: {}",
            r.stderr
        );
        assert!(live(&p).is_empty(), "{zone}: no instance launched");
        assert_eq!(data_volumes(&p).len(), 4, "{zone}: no blank volume made");
    }
    // A host started elsewhere does not make its old data volumes look attached.
    support::start_new(&p, "vol01", "eu-west-1a", "UbuntuGeneric32Bit");
    let data = listed_data_volumes(&p, Some("vol01"));
    assert_eq!(data.len(), 4);
    assert!(data.iter().all(|v| v["orphan"] == true), "{data:#?}");
    // --delete-volumes finds them in the other region too.
    cerveza(&p, &["terminate", "vol01", "--delete-volumes"]).ok();
    let left: Vec<Value> = data_volumes(&p)
        .into_iter()
        .filter(|v| v["state"] != "deleting")
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

/// The example profiles plus a volume profile encrypted with `key`, in a temp dir.
fn profiles_with_kms_key(key: &str) -> tempfile::TempDir {
    support::profiles_with(&format!(
        "--- !VolumeProfile\nname: KmsData\nvolumes: {{ count: 2, size-gb: 10, type: gp3, encrypted: true, kms-key: {key} }}\nraid: 1\nmount-point: /srv/data\n\n--- !InstanceProfile\nname: KmsDb\nextends: UbuntuBase\nvolume-profiles: [KmsData]\n"
    ))
}

#[test]
fn a_kms_key_that_cannot_be_used_fails_the_start_at_once_with_the_reason() {
    let p = product();
    let key = cloud_py(&["kms-key", "us-east-1", "disabled"])
        .trim()
        .to_owned();
    let dir = profiles_with_kms_key(&key);
    let start = |host: &str, profile: &str| -> support::Run {
        support::cmd(&p)
            .env("CERVEZA_PROFILES", dir.path())
            .args(["start", host, "--zone", "us-east-1b", "--profile", profile])
            .output()
            .unwrap()
            .into()
    };
    // EBS takes the volumes, then drops them: the start fails when they vanish, naming
    // the key, not after the 600 s wait.
    let began = std::time::Instant::now();
    let r = start("kms01", "KmsDb");
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains("vanished while it was being created")
            && r.stderr
                .contains(&format!("the KMS key {key} of volume profile KmsData")),
        "{r:#?}"
    );
    assert!(
        began.elapsed() < std::time::Duration::from_secs(120),
        "{:?}",
        began.elapsed()
    );
    assert!(data_volumes(&p).is_empty(), "{:#?}", data_volumes(&p));
    // With the key enabled, the rerun makes the set (its first tokens are spent).
    cloud_py(&["kms-set", "us-east-1", &key, "enabled"]);
    let r = start("kms01", "KmsDb");
    assert_eq!(r.code, 0, "{r:#?}");
    let vols = data_volumes(&p);
    assert_eq!(vols.len(), 2, "{vols:#?}");
    assert!(
        vols.iter()
            .all(|v| v["attached_to"].as_array().is_some_and(|a| a.len() == 1)),
        "{vols:#?}"
    );

    // The account encrypts new volumes by default with a disabled key: EC2 terminates
    // the new instance, and the start says why at once.
    cloud_py(&["kms-set", "us-east-1", &key, "disabled"]);
    cloud_py(&["ebs-default", &format!("AKID-{p}"), "us-east-1", &key]);
    let began = std::time::Instant::now();
    let r = start("kms02", "UbuntuGeneric32Bit");
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains("went to")
            && r.stderr.contains("EC2 says Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state"),
        "{r:#?}"
    );
    assert!(
        began.elapsed() < std::time::Duration::from_secs(120),
        "{:?}",
        began.elapsed()
    );
}
