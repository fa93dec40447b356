//! The host lifecycle end to end: the real binary against moto, end state read with boto3.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;

use support::{cerveza, cloud, cmd, foreign, live, product};

#[test]
fn paper_flow_start_stop_start_without_profile() {
    let p = product();
    let run = cerveza(
        &p,
        &[
            "--zone",
            "ap-southeast-1a",
            "--start",
            "demo01",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    )
    .ok();
    assert!(run.stdout.contains("demo01  launched"), "{run:#?}");
    let state = cloud(&p);
    let inst = &state["instances"][0];
    assert_eq!(inst["zone"], "ap-southeast-1a");
    assert_eq!(inst["state"], "running");
    assert_eq!(inst["image"], "ami-7c423c2e");
    assert_eq!(inst["type"], "m1.small");
    let tags = &inst["tags"];
    assert_eq!(
        (tags["Name"].as_str(), tags["cerveza:host"].as_str()),
        (Some("demo01"), Some("demo01"))
    );
    assert_eq!(tags["cerveza:product"], p.as_str());
    assert_eq!(tags["cerveza:profile"], "UbuntuGeneric32Bit");
    assert_eq!(tags["cerveza:zone"], "ap-southeast-1a");
    let rec = &state["registry"][0];
    assert_eq!(
        (rec["hostname"].as_str(), rec["profile"].as_str()),
        (Some("demo01"), Some("UbuntuGeneric32Bit"))
    );
    assert_eq!(
        (rec["zone"].as_str(), rec["region"].as_str()),
        (Some("ap-southeast-1a"), Some("ap-southeast-1"))
    );
    assert_eq!(rec["instance_id"], inst["id"]);
    assert_eq!(rec["state"], "running");

    cerveza(&p, &["--zone", "ap-southeast-1a", "--stop", "demo01"]).ok();
    assert_eq!(cloud(&p)["instances"][0]["state"], "stopped");
    assert_eq!(cloud(&p)["registry"][0]["state"], "stopped");

    // The profile is remembered: no --profile, not even --zone.
    let run = cerveza(&p, &["start", "demo01"]).ok();
    assert!(run.stdout.contains("demo01  started"), "{run:#?}");
    let state = cloud(&p);
    assert_eq!(
        state["instances"].as_array().unwrap().len(),
        1,
        "never a second instance"
    );
    assert_eq!(state["instances"][0]["state"], "running");

    let run = cerveza(&p, &["start", "demo01"]).ok();
    assert!(run.stdout.contains("already running"), "{run:#?}");
}

#[test]
fn many_hosts_at_once_then_list_and_show() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "web[01-05]",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
            "-j",
            "3",
        ],
    )
    .ok();
    support::start_new(&p, "db01", "eu-west-1a", "Mysql");
    assert_eq!(live(&p).len(), 6);

    let all = cerveza(&p, &["list", "-o", "json"]).ok().json();
    let hosts: Vec<&str> = all["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        ["db01", "web01", "web02", "web03", "web04", "web05"],
        "sorted, every region"
    );
    let web = &all["hosts"][1];
    assert_eq!(web["zone"], "us-east-1b");
    assert_eq!(web["instance_type"], "c5.large");
    assert_eq!(web["profile"], "Web");
    assert_eq!(web["tags"]["team"], "web", "profile tags are applied");
    assert!(web["private_ip"].as_str().is_some());
    assert_eq!(all["failed_regions"].as_array().unwrap().len(), 0);

    let some = cerveza(&p, &["list", "web[02-03]", "db*", "-o", "json"])
        .ok()
        .json();
    let hosts: Vec<&str> = some["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["db01", "web02", "web03"]);
    let zone = cerveza(&p, &["list", "region:eu-west-1"]).ok();
    assert!(
        zone.stdout.contains("db01") && !zone.stdout.contains("web01"),
        "{zone:#?}"
    );

    let show = cerveza(&p, &["show", "db01", "-o", "json"]).ok().json();
    assert_eq!(show["record"]["profile"], "Mysql");
    assert_eq!(show["instance"]["state"], "running");
    let show = cerveza(&p, &["show", "web03"]).ok();
    assert!(
        show.stdout.contains(&format!("web03.{p}.private")),
        "{show:#?}"
    );

    // Act on a selection of existing hosts.
    cerveza(&p, &["stop", "web*", "!web05"]).ok();
    let stopped = live(&p).iter().filter(|i| i["state"] == "stopped").count();
    assert_eq!(stopped, 4);
}

#[test]
fn reboot_restart_and_terminate_then_relaunch() {
    let p = product();
    support::start_new(&p, "app01", "us-east-1a", "UbuntuGeneric32Bit");
    let first = live(&p)[0]["id"].as_str().unwrap().to_owned();
    let r = cerveza(&p, &["reboot", "app01", "-o", "json"]).ok().json();
    assert_eq!(r[0]["action"], "rebooted");
    let r = cerveza(&p, &["restart", "app01", "-o", "json"]).ok().json();
    assert_eq!(r[0]["action"], "restarted");
    assert_eq!(r[0]["instance"]["state"], "running");
    assert_eq!(
        r[0]["instance"]["id"],
        first.as_str(),
        "restart keeps the instance"
    );

    cerveza(&p, &["--terminate", "app01"]).ok();
    assert!(live(&p).is_empty());
    assert_eq!(
        cloud(&p)["registry"][0]["state"],
        "terminated",
        "the registry remembers it"
    );

    // Start relaunches with the remembered profile and zone, under a new generation.
    let r = cerveza(&p, &["start", "app01", "-o", "json"]).ok().json();
    assert_eq!(r[0]["action"], "launched");
    let now = live(&p);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0]["id"].as_str().unwrap(), first);
    assert_eq!(now[0]["zone"], "us-east-1a");
    assert_eq!(cloud(&p)["registry"][0]["generation"], "2");

    // --forget frees the hostname for another zone and profile.
    cerveza(&p, &["terminate", "app01", "--forget"]).ok();
    assert!(cloud(&p)["registry"].as_array().unwrap().is_empty());
    cerveza(
        &p,
        &["start", "app01", "--zone", "eu-west-1b", "--profile", "Web"],
    )
    .ok();
    assert_eq!(live(&p)[0]["zone"], "eu-west-1b");
}

#[test]
fn a_start_that_died_after_run_instances_is_adopted_on_rerun() {
    let p = product();
    let crashed = cmd(&p)
        .args([
            "start",
            "demo01",
            "--zone",
            "ap-southeast-1b",
            "--profile",
            "UbuntuGeneric32Bit",
        ])
        .env("CERVEZA_FAILPOINT", "after-launch")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        !crashed.status.success(),
        "the failpoint aborts the process"
    );
    let state = cloud(&p);
    assert_eq!(
        state["instances"].as_array().unwrap().len(),
        1,
        "RunInstances happened"
    );
    let registry = state["registry"].as_array().unwrap();
    assert_eq!(registry.len(), 1, "the hostname was claimed: {state}");
    assert_eq!(registry[0]["hostname"], "demo01");
    assert!(
        registry[0].get("instance_id").is_none(),
        "but the instance was not recorded: {state}"
    );
    let id = state["instances"][0]["id"].clone();

    let r = cerveza(&p, &["start", "demo01", "-o", "json"]).ok().json();
    // Found by its tags ("adopted"), or, while EC2 does not show it yet, launched again
    // with the same ClientToken, which EC2 answers with the same instance ("launched").
    assert!(
        r[0]["action"] == "adopted" || r[0]["action"] == "launched",
        "{r}"
    );
    assert_eq!(r[0]["instance"]["id"], id, "{r}");
    let state = cloud(&p);
    assert_eq!(
        state["instances"].as_array().unwrap().len(),
        1,
        "adopted, not duplicated: {state}"
    );
    assert_eq!(state["registry"][0]["instance_id"], id);
}

#[test]
fn two_operators_starting_the_same_new_hosts_make_one_instance_each() {
    let p = product();
    let proxy = support::Proxy::start(&serde_json::json!({"rules": [
        // Each claim (a create) of a hostname is held until the rival's arrives, so
        // both operators read "no record" and both claim: a real race on every one.
        {"fault": "pair", "seconds": 20, "service": "dynamodb", "action": "PutItem",
         "body_contains": "attribute_not_exists", "key": "\"hostname\":\\{\"S\":\"([^\"]+)\"\\}"},
    ]}));
    let args = [
        "start",
        "race[1-6]",
        "--zone",
        "us-east-1c",
        "--profile",
        "UbuntuGeneric32Bit",
    ];
    let spawn = || {
        proxy
            .cmd(&p)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b): (support::Run, support::Run) = (
        a.wait_with_output().unwrap().into(),
        b.wait_with_output().unwrap().into(),
    );
    let state = proxy.cloud(&p);
    let hosts = support::instance_hosts(&state);
    assert_eq!(
        hosts,
        ["race1", "race2", "race3", "race4", "race5", "race6"],
        "exactly one instance per host\n{a:#?}\n{b:#?}"
    );
    // Every host was raced for: each claim lost is reported to its loser.
    let lost = [&a, &b]
        .iter()
        .map(|r| r.stderr.matches("the hostname was just claimed").count())
        .sum::<usize>();
    assert_eq!(lost, 6, "one lost claim per host\n{a:#?}\n{b:#?}");
    assert_eq!(proxy.stats()["paired"], 6, "every claim met its rival's");
    for run in [&a, &b] {
        // The loser of a claim gets a clear conflict; everything else succeeds.
        assert!([0, 4, 5].contains(&run.code), "{run:#?}");
        for line in run.stderr.lines().filter(|l| l.starts_with("error:")) {
            assert!(line.contains("another operator"), "{line}");
        }
    }
}

#[test]
fn instances_that_only_share_a_name_are_never_touched() {
    let p = product();
    let theirs = foreign("us-east-1", "us-east-1a", "shared01");
    support::start_new(&p, "shared01", "us-east-1a", "UbuntuGeneric32Bit");
    let ours = live(&p);
    assert_eq!(ours.len(), 1);
    assert_ne!(ours[0]["id"].as_str().unwrap(), theirs);
    let listed = cerveza(&p, &["list", "-o", "json"]).ok().json();
    assert_eq!(listed["hosts"].as_array().unwrap().len(), 1, "{listed}");
    cerveza(&p, &["terminate", "shared01"]).ok();
    // The foreign instance is still running: check it directly.
    let state = support::cloud_py(&["state-of", "us-east-1", &theirs]);
    assert_eq!(
        state.trim(),
        "running",
        "cerveza touched an instance that only shares a Name"
    );
    let r = support::cerveza(&p, &["show", "shared01", "-o", "json"])
        .ok()
        .json();
    assert_ne!(r["instance"]["id"].as_str().unwrap(), theirs);
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_creates_nothing() {
    let p = product();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "start",
                "Demo01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            2,
            "must start with a lowercase letter",
        ),
        (
            &[
                "start",
                "dev_mysql01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            2,
            "character '_'",
        ),
        (
            &[
                "start",
                "01demo",
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            2,
            "lowercase letter",
        ),
        (
            &["start", "--", "-oProxyCommand=x", "--zone", "us-east-1a"],
            2,
            "starts with '-'",
        ),
        (
            &[
                "start",
                &"a".repeat(64),
                "--zone",
                "us-east-1a",
                "--profile",
                "Web",
            ],
            2,
            "64 characters",
        ),
        (
            &["start", "ok01", "--zone", "us-east-1a", "--profile", "Wbe"],
            3,
            "did you mean \"Web\"",
        ),
        (
            &["start", "ok01", "--zone", "us-east-1z", "--profile", "Web"],
            2,
            "zone us-east-1z does not exist in region us-east-1",
        ),
        (
            &["start", "ok01", "--zone", "us-east-1", "--profile", "Web"],
            2,
            "us-east-1 is a region",
        ),
        (
            &[
                "start",
                "ok01",
                "--zone",
                "sa-east-1a",
                "--profile",
                "UbuntuGeneric32Bit",
            ],
            2,
            "no AMI for region sa-east-1",
        ),
        (
            &["start", "ok01", "--zone", "us-east-1a"],
            2,
            "its first start needs --profile",
        ),
        (
            &[
                "start",
                "ok01",
                "--zone",
                "us-east-1a",
                "--profile",
                "UbuntuBase",
            ],
            2,
            "is abstract",
        ),
        (&["stop", "nosuch01"], 3, "no such host"),
        (&["show", "nosuch01"], 3, "no such host"),
        (
            &["start", "web*", "--zone", "us-east-1a", "--profile", "Web"],
            2,
            "globs select existing hosts",
        ),
        (&["list", "x)(uid=*"], 2, "not allowed"),
    ];
    for (args, code, needle) in cases {
        let r = cerveza(&p, args);
        assert_eq!(r.code, *code, "{args:?}: {r:#?}");
        assert!(
            r.stderr.contains(needle),
            "{args:?}: expected {needle:?} in\n{}",
            r.stderr
        );
    }
    // A broken profile directory stops start before anything is made.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "--- !InstanceProfile\nname: Bad\naws: !InstanceAws\n  ami: {us-east-1: ami-a6f504cf}\n  instance-type: t3.micro\n  colour: blue\n").unwrap();
    let r = cmd(&p)
        .env("CERVEZA_PROFILES", dir.path())
        .args(["start", "ok01", "--zone", "us-east-1a", "--profile", "Bad"])
        .output()
        .unwrap();
    let r: support::Run = r.into();
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr
            .contains("bad.yaml:6:3: aws: unknown field `colour`"),
        "{}",
        r.stderr
    );
    let state = cloud(&p);
    assert!(state["instances"].as_array().unwrap().is_empty(), "{state}");
    assert!(state["registry"].as_array().unwrap().is_empty(), "{state}");
}

#[test]
fn unreachable_regions_give_partial_results_not_a_hang() {
    let p = product();
    // A listener that accepts connections and never answers: a black-holed endpoint.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let started = std::time::Instant::now();
    let r: support::Run = cmd(&p)
        .env("AWS_ENDPOINT_URL", &url)
        .args(["list", "--region-timeout", "1s"])
        .output()
        .unwrap()
        .into();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.code, 5, "{r:#?}");
    assert_eq!(
        r.stderr.matches("warning: region").count(),
        3,
        "{}",
        r.stderr
    );
    drop(hole);
}

#[test]
fn the_registry_table_is_created_on_first_use_and_list_needs_no_registry() {
    let p = product();
    // list works with a registry table that does not exist (read-only path).
    let r: support::Run = cmd(&p)
        .env("CERVEZA_REGISTRY_TABLE", format!("absent-{p}"))
        .args(["list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    let r: support::Run = cmd(&p)
        .env("CERVEZA_REGISTRY_TABLE", format!("absent-{p}"))
        .args(["stop", "x1"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{r:#?}");
}

#[test]
fn a_host_with_tags_but_no_record_can_still_be_stopped_and_its_record_rebuilt() {
    let p = product();
    // Another table, a lost write, a record deleted by hand: the tags are still there.
    let id = support::cloud_py(&[
        "tagged",
        "eu-west-1",
        "eu-west-1b",
        &format!("cerveza:product={p}"),
        "cerveza:host=orphan01",
        "cerveza:profile=UbuntuGeneric32Bit",
        "Name=orphan01",
    ])
    .trim()
    .to_owned();
    let r = cerveza(&p, &["stop", "orphan01"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains(&format!(
            "warning: orphan01 has no registry record; acting on {id}"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(
        support::cloud_py(&["state-of", "eu-west-1", &id]).trim(),
        "stopped"
    );
    assert!(cloud(&p)["registry"].as_array().unwrap().is_empty());
    let rows = cerveza(&p, &["registry", "sync", "-o", "json"]).ok().json();
    assert_eq!(rows[0]["host"], "orphan01");
    assert_eq!(rows[0]["change"], "created", "{rows}");
    let rec = cloud(&p)["registry"][0].clone();
    assert_eq!(rec["instance_id"], id.as_str());
    assert_eq!(rec["state"], "stopped");
    assert_eq!(rec["zone"], "eu-west-1b");
}

#[test]
fn the_paper_form_takes_every_option_of_its_verb() {
    let p = product();
    support::start_new(&p, "web03", "us-east-1a", "UbuntuGeneric32Bit");
    // --forget without --terminate is a usage error.
    let r = cerveza(&p, &["--stop", "web03", "--forget"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("--terminate"), "{}", r.stderr);
    // --no-wait and --wait-timeout before a subcommand apply to it.
    let r = cerveza(&p, &["--no-wait", "--wait-timeout", "30s", "stop", "web03"]).ok();
    assert!(r.stdout.contains("web03  stopped"), "{r:#?}");
    let r = cerveza(&p, &["--terminate", "web03", "--forget", "--no-wait"]).ok();
    assert!(r.stdout.contains("web03  terminated"), "{r:#?}");
    assert!(
        cloud(&p)["registry"].as_array().unwrap().is_empty(),
        "--forget deleted the record"
    );
}

#[test]
fn a_host_forgotten_and_started_again_after_ec2_dropped_its_instance_gets_a_new_one() {
    let p = product();
    let account = format!("AKID-{p}");
    // EC2 lists a terminated instance for about an hour and keeps its ClientToken for a
    // day; here the listing ends after a second.
    support::limits(&p, "us-east-1", r#"{"terminated-listed": 1}"#);
    support::start_new(&p, "again01", "us-east-1a", "UbuntuGeneric32Bit");
    let first = live(&p)[0]["id"].as_str().unwrap().to_owned();
    cerveza(&p, &["terminate", "again01", "--forget"]).ok();
    support::cloud_py(&["unlisted", &account, "us-east-1", &first]);
    // The name's new claim sends its own token: a new instance, not the dead one (whose
    // token would answer with it, and the start would wait on it until the timeout).
    let r = cmd(&p)
        .args([
            "start",
            "again01",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
            "--wait-timeout",
            "90s",
        ])
        .output()
        .unwrap();
    let r: support::Run = r.into();
    assert_eq!(r.code, 0, "{r:#?}");
    let now = live(&p);
    assert_eq!(now.len(), 1, "{now:#?}");
    assert_ne!(now[0]["id"], first.as_str());
    let record = cloud(&p)["registry"][0].clone();
    assert_eq!(
        now[0]["tags"]["cerveza:claim"], record["claim"],
        "{record:#}"
    );
}
