//! The directory end to end: real slapd and PowerDNS from the lab, queried with `dig`
//! and `ldapsearch`.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};

use support::{cerveza, cmd, lab_var, live, product, Run};

/// Asks the lab's PowerDNS for the A record of `name`.
fn dig(name: &str) -> String {
    let out = Command::new("dig")
        .args([
            "+short",
            "+time=2",
            "+tries=1",
            "-p",
            &lab_var("CERVEZA_LAB_DNS_PORT"),
            "@127.0.0.1",
            name,
            "A",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs an ldap-utils tool against the lab's slapd as its admin.
fn ldap(tool: &str, args: &[&str], input: &str) -> String {
    let mut child = Command::new(tool)
        .args([
            "-x",
            "-H",
            &lab_var("CERVEZA_LDAP_URIS"),
            "-D",
            &lab_var("CERVEZA_LDAP_BIND_DN"),
            "-y",
            &lab_var("CERVEZA_LDAP_PASSWORD_FILE"),
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_user(uid: &str, number: u32) {
    let base = lab_var("CERVEZA_LDAP_BASE");
    ldap(
        "ldapadd",
        &[],
        &format!("dn: uid={uid},ou=people,{base}\nobjectClass: account\nobjectClass: posixAccount\nuid: {uid}\ncn: {uid}\nuidNumber: {number}\ngidNumber: {number}\nhomeDirectory: /home/{uid}\n"),
    );
}

#[test]
fn start_publishes_names_that_powerdns_serves_and_terminate_removes_them() {
    let p = product();
    support::start_new(&p, "demo01", "ap-southeast-1a", "UbuntuGeneric32Bit");
    let first = live(&p).remove(0);
    let show = cerveza(&p, &["show", "demo01", "-o", "json"]).ok().json();
    let private = show["instance"]["private_ip"].as_str().unwrap().to_owned();
    let public = show["instance"]["public_ip"].as_str().unwrap().to_owned();
    assert_eq!(dig(&format!("demo01.{p}.private")), private);
    assert_eq!(dig(&format!("demo01.{p}.public")), public);

    // Stopped: the public address is gone, and so is its name.
    cerveza(&p, &["stop", "demo01"]).ok();
    assert_eq!(dig(&format!("demo01.{p}.public")), "");
    assert_eq!(dig(&format!("demo01.{p}.private")), private);

    // Started again: a new public address, published.
    cerveza(&p, &["start", "demo01"]).ok();
    let again = cerveza(&p, &["show", "demo01", "-o", "json"]).ok().json();
    let new_public = again["instance"]["public_ip"].as_str().unwrap().to_owned();
    assert_eq!(dig(&format!("demo01.{p}.public")), new_public);
    assert_eq!(again["instance"]["id"], first["id"]);

    cerveza(&p, &["terminate", "demo01"]).ok();
    assert_eq!(dig(&format!("demo01.{p}.private")), "");
    assert_eq!(dig(&format!("demo01.{p}.public")), "");
}

#[test]
fn dns_sync_repairs_missing_changed_and_stale_names() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "web01",
            "web02",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    let base = lab_var("CERVEZA_LDAP_BASE");
    // Break it: remove one name, point another elsewhere, add one for a host that is gone.
    ldap(
        "ldapdelete",
        &[&format!("associatedDomain=web01.{p}.private,ou=dns,{base}")],
        "",
    );
    ldap("ldapmodify", &[], &format!("dn: associatedDomain=web02.{p}.private,ou=dns,{base}\nchangetype: modify\nreplace: aRecord\naRecord: 192.0.2.99\n"));
    ldap("ldapadd", &[], &format!("dn: associatedDomain=gone01.{p}.private,ou=dns,{base}\nobjectClass: dNSDomain2\nobjectClass: domainRelatedObject\ndc: gone01\nassociatedDomain: gone01.{p}.private\naRecord: 192.0.2.1\n"));

    let dry = cerveza(&p, &["dns", "sync", "--dry-run"]).ok();
    // Hosts launch into the default VPC's subnets: 172.31.0.0/16, as in every region.
    assert!(
        dry.stdout
            .contains(&format!("+ web01.{p}.private A 172.31.")),
        "{dry:#?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("~ web02.{p}.private A 192.0.2.99 -> 172.31.")),
        "{dry:#?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("- gone01.{p}.private A 192.0.2.1")),
        "{dry:#?}"
    );
    assert_eq!(
        dig(&format!("gone01.{p}.private")),
        "192.0.2.1",
        "a dry run changes nothing"
    );

    let sync = cerveza(&p, &["dns", "sync", "-o", "json"]).ok().json();
    assert_eq!(sync.as_array().unwrap().len(), 3, "{sync}");
    assert_eq!(dig(&format!("gone01.{p}.private")), "");
    assert!(dig(&format!("web01.{p}.private")).starts_with("172.31."));
    assert!(dig(&format!("web02.{p}.private")).starts_with("172.31."));
    let again = cerveza(&p, &["dns", "sync", "-o", "json"]).ok().json();
    assert_eq!(again, serde_json::json!([]), "in sync now");
    let list = cerveza(&p, &["dns", "list"]).ok();
    assert_eq!(
        list.stdout.lines().count(),
        5,
        "header + 2 private + 2 public: {}",
        list.stdout
    );
}

#[test]
fn grants_open_exactly_the_hosts_they_name() {
    let p = product();
    let users = [
        format!("{p}-alice"),
        format!("{p}-bob"),
        format!("{p}-carol"),
    ]
    .map(|u| u.replace('-', "_"));
    let [alice, bob, carol] = [&users[0], &users[1], &users[2]];
    for (i, u) in users.iter().enumerate() {
        add_user(u, 20_000 + i as u32 + std::process::id() % 10_000 * 3);
    }
    cerveza(&p, &["access", "grant", alice, "*"]).ok();
    cerveza(&p, &["access", "grant", bob, "dev-mysql*.us-east-1"]).ok();
    cerveza(&p, &["access", "grant", carol, "prod-db01.eu-west-1a"]).ok();
    let again = cerveza(&p, &["access", "grant", carol, "prod-db01.eu-west-1a"]).ok();
    assert_eq!(
        again.stdout,
        format!("{carol}: prod-db01.eu-west-1a already granted\n"),
        "a result, on stdout: {again:#?}"
    );

    let check = |u: &str, host: &str, zone: &str| {
        cerveza(&p, &["access", "check", u, host, "--zone", zone]).code
    };
    assert_eq!(check(alice, "dev-mysql02", "us-east-1b"), 0);
    assert_eq!(check(bob, "dev-mysql02", "us-east-1b"), 0);
    assert_eq!(check(bob, "dev-mysql02", "us-west-1a"), 1, "another region");
    assert_eq!(check(bob, "web01", "us-east-1b"), 1, "another group");
    assert_eq!(
        check(carol, "dev-mysql02", "us-east-1b"),
        1,
        "carol only has prod-db01.eu-west-1a"
    );
    assert_eq!(check(carol, "prod-db01", "eu-west-1a"), 0);

    // Why the escaping matters: with a bare `*`, `(host=*)` is a presence test and
    // carol (any grant at all) would get in. Ask slapd itself.
    let base = lab_var("CERVEZA_LDAP_BASE");
    let filter = cerveza(
        &p,
        &["access", "filter", "dev-mysql02", "--zone", "us-east-1b"],
    )
    .ok()
    .stdout
    .trim()
    .to_owned();
    let naive = filter.replace("\\2a", "*");
    let search = |f: &str| {
        ldap(
            "ldapsearch",
            &[
                "-LLL",
                "-b",
                &format!("ou=people,{base}"),
                &format!("(&(uid={carol}){f})"),
                "uid",
            ],
            "",
        )
    };
    assert!(
        search(&naive).contains(&format!("uid: {carol}")),
        "the naive filter lets carol in"
    );
    assert!(
        !search(&filter).contains(&format!("uid: {carol}")),
        "cerveza's filter does not"
    );

    let listed = cerveza(&p, &["access", "list", bob, "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        listed[0]["grants"],
        serde_json::json!(["dev-mysql*.us-east-1"])
    );
    cerveza(&p, &["access", "revoke", bob, "dev-mysql*.us-east-1"]).ok();
    assert_eq!(check(bob, "dev-mysql02", "us-east-1b"), 1, "revoked");
}

#[test]
fn users_cerveza_adds_are_posix_accounts_that_grants_and_checks_find() {
    let p = product();
    let user = format!("{p}_dave").replace('-', "_");
    let added = cerveza(
        &p,
        &[
            "access",
            "user",
            "add",
            &user,
            "--name",
            "Dave (ops), \\ *",
            "-o",
            "json",
        ],
    )
    .ok()
    .json();
    assert!(added["uid_number"].as_u64().unwrap() >= 10_000, "{added}");
    let base = lab_var("CERVEZA_LDAP_BASE");
    let entry = ldap(
        "ldapsearch",
        &[
            "-LLL",
            "-b",
            &format!("ou=people,{base}"),
            &format!("(uid={user})"),
        ],
        "",
    );
    for line in [
        "objectClass: posixAccount",
        "objectClass: account",
        &format!("homeDirectory: /home/{user}"),
        "gidNumber: 100",
        &format!("uidNumber: {}", added["uid_number"]),
    ] {
        assert!(entry.contains(line), "{line}: {entry}");
    }
    let again = cerveza(&p, &["access", "user", "add", &user]);
    assert_eq!(again.code, 4, "{again:#?}");
    assert!(again.stderr.contains("exists already"), "{again:#?}");

    cerveza(&p, &["access", "grant", &user, "web*.us-east-1"]).ok();
    let check = |u: &str| cerveza(&p, &["access", "check", u, "web01", "--zone", "us-east-1a"]);
    assert_eq!(check(&user).code, 0);

    // A user that does not exist is "not found" and says how to add one, never "no grant".
    let ghost = format!("{p}_ghost").replace('-', "_");
    let r = check(&ghost);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stderr.contains("cerveza access user add"), "{r:#?}");
    assert!(!r.stderr.contains("no grant"), "{r:#?}");
    // A host cerveza does not know, without --zone: not found too (as `show` says).
    let r = cerveza(&p, &["access", "check", &user, "nosuch01"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stderr.contains("give --zone"), "{r:#?}");

    let removed = cerveza(&p, &["access", "user", "remove", &user]).ok();
    assert_eq!(removed.stdout, format!("{user}: removed\n"));
    assert_eq!(check(&user).code, 3, "gone, with its grants");
    let r = cerveza(&p, &["access", "user", "remove", &user]).ok();
    assert_eq!(r.stdout, format!("{user}: was not there\n"));
    let r = cerveza(&p, &["access", "user", "add", "bad)(name"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let r = cerveza(&p, &["access", "user", "add", &ghost, "--home", "relative"]);
    assert_eq!(r.code, 2, "{r:#?}");
}

#[test]
fn hostile_input_is_refused_before_reaching_ldap() {
    let p = product();
    for (args, needle) in [
        (
            vec!["access", "grant", "*)(uid=*", "*"],
            "invalid user name",
        ),
        (
            vec!["access", "grant", "alice", "*)(uid=*"],
            "a grant is one of",
        ),
        (
            vec!["access", "grant", "alice", "dev-mysql01"],
            "a grant is one of",
        ),
        (
            vec![
                "access",
                "check",
                "alice)(|(uid=*",
                "web01",
                "--zone",
                "us-east-1a",
            ],
            "invalid user name",
        ),
    ] {
        let r = cerveza(&p, &args);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    let r = cerveza(&p, &["access", "grant", "nobody_here", "*"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stderr.contains("no user \"nobody_here\""), "{r:#?}");
}

#[test]
fn an_unreachable_directory_does_not_stop_hosts_and_the_password_never_shows() {
    let p = product();
    let password = std::fs::read_to_string(lab_var("CERVEZA_LDAP_PASSWORD_FILE")).unwrap();
    let r: Run = cmd(&p)
        .env("CERVEZA_LDAP_URIS", "ldap://127.0.0.1:9")
        .env("CERVEZA_LOG", "trace")
        .args([
            "start",
            "solo01",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains("DNS names will not be updated"),
        "{}",
        r.stderr
    );
    assert_eq!(live(&p).len(), 1);
    // Failover: a dead URI first, the lab's second.
    let r: Run = cmd(&p)
        .env(
            "CERVEZA_LDAP_URIS",
            format!("ldap://127.0.0.1:9,{}", lab_var("CERVEZA_LDAP_URIS")),
        )
        .env("CERVEZA_LOG", "trace")
        .args(["dns", "sync"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(dig(&format!("solo01.{p}.private")).starts_with("172.31."));
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(password.trim()),
            "the LDAP password leaked into the output"
        );
    }
}
