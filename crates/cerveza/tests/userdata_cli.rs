//! User-data through the real binary: what `start` passes is what EC2 (moto) stores.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cerveza, cloud, cmd, live, product, user_data, Run};

#[test]
fn start_passes_the_blob_and_it_round_trips_through_ec2() {
    let p = product();
    cerveza(
        &p,
        &["start", "web01", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    let inst = &live(&p)[0];
    let stored = user_data("us-east-1", inst["id"].as_str().unwrap());
    assert_eq!(&stored[..2], &[0x1f, 0x8b], "gzip");
    let raw = cmd(&p)
        .args(["userdata", "web01", "--raw"])
        .output()
        .unwrap();
    assert!(raw.status.success());
    assert_eq!(
        stored, raw.stdout,
        "the registry's profile and zone give the same bytes as the launch"
    );

    let shown = cerveza(&p, &["userdata", "web01", "-o", "json"])
        .ok()
        .json();
    let names: Vec<&str> = shown["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cloud-config-puppet.txt",
            "web-setup.sh",
            "cerveza-hostname.cfg",
            "cerveza-puppet.cfg",
            "cerveza-ldap.cfg"
        ]
    );
    let ldap = shown["parts"][4]["body"].as_str().unwrap();
    assert!(
        ldap.contains("(host=web01.us-east-1b)(host=web01.us-east-1)(host=web01.\\2a)"),
        "the lab's directory gives hosts their pam filter: {ldap}"
    );
    assert_eq!(shown["gzip_bytes"], stored.len());
    let hostname = shown["parts"][2]["body"].as_str().unwrap();
    assert!(
        hostname.contains("hostname: web01")
            && hostname.contains(&format!("fqdn: web01.{p}.private")),
        "{hostname}"
    );

    let text = cerveza(&p, &["userdata", "web01"]).ok();
    assert!(
        text.stdout.contains("text/x-shellscript")
            && text.stdout.contains("--- part 2 of 5: web-setup.sh"),
        "{text:#?}"
    );
}

#[test]
fn too_large_or_broken_user_data_stops_start_before_anything_is_made() {
    let p = product();
    let dir = tempfile::tempdir().unwrap();
    let mut x: u32 = 7;
    let noise: String = (0..30_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    std::fs::write(dir.path().join("big.sh"), format!("#!/bin/sh\n: {noise}\n")).unwrap();
    std::fs::write(
        dir.path().join("tmpl.cfg"),
        "## template: jinja\n#cloud-config\nhostname: {{ hostnam }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "--- !InstanceProfile\nname: Big\naws: !InstanceAws\n  ami: {us-east-1: ami-a6f504cf}\n  instance-type: t3.micro\nuser-data: [big.sh]\n\
         --- !InstanceProfile\nname: Typo\naws: !InstanceAws\n  ami: {us-east-1: ami-a6f504cf}\n  instance-type: t3.micro\nuser-data: [tmpl.cfg]\n",
    )
    .unwrap();
    for (profile, needle) in [
        ("Big", "over EC2's limit of 16384"),
        ("Typo", "unknown template variable(s) hostnam"),
    ] {
        let r: Run = cmd(&p)
            .env("CERVEZA_PROFILES", dir.path())
            .args([
                "start",
                "big01",
                "--zone",
                "us-east-1a",
                "--profile",
                profile,
            ])
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 2, "{r:#?}");
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
        assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    }
    let state = cloud(&p);
    assert!(state["instances"].as_array().unwrap().is_empty(), "{state}");
    assert!(state["registry"].as_array().unwrap().is_empty(), "{state}");
}
