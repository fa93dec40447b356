//! `cerveza backup` against the lab cloud, whose snapshots stay pending a while (per
//! GiB) as EBS's do: a Mysql host's four data volumes become one set, each snapshot
//! with its volume's tags, the root left out; a stopped host is backed up as it is; the
//! end state read with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{cerveza, cloud, product, snapshots};

#[test]
fn a_host_s_data_volumes_become_one_complete_set_with_their_tags() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "db01",
            "--zone",
            "us-east-1a",
            "--profile",
            "Mysql",
        ],
    )
    .ok();
    cerveza(
        &p,
        &["start", "web01", "--zone", "us-east-1a", "--profile", "Web"],
    )
    .ok();
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
    cerveza(
        &p,
        &[
            "start",
            "db01",
            "--zone",
            "us-east-1a",
            "--profile",
            "Mysql",
        ],
    )
    .ok();
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
