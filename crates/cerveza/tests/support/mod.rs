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
    let mut c = Command::new(env!("CARGO_BIN_EXE_cerveza"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("cerveza-tests-no-config"),
        )
        .envs(lab_env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CERVEZA_PROFILES", root().join("examples/profiles"))
        .env("CERVEZA_REGIONS", REGIONS)
        .env("CERVEZA_POLL_INTERVAL", "50ms")
        .env("USER", "tester")
        .arg("-m")
        .arg(product);
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

/// Runs support/cloud.py (boto3, in the lab's venv) and returns its stdout bytes.
fn cloud_py_bytes(args: &[&str]) -> Vec<u8> {
    let out = Command::new(lab_var("CERVEZA_LAB_PYTHON"))
        .arg(root().join("crates/cerveza/tests/support/cloud.py"))
        .args(args)
        .envs(lab_env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
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

/// The cloud's end state for `product`, read with boto3.
pub fn cloud(product: &str) -> Value {
    let mut args = vec!["state", product];
    args.extend(REGIONS.split(','));
    serde_json::from_str(&cloud_py(&args)).expect("cloud.py prints JSON")
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
