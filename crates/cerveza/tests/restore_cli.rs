//! `cerveza restore` and `cerveza move` against the lab cloud (snapshots pending a while,
//! volumes `creating` a while, as EBS has them): a Mysql host's 4-volume set restored
//! into another zone; a move killed after each step and rerun; two operators moving the
//! same host. The end state is read with boto3: one live instance, in the new zone, with
//! one set attached, made from the set's snapshots; the old set kept, marked replaced.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::Value;
use support::{cerveza, cloud, cloud_py, cmd, product, snapshots, Proxy};

/// The data volumes (those of a volume profile) of the product.
fn data_volumes(state: &Value) -> Vec<Value> {
    state["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tags"]["cerveza:volume-profile"].is_string())
        .cloned()
        .collect()
}

/// Asserts, from boto3's reading: db01 has one live instance, running in `zone`, with
/// four data volumes in `zone` attached at their devices, made from `set`'s snapshots
/// (in `zone`'s region: copies, when the set was taken in another);
/// every other data volume of it is detached, has no device and is marked replaced; the
/// registry says `zone` and that instance. Returns the instance id.
#[track_caller]
fn assert_in(p: &str, zone: &str, set: &str) -> String {
    let state = cloud(p);
    let live: Vec<&Value> = state["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] != "terminated" && i["state"] != "shutting-down")
        .collect();
    assert_eq!(live.len(), 1, "one live instance: {state}");
    let inst = live[0];
    assert_eq!(
        (inst["zone"].as_str(), inst["state"].as_str()),
        (Some(zone), Some("running")),
        "{inst}"
    );
    let id = inst["id"].as_str().unwrap().to_owned();
    let region = &zone[..zone.len() - 1];
    // Each snapshot of the set, and the device whose data it holds.
    let set_snaps: BTreeMap<String, Value> = snapshots(p, region)
        .iter()
        .filter(|s| s["tags"]["cerveza:backup-set"] == set)
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["tags"]["cerveza:device"].clone(),
            )
        })
        .collect();
    assert_eq!(set_snaps.len(), 4, "{set}");
    let (attached, rest): (Vec<Value>, Vec<Value>) = data_volumes(&state)
        .into_iter()
        // Deleted by --delete-replaced (EBS takes a while).
        .filter(|v| v["state"] != "deleting")
        .partition(|v| v["attached_to"] == serde_json::json!([id]));
    assert_eq!(attached.len(), 4, "one set attached: {state}");
    for v in &attached {
        assert_eq!(v["zone"], zone, "{v}");
        assert!(v["tags"]["cerveza:device"].is_string(), "{v}");
        assert_eq!(v["tags"]["cerveza:restored-from"], set, "{v}");
        assert!(v["tags"]["cerveza:restore-device"].is_null(), "{v}");
        // Made from the set's snapshot of the same device: a member restored at
        // another device would hand the RAID its disks in another order.
        let snap = v["snapshot"].as_str().unwrap_or_default();
        assert_eq!(
            set_snaps.get(snap),
            Some(&v["tags"]["cerveza:device"]),
            "made from the set's snapshot of its device: {v}"
        );
    }
    for v in &rest {
        assert_eq!(v["attached_to"], serde_json::json!([]), "{v}");
        assert!(v["tags"]["cerveza:device"].is_null(), "no second set: {v}");
        assert!(v["tags"]["cerveza:replaced-by"].is_string(), "{v}");
    }
    let rec = state["registry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == "db01")
        .unwrap()
        .clone();
    assert_eq!(
        (rec["zone"].as_str(), rec["instance_id"].as_str()),
        (Some(zone), Some(id.as_str())),
        "{rec}"
    );
    id
}

fn start_db01(p: &str) {
    support::start_new(p, "db01", "us-east-1a", "Mysql").ok();
}

/// The set db01's data volumes in `zone` were restored from.
fn restored_in(state: &Value, zone: &str) -> String {
    data_volumes(state)
        .iter()
        .find(|v| v["zone"] == zone && v["tags"]["cerveza:device"].is_string())
        .and_then(|v| v["tags"]["cerveza:restored-from"].as_str())
        .unwrap_or_else(|| panic!("no restored set in {zone}: {state}"))
        .to_owned()
}

fn backup(p: &str) -> String {
    let r = cerveza(p, &["backup", "db01", "--wait", "-o", "json"]).ok();
    r.json()[0]["set"].as_str().unwrap().to_owned()
}

#[test]
fn a_set_is_restored_into_another_zone_and_the_host_starts_there_with_it() {
    let p = product();
    start_db01(&p);
    let set = backup(&p);
    let before = data_volumes(&cloud(&p)).len();

    // A zone the region does not have: refused before the host is stopped (a move)
    // or anything is made or terminated (a restore).
    let r = cerveza(&p, &["move", "db01", "--zone", "us-east-1z"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr
            .contains("zone us-east-1z does not exist in region us-east-1"),
        "{r:#?}"
    );
    assert_eq!(support::live_instance(&p, "db01")["state"], "running");

    // Never under a running host; nothing is made.
    let r = cerveza(&p, &["restore", "db01", "--zone", "us-east-1b"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("cerveza stop db01"), "{r:#?}");
    assert_eq!(data_volumes(&cloud(&p)).len(), before);

    // A set with a member lost is incomplete and refused; so is a set that is not there.
    let broken = backup(&p);
    let lost = snapshots(&p, "us-east-1")
        .into_iter()
        .find(|s| s["tags"]["cerveza:backup-set"] == broken.as_str())
        .unwrap();
    cloud_py(&["delete-snapshot", "us-east-1", lost["id"].as_str().unwrap()]);
    cerveza(&p, &["stop", "db01"]).ok();
    let r = cerveza(
        &p,
        &["restore", "db01", "--from", &broken, "--zone", "us-east-1b"],
    );
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("incomplete"), "{r:#?}");
    let r = cerveza(&p, &["restore", "db01", "--from", "db01-nope"]);
    assert_eq!(r.code, 3, "not found: {r:#?}");
    let r = cerveza(&p, &["restore", "db01", "--zone", "us-east-1z"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("does not exist in region"), "{r:#?}");
    assert_eq!(support::live_instance(&p, "db01")["state"], "stopped");
    assert_eq!(data_volumes(&cloud(&p)).len(), before, "nothing made");

    // The newest complete set (not the broken one), into us-east-1b.
    let r = cerveza(
        &p,
        &["restore", "db01", "--zone", "us-east-1b", "-o", "json"],
    )
    .ok();
    assert!(
        r.stderr
            .contains(&format!("set {set} restored in us-east-1b")),
        "{r:#?}"
    );
    assert_eq!(r.json()[0]["action"], "launched", "{r:#?}");
    assert_in(&p, "us-east-1b", &set);
    assert_eq!(data_volumes(&cloud(&p)).len(), 8, "the old set is kept");

    // In its own zone: the stopped instance stays, its set is detached and, asked to,
    // deleted; the set replaced earlier (in us-east-1a) stays.
    cerveza(&p, &["stop", "db01"]).ok();
    let instance = assert_in_stopped(&p);
    let attached: Vec<String> = data_volumes(&cloud(&p))
        .iter()
        .filter(|v| v["attached_to"] == serde_json::json!([instance]))
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(attached.len(), 4);
    let newer = backup(&p);
    let r = cerveza(&p, &["restore", "db01", "--delete-replaced", "-o", "json"]).ok();
    assert_eq!(r.json()[0]["action"], "started", "{r:#?}");
    assert_eq!(
        assert_in(&p, "us-east-1b", &newer),
        instance,
        "the same instance"
    );
    let left = data_volumes(&cloud(&p));
    for id in &attached {
        assert!(
            left.iter()
                .all(|v| v["id"] != id.as_str() || v["state"] == "deleting"),
            "{id} deleted: {left:?}"
        );
    }
    let kept = left.iter().filter(|v| v["zone"] == "us-east-1a").count();
    assert_eq!(kept, 4, "the first replaced set is kept: {left:?}");
}

/// The id of db01's one live instance, which is stopped.
fn assert_in_stopped(p: &str) -> String {
    let state = cloud(p);
    let live: Vec<&Value> = state["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] != "terminated")
        .collect();
    assert_eq!(live.len(), 1, "{state}");
    assert_eq!(live[0]["state"], "stopped");
    live[0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_move_killed_after_each_step_is_finished_by_a_rerun() {
    let p = product();
    start_db01(&p);
    let sets = |p: &str| {
        snapshots(p, "us-east-1")
            .iter()
            .filter_map(|s| s["tags"]["cerveza:backup-set"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<String>>()
    };
    let mut zone = "us-east-1a";
    for (failpoint, to) in [
        ("after-snapshot", "us-east-1b"),
        ("after-restore-volumes", "us-east-1c"),
        ("after-replace", "us-east-1a"),
        ("after-restore", "us-east-1b"),
    ] {
        let killed = cmd(&p)
            .args(["move", "db01", "--zone", to])
            .env("CERVEZA_FAILPOINT", failpoint)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            !killed.status.success(),
            "{failpoint}: the failpoint aborts"
        );
        let stderr = String::from_utf8_lossy(&killed.stderr);
        assert!(stderr.contains("failpoint"), "{failpoint}: {stderr}");
        if failpoint == "after-replace" {
            // The host now has no set a start would attach: starts refuse, untouched.
            let r = cerveza(&p, &["start", "db01"]);
            assert_eq!(r.code, 4, "{r:#?}");
            assert!(r.stderr.contains("has not ended"), "{r:#?}");
            let state = cloud(&p);
            assert!(
                state["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["state"] != "running"),
                "not started: {state}"
            );
        }
        let before = sets(&p);
        let r = cerveza(&p, &["move", "db01", "--zone", to]).ok();
        let set = sets(&p).into_iter().max().unwrap();
        if failpoint == "after-snapshot" {
            // The rerun goes on with the set the killed run took: no second one.
            assert_eq!(sets(&p), before, "{r:#?}");
            assert!(
                r.stderr.contains("which an earlier run of this move took"),
                "{r:#?}"
            );
        }
        // Either way the host runs in `to` with the set it restored.
        let restored = cloud(&p)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["zone"] == to && v["tags"]["cerveza:device"].is_string())
            .map(|v| {
                v["tags"]["cerveza:restored-from"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .unwrap_or(set);
        assert_in(&p, to, &restored);
        assert!(!r.stderr.is_empty(), "{r:#?}");
        zone = to;
    }
    assert_eq!(zone, "us-east-1b");
    // A move's set no longer holds the data once the host has run again: the rerun
    // after a start takes its own, and restores that.
    let killed = cmd(&p)
        .args(["move", "db01", "--zone", "us-east-1c"])
        .env("CERVEZA_FAILPOINT", "after-snapshot")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let stale = sets(&p);
    cerveza(&p, &["start", "db01"]).ok();
    let r = cerveza(&p, &["move", "db01", "--zone", "us-east-1c"]).ok();
    assert!(!r.stderr.contains("earlier run"), "{r:#?}");
    let mut new = sets(&p);
    new.retain(|s| !stale.contains(s));
    assert_eq!(new.len(), 1, "{new:?}");
    assert_in(&p, "us-east-1c", new.first().unwrap());
    // A move to where it lives changes nothing.
    let before = snapshots(&p, "us-east-1").len();
    cerveza(&p, &["move", "db01", "--zone", "us-east-1c"]).ok();
    assert_eq!(snapshots(&p, "us-east-1").len(), before, "no new set");
}

#[test]
fn two_operators_moving_one_host_leave_one_instance_with_one_set() {
    let p = product();
    start_db01(&p);
    let spawn = |who: &str| {
        cmd(&p)
            .args(["move", "db01", "--zone", "us-east-1c"])
            .env("USER", who)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("alice"), spawn("bob"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // One goes on, the other steps back and waits until the move has ended (or both
    // step back, and look again): both end well.
    for (who, o) in [("alice", &a), ("bob", &b)] {
        assert!(
            o.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let state = cloud(&p);
    let set = data_volumes(&state)
        .iter()
        .find(|v| v["tags"]["cerveza:device"].is_string())
        .map(|v| {
            v["tags"]["cerveza:restored-from"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .unwrap();
    assert_in(&p, "us-east-1c", &set);
}

#[test]
fn a_set_copied_to_another_region_restores_there_and_a_move_takes_the_host_there() {
    let p = product();
    start_db01(&p);
    let original: Vec<Value> = data_volumes(&cloud(&p));
    // The set, and its copy in eu-west-1: tagged as the set is (EC2 copies no user
    // tags), each copy saying which snapshot it copies. One copy at a time there
    // (EBS limits copies in progress per destination region): paced, not failed.
    support::limits(&p, "eu-west-1", r#"{"snapshot-copies": 1}"#);
    let r = cerveza(
        &p,
        &["backup", "db01", "--copy-to", "eu-west-1", "-o", "json"],
    )
    .ok();
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let set = rows[0]["set"].as_str().unwrap().to_owned();
    assert_eq!(
        (rows[0]["region"].as_str(), rows[0]["state"].as_str()),
        (Some("us-east-1"), Some("completed"))
    );
    assert_eq!(
        (
            rows[1]["region"].as_str(),
            rows[1]["state"].as_str(),
            rows[1]["copied_from"].as_str(),
            rows[1]["set"].as_str()
        ),
        (
            Some("eu-west-1"),
            Some("completed"),
            Some("us-east-1"),
            Some(set.as_str())
        )
    );
    let east: Vec<Value> = snapshots(&p, "us-east-1");
    let west: Vec<Value> = snapshots(&p, "eu-west-1")
        .into_iter()
        .filter(|s| s["tags"]["cerveza:backup-set"] == set.as_str())
        .collect();
    assert_eq!(west.len(), 4, "one copy each: {west:?}");
    let copies = support::requests_of_action(&p, "ec2:CopySnapshot");
    assert!(
        copies > 4,
        "refused while one was in progress, asked again: {copies}"
    );
    for c in &west {
        assert_eq!(c["state"], "completed", "{c}");
        let from = c["tags"]["cerveza:copied-from"].as_str().unwrap();
        let source = east
            .iter()
            .find(|s| format!("us-east-1/{}", s["id"].as_str().unwrap()) == from)
            .unwrap_or_else(|| panic!("{from} is not a snapshot of us-east-1"));
        for key in [
            "cerveza:host",
            "cerveza:device",
            "cerveza:member",
            "cerveza:backup-members",
            "cerveza:profile",
            "team",
        ] {
            assert_eq!(c["tags"][key], source["tags"][key], "{key}: {c}");
        }
        // The data: the snapshot of one of db01's volumes, at its device.
        assert!(
            original.iter().any(|v| v["id"] == source["volume"]
                && v["tags"]["cerveza:device"] == c["tags"]["cerveza:device"]),
            "{source}"
        );
    }
    // `backup list` shows it in both regions.
    let listed = cerveza(&p, &["backup", "list", "db01", "-o", "json"])
        .ok()
        .json();
    let regions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["set"] == set.as_str() && s["state"] == "complete")
        .map(|s| s["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"], "{listed}");

    // A move to eu-west-1: stopped, backed up, copied, restored and started there.
    let r = cerveza(&p, &["move", "db01", "--zone", "eu-west-1a"]).ok();
    assert!(r.stderr.contains("copying set"), "{}", r.stderr);
    let moved = cloud(&p)["registry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == "db01")
        .unwrap()["zone"]
        .clone();
    assert_eq!(moved, "eu-west-1a");
    let newest = restored_in(&cloud(&p), "eu-west-1a");
    assert_ne!(newest, set, "the move takes a set of its own");
    assert_in(&p, "eu-west-1a", &newest);
    // A restore without --zone stays where the host lives: its newest set there (the
    // copy), not the same set's original in us-east-1, which would move it back.
    cerveza(&p, &["stop", "db01"]).ok();
    let r = cerveza(&p, &["restore", "db01"]).ok();
    assert!(r.stderr.contains("in eu-west-1a"), "{}", r.stderr);
    let attached = data_volumes(&cloud(&p))
        .into_iter()
        .filter(|v| v["attached_to"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|v| v["zone"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(attached, ["eu-west-1a"; 4], "{attached:?}");
}

#[test]
fn a_fleet_file_moving_a_host_with_data_plans_a_held_move_that_replace_carries_out() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let write = |zone: &str| {
        std::fs::write(
            &fleet,
            format!("--- !Fleet\nproduct: {p}\nhosts:\n  - name: db01\n    profile: Mysql\n    zone: {zone}\n"),
        )
        .unwrap();
    };
    let f = fleet.to_str().unwrap();
    write("us-east-1a");
    cerveza(&p, &["apply", f, "--yes"]).ok();
    write("us-east-1b");
    // Planned as a move, held: a replace would launch it away from its data.
    let r = cerveza(&p, &["plan", f, "-o", "json"]);
    assert_eq!(r.code, 2, "the fleet differs from the file: {r:#?}");
    assert_eq!(
        r.json()["summary"],
        serde_json::json!({"held": 1, "move": 1})
    );
    let row = r.json()["hosts"][0].clone();
    assert_eq!(row["change"], "move", "{row}");
    assert!(
        row["held"].as_str().unwrap().contains("--replace db01"),
        "{row}"
    );
    let before = cloud(&p);
    let r = cerveza(&p, &["apply", f, "--yes"]);
    assert!(r.stderr.contains("db01: move held"), "{r:#?}");
    assert_eq!(
        data_volumes(&cloud(&p)),
        data_volumes(&before),
        "held: nothing moved"
    );
    // Carried out with --replace: stopped, backed up, restored in us-east-1b, started.
    let r = cerveza(&p, &["apply", f, "--yes", "--replace", "db01"]).ok();
    assert!(r.stdout.contains("us-east-1b"), "{r:#?}");
    let set = restored_in(&cloud(&p), "us-east-1b");
    assert_in(&p, "us-east-1b", &set);
    // Then the file and the fleet agree.
    let r = cerveza(&p, &["plan", f, "-o", "json"]);
    assert_eq!(r.json()["hosts"][0]["change"], "nothing", "{r:#?}");
}

/// The host's own region does not answer (EC2 there black-holed; its set was copied to
/// eu-west-1 before): a restore or a move into eu-west-1 cannot make sure the instance
/// there is stopped, so it must fail, and fail within the region timeout (5 s here),
/// not after the SDK's minute per call (120 s and 60 s before), with nothing made,
/// stopped or snapshotted.
#[test]
fn a_restore_or_move_while_the_host_s_region_does_not_answer_fails_at_once() {
    let p = product();
    let proxy = Proxy::start(&serde_json::json!({"rules": [
        {"fault": "blackhole", "region": "us-east-1", "service": "ec2"},
    ]}));
    proxy.start_new(&p, "db01", "us-east-1a", "Mysql");
    proxy
        .direct(&p, &["backup", "db01", "--copy-to", "eu-west-1"])
        .ok();
    let before = proxy.cloud(&p);
    for (args, says) in [
        (
            ["restore", "db01", "--zone", "eu-west-1a"],
            "making sure its instance in us-east-1 is stopped",
        ),
        (
            ["move", "db01", "--zone", "eu-west-1a"],
            "listing the zones of us-east-1",
        ),
    ] {
        let t = std::time::Instant::now();
        let r: support::Run = proxy
            .cmd(&p)
            .env("CERVEZA_REGION_TIMEOUT", "5s")
            .args(args)
            .output()
            .unwrap()
            .into();
        let took = t.elapsed();
        assert_eq!(r.code, 6, "{args:?}: {r:#?}");
        assert!(
            r.stderr.contains(says)
                && r.stderr
                    .contains("us-east-1 did not answer within 5s (region-timeout)"),
            "{args:?}: {r:#?}"
        );
        assert!(
            took < std::time::Duration::from_secs(45),
            "{args:?} took {took:?}"
        );
        let after = proxy.cloud(&p);
        for what in ["instances", "volumes", "registry"] {
            assert_eq!(after[what], before[what], "{args:?} changed {what}");
        }
        assert_eq!(proxy.snapshots(&p, "us-east-1").len(), 4, "{args:?}");
    }
}
