//! `cerveza iam-policy` against a lab cloud of its own that enforces IAM (moto's own
//! enforcement: after the setup requests, every request must be signed by a key IAM
//! made, and be allowed by its user's policies). A user holding exactly the printed
//! policy runs every command that calls AWS; none is refused, and every action of the
//! policy was needed by some request (the lab counts the IAM action each request asked
//! for), so removing any one of them refuses a call these commands make. A user with
//! the policy of `list show` can list and show, and nothing more. The lab enforces
//! actions, not resources (moto names no resource for most actions).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{cloud_py_as, cmd, labcloud, product, Run};

/// What cerveza answers when AWS refuses a permission (exit 7 and these words).
const REFUSED: [&str; 4] = [
    "AccessDenied",
    "not authorized",
    "UnauthorizedOperation",
    "lack a permission",
];

struct IamLab {
    _lab: KillOnDrop,
    url: String,
    keys: Value,
    vpc: String,
    dir: tempfile::TempDir,
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl IamLab {
    /// A lab that enforces IAM after its first 9 requests: the users `admin` (every
    /// action), `ops` (the policy of `policy_args`) and `reader` (of `list show`).
    fn new(p: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = |args: &[&str]| -> String {
            let r: Run = cmd(p)
                .env("CERVEZA_DNS_BACKEND", "route53")
                .arg("iam-policy")
                .args(args)
                .output()
                .unwrap()
                .into();
            assert_eq!(r.code, 0, "{r:#?}");
            r.stdout
        };
        std::fs::write(dir.path().join("ops.json"), policy(&[])).unwrap();
        std::fs::write(dir.path().join("reader.json"), policy(&["list", "show"])).unwrap();
        let (lab, url) = labcloud(&[("INITIAL_NO_AUTH_ACTION_COUNT", "9")]);
        let ops = format!("ops={}", dir.path().join("ops.json").display());
        let reader = format!("reader={}", dir.path().join("reader.json").display());
        let keys: Value = serde_json::from_str(&cloud_py_as(
            &url,
            ("AKIDSETUP", "setup"),
            &["iam-users", "admin=*", &ops, &reader],
        ))
        .unwrap();
        let mut lab = Self {
            _lab: KillOnDrop(lab),
            url,
            keys,
            vpc: String::new(),
            dir,
        };
        lab.vpc = lab.admin(&["default-vpc", "us-east-1"]).trim().to_owned();
        lab
    }

    fn key(&self, user: &str) -> (&str, &str) {
        let k = &self.keys[user];
        (k["id"].as_str().unwrap(), k["secret"].as_str().unwrap())
    }

    fn admin(&self, args: &[&str]) -> String {
        cloud_py_as(&self.url, self.key("admin"), args)
    }

    /// cerveza for product `p` as `user`, with Route53 for DNS, waiting for it.
    fn run(&self, user: &str, p: &str, args: &[&str]) -> Run {
        let (id, secret) = self.key(user);
        let r: Run = cmd(p)
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("CERVEZA_REGIONS", "us-east-1,eu-west-1")
            .env("CERVEZA_DNS_BACKEND", "route53")
            .env("CERVEZA_DNS_VPC_ID", &self.vpc)
            .env("CERVEZA_DNS_VPC_REGION", "us-east-1")
            // Lifecycle commands wait for Route53 to serve their changes (GetChange).
            .env("CERVEZA_DNS_WAIT", "60s")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap()
            .into();
        r
    }
}

fn refused(r: &Run) -> bool {
    REFUSED
        .iter()
        .any(|w| r.stderr.contains(w) || r.stdout.contains(w))
}

/// The actions of a policy document's statements, but those no request of cerveza's
/// asks for itself: tags on create (conditioned), the parameters EC2 reads for
/// `resolve:ssm:` images, and decoding a refusal.
fn policy_actions(doc: &str) -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(doc).unwrap();
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["Condition"].is_null() && s["Sid"] != "ExplainRefusals" && s["Sid"] != "ResolveImages"
        })
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_printed_policy_is_enough_for_every_command_and_every_action_in_it_is_needed() {
    let p = product();
    let lab = IamLab::new(&p);
    std::fs::write(lab.dir.path().join("app.sh"), "echo deployed\n").unwrap();
    std::fs::write(
        lab.dir.path().join("fleet.yaml"),
        format!("--- !Fleet\nproduct: {p}\nhosts:\n  - name: db01\n    profile: Mysql\n    zone: us-east-1a\n  - name: vpn01\n    profile: Vpn\n    zone: us-east-1a\n  - name: web01\n    profile: Web\n    zone: us-east-1b\n"),
    )
    .unwrap();
    // Every command that calls AWS, as a day of work would run them; `ok`: must exit 0.
    let steps: &[(&[&str], bool)] = &[
        (
            &[
                "start",
                "db01",
                "--zone",
                "us-east-1a",
                "--profile",
                "Mysql",
            ],
            true,
        ),
        (
            &["start", "vpn01", "--zone", "us-east-1a", "--profile", "Vpn"],
            true,
        ),
        (&["list"], true),
        (&["show", "db01"], true),
        (&["userdata", "db01"], true),
        (&["stop", "vpn01"], true),
        (&["start", "vpn01"], true),
        (&["restart", "db01"], true),
        (&["reboot", "db01"], true),
        (&["eip", "detach", "vpn01"], true),
        (&["eip", "attach", "vpn01"], true),
        (&["volumes", "list"], true),
        (&["backup", "db01", "--wait"], true),
        (&["backup", "db01", "--copy-to", "eu-west-1"], true),
        (&["backup", "list"], true),
        (&["backup", "prune", "--keep", "1"], true),
        (&["registry", "sync"], true),
        (&["fleet", "export"], true),
        (&["export", "hosts"], true),
        (&["hostkeys", "sync", "--no-wait"], false),
        (&["dns", "sync", "--wait"], true),
        (&["dns", "list"], true),
        (&["release", "push", "app.sh", "--name", "v1"], true),
        (&["release", "list"], true),
        (&["doctor"], false),
        (&["plan", "fleet.yaml"], false),
        (&["apply", "fleet.yaml", "--yes"], true),
        (&["move", "db01", "--zone", "us-east-1b"], true),
        (&["stop", "db01"], true),
        (&["backup", "db01", "--wait"], true),
        (&["restore", "db01"], true),
        (
            &[
                "terminate",
                "db01",
                "vpn01",
                "web01",
                "--forget",
                "--delete-volumes",
            ],
            true,
        ),
    ];
    for (args, ok) in steps {
        let r = lab.run("ops", &p, args);
        assert!(!refused(&r), "{args:?} was refused a permission: {r:#?}");
        if *ok {
            assert_eq!(r.code, 0, "{args:?}: {r:#?}");
        }
    }
    // Every action of the policy was asked for by some request (so each is needed);
    // every request was allowed (none was refused above).
    let policy = policy_actions(&std::fs::read_to_string(lab.dir.path().join("ops.json")).unwrap());
    let asked: Value =
        serde_json::from_str(&lab.admin(&["iam-actions", lab.key("ops").0])).unwrap();
    let asked: BTreeSet<String> = asked.as_object().unwrap().keys().cloned().collect();
    // Only when a multipart upload fails; only what STS always allows.
    let unused: BTreeSet<String> = policy
        .difference(&asked)
        .filter(|a| *a != "s3:AbortMultipartUpload")
        .cloned()
        .collect();
    assert!(
        unused.is_empty(),
        "in the policy, never needed: {unused:?}\nasked: {asked:?}"
    );
    let beyond: BTreeSet<&String> = asked
        .difference(&policy)
        .filter(|a| *a != "sts:GetCallerIdentity")
        .collect();
    assert!(
        beyond.is_empty(),
        "asked for, not in the policy: {beyond:?}"
    );

    // The policy of `list show` lists and shows, and refuses the rest with exit 7.
    lab.run(
        "ops",
        &p,
        &["start", "web02", "--zone", "us-east-1b", "--profile", "Web"],
    )
    .ok();
    lab.run("reader", &p, &["list"]).ok();
    lab.run("reader", &p, &["show", "web02"]).ok();
    let r = lab.run("reader", &p, &["stop", "web02"]);
    assert_eq!(r.code, 7, "{r:#?}");
    assert!(refused(&r), "{r:#?}");
}
