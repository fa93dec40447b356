//! Reliability under faults: cerveza talks to moto through support/faultproxy.py, which
//! fails, throttles, resets, delays or hides what the tests ask for. Every test asserts
//! the end state as moto has it (support::assert_converged reads it with boto3), and
//! that the fault really happened (the proxy's counts).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::{assert_converged, cmd, product, Proxy, Run};

const HOSTS: &str = "f[01-20]";

fn hosts() -> Vec<String> {
    (1..=20).map(|i| format!("f{i:02}")).collect()
}

/// Starts 20 MySQL hosts (4 volumes each) through a proxy with `rules`, asserts that
/// the one run succeeded and that moto holds exactly the wanted fleet.
fn start_converges(rules: Value) -> (Proxy, Run) {
    let p = product();
    let proxy = Proxy::start(&rules);
    let run: Run = proxy
        .cmd(&p)
        .env("CERVEZA_REGION_TIMEOUT", "2s")
        .args(["start", HOSTS, "--zone", "us-east-1a", "--profile", "Mysql"])
        .args(["-j", "20"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{run:#?}\nproxy: {}", proxy.stats());
    assert_converged(&proxy.cloud(&p), &p, &hosts(), 4);
    (proxy, run)
}

#[test]
fn start_converges_through_500_and_503_answers() {
    let (proxy, run) = start_converges(json!({"seed": 11, "rules": [
        {"fault": "status", "status": 500, "rate": 0.12},
        {"fault": "status", "status": 503, "rate": 0.08},
    ]}));
    assert!(proxy.injected("status") > 5, "{}", proxy.stats());
    assert!(run.stderr.contains("retried"), "{}", run.stderr);
}

#[test]
fn start_converges_when_answers_are_lost_after_the_work_was_done() {
    // The cloud did the work, the client never heard: RunInstances and CreateVolume
    // retries must not duplicate (ClientToken), a landed registry write must not read
    // as a conflict, a landed attach must not fail.
    let (proxy, _) = start_converges(json!({"seed": 12, "rules": [
        {"fault": "status", "status": 500, "rate": 0.06, "when": "after"},
        {"fault": "reset", "rate": 0.04, "when": "after"},
        {"fault": "status", "status": 500, "action": ["RunInstances", "CreateVolume", "AttachVolume", "PutItem"], "rate": 0.3, "when": "after"},
    ]}));
    let faults = proxy.stats()["faults"].clone();
    for action in ["RunInstances", "CreateVolume", "AttachVolume", "PutItem"] {
        assert!(
            faults
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.ends_with(&format!(":{action}"))),
            "no lost answer for {action}: {faults}"
        );
    }
}

#[test]
fn start_converges_through_connection_resets() {
    let (proxy, _) = start_converges(json!({"seed": 13, "rules": [
        {"fault": "reset", "rate": 0.2},
    ]}));
    assert!(proxy.injected("reset") > 5, "{}", proxy.stats());
}

#[test]
fn start_converges_through_slow_answers_and_a_black_holed_region() {
    // eu-west-1 never answers; the fleet is in us-east-1. Only the search for the
    // hosts' data volumes asks eu-west-1, once, and gives up after the region timeout.
    let started = std::time::Instant::now();
    let (proxy, run) = start_converges(json!({"seed": 14, "rules": [
        {"fault": "blackhole", "region": "eu-west-1"},
        {"fault": "delay", "seconds": 1.5, "rate": 0.1},
    ]}));
    let took = started.elapsed();
    let stats = proxy.stats();
    assert!(proxy.injected("delay") > 5, "{stats}");
    assert!(
        proxy.injected("blackhole") >= 1,
        "eu-west-1 was asked: {stats}"
    );
    assert_eq!(
        run.stderr.matches("region eu-west-1 left out").count(),
        1,
        "one warning: {}",
        run.stderr
    );
    // The region timeout (2 s here) once, plus the slowed answers; an unbounded wait
    // would be the SDK's 60 s operation timeout per call.
    assert!(took < std::time::Duration::from_secs(50), "took {took:?}");
}

#[test]
fn start_converges_when_new_instances_are_invisible_for_a_while() {
    // EC2's eventual consistency: InvalidInstanceID.NotFound right after a launch.
    let (proxy, _) = start_converges(json!({"seed": 15, "rules": [
        {"fault": "hide", "seconds": 3},
    ]}));
    let stats = proxy.stats();
    assert!(
        proxy.injected("hide") > 20,
        "new instances were hidden: {stats}"
    );
    assert!(stats["requests"]["ec2:DescribeInstances"].as_u64().unwrap() > 20);
}

#[test]
fn throttling_backs_off_stays_under_the_rate_and_reports_requests_per_host() {
    let rate = 15;
    let p = product();
    let proxy = Proxy::start(&json!({"seed": 16, "rules": [
        {"fault": "throttle", "rate": 0.3},
    ]}));
    let run: Run = proxy
        .cmd(&p)
        .env("CERVEZA_MAX_REQUEST_RATE", rate.to_string())
        .args(["start", HOSTS, "--zone", "us-east-1a", "--profile", "Mysql"])
        .args(["-j", "20"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_converged(&proxy.cloud(&p), &p, &hosts(), 4);
    let stats = proxy.stats();
    assert!(proxy.injected("throttle") > 10, "{stats}");
    // Spacing is 1/rate per region; one more than the rate can fall in a window
    // whose edges both catch a request.
    let most = stats["max_per_second"]["us-east-1"].as_u64().unwrap();
    assert!(most <= rate + 1, "{most} requests in one second: {stats}");
    // cerveza's own count is what the proxy saw.
    let total: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("20 host(s): "))
        .unwrap_or_else(|| panic!("no request summary: {}", run.stderr));
    assert!(
        line.starts_with(&format!("20 host(s): {total} AWS requests")),
        "{line} vs proxy {total}"
    );
    eprintln!("throttled start of 20 hosts at {rate}/s: {line}; busiest second {most}");
}

#[test]
fn a_black_holed_region_gives_the_others_within_the_timeout() {
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [{"fault": "blackhole", "region": "eu-west-1"}]}));
    proxy.start_direct(
        &p,
        &[
            ("bh1", "us-east-1a"),
            ("bh2", "ap-southeast-1a"),
            ("bh3", "eu-west-1a"),
        ],
    );
    let started = std::time::Instant::now();
    let r: Run = proxy
        .cmd(&p)
        .args(["list", "--region-timeout", "2s", "-o", "json"])
        .output()
        .unwrap()
        .into();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert_eq!(r.code, 5, "the partial-result exit code: {r:#?}");
    assert!(
        r.stderr.contains("warning: region eu-west-1"),
        "{}",
        r.stderr
    );
    let mut hosts: Vec<String> = r.json()["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.stdout))
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["bh1", "bh2"], "{}", r.stdout);
}

#[test]
fn calls_that_keep_failing_fail_the_host_cleanly_and_a_rerun_converges() {
    // Every attempt of every CreateVolume fails: the hosts launch but cannot get
    // their volumes. cerveza reports each host, exits non-zero, and the next run
    // (faults gone) completes the set without making anything twice.
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "status", "status": 503, "action": "CreateVolume", "spare_last": false},
    ]}));
    let hosts: Vec<String> = (1..=4).map(|i| format!("k{i}")).collect();
    let r: Run = proxy
        .cmd(&p)
        .args([
            "start",
            "k[1-4]",
            "--zone",
            "us-east-1b",
            "--profile",
            "Mysql",
        ])
        .output()
        .unwrap()
        .into();
    assert_ne!(r.code, 0, "{r:#?}");
    assert_eq!(
        r.stderr.matches("error: ").count(),
        4,
        "one error per host: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("CreateVolume") || r.stderr.contains("creating its"),
        "{}",
        r.stderr
    );
    let state = proxy.cloud(&p);
    let made = state["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tags"]["cerveza:volume-profile"].is_string())
        .count();
    assert_eq!(made, 0, "{state}");
    proxy.direct(&p, &["start", "k[1-4]"]).ok();
    assert_converged(&proxy.cloud(&p), &p, &hosts, 4);
}

#[test]
fn a_lost_allocate_address_answer_does_not_make_a_second_elastic_ip() {
    // AllocateAddress has no idempotency token: every answer to it is lost here (the
    // address is allocated and tagged all the same). cerveza must find it by its tags
    // rather than allocate again.
    let p = product();
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "status", "status": 500, "action": "AllocateAddress", "when": "after", "spare_last": false},
    ]}));
    let r: Run = proxy
        .cmd(&p)
        .args([
            "start",
            "vpn[1-3]",
            "--zone",
            "us-east-1a",
            "--profile",
            "Vpn",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(proxy.injected("status") >= 3, "{}", proxy.stats());
    let state = proxy.cloud(&p);
    let addresses = state["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 3, "one Elastic IP per host: {state}");
    for i in state["instances"].as_array().unwrap() {
        let host = &i["tags"]["cerveza:host"];
        let mine: Vec<&Value> = addresses
            .iter()
            .filter(|a| &a["tags"]["cerveza:host"] == host)
            .collect();
        assert_eq!(mine.len(), 1, "{host}: {state}");
        assert_eq!(mine[0]["instance"], i["id"], "{host}: {state}");
    }
}

#[test]
fn no_secret_reaches_logs_errors_or_json() {
    // Trace logging, a failing call and JSON output, with a recognisable secret key.
    let p = product();
    let secret = "SECRETkey-must-never-be-printed-1234567890";
    let key_id = "AKIAFAULTPROXYTEST01";
    let token = "SESSIONtoken-must-never-be-printed-0987654321";
    let mut traced = false;
    let proxy = Proxy::start(
        &json!({"seed": 17, "rules": [{"fault": "status", "status": 500, "rate": 0.3}]}),
    );
    // Each run with the exit code it must give: the failing path must really run.
    for (args, code) in [
        (
            &[
                "-vvv",
                "start",
                "s1",
                "--zone",
                "us-east-1a",
                "--profile",
                "UbuntuGeneric32Bit",
                "-o",
                "json",
            ][..],
            0,
        ),
        (&["-vvv", "list", "-o", "json"][..], 0),
        (&["-vvv", "show", "s1", "-o", "json"][..], 0),
        (
            &[
                "-vvv",
                "start",
                "s2",
                "--zone",
                "us-east-1a",
                "--profile",
                "NoSuchProfile",
            ][..],
            3,
        ),
    ] {
        let r: Run = proxy
            .cmd(&p)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SESSION_TOKEN", token)
            .env("CERVEZA_LDAP_PASSWORD", "ldap-pass-must-never-be-printed")
            .env_remove("CERVEZA_LDAP_PASSWORD_FILE")
            .args(args)
            .output()
            .unwrap()
            .into();
        // The SDK traces the credentials it resolved: proof the logs were verbose
        // enough to leak, and that the redaction caught it.
        traced |= r.stderr.contains("access_key_id: \"** redacted **\"");
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        if code == 3 {
            assert!(
                r.stderr
                    .contains("unknown instance profile \"NoSuchProfile\""),
                "the error path ran: {}",
                r.stderr
            );
        }
        for out in [&r.stdout, &r.stderr] {
            assert!(
                !out.contains(secret),
                "{args:?} printed the AWS secret:\n{out}"
            );
            assert!(
                !out.contains(key_id),
                "{args:?} printed the AWS key id:\n{out}"
            );
            assert!(
                !out.contains(token),
                "{args:?} printed the AWS session token:\n{out}"
            );
            assert!(
                !out.contains("ldap-pass-must-never-be-printed"),
                "{args:?} printed the LDAP password:\n{out}"
            );
        }
    }
    assert!(
        traced,
        "no trace of the credentials was seen, redacted or not"
    );
    assert!(
        proxy.injected("status") > 0,
        "calls failed: {}",
        proxy.stats()
    );
    // Secrets are not taken from the command line.
    for flag in [
        "--aws-secret-access-key",
        "--secret-key",
        "--password",
        "--bind-password",
    ] {
        let r: Run = cmd(&p).args(["list", flag, "x"]).output().unwrap().into();
        assert_eq!(r.code, 2, "{flag} is not an option: {r:#?}");
    }
}

/// A seed for the random parts of a test: `CERVEZA_TEST_SEED` to replay a run, else
/// the clock. Printed, so a failure can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("CERVEZA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("CERVEZA_TEST_SEED={seed}");
    seed
}

#[test]
fn kill_9_at_random_points_then_a_rerun_converges() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let hosts: Vec<String> = (1..=8).map(|i| format!("kl{i}")).collect();
    // Answers slowed a little, so the kills land inside the work, not after it.
    let proxy = Proxy::start(&json!({"seed": 18, "rules": [
        {"fault": "delay", "seconds": 0.2, "rate": 0.5},
    ]}));
    const START: [&str; 6] = [
        "start",
        "kl[1-8]",
        "--zone",
        "us-east-1c",
        "--profile",
        "Mysql",
    ];
    let (mut partial, mut landed) = (0, 0);
    for round in 0..4 {
        let p = product();
        // Up to two kills at random moments, then a run that is left to finish.
        for _ in 0..=(round % 2) {
            let mut child = proxy
                .cmd(&p)
                .args(START)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Killed after a random number of progress lines (about 40 in a whole
            // run), plus a random moment: anywhere from planning to attaching.
            let lines = rng.usize(1..36);
            let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
            let mut seen = 0;
            let mut last = String::new();
            while seen < lines {
                last.clear();
                if std::io::BufRead::read_line(&mut stderr, &mut last).unwrap() == 0 {
                    break;
                }
                seen += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(rng.u64(0..300)));
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            eprintln!(
                "round {round}: killed after progress line {seen} ({}) ({status})",
                last.trim()
            );
            // A second kill in a round may come after the run (which had less left to
            // do) finished on its own; what matters is that kills do land mid-work.
            use std::os::unix::process::ExitStatusExt as _;
            landed += usize::from(status.signal() == Some(9));
        }
        let left = proxy.cloud(&p);
        let (i, v, r) = (
            left["instances"].as_array().unwrap().len(),
            left["volumes"].as_array().unwrap().len(),
            left["registry"].as_array().unwrap().len(),
        );
        eprintln!(
            "round {round}: the kills left {i} instance(s), {v} volume(s), {r} registry record(s)"
        );
        assert_sane_leftovers(&left, &hosts);
        // Half-done: something was made, and not every instance or data volume (root
        // volumes do not count: each instance has one).
        let data = left["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["tags"].get("cerveza:device").is_some())
            .count();
        if i + v + r > 0 && (i < hosts.len() || data < 4 * hosts.len()) {
            partial += 1;
        }
        let r: Run = proxy.cmd(&p).args(START).output().unwrap().into();
        assert_eq!(r.code, 0, "round {round}: {r:#?}");
        assert_converged(&proxy.cloud(&p), &p, &hosts, 4);
    }
    assert!(
        landed > 0,
        "no kill landed while cerveza worked: the test proved nothing"
    );
    assert!(
        partial > 0,
        "no kill left half-done work behind: the test proved nothing"
    );
}

/// What a killed start may leave: some of the work, never a wrong state. At most one
/// live instance per host, nothing for a host outside the command, and a recorded
/// instance is that host's.
#[track_caller]
fn assert_sane_leftovers(state: &Value, hosts: &[String]) {
    let known = |h: &Value| hosts.iter().any(|n| h.as_str() == Some(n.as_str()));
    let instances = state["instances"].as_array().unwrap();
    for host in hosts {
        let live = instances
            .iter()
            .filter(|i| i["tags"]["cerveza:host"] == host.as_str() && i["state"] != "terminated")
            .count();
        assert!(live <= 1, "{host} has {live} live instances: {state}");
    }
    for i in instances {
        assert!(known(&i["tags"]["cerveza:host"]), "a stray instance: {i}");
    }
    for v in state["volumes"].as_array().unwrap() {
        assert!(known(&v["tags"]["cerveza:host"]), "a stray volume: {v}");
    }
    for rec in state["registry"].as_array().unwrap() {
        assert!(known(&rec["hostname"]), "a stray record: {rec}");
        if let Some(id) = rec.get("instance_id") {
            let inst = instances.iter().find(|i| &i["id"] == id);
            assert!(
                inst.is_some_and(|i| i["tags"]["cerveza:host"] == rec["hostname"]),
                "the record names an instance that is not its host's: {rec}"
            );
        }
    }
}

#[test]
fn two_operators_starting_and_stopping_the_same_hosts_at_once() {
    let p = product();
    // Registry writes are slowed (record updates race too), and each claim is held
    // until the rival's arrives: both operators read "no record" and both claim every
    // host, however their processes were scheduled.
    let proxy = Proxy::start(&json!({"rules": [
        {"fault": "delay", "seconds": 1.0, "service": "dynamodb", "action": "PutItem"},
        {"fault": "pair", "seconds": 20, "service": "dynamodb", "action": "PutItem",
         "body_contains": "attribute_not_exists", "key": "\"hostname\":\\{\"S\":\"([^\"]+)\"\\}"},
    ]}));
    let hosts: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
    let first = [
        "start",
        "c[1-6]",
        "--zone",
        "us-east-1d",
        "--profile",
        "Mysql",
    ];
    let spawn = |args: &[&str]| {
        proxy
            .cmd(&p)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut runs = Vec::new();
    for (a, b) in [
        (&first[..], &first[..]),
        (&["stop", "c[1-6]"][..], &["start", "c[1-6]"][..]),
        (&["start", "c[1-6]"][..], &["stop", "c[1-6]"][..]),
        (&["stop", "c[1-6]"][..], &["stop", "c[1-6]"][..]),
    ] {
        let (x, y) = (spawn(a), spawn(b));
        for (args, child) in [(a, x), (b, y)] {
            let run: Run = child.wait_with_output().unwrap().into();
            runs.push((args.join(" "), run));
        }
    }
    // The first pair raced for the six new hosts: each was claimed by one of them
    // only, and the other was told, host by host.
    let claims_lost: usize = runs[..2]
        .iter()
        .map(|(_, r)| r.stderr.matches("the hostname was just claimed").count())
        .sum();
    assert!(
        claims_lost == 6,
        "a race happened and one operator won each host: {runs:#?}"
    );
    assert_eq!(proxy.stats()["paired"], 6, "every claim met its rival's");
    for (args, run) in &runs {
        assert!(
            [0, 4, 5].contains(&run.code),
            "`{args}`: only conflicts may fail: {run:#?}"
        );
        for line in run.stderr.lines().filter(|l| l.starts_with("error:")) {
            assert!(
                line.contains("another operator"),
                "`{args}`: a loser is told another operator is at work: {line}"
            );
        }
    }
    let r = proxy.direct(&p, &["start", "c[1-6]"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_converged(&proxy.cloud(&p), &p, &hosts, 4);
}

/// Requests a new host costs, counted from outside (the proxy, no faults) on a 30-host
/// start with the lab cloud's timings: hosts waiting together share their polls, the
/// search for an earlier launch is one per region, and the registry is read in one
/// query, so a host costs its `RunInstances` and a share of the reads, and three
/// registry requests at most (its claim and one record update, and a share of the rest).
#[test]
fn a_new_host_costs_at_most_two_ec2_and_three_registry_requests() {
    let p = product();
    let proxy = Proxy::start(&json!({"rules": []}));
    let run: Run = proxy
        .cmd(&p)
        .env("CERVEZA_POLL_INTERVAL", "1s")
        .args([
            "start",
            "n[01-30]",
            "--zone",
            "us-east-1a",
            "--profile",
            "Web",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{run:#?}");
    let state = proxy.cloud(&p);
    let live = state["instances"].as_array().unwrap();
    assert_eq!(live.len(), 30, "{state}");
    assert!(live.iter().all(|i| i["state"] == "running"), "{state}");
    let stats = proxy.stats();
    let count = |service: &str| -> u64 {
        stats["requests"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(service))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let (ec2, registry) = (count("ec2:"), count("dynamodb:"));
    assert_eq!(stats["requests"]["ec2:RunInstances"], 30, "{stats}");
    assert!(ec2 <= 60, "{ec2} EC2 requests for 30 hosts: {stats}");
    assert!(
        registry <= 90,
        "{registry} registry requests for 30 hosts: {stats}"
    );
    eprintln!(
        "30 new hosts: {:.2} EC2 and {:.2} registry requests per host: {}",
        ec2 as f64 / 30.0,
        registry as f64 / 30.0,
        stats["requests"]
    );
}

/// Pacing under EC2's buckets, shown by the lab's own throttle count rather than by the
/// SDK's silent retries: 20 volume hosts started twice in a row with one account, each
/// command through every paced action (RunInstances, DescribeInstances, CreateVolume,
/// AttachVolume, CreateTags); the second starts where EC2's buckets are, not full.
#[test]
fn commands_in_a_row_never_overrun_ec2_s_buckets() {
    let (p, other) = (product(), product());
    let proxy = Proxy::start(&json!({"rules": []}));
    // Two products, one account (the lab's account is the access key id).
    let run = |product: &str, hosts: &str| -> Run {
        proxy
            .cmd(product)
            .env("AWS_ACCESS_KEY_ID", format!("AKID-{p}"))
            .args(["start", hosts, "--zone", "us-east-1a", "--profile", "Mysql"])
            .args(["-j", "20"])
            .output()
            .unwrap()
            .into()
    };
    let first = run(&other, "g[01-20]");
    assert_eq!(first.code, 0, "{first:#?}");
    let second = run(&p, HOSTS);
    assert_eq!(second.code, 0, "{second:#?}");
    assert_converged(&proxy.cloud(&p), &p, &hosts(), 4);
    // The account's own counts (other tests run meanwhile with other keys).
    let lab = proxy.lab_stats();
    let mine = |field: &str| -> BTreeMap<String, u64> {
        lab[field]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, n)| {
                Some((
                    k.strip_prefix(&format!("AKID-{p} "))?.to_owned(),
                    n.as_u64()?,
                ))
            })
            .collect()
    };
    let (requests, throttled) = (mine("requests-by-account"), mine("throttled-by-account"));
    assert!(throttled.is_empty(), "the lab throttled: {throttled:?}");
    assert_eq!(proxy.stats()["retries"], 0, "{}", proxy.stats());
    assert_eq!(requests["ec2:AttachVolume"], 160, "{requests:?}");
    // Tags go on with TagSpecifications when a resource is made: a CreateTags call
    // would be one more action to pace (crates/cerveza-aws/tests/pacing.rs bursts each
    // paced action past its bucket).
    assert!(!requests.contains_key("ec2:CreateTags"), "{requests:?}");
}
