#![allow(clippy::unwrap_used)]

use super::*;

const PROFILES: &str = "--- !InstanceProfile
name: Base
abstract: true
aws: !InstanceAws
  ami: { us-east-1: ami-a6f504cf, eu-west-1: ami-0905a3c9 }
  instance-type: t3.micro
--- !InstanceProfile
name: Web
extends: Base
--- !InstanceProfile
name: Vpn
aws: !InstanceAws
  ami: { eu-west-1: ami-0905a3c9 }
  instance-type: t3.micro
";

fn profiles() -> ProfileSet {
    ProfileSet::from_sources(&[(PathBuf::from("p.yaml"), PROFILES.to_owned())]).unwrap()
}

fn regions() -> Vec<Region> {
    ["us-east-1", "eu-west-1"]
        .iter()
        .map(|r| Region::parse(r).unwrap())
        .collect()
}

fn parse(text: &str) -> Result<FleetFile, Vec<String>> {
    FleetFile::parse(
        Path::new("fleet.yaml"),
        text,
        &profiles(),
        &regions(),
        Some(&Product::parse("noc").unwrap()),
    )
    .map_err(|es| es.into_iter().map(|e| e.to_string()).collect())
}

fn h(s: &str) -> Hostname {
    Hostname::parse(s).unwrap()
}

fn zones(names: &[&str]) -> Vec<Zone> {
    names.iter().map(|z| Zone::parse(z).unwrap()).collect()
}

#[test]
fn the_issue_example_parses_with_every_host_resolved() {
    let f = parse(
        "--- !Fleet
product: noc
hosts:
  - names: web[01-04]
    profile: Web
    zones: [us-east-1a, us-east-1b, us-east-1c]   # spread
  - names: [dev-web01, 'dev-web[02-03]']
    profile: Web
    zone: us-east-1b
  - name: vpn01
    profile: Vpn
    zone: eu-west-1a
    state: stopped
",
    )
    .unwrap();
    let got: Vec<(String, String, DesiredState)> = f
        .hosts
        .iter()
        .map(|d| (d.host.to_string(), d.zone.to_string(), d.state))
        .collect();
    let want = |h: &str, z: &str, s| (h.to_owned(), z.to_owned(), s);
    use DesiredState::*;
    assert_eq!(
        got,
        vec![
            want("web01", "us-east-1a", Running),
            want("web02", "us-east-1b", Running),
            want("web03", "us-east-1c", Running),
            want("web04", "us-east-1a", Running),
            want("dev-web01", "us-east-1b", Running),
            want("dev-web02", "us-east-1b", Running),
            want("dev-web03", "us-east-1b", Running),
            want("vpn01", "eu-west-1a", Stopped),
        ]
    );
    assert_eq!(f.hosts[0].at.to_string(), "fleet.yaml:4:12");
    assert_eq!(f.hosts[5].at.to_string(), "fleet.yaml:7:25");
    assert_eq!(f.hosts[1].zone_at.to_string(), "fleet.yaml:6:25");
}

#[test]
fn spreading_is_stable_when_a_range_grows_or_shrinks() {
    let three = zones(&["us-east-1a", "us-east-1b", "us-east-1c"]);
    let place = |n: u32| {
        (1..=n)
            .map(|i| spread(&h(&format!("web{i:02}")), &three).unwrap())
            .collect::<Vec<_>>()
    };
    let twelve = place(12);
    let thirteen = place(13);
    assert_eq!(twelve[..], thirteen[..12], "adding web13 moves nobody");
    // Balanced: four per zone.
    for z in &three {
        assert_eq!(twelve.iter().filter(|x| *x == z).count(), 4);
    }
    // Removing web01 from the range moves nobody either: the number decides.
    assert_eq!(spread(&h("web05"), &three), Some(twelve[4].clone()));
    // Names without a number: a fixed hash, the same on every run.
    let a = spread(&h("vpn"), &three).unwrap();
    assert_eq!(spread(&h("vpn"), &three).unwrap(), a);
    assert_eq!(spread(&h("vpn"), &[]), None);
    // FNV-1a of "vpn" is fixed: pin it, so a change of the hash is seen.
    assert_eq!(a.as_str(), "us-east-1a");
}

#[test]
fn every_problem_is_reported_at_its_line_and_column() {
    let errs = parse(
        "--- !Fleet
product: noc
hosts:
  - names: web[01-12]
    profile: Wbe
    zones: [us-east-1a, us-east-1a]
  - names: [web10, Db01]
    profile: Base
    zone: ap-south-1a
  - name: vpn01
    profile: Vpn
    zone: us-east-1a
  - names: web[01-02]
    name: web03
    profile: Vpn
    zone: eu-west-1a
  - profile: Vpn
",
    )
    .unwrap_err();
    let want = [
        "fleet.yaml:5:14: unknown instance profile \"Wbe\"; did you mean \"Web\"?",
        "fleet.yaml:6:25: zone us-east-1a is listed twice",
        "fleet.yaml:7:20: invalid hostname \"Db01\"",
        "fleet.yaml:7:13: web10 is named twice: here and at fleet.yaml:4:12",
        "fleet.yaml:8:14: profile \"Base\" is abstract",
        "fleet.yaml:9:11: zone ap-south-1a is in region ap-south-1, which is not a configured region (us-east-1, eu-west-1)",
        "fleet.yaml:12:11: profile \"Vpn\" has no AMI for region us-east-1 (it has: eu-west-1); add `us-east-1: ami-…` under `ami:` at p.yaml:13:3",
        "fleet.yaml:14:5: give `name:` (one host) or `names:` (ranges, lists), not both",
        "fleet.yaml:17:3: the entry names no host",
        "fleet.yaml:17:3: the entry has no zone",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), want.len(), "{}", errs.join("\n"));
}

#[test]
fn the_document_tag_product_and_state_are_checked() {
    let e = parse("--- !Flet\nproduct: noc\n").unwrap_err();
    assert!(e[0].starts_with("fleet.yaml:1:1:"), "{e:?}");
    assert!(
        e[0].contains("a fleet file starts with `--- !Fleet`"),
        "{e:?}"
    );
    let e = parse("--- !Fleet\nproduct: dev\nhosts: []\n").unwrap_err();
    assert_eq!(
        e,
        ["fleet.yaml:2:10: the file is for product dev, but cerveza is set to product noc (-m / CERVEZA_PRODUCT)"]
    );
    let e = parse(
        "--- !Fleet\nproduct: noc\nhosts:\n  - name: a1\n    profile: Web\n    zone: us-east-1a\n    state: stoped\n",
    )
    .unwrap_err();
    assert!(e[0].starts_with("fleet.yaml:7:12:"), "{e:?}");
    assert!(
        e[0].contains("expected one of `running`, `stopped`, `terminated`"),
        "{e:?}"
    );
    let e = parse("--- !Fleet\nproduct: noc\nhosts: []\nextra: 1\n").unwrap_err();
    assert!(e[0].contains("unknown field `extra`"), "{e:?}");
    let e = parse("--- !Fleet\nproduct: noc\n--- !Fleet\nproduct: noc\n").unwrap_err();
    assert_eq!(
        e,
        ["fleet.yaml:3:1: the file holds 2 documents; one `--- !Fleet` per file"]
    );
    assert!(parse("--- !Fleet\nproduct: noc\n")
        .unwrap()
        .hosts
        .is_empty());
}

#[test]
fn bytes_that_are_not_utf8_are_reported_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.yaml");
    std::fs::write(
        &path,
        b"--- !Fleet\nproduct: noc\nhosts:\n  - name: w\xff1\n",
    )
    .unwrap();
    let e = read(&path).unwrap_err().to_string();
    assert!(
        e.ends_with("f.yaml:4:12: byte 0xff is not UTF-8; a fleet file is UTF-8 text"),
        "{e}"
    );
}

#[test]
fn the_schema_describes_the_file() {
    let s = schema();
    assert_eq!(s["title"], "Cerveza fleet file (--- !Fleet)");
    assert_eq!(s["required"], serde_json::json!(["product"]));
    assert_eq!(s["additionalProperties"], false);
    let text = s.to_string();
    for word in ["zones", "names", "stopped", "terminated", "spread"] {
        assert!(text.contains(word), "{word}: {text}");
    }
}
