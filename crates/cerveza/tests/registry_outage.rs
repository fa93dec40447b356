//! The registry's home region black-holed (connections accepted, never answered):
//! hosts in other regions are still stopped, started, rebooted, restarted and
//! terminated within seconds, with one warning; what needs the registry fails fast and
//! says where it is; the records are repaired afterwards by `registry sync` and by
//! the next command that reaches the registry. End state read from moto with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{product, Proxy, Run};

/// Runs cerveza through the proxy, timed.
fn timed(proxy: &Proxy, p: &str, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let run: Run = proxy
        .cmd(p)
        .env("CERVEZA_REGISTRY_TIMEOUT", "1s")
        .env("CERVEZA_REGION_TIMEOUT", "3s")
        .args(args)
        .output()
        .unwrap()
        .into();
    (run, started.elapsed())
}

/// Runs the same command as two operators at once, through the proxy.
fn two_at_once(proxy: &Proxy, p: &str, args: &[&str]) -> Vec<Run> {
    let spawn = || {
        proxy
            .cmd(p)
            .env("CERVEZA_REGISTRY_TIMEOUT", "1s")
            .env("CERVEZA_REGION_TIMEOUT", "3s")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    [a, b]
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().into())
        .collect()
}

/// eu01's instances and its registry record, as moto has them.
fn eu01(proxy: &Proxy, p: &str) -> (Vec<Value>, Value) {
    let state = proxy.cloud(p);
    let instances = state["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["tags"]["cerveza:host"] == "eu01")
        .cloned()
        .collect();
    (instances, state["registry"][0].clone())
}

#[test]
fn hosts_in_other_regions_do_not_wait_on_the_registry() {
    let p = product();
    // RunInstances is held 2 s, so two operators relaunching at once both send it
    // while the other's is in flight.
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "blackhole", "region": "us-east-1"},
        {"fault": "delay", "seconds": 2, "service": "ec2", "action": "RunInstances"},
    ]}));
    proxy.start_direct(&p, &[("eu01", "eu-west-1a")]);
    let (before, _) = eu01(&proxy, &p);
    assert_eq!(before.len(), 1);

    for (args, state) in [
        (&["stop", "eu01"][..], "stopped"),
        (&["start", "eu01"][..], "running"),
        (&["reboot", "eu01"][..], "running"),
        (&["restart", "eu01"][..], "running"),
        (&["--stop", "eu01"][..], "stopped"),
    ] {
        let (r, took) = timed(&proxy, &p, args);
        assert_eq!(r.code, 0, "{args:?}: {r:#?}");
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        let warnings: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{args:?}: one warning: {}", r.stderr);
        assert!(
            warnings[0].contains(
                "the registry (DynamoDB table cerveza-hosts in us-east-1) did not answer"
            ) && warnings[0].contains("cerveza registry sync"),
            "{}",
            warnings[0]
        );
        let (instances, _) = eu01(&proxy, &p);
        assert_eq!(instances.len(), 1, "{args:?}: the same instance");
        assert_eq!(instances[0]["state"], state, "{args:?}");
    }
    assert!(proxy.injected("blackhole") >= 5, "{}", proxy.stats());

    // The record is stale (the registry never heard of the stop); sync repairs it.
    let (_, rec) = eu01(&proxy, &p);
    assert_eq!(rec["state"], "running", "{rec}");
    let r = proxy.direct(&p, &["registry", "sync", "-o", "json"]).ok();
    let rows = r.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "eu01")
        .unwrap()
        .clone();
    assert_eq!(row["change"], "updated", "{rows}");
    assert_eq!(
        row["to"],
        format!("stopped {}", before[0]["id"].as_str().unwrap())
    );
    let (_, rec) = eu01(&proxy, &p);
    assert_eq!(rec["state"], "stopped", "{rec}");

    // What needs the registry fails fast, names it, and creates nothing.
    let (r, took) = timed(
        &proxy,
        &p,
        &[
            "start",
            "new01",
            "--zone",
            "eu-west-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    );
    assert_eq!(r.code, 6, "{r:#?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        r.stderr
            .contains("a new hostname is claimed in the registry")
            && r.stderr.contains("in us-east-1) did not answer"),
        "{}",
        r.stderr
    );
    let (r, _) = timed(&proxy, &p, &["terminate", "eu01", "--forget"]);
    assert_eq!(r.code, 6, "{r:#?}");
    assert!(
        r.stderr.contains("--forget deletes its registry record"),
        "{}",
        r.stderr
    );
    let state = proxy.cloud(&p);
    assert_eq!(state["instances"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(
        state["instances"][0]["state"], "stopped",
        "nothing was terminated"
    );

    // Two operators starting it at once during the outage: one instance.
    for run in two_at_once(&proxy, &p, &["start", "eu01"]) {
        assert!([0, 1].contains(&run.code), "{run:#?}");
    }
    let (instances, _) = eu01(&proxy, &p);
    assert_eq!(instances.len(), 1, "one instance: {instances:#?}");
    assert_eq!(instances[0]["state"], "running");

    // Terminate without --forget works. Then two operators relaunch it at once from
    // its tags (the terminated instance says where and how it lived): the same
    // generation, the same ClientToken, one new instance.
    let (r, _) = timed(&proxy, &p, &["terminate", "eu01"]);
    assert_eq!(r.code, 0, "{r:#?}");
    let launches = |proxy: &Proxy| {
        proxy.stats()["requests"]["ec2:RunInstances"]
            .as_u64()
            .unwrap_or(0)
    };
    let launched_before = launches(&proxy);
    for run in two_at_once(&proxy, &p, &["start", "eu01"]) {
        assert_eq!(run.code, 0, "{run:#?}");
    }
    assert_eq!(
        launches(&proxy) - launched_before,
        2,
        "both operators launched: {}",
        proxy.stats()
    );
    let (instances, rec) = eu01(&proxy, &p);
    let live: Vec<&Value> = instances
        .iter()
        .filter(|i| i["state"] == "running")
        .collect();
    assert_eq!(live.len(), 1, "one new instance: {instances:#?}");
    assert_ne!(live[0]["id"], before[0]["id"]);
    assert_eq!(live[0]["zone"], "eu-west-1a");
    assert_eq!(
        rec["instance_id"], before[0]["id"],
        "the registry never heard of it"
    );

    // The registry is back: the next command that reaches it brings the record up
    // to date (here a stop), without a sync.
    proxy.direct(&p, &["stop", "eu01"]).ok();
    let (_, rec) = eu01(&proxy, &p);
    assert_eq!(rec["instance_id"], live[0]["id"], "{rec}");
    assert_eq!(rec["state"], "stopped");
}
