//! `cerveza backup` against the lab cloud, whose snapshots stay pending a while (per
//! GiB) as EBS's do: a Mysql host's four data volumes become one set, each snapshot
//! with its volume's tags, the root left out; a stopped host is backed up as it is; the
//! end state read with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::{cerveza, cloud, product, snapshots, Proxy, Run};

#[test]
fn a_host_s_data_volumes_become_one_complete_set_with_their_tags() {
    let p = product();
    support::start_new(&p, "db01", "us-east-1a", "Mysql").ok();
    cerveza(
        &p,
        &["start", "web01", "--zone", "us-east-1a", "--profile", "Web"],
    )
    .ok();
    // doctor: db01 has data and no backup; web01 has no data.
    let backups = |extra: &[&str]| {
        let mut args = vec!["doctor", "--only", "backups", "-o", "json"];
        args.extend(extra);
        let r = cerveza(&p, &args);
        let found = support::doctor_findings(&r.json(), "backups");
        (r.code, found)
    };
    assert_eq!(
        backups(&[]),
        (
            1,
            vec!["db01: its data (us-east-1) has no complete backup set".to_owned()]
        )
    );
    // A region to copy to that cerveza never reads (not configured) is refused before
    // anything is taken: its copies would never be listed, pruned or restored.
    let r = cerveza(&p, &["backup", "db01", "--copy-to", "ap-south-2"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("not among the configured regions"),
        "{r:#?}"
    );
    assert!(snapshots(&p, "us-east-1").is_empty());
    let r = cerveza(&p, &["backup", "db01", "web01", "--wait", "-o", "json"]).ok();
    let rows = r.json();
    assert_eq!(rows[1]["host"], "web01");
    assert_eq!(rows[1]["state"], "no data volumes", "{rows}");
    let set = rows[0]["set"].as_str().unwrap().to_owned();
    assert!(set.starts_with("db01-"), "{set}");
    assert_eq!(rows[0]["state"], "completed", "{rows}");

    // Read straight from EC2: one snapshot per data volume, none of the root.
    let state = cloud(&p);
    let data: Vec<&Value> = state["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tags"]["cerveza:host"] == "db01" && v["tags"]["cerveza:device"].is_string())
        .collect();
    assert_eq!(data.len(), 4, "{state}");
    let snaps = snapshots(&p, "us-east-1");
    assert_eq!(snaps.len(), 4, "{snaps:?}");
    for (i, s) in snaps.iter().enumerate() {
        let vol = data
            .iter()
            .find(|v| v["id"] == s["volume"])
            .unwrap_or_else(|| panic!("snapshot of a volume that is not db01's data: {s}"));
        assert_eq!(s["state"], "completed");
        let t = &s["tags"];
        assert_eq!(t["cerveza:backup-set"], set.as_str());
        assert_eq!(t["cerveza:backup-members"], "4");
        assert_eq!(t["cerveza:host"], "db01");
        assert_eq!(t["cerveza:profile"], "Mysql");
        assert_eq!(t["cerveza:member"], i.to_string(), "{s}");
        for key in ["cerveza:device", "cerveza:volume-profile", "cerveza:member"] {
            assert_eq!(t[key], vol["tags"][key], "{key}: {s} of {vol}");
        }
    }
    let list = cerveza(&p, &["backup", "list", "-o", "json"]).ok().json();
    assert_eq!(list[0]["state"], "complete", "{list}");
    // A fresh complete set passes (within a day by default), unless the config wants
    // it copied to another region too.
    assert_eq!(backups(&[]), (0, vec![]));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[backup]\ncopy-to = [\"eu-west-1\"]\n").unwrap();
    assert_eq!(
        backups(&["--config", config.to_str().unwrap()]),
        (1, vec![format!("db01: its newest complete backup set, {set}, has no complete copy in eu-west-1 ([backup] copy-to)")])
    );
    assert_eq!(
        (list[0]["members"].as_u64(), list[0]["expected"].as_u64()),
        (Some(4), Some(4))
    );

    // A stopped host is snapshotted as it is; without --wait the set is pending first.
    cerveza(&p, &["stop", "db01"]).ok();
    let r = cerveza(&p, &["backup", "db01", "-o", "json"]).ok();
    assert_eq!(r.json()[0]["state"], "pending", "{r:#?}");
    let list = cerveza(&p, &["backup", "list", "db01", "-o", "json"])
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(snapshots(&p, "us-east-1").len(), 8);
}

#[test]
fn prune_deletes_old_sets_but_never_the_newest_complete_one() {
    let p = product();
    support::start_new(&p, "db01", "us-east-1a", "Mysql").ok();
    let set = |r: &support::Run| r.json()[0]["set"].as_str().unwrap().to_owned();
    let first = set(&cerveza(&p, &["backup", "db01", "--wait", "-o", "json"]).ok());
    let second = set(&cerveza(&p, &["backup", "db01", "--wait", "-o", "json"]).ok());
    // The newest set still pending (its snapshots slowed to an hour): it counts in
    // --keep but may yet fail, so the newest complete one is kept whatever --keep says.
    support::limits(&p, "us-east-1", r#"{"snapshot": 36}"#);
    let third = set(&cerveza(&p, &["backup", "db01", "-o", "json"]).ok());
    assert_eq!(snapshots(&p, "us-east-1").len(), 12);

    let action = |r: &support::Run, set: &str| {
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["set"] == set)
            .map(|row| row["action"].as_str().unwrap().to_owned())
    };
    let dry = cerveza(
        &p,
        &["backup", "prune", "--keep", "0", "--dry-run", "-o", "json"],
    )
    .ok();
    assert_eq!(action(&dry, &first).as_deref(), Some("delete"), "{dry:#?}");
    assert_eq!(action(&dry, &second).as_deref(), Some("keep-last-complete"));
    assert_eq!(action(&dry, &third).as_deref(), Some("keep-pending"));
    assert_eq!(
        snapshots(&p, "us-east-1").len(),
        12,
        "--dry-run deletes nothing"
    );

    cerveza(&p, &["backup", "prune", "--keep", "0", "-o", "json"]).ok();
    // Read straight from EC2: the first set's four snapshots are gone, no other.
    let left = snapshots(&p, "us-east-1");
    let sets: std::collections::BTreeSet<&str> = left
        .iter()
        .map(|s| s["tags"]["cerveza:backup-set"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 8, "{left:?}");
    assert_eq!(sets, [second.as_str(), third.as_str()].into(), "{left:?}");

    // A rerun with nothing to delete deletes nothing; --older-than a day spares all.
    let r = cerveza(&p, &["backup", "prune", "--older-than", "1d", "-o", "json"]).ok();
    assert!(
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["action"] != "delete"),
        "{r:#?}"
    );
    assert_eq!(snapshots(&p, "us-east-1").len(), 8);
}

/// CreateSnapshots and CopySnapshot have no idempotency token. Every answer to them is
/// lost here after EC2 did the work (a 500, a reset): sent again blindly, the set
/// would hold each volume twice (incomplete: no restore takes it) and each copy would
/// be made twice. The set and its copies are found by their tags instead.
#[test]
fn lost_answers_to_snapshot_and_copy_requests_make_no_second_snapshot() {
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "status", "status": 500, "action": "CreateSnapshots", "when": "after", "spare_last": false},
        {"fault": "reset", "action": "CopySnapshot", "when": "after", "spare_last": false},
    ]}));
    proxy.start_new(&p, "db01", "us-east-1a", "Mysql");
    let r: Run = proxy
        .cmd(&p)
        .args(["backup", "db01", "--copy-to", "eu-west-1", "-o", "json"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}\nproxy: {}", proxy.stats());
    let faults = proxy.stats()["faults"].clone();
    assert_eq!(faults["status:ec2:CreateSnapshots"], 1, "{faults}");
    assert_eq!(faults["reset:ec2:CopySnapshot"], 4, "{faults}");
    let rows = r.json();
    let set = rows[0]["set"].as_str().unwrap();
    assert_eq!(
        (rows[0]["state"].as_str(), rows[1]["state"].as_str()),
        (Some("completed"), Some("completed")),
        "{rows}"
    );

    // Read straight from EC2: one snapshot per volume, one copy per snapshot.
    let east = proxy.snapshots(&p, "us-east-1");
    assert_eq!(east.len(), 4, "{east:?}");
    assert!(east.iter().all(|s| s["tags"]["cerveza:backup-set"] == set));
    let west = proxy.snapshots(&p, "eu-west-1");
    let copied: std::collections::BTreeSet<&str> = west
        .iter()
        .map(|c| c["tags"]["cerveza:copied-from"].as_str().unwrap())
        .collect();
    assert_eq!((west.len(), copied.len()), (4, 4), "{west:?}");
    let list = proxy
        .direct(&p, &["backup", "list", "-o", "json"])
        .ok()
        .json();
    let states: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["region"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("eu-west-1", "complete"), ("us-east-1", "complete")],
        "{list}"
    );
}

/// Stand-ins for sudo, fsfreeze and mountpoint on the lab's hosts (which share the test
/// machine's filesystems: nothing real may be frozen); fsfreeze logs "-f|-u MOUNT TIME".
fn freeze_fakes() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fsfreeze.log");
    let fakes = [
        (
            "sudo",
            "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n".to_owned(),
        ),
        (
            "fsfreeze",
            format!(
                "#!/bin/sh\necho \"$1 $2 $(date +%s.%N)\" >> '{}'\n",
                log.display()
            ),
        ),
        ("mountpoint", "#!/bin/sh\nexit 0\n".to_owned()),
    ];
    for (name, body) in fakes {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, log)
}

/// The fake fsfreeze's log: (action, mount point, time).
fn freezes(log: &std::path::Path) -> Vec<(String, String, f64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_owned(), w[1].to_owned(), w[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn freeze_thaws_after_the_snapshot_and_by_itself_when_cerveza_is_killed() {
    let p = product();
    support::start_new(&p, "db01", "us-east-1a", "Mysql").ok();
    let (fakes, log) = freeze_fakes();
    let backup = |args: &[&str], failpoint: &str| -> support::Run {
        support::cmd(&p)
            .env(
                "CERVEZA_TEST_ADDRESSES",
                support::lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
            )
            .env("CERVEZA_TEST_PATH_PREFIX", fakes.path())
            .env("CERVEZA_FAILPOINT", failpoint)
            .arg("backup")
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    // Frozen for the call, thawed right after it.
    let r = backup(&["db01", "--freeze", "--wait", "-o", "json"], "");
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        r.json()[0]["frozen"],
        serde_json::json!(["/var/lib/mysql"]),
        "{r:#?}"
    );
    assert_eq!(r.json()[0]["state"], "completed");
    let seen = freezes(&log);
    let actions: Vec<(&str, &str)> = seen
        .iter()
        .map(|(a, m, _)| (a.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("-f", "/var/lib/mysql"), ("-u", "/var/lib/mysql")],
        "{seen:?}"
    );

    // Killed while frozen: nothing snapshotted, and the host thaws itself at the bound.
    std::fs::remove_file(&log).unwrap();
    let sets_before = snapshots(&p, "us-east-1").len();
    let r = backup(
        &["db01", "--freeze", "--freeze-timeout", "3s"],
        "after-freeze",
    );
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("failpoint after-freeze"), "{r:#?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while freezes(&log).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let seen = freezes(&log);
    assert_eq!(seen.len(), 2, "thawed by the host: {seen:?}");
    assert_eq!(
        (seen[1].0.as_str(), seen[1].1.as_str()),
        ("-u", "/var/lib/mysql")
    );
    let held = seen[1].2 - seen[0].2;
    assert!(
        (2.5..15.0).contains(&held),
        "thawed at its bound (3 s): {held}"
    );
    assert_eq!(
        snapshots(&p, "us-east-1").len(),
        sets_before,
        "nothing snapshotted"
    );
}
