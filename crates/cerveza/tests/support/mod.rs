//! Test harness: runs the real `cerveza` binary against the lab's real servers, and
//! reads the end state with boto3 (support/cloud.py), independently of cerveza's code.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

/// Regions the tests use (few, so listings stay fast).
pub const REGIONS: &str = "us-east-1,ap-southeast-1,eu-west-1";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The lab's environment: taken from the process when `scripts/test` set it up,
/// otherwise `scripts/lab up` is run once (so `cargo test` alone works too).
fn lab_env() -> &'static Vec<(String, String)> {
    static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = root();
        if std::env::var_os("CERVEZA_LAB_PYTHON").is_none() {
            let st = Command::new(root.join("scripts/lab"))
                .arg("up")
                .status()
                .expect("run scripts/lab up");
            assert!(st.success(), "scripts/lab up failed; see .lab/*.log");
        }
        let lab_dir = std::env::var("CERVEZA_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".lab"));
        let text =
            std::fs::read_to_string(lab_dir.join("env")).expect("the lab wrote its env file");
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

pub fn lab_var(name: &str) -> String {
    lab_env()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("lab env has no {name}"))
}

/// A product name no other test uses, so tests share one moto without interfering.
pub fn product() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// What a run of cerveza did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A `cerveza` command for `product`, wired to the lab, with the example profiles and
/// no user config.
pub fn cmd(product: &str) -> Command {
    let mut c = bare(product);
    c.arg("-m").arg(product);
    c
}

/// cerveza with the lab's environment but no product anywhere (`product` only names the
/// account).
pub fn bare(product: &str) -> Command {
    lab_command(env!("CARGO_BIN_EXE_cerveza"), product)
}

/// Any program with the environment cerveza gets in the tests (a shell that runs
/// cerveza, for one).
pub fn lab_command(program: impl AsRef<std::ffi::OsStr>, product: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("cerveza-tests-no-config"),
        )
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("cerveza-tests-cache"),
        )
        // Host keys learned from the lab's consoles, and master connections kept a
        // short while (tests that count connections set their own).
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join("cerveza-tests-state"),
        )
        .env(
            "XDG_RUNTIME_DIR",
            std::env::temp_dir().join("cerveza-tests-run"),
        )
        .env("CERVEZA_REMOTE_PERSIST", "20s")
        .envs(lab_env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CERVEZA_PROFILES", root().join("examples/profiles"))
        .env("CERVEZA_REGIONS", REGIONS)
        .env("CERVEZA_POLL_INTERVAL", "50ms")
        // moto on two busy cores, behind a fault proxy, is far slower than DynamoDB:
        // the registry's fail-fast limit is for the real service (the outage tests
        // set their own).
        .env("CERVEZA_REGISTRY_TIMEOUT", "30s")
        // The lab cloud throttles per account as EC2 does, and takes the access key id for
        // the account: each test product is its own account, as if it ran alone (tests
        // that share an account on purpose set the key themselves).
        .env("AWS_ACCESS_KEY_ID", format!("AKID-{product}"))
        .env("USER", "tester");
    c
}

/// Runs cerveza for `product` with `args`.
pub fn cerveza(product: &str, args: &[&str]) -> Run {
    cmd(product)
        .args(args)
        .output()
        .expect("run cerveza")
        .into()
}

/// First start of `host` in `zone` with `profile`; asserts that it succeeded.
#[track_caller]
pub fn start_new(product: &str, host: &str, zone: &str, profile: &str) -> Run {
    cerveza(
        product,
        &["start", host, "--zone", zone, "--profile", profile],
    )
    .ok()
}

/// Runs support/cloud.py (boto3, in the lab's venv) and returns its stdout bytes.
fn cloud_py_bytes(args: &[&str]) -> Vec<u8> {
    cloud_py_at(&lab_var("AWS_ENDPOINT_URL"), args)
}

/// Runs support/cloud.py against the moto at `endpoint`.
fn cloud_py_at(endpoint: &str, args: &[&str]) -> Vec<u8> {
    cloud_py_with(endpoint, &[], args)
}

/// Runs support/cloud.py against the moto at `endpoint` with the access key `key`
/// (`(id, secret)`: a lab cloud that enforces IAM knows only the keys it made).
pub fn cloud_py_as(endpoint: &str, key: (&str, &str), args: &[&str]) -> String {
    let env = [
        ("AWS_ACCESS_KEY_ID", key.0),
        ("AWS_SECRET_ACCESS_KEY", key.1),
    ];
    String::from_utf8_lossy(&cloud_py_with(endpoint, &env, args)).into_owned()
}

fn cloud_py_with(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Vec<u8> {
    let out = Command::new(lab_var("CERVEZA_LAB_PYTHON"))
        .arg(root().join("crates/cerveza/tests/support/cloud.py"))
        .args(args)
        .envs(lab_env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_ENDPOINT_URL", endpoint)
        .envs(env.iter().copied())
        .output()
        .expect("run cloud.py");
    assert!(
        out.status.success(),
        "cloud.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs support/cloud.py with `args` and returns its stdout.
pub fn cloud_py(args: &[&str]) -> String {
    String::from_utf8_lossy(&cloud_py_bytes(args)).into_owned()
}

/// `product`'s snapshots in `region`, read with boto3 (id, volume, state, size, tags),
/// by device.
pub fn snapshots(product: &str, region: &str) -> Vec<Value> {
    snapshots_at(&lab_var("AWS_ENDPOINT_URL"), product, region)
}

/// [`snapshots`] in the moto at `endpoint`.
pub fn snapshots_at(endpoint: &str, product: &str, region: &str) -> Vec<Value> {
    serde_json::from_slice::<Value>(&cloud_py_at(endpoint, &["snapshots", product, region]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// How many requests the lab cloud has had from `product`'s account, every service.
pub fn requests_of(product: &str) -> u64 {
    cloud_py(&["requests", &format!("AKID-{product}")])
        .trim()
        .parse()
        .unwrap()
}

/// How many `action` requests ("ec2:RunInstances") the lab cloud has had from
/// `product`'s account.
pub fn requests_of_action(product: &str, action: &str) -> u64 {
    cloud_py(&["requests", &format!("AKID-{product}"), action])
        .trim()
        .parse()
        .unwrap()
}

/// Sets the lab's limits (POST /lab-api/limits, JSON) for `product`'s account in `region`.
pub fn limits(product: &str, region: &str, json: &str) {
    cloud_py(&["limits", &format!("AKID-{product}"), region, json]);
}

/// The instance of `host` (of `product`) that is not terminated.
#[track_caller]
pub fn live_instance(product: &str, host: &str) -> Value {
    live(product)
        .into_iter()
        .find(|i| i["tags"]["cerveza:host"] == host)
        .unwrap_or_else(|| panic!("{host} has no live instance"))
}

/// Stops `host`'s instance straight through EC2 (boto3), as someone at the console
/// would: cerveza's registry hears nothing of it.
pub fn stop_at_console(product: &str, host: &str) {
    let i = live_instance(product, host);
    cloud_py(&[
        "stop",
        i["region"].as_str().unwrap(),
        i["id"].as_str().unwrap(),
    ]);
}

/// The cloud's end state for `product`, read with boto3.
pub fn cloud(product: &str) -> Value {
    cloud_at(&lab_var("AWS_ENDPOINT_URL"), product)
}

/// The end state for `product` in the moto at `endpoint`.
pub fn cloud_at(endpoint: &str, product: &str) -> Value {
    let mut args = vec!["state", product];
    args.extend(REGIONS.split(','));
    serde_json::from_slice(&cloud_py_at(endpoint, &args)).expect("cloud.py prints JSON")
}

/// Instances of `product` that are not terminated.
pub fn live(product: &str) -> Vec<Value> {
    cloud(product)["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !matches!(i["state"].as_str(), Some("terminated" | "shutting-down")))
        .cloned()
        .collect()
}

/// Launches an instance tagged only `Name=name` (someone else's), returns its id.
pub fn foreign(region: &str, zone: &str, name: &str) -> String {
    cloud_py(&["foreign", region, zone, name]).trim().to_owned()
}

/// The user-data bytes EC2 stores for an instance, read with boto3.
pub fn user_data(region: &str, instance: &str) -> Vec<u8> {
    cloud_py_bytes(&["user-data", region, instance])
}

/// A lab cloud of its own (scripts/labcloud.py: moto behaving like EC2, with fresh
/// state: moto's tag filters slow down as the shared one fills up) behind the
/// fault-injecting proxy (support/faultproxy.py); both are stopped when dropped.
pub struct Proxy {
    child: std::process::Child,
    port: u16,
    moto: std::process::Child,
    moto_url: String,
}

/// A lab cloud of its own (scripts/labcloud.py with `env`), started and answering: the
/// process and its URL. It binds a free port itself and prints it once it listens (a
/// port picked here could be taken by another process before it binds, and a probe of
/// a port nobody listens on can connect to itself).
pub fn labcloud(env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut moto = Command::new(lab_var("CERVEZA_LAB_PYTHON"))
        .arg(root().join("scripts/labcloud.py"))
        .args(["--port", "0", "--profiles"])
        .arg(root().join("examples/profiles"))
        // Its consoles show the lab sshd's host key, as the lab's own cloud does.
        .arg("--host-keys")
        .arg(Path::new(&lab_var("CERVEZA_LAB_DIR")).join("ssh/host_ed25519.pub"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start scripts/labcloud.py");
    let mut line = String::new();
    std::io::BufReader::new(moto.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("scripts/labcloud.py printed {line:?}, not its port"));
    (moto, format!("http://127.0.0.1:{port}"))
}

impl Proxy {
    /// Starts a moto and a proxy in front of it with `rules` (see faultproxy.py).
    pub fn start(rules: &Value) -> Self {
        use std::io::BufRead as _;
        let (moto, moto_url) = labcloud(&[]);
        let python = PathBuf::from(lab_var("CERVEZA_LAB_PYTHON"));
        let mut child = Command::new(python)
            .arg(root().join("crates/cerveza/tests/support/faultproxy.py"))
            .arg(&moto_url)
            .arg(rules.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start faultproxy.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("faultproxy.py printed {line:?}, not its port"));
        Proxy {
            child,
            port,
            moto,
            moto_url,
        }
    }

    /// The end state of `product` in this proxy's moto, read with boto3 directly.
    pub fn cloud(&self, product: &str) -> Value {
        cloud_at(&self.moto_url, product)
    }

    /// `product`'s snapshots in `region` of this proxy's moto (see [`snapshots`]).
    pub fn snapshots(&self, product: &str, region: &str) -> Vec<Value> {
        snapshots_at(&self.moto_url, product, region)
    }

    /// Runs cerveza for `product` against this moto without faults.
    pub fn direct(&self, product: &str, args: &[&str]) -> Run {
        cmd(product)
            .env("AWS_ENDPOINT_URL", &self.moto_url)
            .args(args)
            .output()
            .expect("run cerveza")
            .into()
    }

    /// [`start_new`] straight in this proxy's moto (no faults).
    #[track_caller]
    pub fn start_new(&self, product: &str, host: &str, zone: &str, profile: &str) -> Run {
        self.direct(
            product,
            &["start", host, "--zone", zone, "--profile", profile],
        )
        .ok()
    }

    /// Starts small hosts `(name, zone)` straight in this proxy's moto (no faults).
    pub fn start_direct(&self, product: &str, hosts: &[(&str, &str)]) {
        for (host, zone) in hosts {
            self.direct(
                product,
                &[
                    "start",
                    host,
                    "--zone",
                    zone,
                    "--profile",
                    "UbuntuGeneric32Bit",
                ],
            )
            .ok();
        }
    }

    /// The endpoint URL to give cerveza.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `cerveza` command for `product` that talks to AWS through this proxy.
    pub fn cmd(&self, product: &str) -> Command {
        let mut c = cmd(product);
        c.env("AWS_ENDPOINT_URL", self.url());
        c
    }

    /// What the proxy saw: requests per service:action, faults injected, retries and
    /// the most requests in one second per region.
    pub fn stats(&self) -> Value {
        self.get_json("/__proxy/stats")
    }

    /// The lab cloud's own counts behind the proxy: requests and throttled answers per
    /// service and action (GET /lab-api/stats).
    pub fn lab_stats(&self) -> Value {
        self.get_json("/lab-api/stats")
    }

    fn get_json(&self, path: &str) -> Value {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: proxy\r\n\r\n").as_bytes())
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("proxy stats ({e}): {text}"))
    }

    /// How many faults of `kind` ("status", "throttle", "reset", ...) were injected.
    pub fn injected(&self, kind: &str) -> u64 {
        self.stats()["faults"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.split(':').next() == Some(kind))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for child in [&mut self.child, &mut self.moto] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `cerveza:host` tag of every instance in a cloud state, sorted (duplicates kept).
pub fn instance_hosts(state: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = state["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["tags"]["cerveza:host"]
                .as_str()
                .unwrap_or("<untagged>")
                .to_owned()
        })
        .collect();
    hosts.sort();
    hosts
}

/// Asserts the end state of `product` as moto has it: exactly the `hosts`, one
/// instance each (none terminated or extra), tagged, registered as running with that
/// instance, and with `volumes_each` volumes attached to it; no other volume.
#[track_caller]
pub fn assert_converged(state: &Value, product: &str, hosts: &[String], volumes_each: usize) {
    let instances = state["instances"].as_array().unwrap();
    let mut seen: Vec<&str> = instances
        .iter()
        .map(|i| i["tags"]["cerveza:host"].as_str().unwrap_or("<untagged>"))
        .collect();
    seen.sort();
    let mut want: Vec<&str> = hosts.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want, "one instance per host, no duplicates: {state}");
    let registry = state["registry"].as_array().unwrap();
    assert_eq!(registry.len(), hosts.len(), "{state}");
    let all_volumes = state["volumes"].as_array().unwrap();
    for v in all_volumes {
        assert_ne!(
            v["attached_to"],
            serde_json::json!([]),
            "orphan volume: {v}"
        );
    }
    // Root volumes carry the instance's tags too; the profile's volumes also name
    // their volume profile.
    let volumes: Vec<&Value> = all_volumes
        .iter()
        .filter(|v| v["tags"]["cerveza:volume-profile"].is_string())
        .collect();
    assert_eq!(
        volumes.len(),
        hosts.len() * volumes_each,
        "no duplicate volumes: {state}"
    );
    for i in instances {
        let host = i["tags"]["cerveza:host"].as_str().unwrap();
        assert_eq!(i["state"], "running", "{host}: {i}");
        assert_eq!(i["tags"]["cerveza:product"], product, "{i}");
        assert_eq!(i["tags"]["Name"], host, "{i}");
        for tag in ["cerveza:profile", "cerveza:zone", "cerveza:token"] {
            assert!(i["tags"][tag].is_string(), "{host} lacks {tag}: {i}");
        }
        let rec = registry
            .iter()
            .find(|r| r["hostname"] == host)
            .unwrap_or_else(|| panic!("{host} is not registered: {state}"));
        assert_eq!(rec["instance_id"], i["id"], "{host}: {rec}");
        assert_eq!(rec["state"], "running", "{host}: {rec}");
        let attached: Vec<&&Value> = volumes
            .iter()
            .filter(|v| v["tags"]["cerveza:host"] == host)
            .collect();
        assert_eq!(attached.len(), volumes_each, "{host}: {state}");
        for v in attached {
            assert_eq!(
                v["attached_to"],
                serde_json::json!([i["id"]]),
                "{host}: {v}"
            );
        }
    }
}

/// A profiles directory: the examples' profiles, and `yaml` as `extra.yaml` beside them.
pub fn profiles_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples/profiles/."))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.path().join("extra.yaml"), yaml).unwrap();
    dir
}

/// Starts `host` (new, us-east-1a) with a profile that still allows IMDSv1
/// (`imds-tokens: optional`), from a profiles directory of its own.
pub fn start_allowing_imdsv1(product: &str, host: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("v1.yaml"),
        "--- !InstanceProfile\nname: LegacyMetadata\naws: !InstanceAws\n  ami: { us-east-1: ami-a6f504cf }\n  instance-type: m1.small\n  imds-tokens: optional\n",
    )
    .unwrap();
    cmd(product)
        .env("CERVEZA_PROFILES", dir.path())
        .args([
            "start",
            host,
            "--zone",
            "us-east-1a",
            "--profile",
            "LegacyMetadata",
        ])
        .output()
        .unwrap()
        .into()
}

/// A `doctor -o json` report's check `id`.
pub fn doctor_check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// "subject: problem" of each finding of check `id`.
pub fn doctor_findings(report: &Value, id: &str) -> Vec<String> {
    doctor_check(report, id)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f["subject"].as_str().unwrap(),
                f["problem"].as_str().unwrap()
            )
        })
        .collect()
}
