//! `cerveza plan`, `apply` and `fleet export` against the lab: every change kind, saved
//! plans refused when the fleet moved, two operators at once, and a kill -9 halfway.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{cerveza, cloud, product, start_new, Run};

/// Writes a fleet file for `p` with these entries (YAML lines under `hosts:`).
fn fleet(dir: &Path, name: &str, p: &str, entries: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("--- !Fleet\nproduct: {p}\nhosts:\n{entries}"),
    )
    .unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Each host's change in a JSON plan, with "(held)" when held.
fn changes(plan: &Value) -> Vec<(String, String)> {
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut c = r["change"].as_str().unwrap().to_owned();
            if r["held"].is_string() {
                c += " (held)";
            }
            (r["host"].as_str().unwrap().to_owned(), c)
        })
        .collect()
}

/// The live instances of `p` by host: (zone, state, profile).
fn live(p: &str) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = cloud(p)["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !["terminated", "shutting-down"].contains(&i["state"].as_str().unwrap()))
        .map(|i| {
            (
                i["tags"]["cerveza:host"].as_str().unwrap().to_owned(),
                i["zone"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
                i["tags"]["cerveza:profile"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

const WEB: &str = "  - names: web[01-03]
    profile: Web
    zones: [us-east-1a, us-east-1b]
  - name: vpn01
    profile: UbuntuGeneric32Bit
    zone: eu-west-1a
    state: stopped
";

#[test]
fn plan_apply_and_export_reach_and_keep_the_file_s_fleet() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let first = fleet(dir.path(), "fleet.yaml", &p, WEB);

    // A plan of a new fleet: everything launches; exit 2 says "differs".
    let r = cerveza(&p, &["plan", s(&first), "-o", "json"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let plan = r.json();
    assert_eq!(
        changes(&plan),
        [
            ("web01".into(), "launch".into()),
            ("web02".into(), "launch".into()),
            ("web03".into(), "launch".into()),
            ("vpn01".into(), "launch".into()),
        ]
    );
    assert_eq!(plan["hosts"][3]["then_stop"], true);
    assert!(
        cloud(&p)["instances"].as_array().unwrap().is_empty(),
        "plan changes nothing"
    );

    // Without a terminal and without --yes, apply asks nobody and does nothing.
    let r = cerveza(&p, &["apply", s(&first)]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("add --yes"), "{r:#?}");
    assert!(cloud(&p)["instances"].as_array().unwrap().is_empty());

    cerveza(&p, &["apply", s(&first), "--yes"]).ok();
    assert_eq!(
        live(&p),
        [
            (
                "vpn01".into(),
                "eu-west-1a".into(),
                "stopped".into(),
                "UbuntuGeneric32Bit".into()
            ),
            (
                "web01".into(),
                "us-east-1a".into(),
                "running".into(),
                "Web".into()
            ),
            (
                "web02".into(),
                "us-east-1b".into(),
                "running".into(),
                "Web".into()
            ),
            (
                "web03".into(),
                "us-east-1a".into(),
                "running".into(),
                "Web".into()
            ),
        ]
    );
    // As the file says: exit 0, in one registry read and one listing per region.
    let r = cerveza(&p, &["plan", s(&first)]).ok();
    assert!(r.stdout.contains("No changes: 4 host(s)"), "{r:#?}");
    assert!(
        r.stderr.contains("read the fleet in 4 AWS requests"),
        "3 regions + 1 registry page: {r:#?}"
    );

    // Drift: web03's instance terminated, an unmanaged host, vpn01 wanted running,
    // web02 wanted stopped, web04 new, and web01 moved to another profile.
    cerveza(&p, &["terminate", "web03"]).ok();
    start_new(&p, "odd01", "us-east-1c", "UbuntuGeneric32Bit");
    let second = fleet(
        dir.path(),
        "second.yaml",
        &p,
        "  - name: web01
    profile: UbuntuGeneric32Bit
    zone: us-east-1a
  - name: web02
    profile: Web
    zone: us-east-1b
    state: stopped
  - names: web[03-04]
    profile: Web
    zones: [us-east-1a, us-east-1b]
  - name: vpn01
    profile: UbuntuGeneric32Bit
    zone: eu-west-1a
",
    );
    let r = cerveza(&p, &["plan", s(&second), "-o", "json"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let want: Vec<(String, String)> = [
        ("web01", "replace (held)"),
        ("web02", "stop"),
        ("web03", "relaunch"),
        ("web04", "launch"),
        ("vpn01", "start"),
        ("odd01", "unmanaged"),
    ]
    .iter()
    .map(|(h, c)| ((*h).into(), (*c).into()))
    .collect();
    assert_eq!(changes(&r.json()), want);
    let table = cerveza(&p, &["plan", s(&second)]);
    assert!(
        table.stdout.contains(
            "Plan: 1 to launch, 1 to relaunch, 1 to start, 1 to stop, 1 replace held, 1 unmanaged; 0 unchanged."
        ),
        "{table:#?}"
    );

    // A saved plan, then someone stops odd01 (a host the plan would not touch) at the
    // console, behind cerveza's back (its registry record is left as it was): the plan
    // is refused, naming it, and nothing is done.
    let saved = dir.path().join("plan.json");
    std::fs::write(&saved, &r.stdout).unwrap();
    support::stop_at_console(&p, "odd01");
    let before = live(&p);
    let r = cerveza(&p, &["apply", "--plan", s(&saved)]);
    assert_eq!(r.code, 4, "{r:#?}");
    assert!(r.stderr.contains("is stale: 1 host(s) changed"), "{r:#?}");
    assert!(r.stderr.contains("odd01: was i-"), "{r:#?}");
    assert!(r.stderr.contains(" stopped"), "{r:#?}");
    assert_eq!(live(&p), before, "a stale plan does nothing");

    // A fresh saved plan is carried out as it is; the held replace stays held.
    let r = cerveza(&p, &["plan", s(&second), "-o", "json"]);
    std::fs::write(&saved, &r.stdout).unwrap();
    let r = cerveza(&p, &["apply", "--plan", s(&saved), "-o", "json"]).ok();
    assert!(r.stderr.contains("web01: replace held"), "{r:#?}");
    let done = r.json();
    let done: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["host"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["web02", "web03", "web04", "vpn01"]);
    let web01 = live(&p).into_iter().find(|h| h.0 == "web01").unwrap();
    assert_eq!(web01.3, "Web", "held: web01 keeps its instance");

    // --replace web01 --prune: web01 relaunched with its new profile, odd01 gone.
    cerveza(
        &p,
        &[
            "apply",
            s(&second),
            "--replace",
            "web01",
            "--prune",
            "--yes",
        ],
    )
    .ok();
    let hosts = live(&p);
    assert_eq!(
        hosts,
        [
            (
                "vpn01".into(),
                "eu-west-1a".into(),
                "running".into(),
                "UbuntuGeneric32Bit".into()
            ),
            (
                "web01".into(),
                "us-east-1a".into(),
                "running".into(),
                "UbuntuGeneric32Bit".into()
            ),
            (
                "web02".into(),
                "us-east-1b".into(),
                "stopped".into(),
                "Web".into()
            ),
            (
                "web03".into(),
                "us-east-1a".into(),
                "running".into(),
                "Web".into()
            ),
            (
                "web04".into(),
                "us-east-1b".into(),
                "running".into(),
                "Web".into()
            ),
        ]
    );
    let registry = cloud(&p)["registry"].clone();
    assert!(
        registry
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["hostname"] != "odd01"),
        "pruned hosts are forgotten: {registry}"
    );
    let r = cerveza(&p, &["plan", s(&second)]).ok();
    assert!(r.stdout.contains("No changes: 5 host(s)"), "{r:#?}");

    // Export: a fleet file of the fleet as it is, which plans to no change.
    let r = cerveza(&p, &["fleet", "export"]).ok();
    assert!(
        r.stdout
            .contains("  - names: web[03-04]\n    profile: Web\n"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains(
            "  - name: web02\n    profile: Web\n    zone: us-east-1b\n    state: stopped\n"
        ),
        "{r:#?}"
    );
    let exported = dir.path().join("exported.yaml");
    std::fs::write(&exported, &r.stdout).unwrap();
    let r = cerveza(&p, &["plan", s(&exported)]).ok();
    assert!(r.stdout.contains("No changes: 5 host(s)"), "{r:#?}");
}

#[test]
fn a_broken_fleet_file_is_refused_before_any_call_with_every_problem_located() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let bad = fleet(
        dir.path(),
        "bad.yaml",
        &p,
        "  - names: web[01-03]
    profile: Wbe
    zone: us-east-1a
  - names: [web03, 'web;rm']
    profile: Web
    zones: [us-west-2a]
",
    );
    let r = cerveza(&p, &["plan", s(&bad)]);
    assert_eq!(r.code, 1, "errors never exit 2 (\"differs\"): {r:#?}");
    let path = s(&bad);
    for want in [
        format!("{path}:5:14: unknown instance profile \"Wbe\"; did you mean \"Web\"?"),
        format!("{path}:7:13: web03 is named twice: here and at {path}:4:12"),
        format!("{path}:7:21: invalid hostname \"web;rm\""),
        format!(
            "{path}:9:13: zone us-west-2a is in region us-west-2, which is not a configured region"
        ),
    ] {
        assert!(r.stderr.contains(&want), "{want}\n{r:#?}");
    }
    assert!(
        r.stderr.contains("nothing was read from the cloud"),
        "{r:#?}"
    );
    let r = cerveza(&p, &["apply", s(&bad), "--yes"]);
    assert_eq!(r.code, 2, "{r:#?}");
    // As said: no request of this account reached the cloud, of any service.
    assert_eq!(
        support::requests_of(&p),
        0,
        "plan and apply of a broken file"
    );
    // A zone that does not exist is found by the plan's one zone listing, before anything.
    let nozone = fleet(
        dir.path(),
        "z.yaml",
        &p,
        "  - name: a1\n    profile: Web\n    zone: us-east-1q\n",
    );
    let r = cerveza(&p, &["apply", s(&nozone), "--yes"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr
            .contains(":6:11: a1: zone us-east-1q does not exist in region us-east-1"),
        "{r:#?}"
    );
    assert!(
        support::requests_of(&p) > 0,
        "this plan reads the cloud, and the count sees it"
    );
    // A mistyped flag of plan is an error (1), not "differs" (2).
    let r = cerveza(&p, &["plan", s(&nozone), "--prnue"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let state = cloud(&p);
    assert!(state["instances"].as_array().unwrap().is_empty(), "{state}");
    assert!(state["registry"].as_array().unwrap().is_empty(), "{state}");
}

#[test]
fn two_operators_applying_at_once_make_one_instance_per_host() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let proxy = support::Proxy::start(&serde_json::json!({"rules": [
        // Each claim (a create) of a hostname is held until the rival's arrives, so
        // both operators read "no record" and both claim: a real race on every one.
        {"fault": "pair", "seconds": 10, "service": "dynamodb", "action": "PutItem",
         "body_contains": "attribute_not_exists", "key": "\"hostname\":\\{\"S\":\"([^\"]+)\"\\}"},
    ]}));
    let a = fleet(
        dir.path(),
        "a.yaml",
        &p,
        "  - names: race[1-4]\n    profile: UbuntuGeneric32Bit\n    zone: us-east-1c\n",
    );
    let b = fleet(
        dir.path(),
        "b.yaml",
        &p,
        "  - names: race[3-6]\n    profile: UbuntuGeneric32Bit\n    zone: us-east-1c\n",
    );
    let spawn = |file: &Path| {
        proxy
            .cmd(&p)
            .args(["apply", s(file), "--yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ra, rb) = (spawn(&a), spawn(&b));
    let (ra, rb): (Run, Run) = (
        ra.wait_with_output().unwrap().into(),
        rb.wait_with_output().unwrap().into(),
    );
    let state = proxy.cloud(&p);
    let hosts = support::instance_hosts(&state);
    assert_eq!(
        hosts,
        ["race1", "race2", "race3", "race4", "race5", "race6"],
        "exactly one instance per host\n{ra:#?}\n{rb:#?}"
    );
    // race3 and race4 were raced for: whoever lost a claim was told, naming the host.
    let lost: Vec<&str> = [&ra, &rb]
        .iter()
        .flat_map(|r| r.stderr.lines())
        .filter(|l| l.contains("the hostname was just claimed"))
        .collect();
    assert_eq!(lost.len(), 2, "{ra:#?}\n{rb:#?}");
    assert_eq!(proxy.stats()["paired"], 2, "race3's and race4's claims met");
    assert!(lost.iter().any(|l| l.contains("race3")) && lost.iter().any(|l| l.contains("race4")));
    for run in [&ra, &rb] {
        assert!([0, 4, 5].contains(&run.code), "{run:#?}");
        for line in run.stderr.lines().filter(|l| l.starts_with("error:")) {
            assert!(line.contains("another operator"), "{line}");
        }
    }
    // Both files again: nothing left to do for either.
    for f in [&a, &b] {
        let r = proxy.direct(&p, &["apply", s(f), "--yes"]);
        assert_eq!(r.code, 0, "{r:#?}");
        assert!(r.stdout.contains("Nothing to do."), "{r:#?}");
    }
    support::assert_converged(
        &proxy.cloud(&p),
        &p,
        &(1..=6).map(|i| format!("race{i}")).collect::<Vec<_>>(),
        0,
    );
}

#[test]
fn an_apply_killed_halfway_then_run_again_reaches_the_same_end_state() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let file = fleet(
        dir.path(),
        "db.yaml",
        &p,
        "  - names: db[01-03]\n    profile: Mysql\n    zones: [ap-southeast-1a, ap-southeast-1b]\n",
    );
    // The proxy holds every AttachVolume for 120 s (longer than the rerun takes), and the kill comes once it says it
    // holds one: instances running, volumes made, none attached. (A kill after a fixed
    // wait could come after concurrent attaches had all gone through.)
    let proxy = support::Proxy::start(&serde_json::json!({"rules": [
        {"fault": "delay", "seconds": 120.0, "service": "ec2", "action": "AttachVolume"},
    ]}));
    let mut child = proxy
        .cmd(&p)
        .args(["apply", s(&file), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.injected("delay") == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply ended before it attached anything"
        );
        assert!(
            Instant::now() < deadline,
            "no AttachVolume reached the proxy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().is_none(), "killed while it ran");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let cut = proxy.cloud(&p);
    let attached = cut["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v["tags"]["cerveza:device"].is_string() && v["attached_to"] != serde_json::json!([])
        })
        .count();
    assert_eq!(
        attached, 0,
        "the kill came while the attaches were held: {cut}"
    );

    // The same apply again: what was cut short is planned as launch or repair, and done.
    let r = proxy.direct(&p, &["apply", s(&file), "--yes"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains(" repair ") || r.stdout.contains(" launch "),
        "{r:#?}"
    );
    support::assert_converged(
        &proxy.cloud(&p),
        &p,
        &["db01".into(), "db02".into(), "db03".into()],
        4,
    );
    let r = proxy.direct(&p, &["plan", s(&file)]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("No changes: 3 host(s)"), "{r:#?}");
}

#[test]
fn interactive_apply_reads_the_fleet_again_after_the_question() {
    // apply on a terminal (util-linux script gives it a pty): the plan is shown and
    // asked; meanwhile someone stops a host at the console; the answer "yes" then finds
    // the plan stale: exit 4, nothing done.
    use std::io::{Read as _, Write as _};
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let one = fleet(
        dir.path(),
        "one.yaml",
        &p,
        "  - name: tty01\n    profile: UbuntuGeneric32Bit\n    zone: us-east-1a\n",
    );
    cerveza(&p, &["apply", s(&one), "--yes"]).ok();
    let two = fleet(
        dir.path(),
        "two.yaml",
        &p,
        "  - names: tty[01-02]\n    profile: UbuntuGeneric32Bit\n    zone: us-east-1a\n",
    );
    let line = format!("{} -m {p} apply {}", env!("CARGO_BIN_EXE_cerveza"), s(&two));
    let mut child = support::lab_command("script", &p)
        .env("TERM", "dumb")
        .env("SHELL", "/bin/sh")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Wait for the question itself, with a deadline.
    let mut shown = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !String::from_utf8_lossy(&shown).contains("Only 'yes' goes on:") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => shown.extend(chunk),
            Err(_) => panic!("no question: {}", String::from_utf8_lossy(&shown)),
        }
    }
    support::stop_at_console(&p, "tty01");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"yes\n").unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    shown.extend(rx.try_iter().flatten());
    let text = String::from_utf8_lossy(&shown);
    assert_eq!(status.code(), Some(4), "{text}");
    assert!(
        text.contains("the plan shown is stale: 1 host(s) changed"),
        "{text}"
    );
    let hosts: Vec<(String, String)> = live(&p)
        .into_iter()
        .map(|(h, _, state, _)| (h, state))
        .collect();
    assert_eq!(
        hosts,
        [("tty01".to_owned(), "stopped".to_owned())],
        "nothing launched, nothing started again"
    );
}
