//! Images and instance types as a region offers them, through the real binary against
//! the lab cloud: c5.large is not offered in us-east-1e (moto's own offerings data), the
//! lab has an arm64 image and a deprecated one, and refuses at RunInstances what EC2
//! refuses (`Unsupported`, `InvalidParameterValue`). cerveza says so per host, with the
//! nearest alternative, before anything is claimed or made; `plan` says the same.

#![allow(clippy::unwrap_used)]

mod support;

use support::{cloud, cmd, product, profiles_with, requests_of_action, Run};

const PROFILES: &str = "\
--- !InstanceProfile
name: Arm
extends: UbuntuBase
aws: !InstanceAws
  ami: { us-east-1: ami-0a0b0c0d0e0f0a064 }
--- !InstanceProfile
name: Old
extends: UbuntuBase
aws: !InstanceAws
  ami: { us-east-1: ami-0de9eca7ed0de9eca }
--- !InstanceProfile
name: Graviton
extends: UbuntuBase
aws: !InstanceAws
  ami: { us-east-1: ami-0a0b0c0d0e0f0a064 }
  instance-type: t4g.small
";

#[test]
fn what_the_region_does_not_offer_is_refused_per_host_before_anything_is_made() {
    let p = product();
    let dir = profiles_with(PROFILES);
    let run = |args: &[&str]| -> Run {
        cmd(&p)
            .env("CERVEZA_PROFILES", dir.path())
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let cases = [
        (
            ["of01", "us-east-1e", "Web"],
            "of01: profile Web: instance type c5.large is not offered in us-east-1e; it is in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f (--zone us-east-1a), or choose another instance type",
        ),
        (
            ["of02", "us-east-1a", "Arm"],
            "of02: profile Arm: image ami-0a0b0c0d0e0f0a064 is arm64, and t3.small runs x86_64: choose an arm64 instance type such as t4g.small, or an image for x86_64",
        ),
        (
            ["of03", "us-east-1a", "Old"],
            "of03: profile Old: image ami-0de9eca7ed0de9eca (lab ubuntu 20.04 (deprecated)) was deprecated on 2025-06-30",
        ),
    ];
    for ([host, zone, profile], says) in cases {
        let r = run(&["start", host, "--zone", zone, "--profile", profile]);
        assert_eq!(r.code, 2, "{r:#?}");
        assert!(r.stderr.contains(says), "{says}\n{r:#?}");
    }
    // Nothing claimed, nothing launched: EC2 was never asked.
    assert_eq!(requests_of_action(&p, "ec2:RunInstances"), 0);
    let state = cloud(&p);
    assert!(state["instances"].as_array().unwrap().is_empty(), "{state}");
    assert!(state["registry"].as_array().unwrap().is_empty(), "{state}");

    // A plan names the same, per host of the file; the Graviton host is fine.
    let files = tempfile::tempdir().unwrap();
    let fleet = files.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        format!(
            "--- !Fleet\nproduct: {p}\nhosts:\n  - name: of01\n    profile: Web\n    zone: us-east-1e\n  - name: of04\n    profile: Graviton\n    zone: us-east-1b\n"
        ),
    )
    .unwrap();
    let r = run(&["plan", fleet.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr
            .contains("of01: profile Web: instance type c5.large is not offered in us-east-1e"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("of04:"), "{r:#?}");

    // What EC2 offers starts: an arm64 image on an arm64 type.
    let r = run(&[
        "start",
        "of04",
        "--zone",
        "us-east-1b",
        "--profile",
        "Graviton",
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    let state = cloud(&p);
    assert_eq!(state["instances"][0]["type"], "t4g.small", "{state}");
}
