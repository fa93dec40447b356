//! `cerveza export` against a fleet in moto, outputs read by the real tools.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{cerveza, cmd, lab_var, live, product, Run};

#[test]
fn exports_of_a_live_fleet_are_read_by_the_real_tools() {
    let p = product();
    support::start_new(&p, "web[01-02]", "us-east-1b", "Web");
    support::start_new(&p, "dev-mysql01", "eu-west-1a", "Mysql");
    let fleet = live(&p);
    let dir = tempfile::tempdir().unwrap();

    // Ansible: the inventory, groups by host group, zone, region, profile.
    let inv = dir.path().join("inventory.yml");
    cerveza(&p, &["export", "ansible", "--out", inv.to_str().unwrap()]).ok();
    let venv_bin = std::path::Path::new(&lab_var("CERVEZA_LAB_PYTHON"))
        .parent()
        .unwrap()
        .to_owned();
    let out = Command::new(venv_bin.join("ansible-inventory"))
        .args(["-i"])
        .arg(&inv)
        .arg("--list")
        .env("ANSIBLE_LOCAL_TEMP", dir.path())
        .env("ANSIBLE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = |g: &str| -> Vec<String> {
        let mut v: Vec<String> = listed[g]["hosts"]
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(members("group_web"), ["web01", "web02"], "{listed}");
    assert_eq!(members("zone_us_east_1b"), ["web01", "web02"]);
    assert_eq!(members("region_eu_west_1"), ["dev-mysql01"]);
    assert_eq!(members("profile_Mysql"), ["dev-mysql01"]);
    let web01 = fleet
        .iter()
        .find(|i| i["tags"]["cerveza:host"] == "web01")
        .unwrap();
    let vars = &listed["_meta"]["hostvars"]["web01"];
    assert_eq!(vars["cerveza_instance_id"], web01["id"]);

    // ssh_config: ssh resolves names to the private addresses.
    let ssh = cerveza(&p, &["export", "ssh-config", "web*"]).ok();
    let file = dir.path().join("ssh_config");
    std::fs::write(&file, &ssh.stdout).unwrap();
    let g = Command::new("ssh")
        .args(["-G", "-F"])
        .arg(&file)
        .arg(format!("web01.{p}.private"))
        .output()
        .unwrap();
    assert!(
        g.status.success(),
        "ssh -G refused the file: {}",
        String::from_utf8_lossy(&g.stderr)
    );
    let g = String::from_utf8_lossy(&g.stdout).into_owned();
    assert!(g.contains("hostname 172.31."), "{g}");
    assert!(!ssh.stdout.contains("dev-mysql01"), "the selection applies");
}

#[test]
fn out_writes_atomically_and_check_reports_changes() {
    let p = product();
    support::start_new(&p, "app01", "us-east-1a", "UbuntuGeneric32Bit");
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let path = hosts.to_str().unwrap();
    assert_eq!(
        cerveza(&p, &["export", "hosts", "--out", path, "--check"]).code,
        1,
        "missing file would change"
    );
    cerveza(&p, &["export", "hosts", "--out", path]).ok();
    assert!(std::fs::read_to_string(&hosts)
        .unwrap()
        .contains(&format!("app01.{p}.private app01")));
    cerveza(&p, &["export", "hosts", "--out", path, "--check"]).ok();
    support::start_new(&p, "app02", "us-east-1a", "UbuntuGeneric32Bit");
    let r = cerveza(&p, &["export", "hosts", "--out", path, "--check"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("would change"), "{r:#?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp files left behind"
    );

    // Ganglia writes a directory of files.
    let g = dir.path().join("ganglia");
    cerveza(&p, &["export", "ganglia", "--out", g.to_str().unwrap()]).ok();
    let mut names: Vec<String> = std::fs::read_dir(&g)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "gmetad.conf",
            "gmond-client-default.conf",
            "gmond-default.conf"
        ]
    );
}

#[test]
fn a_failed_region_stops_the_export() {
    let p = product();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let r: Run = cmd(&p)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://{}", hole.local_addr().unwrap()),
        )
        .env("CERVEZA_REGION_TIMEOUT", "1s")
        .args(["export", "nagios"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 5, "{r:#?}");
    assert!(r.stderr.contains("not exporting a partial fleet"), "{r:#?}");
    assert!(r.stdout.is_empty());
}
