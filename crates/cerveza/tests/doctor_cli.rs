//! `cerveza doctor` against the lab: every cloud-side check made to fail on moto and
//! then to pass, and the on-host checks reading a tree per host through the lab's real
//! sshd (the root prefix exists only with the `test-hooks` feature).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{
    cerveza, cloud_py, cmd, doctor_check as check, doctor_findings as findings, lab_var, product,
    Run,
};

fn doctor(p: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = cmd(p);
    c.env(
        "CERVEZA_TEST_ADDRESSES",
        lab_var("CERVEZA_LAB_SSH_ADDRESSES"),
    );
    for (k, v) in env {
        c.env(k, v);
    }
    c.arg("doctor").args(args).output().unwrap().into()
}

fn private_ip(p: &str, host: &str) -> String {
    let list = cerveza(p, &["list", host, "-o", "json"]).ok().json();
    list["hosts"][0]["private_ip"].as_str().unwrap().to_owned()
}

#[test]
fn cloud_side_checks_find_each_problem_and_pass_once_it_is_fixed() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "dr01",
            "dr02",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    )
    .ok();
    let only = "--only=security-groups,registry-tags,orphan-volumes,idle-addresses,imds";
    let r = doctor(&p, &[], &[only, "--volume-age", "0s", "-o", "json"]);
    assert_eq!(r.code, 0, "a fresh fleet passes: {r:#?}");
    let report = r.json();
    assert_eq!(
        check(&report, "registry-tags")["checked"]["count"],
        2,
        "{report:#}"
    );

    // A /32 of dr01's private address, an Elastic IP associated with nothing, a data
    // volume of a host that is gone, a record someone edited.
    let ip = private_ip(&p, "dr01");
    let sg = cloud_py(&["sg-rule", "us-east-1", &format!("{ip}/32")]);
    let sg = sg.trim();
    let alloc = cloud_py(&["eip", "us-east-1", &p, "dr02"]);
    let vol = cloud_py(&["volume", "us-east-1", "us-east-1b", &p, "gone01"]);
    cloud_py(&["registry-set", &p, "dr02", "profile", "Vpn"]);
    // A host whose profile still allows IMDSv1.
    let started = support::start_allowing_imdsv1(&p, "dr03");
    assert_eq!(started.code, 0, "{started:#?}");
    let dr03 = support::live(&p)
        .into_iter()
        .find(|i| i["tags"]["cerveza:host"] == "dr03")
        .unwrap();

    let r = doctor(&p, &[], &[only, "--volume-age", "0s", "-o", "json"]);
    cloud_py(&["sg-delete", "us-east-1", sg]);
    assert_eq!(r.code, 1, "{r:#?}");
    let report = r.json();
    let sg_findings = findings(&report, "security-groups");
    assert!(
        sg_findings.iter().any(|f| f.starts_with(&format!("{sg} (doctor-"))
            && f.ends_with(&format!("ingress tcp 3306 from {ip}/32: dr01's private address, which changes when it is relaunched"))),
        "{sg_findings:#?}"
    );
    assert_eq!(
        findings(&report, "idle-addresses"),
        [format!(
            "{} ({}, us-east-1): allocated for dr02, associated with nothing",
            support::cloud(&p)["addresses"][0]["ip"].as_str().unwrap(),
            alloc.trim()
        )]
    );
    assert_eq!(
        findings(&report, "imds"),
        [format!(
            "dr03: {} (us-east-1) allows IMDSv1 (HttpTokens optional)",
            dr03["id"].as_str().unwrap()
        )]
    );
    let orphans = findings(&report, "orphan-volumes");
    assert_eq!(orphans.len(), 1, "{orphans:#?}");
    assert!(
        orphans[0].starts_with(&format!(
            "{} (us-east-1): 10 GiB for gone01 /dev/sdf, created 0 day(s) ago",
            vol.trim()
        )),
        "{orphans:#?}"
    );
    assert_eq!(
        findings(&report, "registry-tags"),
        ["dr02: profile Vpn in the record, UbuntuGeneric32Bit in the tags"]
    );
    // A young volume is no orphan by default (7 days).
    let r = doctor(&p, &[], &["--only", "orphan-volumes", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    // The table says what failed and why, on stdout.
    let r = doctor(&p, &[], &["--only", "registry-tags"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stdout
            .contains("registry-tags  FAIL    3 record(s)  1      dr02"),
        "{r:#?}"
    );
    assert!(
        r.stdout
            .contains("\nregistry-tags: a record that disagrees"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains("  fix: run `cerveza registry sync`"),
        "{r:#?}"
    );
    // The fix the report names works.
    cerveza(&p, &["registry", "sync"]);
    cloud_py(&["registry-set", &p, "dr02", "profile", "UbuntuGeneric32Bit"]);
    assert_eq!(doctor(&p, &[], &["--only", "registry-tags"]).code, 0);
}

#[test]
fn the_registry_needs_backups_and_strong_replicas() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "rr01",
            "--zone",
            "eu-west-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    )
    .ok();
    cloud_py(&["registry-resilience", "off"]);
    let r = doctor(&p, &[], &["--only", "registry", "-o", "json"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let f = findings(&r.json(), "registry");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].starts_with("table cerveza-hosts (us-east-1): no point-in-time recovery"));
    assert!(
        f[1].contains("no replica: while us-east-1 is down"),
        "{f:#?}"
    );
    cloud_py(&["registry-resilience", "on"]);
    let r = doctor(&p, &[], &["--only", "registry"]);
    cloud_py(&["registry-resilience", "off"]);
    assert_eq!(r.code, 0, "{r:#?}");
}

#[test]
fn one_server_or_one_region_in_the_config_is_found() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "ns01",
            "ns02",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    )
    .ok();
    let (a, b) = (private_ip(&p, "ns01"), private_ip(&p, "ns02"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let write = |ldap: &str, ns: &str| {
        std::fs::write(
            &config,
            format!("[userdata]\nresolv-conf = true\nnameservers = [{ns}]\nldap-client-uri = \"{ldap}\"\n"),
        )
        .unwrap();
    };
    write("ldaps://ldap.example", &format!("\"{a}\", \"{b}\""));
    let r = doctor(
        &p,
        &[],
        &[
            "--config",
            config.to_str().unwrap(),
            "--only",
            "config-spof",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{r:#?}");
    let uri = lab_var("CERVEZA_LDAP_URIS");
    assert_eq!(
        findings(&r.json(), "config-spof"),
        [
            format!("config: [directory] uris names one server ({uri}): grants and LDAP-served DNS names stop with it"),
            "config: [userdata] ldap-client-uri names one server (ldaps://ldap.example): every host's LDAP logins stop with it".into(),
            "config: [userdata] nameservers names 2 servers, all in us-east-1: when that region is down, every host's lookups stop with it".into(),
        ]
    );
    write(
        "ldaps://ldap-a.example ldaps://ldap-b.example",
        &format!("\"{a}\", \"10.77.0.2\""),
    );
    let r = doctor(
        &p,
        &[("CERVEZA_LDAP_URIS", &format!("{uri},{uri}"))],
        &[
            "--config",
            config.to_str().unwrap(),
            "--only",
            "config-spof",
        ],
    );
    assert_eq!(r.code, 0, "{r:#?}");
}

/// Writes `files` (path, text) under `root/host`.
fn lay_out(root: &Path, host: &str, files: &[(&str, &str)]) {
    for (path, text) in files {
        let f = root.join(host).join(path.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
}

const GOOD: &[(&str, &str)] = &[
    (
        "/etc/resolv.conf",
        "nameserver 10.0.0.2\nnameserver 10.1.0.2\noptions timeout:1 attempts:1\n",
    ),
    (
        "/etc/nsswitch.conf",
        "passwd: files ldap\ngroup: files ldap\nshadow: files ldap\n",
    ),
    (
        "/etc/nslcd.conf",
        "uri ldaps://ldap.noc.private\nbind_timelimit 3\ntimelimit 5\n",
    ),
    (
        "/etc/fstab",
        "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n/dev/md0 /data xfs defaults,nofail 0 2\n",
    ),
    (
        "/etc/cron.d/cerveza-puppet",
        "7,37 * * * * root /usr/bin/puppet agent --onetime\n",
    ),
    ("/etc/updatedb.conf", "PRUNEFS=\"NFS nfs nfs4 proc\"\n"),
    (
        "/etc/passwd",
        "root:x:0:0::/root:/bin/bash\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n",
    ),
    (
        "/home/ubuntu/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3Nz ops\n",
    ),
];

const BAD: &[(&str, &str)] = &[
    ("/etc/resolv.conf", "nameserver 10.0.0.2\n"),
    (
        "/etc/nsswitch.conf",
        "passwd: ldap files\ngroup: files ldap\nshadow: files\n",
    ),
    ("/etc/nslcd.conf", "uri ldap://10.0.0.5\n"),
    ("/etc/fstab", "/dev/xvdf /var/lib/mysql ext4 defaults 0 2\n"),
    (
        "/etc/cron.d/puppet",
        "7,37 * * * * root puppet agent --onetime\n",
    ),
    (
        "/etc/systemd/system/multi-user.target.wants/puppet.service",
        "",
    ),
    ("/etc/updatedb.conf", "PRUNEFS=\"proc\"\n"),
    ("/etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
];

#[test]
fn on_host_checks_read_each_hosts_files_through_ssh() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "dh-bad01",
            "dh-good01",
            "--zone",
            "us-east-1b",
            "--profile",
            "Web",
        ],
    )
    .ok();
    let root = tempfile::tempdir().unwrap();
    lay_out(root.path(), "dh-good01", GOOD);
    lay_out(root.path(), "dh-bad01", BAD);
    let env = [("CERVEZA_TEST_DOCTOR_ROOT", root.path().to_str().unwrap())];
    let hosts_only = "--only=resolver,nsswitch,login-timeouts,fstab,puppet,updatedb,local-account";

    let r = doctor(&p, &env, &["dh-good01", hosts_only]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains("resolver        pass    1 host(s)"),
        "{r:#?}"
    );

    let r = doctor(&p, &env, &[hosts_only, "-o", "json"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let report = r.json();
    // Exactly what is wrong with dh-bad01, and nothing about dh-good01.
    let want: [(&str, &[&str]); 6] = [
        (
            "resolver",
            &[
                "dh-bad01: /etc/resolv.conf names one nameserver (10.0.0.2): when it is down, every lookup fails",
                "dh-bad01: /etc/resolv.conf: timeout 5 s per try, not `options timeout:1`",
                "dh-bad01: /etc/resolv.conf: 2 attempts, not `options attempts:1`",
            ],
        ),
        (
            "nsswitch",
            &["dh-bad01: /etc/nsswitch.conf: `passwd: ldap files` asks ldap before local files"],
        ),
        (
            "login-timeouts",
            &["dh-bad01: /etc/nslcd.conf: no timelimit (or 0): an LDAP search to a server that answers slowly waits forever"],
        ),
        (
            "fstab",
            &["dh-bad01: /etc/fstab: /dev/xvdf on /var/lib/mysql without nofail: if that volume fails, the host does not boot"],
        ),
        (
            "updatedb",
            &["dh-bad01: /etc/updatedb.conf: PRUNEFS lacks nfs, nfs4: updatedb crawls those mounts"],
        ),
        (
            "local-account",
            &["dh-bad01: no local account in /etc/passwd has a login shell and an ssh key in ~/.ssh/authorized_keys"],
        ),
    ];
    for (id, expected) in want {
        assert_eq!(findings(&report, id), expected, "{id}");
    }
    assert_eq!(
        findings(&report, "puppet"),
        [
            "dh-bad01: puppet.service is enabled: puppet runs as a daemon (disable it; run it from cron)",
            "dh-bad01: runs puppet at minute 7 like dh-good01 (2 hosts of Web fit in 30 minutes)",
            "dh-good01: runs puppet at minute 7 like dh-bad01 (2 hosts of Web fit in 30 minutes)",
        ]
    );

    // A host that cannot be reached: 5 when everything else passed, 1 when a check failed.
    let unreachable = [env[0], ("CERVEZA_TEST_ADDRESSES", "127.0.0.9")];
    let r = doctor(&p, &unreachable, &["dh-good01", hosts_only]);
    assert_eq!(r.code, 5, "{r:#?}");
    assert!(
        r.stderr.contains("not checked: dh-good01: unreachable"),
        "{r:#?}"
    );
    assert!(r.stdout.contains("resolver        incomplete"), "{r:#?}");
    let mixed = [
        env[0],
        (
            "CERVEZA_TEST_ADDRESSES",
            &format!(
                "{},127.0.0.9",
                lab_var("CERVEZA_LAB_SSH_ADDRESSES")
                    .split(',')
                    .next()
                    .unwrap()
            ),
        ),
    ];
    let r = doctor(&p, &mixed, &[hosts_only]);
    assert_eq!(
        r.code, 1,
        "dh-bad01 fails, dh-good01 is unreachable: {r:#?}"
    );
}

#[test]
fn unknown_checks_and_selections_are_refused_before_any_call() {
    let p = product();
    let r = doctor(&p, &[], &["--only", "resolver,resolv"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("resolv") && r.stderr.contains("login-timeouts"),
        "{r:#?}"
    );
    cerveza(
        &p,
        &[
            "start",
            "sel01",
            "--zone",
            "us-east-1a",
            "--profile",
            "UbuntuGeneric32Bit",
        ],
    )
    .ok();
    let r = doctor(&p, &[], &["nosuch*", "--only", "resolver"]);
    assert_eq!(r.code, 3, "{r:#?}");
    // With nothing running, the on-host checks are skipped, not passed.
    cerveza(&p, &["stop", "sel01"]).ok();
    let r = doctor(&p, &[], &["--only", "resolver", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(check(&r.json(), "resolver")["result"], "skipped");
}

#[test]
fn data_volumes_must_be_mounted_from_their_own_set() {
    let p = product();
    cerveza(
        &p,
        &[
            "start",
            "dv-db01",
            "dv-db02",
            "dv-web01",
            "--zone",
            "us-east-1b",
            "--profile",
            "Mysql",
        ],
    )
    .ok();
    let root = tempfile::tempdir().unwrap();
    let conf = "NAME='MysqlRaid10'\nLEVEL='10'\nMOUNT='/var/lib/mysql'\n";
    // dv-db01 assembled and mounted its set.
    lay_out(
        root.path(),
        "dv-db01",
        &[
            ("/etc/cerveza/volumes/MysqlRaid10.conf", conf),
            (
                "/var/lib/cerveza/volumes/MysqlRaid10.status",
                "state=mounted\nsource=/dev/md127\nmessage=mounted\n",
            ),
            (
                "/proc/mounts",
                "/dev/root / ext4 rw 0 0\n/dev/md127 /var/lib/mysql xfs rw,noatime 0 0\n",
            ),
        ],
    );
    // dv-db02's volumes never appeared: MySQL writes to the root disk.
    lay_out(
        root.path(),
        "dv-db02",
        &[
            ("/etc/cerveza/volumes/MysqlRaid10.conf", conf),
            (
                "/var/lib/cerveza/volumes/MysqlRaid10.status",
                "state=failed\nsource=\nmessage=devices missing after 300s: /dev/sdh /dev/sdi\ntime=2026-12-04T10:00:00Z\n",
            ),
            ("/proc/mounts", "/dev/root / ext4 rw 0 0\n"),
        ],
    );
    lay_out(
        root.path(),
        "dv-web01",
        &[("/proc/mounts", "/dev/root / ext4 rw 0 0\n")],
    );
    let env = [("CERVEZA_TEST_DOCTOR_ROOT", root.path().to_str().unwrap())];
    let r = doctor(&p, &env, &["dv-db01", "--only", "data-volumes"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains("data-volumes  pass    1 host(s)"),
        "{r:#?}"
    );

    // dv-web01 runs the Mysql profile too but has nothing installed (another user-data):
    // the profile says what it should have, so it is not a pass.
    let r = doctor(&p, &env, &["dv-*", "--only", "data-volumes", "-o", "json"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert_eq!(
        findings(&r.json(), "data-volumes"),
        [
            "dv-db02: volume profile MysqlRaid10 is not mounted on /var/lib/mysql: what is written there goes to the root disk; its assembler says failed at 2026-12-04T10:00:00Z: devices missing after 300s: /dev/sdh /dev/sdi",
            "dv-web01: /etc/cerveza/volumes/MysqlRaid10.conf is missing: the user-data that assembles volume profile MysqlRaid10 never ran on this host (launched by an older cerveza or with other user-data), so nothing re-assembles it",
            "dv-web01: volume profile MysqlRaid10 is not mounted on /var/lib/mysql: what is written there goes to the root disk; /var/lib/cerveza/volumes/MysqlRaid10.status does not exist (the assembler never ran; see `journalctl -u cerveza-volumes@MysqlRaid10`)",
        ],
    );

    // What cannot be read is not judged: dv-db01 without its mount table.
    std::fs::remove_file(root.path().join("dv-db01/proc/mounts")).unwrap();
    let r = doctor(
        &p,
        &env,
        &["dv-db01", "--only", "data-volumes", "-o", "json"],
    );
    assert_eq!(r.code, 5, "{r:#?}");
    assert_eq!(
        check(&r.json(), "data-volumes")["not_checked"],
        serde_json::json!([{"subject": "dv-db01", "problem": "cannot read /proc/mounts"}]),
    );
}
