//! Parallel commands over OpenSSH: `cerveza remote mysql -- uptime`.
//!
//! The system `ssh` is used, so the user's ssh config, agent, keys and jump hosts all
//! work. Hosts are reached by address, never by a name from the cloud, and the address
//! comes after `--`: nothing a tag says can become an ssh option or shell syntax locally.
//! Fan-out is bounded; every connection has a short timeout (`BatchMode`, no prompts), and
//! commands an optional one.

pub mod hostkeys;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Where to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The hostname, for output.
    pub host: String,
    /// The address ssh connects to.
    pub address: IpAddr,
    /// The name its host keys are known by (`HostKeyAlias`, `web01.noc.private`).
    pub alias: Option<String>,
    /// The instance behind it: a master connection is never shared across instances.
    pub instance: Option<String>,
    /// Its own jump host (its region's gateway), over [`Options::jump`].
    pub jump: Option<String>,
}

impl Target {
    /// A target reached by address alone.
    pub fn new(host: impl Into<String>, address: IpAddr) -> Self {
        Self {
            host: host.into(),
            address,
            alias: None,
            instance: None,
            jump: None,
        }
    }
}

/// Master connections kept open between runs (OpenSSH's ControlMaster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    /// A private directory (0700) for the control sockets.
    pub dir: PathBuf,
    /// How long an idle master stays.
    pub persist: Duration,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ssh program.
    pub ssh: PathBuf,
    /// The scp program (`copy`).
    pub scp: PathBuf,
    /// An ssh config file (`-F`).
    pub config: Option<PathBuf>,
    /// Remote user (`-l`).
    pub user: Option<String>,
    /// Jump host (`-J`).
    pub jump: Option<String>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Limit for each host: connecting and the command together.
    pub command_timeout: Option<Duration>,
    /// Hosts at once.
    pub fanout: usize,
    /// Reuse connections, unless the user's ssh config sets ControlMaster or
    /// ControlPath itself (theirs wins).
    pub reuse: Option<Reuse>,
    /// cerveza's known_hosts file: host keys are checked strictly against it, by
    /// [`Target::alias`]. `None` leaves host keys to the user's ssh config.
    pub known_hosts: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ssh: PathBuf::from("ssh"),
            scp: PathBuf::from("scp"),
            config: None,
            user: None,
            jump: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: None,
            fanout: 64,
            reuse: None,
            known_hosts: None,
        }
    }
}

/// How a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "code")]
pub enum Status {
    /// Exit code 0.
    Ok,
    /// The command exited with this code.
    Failed(i32),
    /// ssh could not connect (ssh's exit code 255).
    Unreachable,
    /// The command ran past its timeout and was killed.
    TimedOut,
}

/// What one host did.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    /// The hostname.
    pub host: String,
    /// The address used.
    pub address: IpAddr,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// ssh's `ConnectTimeout` in whole seconds: the connect timeout, never more than the
/// command's whole limit, at least 1.
fn connect_seconds(opts: &Options) -> u64 {
    let connect = match opts.command_timeout {
        Some(limit) => opts.connect_timeout.min(limit),
        None => opts.connect_timeout,
    };
    connect.as_secs().max(1)
}

/// FNV-1a: a short, stable name from what a connection depends on.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The control socket of a target: one per instance, address, user, jump host and ssh
/// config, so a relaunched host (new instance) or another route never reuses a master.
/// The name is 16 hex digits: socket paths stay far below the kernel's 108 bytes.
pub fn control_path(target: &Target, opts: &Options, dir: &Path) -> PathBuf {
    let address = target.address.to_string();
    let config = opts
        .config
        .as_ref()
        .map(|c| c.display().to_string())
        .unwrap_or_default();
    let h = fnv(&[
        target.instance.as_deref().unwrap_or(""),
        &address,
        opts.user.as_deref().unwrap_or(""),
        target
            .jump
            .as_deref()
            .or(opts.jump.as_deref())
            .unwrap_or(""),
        &config,
    ]);
    dir.join(format!("{h:016x}"))
}

/// The options ssh and scp share: timeouts, batch mode, config file, user, jump host,
/// host keys and connection reuse.
fn connection_options(target: &Target, opts: &Options, batch: bool, reuse: bool) -> Vec<String> {
    let mut a = vec![
        "-o".to_owned(),
        format!("ConnectTimeout={}", connect_seconds(opts)),
    ];
    let mut o = |v: String| {
        a.push("-o".to_owned());
        a.push(v);
    };
    if batch {
        o("BatchMode=yes".into());
    }
    if let Some(u) = &opts.user {
        o(format!("User={u}"));
    }
    if let Some(k) = &opts.known_hosts {
        o(format!("UserKnownHostsFile={}", k.display()));
        o("StrictHostKeyChecking=yes".into());
        if let Some(alias) = &target.alias {
            o(format!("HostKeyAlias={alias}"));
        }
    }
    if let (Some(r), true) = (&opts.reuse, reuse) {
        o("ControlMaster=auto".into());
        o(format!(
            "ControlPath={}",
            control_path(target, opts, &r.dir).display()
        ));
        o(format!("ControlPersist={}s", r.persist.as_secs().max(1)));
    }
    if let Some(c) = &opts.config {
        a.push("-F".into());
        a.push(c.display().to_string());
    }
    if let Some(j) = target.jump.as_ref().or(opts.jump.as_ref()) {
        a.push("-J".into());
        a.push(j.clone());
    }
    a
}

/// The ssh arguments for one target (everything before the command). Batch runs get
/// `BatchMode` (never a prompt) and no terminal; an interactive login gets neither.
/// `reuse` (see [`reuses`]) adds cerveza's master connection.
pub fn ssh_args(target: &Target, opts: &Options, interactive: bool, reuse: bool) -> Vec<String> {
    let mut a = connection_options(target, opts, !interactive, reuse);
    if !interactive {
        a.push("-T".into());
    }
    a.push("--".into());
    a.push(target.address.to_string());
    a
}

/// Whether cerveza's master connection is used for `target`: reuse is on and the user's
/// own ssh config sets neither ControlMaster nor ControlPath for it (`ssh -G` says).
pub async fn reuses(target: &Target, opts: &Options) -> bool {
    let Some(reuse) = &opts.reuse else {
        return false;
    };
    // Our own master is there: it was made because the config left control to us.
    if control_path(target, opts, &reuse.dir).exists() {
        return true;
    }
    let mut c = Command::new(&opts.ssh);
    c.arg("-G");
    if let Some(cfg) = &opts.config {
        c.arg("-F").arg(cfg);
    }
    c.arg("--").arg(target.address.to_string());
    let Ok(out) = c.stdin(Stdio::null()).stderr(Stdio::null()).output().await else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    !text.lines().any(|l| {
        let (k, v) = l.split_once(' ').unwrap_or((l, ""));
        (k == "controlmaster" && v != "false") || (k == "controlpath" && v != "none")
    })
}

/// Reads a stream to its end, a line at a time, as bytes: output that is not UTF-8
/// never stops the reader (which would leave ssh writing into a closed pipe). Lines
/// are handed to `on_line` lossily decoded; the returned text is too.
async fn pump<R: AsyncRead + Unpin>(
    r: R,
    host: &str,
    stream: Stream,
    on_line: &(dyn Fn(&str, Stream, &str) + Sync),
) -> String {
    let mut reader = BufReader::new(r);
    let mut all = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                on_line(host, stream, &String::from_utf8_lossy(text));
                all.extend_from_slice(text);
                all.push(b'\n');
            }
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn run_one(
    target: &Target,
    program: &Path,
    args: Vec<String>,
    opts: &Options,
    on_line: &(dyn Fn(&str, Stream, &str) + Sync),
) -> HostResult {
    let mut result = HostResult {
        host: target.host.clone(),
        address: target.address,
        status: Status::Unreachable,
        stdout: String::new(),
        stderr: String::new(),
    };
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            result.stderr = format!("cannot run {}: {e}\n", program.display());
            return result;
        }
    };
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (o, e) = futures::join!(
            async {
                match out {
                    Some(o) => pump(o, &target.host, Stream::Out, on_line).await,
                    None => String::new(),
                }
            },
            async {
                match err {
                    Some(e) => pump(e, &target.host, Stream::Err, on_line).await,
                    None => String::new(),
                }
            }
        );
        (o, e, child.wait().await)
    };
    let finished = match opts.command_timeout {
        // The limit is the whole run: connecting and the command together, as the
        // user reads `--timeout 3s` (a connect timeout on top would let a command run
        // seconds longer than asked).
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    };
    match finished {
        None => result.status = Status::TimedOut,
        Some((o, e, status)) => {
            result.stdout = o;
            result.stderr = e;
            result.status = match status.ok().and_then(|s| s.code()) {
                Some(0) => Status::Ok,
                Some(255) | None => Status::Unreachable,
                Some(c) => Status::Failed(c),
            };
        }
    }
    result
}

/// Runs `command` on every target, at most `opts.fanout` at once, calling `on_line` for
/// each line of output as it arrives. Results come back in target order.
pub async fn run(
    targets: &[Target],
    command: &[String],
    opts: &Options,
    on_line: &(dyn Fn(&str, Stream, &str) + Sync),
) -> Vec<HostResult> {
    run_each(targets, &|_| command.to_vec(), opts, on_line).await
}

/// As [`run`], with a command of its own for each target.
pub async fn run_each(
    targets: &[Target],
    command_for: &(dyn Fn(&Target) -> Vec<String> + Sync),
    opts: &Options,
    on_line: &(dyn Fn(&str, Stream, &str) + Sync),
) -> Vec<HostResult> {
    let mut results: Vec<(usize, HostResult)> = stream::iter(targets.iter().enumerate())
        .map(|(i, t)| async move {
            let mut args = ssh_args(t, opts, false, reuses(t, opts).await);
            args.extend(command_for(t));
            (i, run_one(t, &opts.ssh, args, opts, on_line).await)
        })
        .buffer_unordered(opts.fanout.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// What `copy` moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Local files to the same path on every host.
    To {
        /// Local files (directories with `recursive`).
        sources: Vec<PathBuf>,
        /// The remote path (empty: the login's home).
        dest: String,
    },
    /// Files of every host into `dir/<host>/`.
    Gather {
        /// Remote paths.
        sources: Vec<String>,
        /// The local directory; one subdirectory per host is made.
        dir: PathBuf,
    },
}

/// `address:path` as scp reads it (IPv6 in brackets).
fn remote_spec(address: IpAddr, path: &str) -> String {
    match address {
        IpAddr::V6(a) => format!("[{a}]:{path}"),
        IpAddr::V4(a) => format!("{a}:{path}"),
    }
}

/// A hostname that is safe as one path component (tags are untrusted).
fn safe_component(host: &str) -> bool {
    !host.is_empty()
        && host != "."
        && host != ".."
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Copies files to or from every target with scp, through the same connections,
/// options and limits as [`run`].
pub async fn copy(
    targets: &[Target],
    transfer: &Transfer,
    recursive: bool,
    opts: &Options,
    on_line: &(dyn Fn(&str, Stream, &str) + Sync),
) -> Vec<HostResult> {
    let mut results: Vec<(usize, HostResult)> = stream::iter(targets.iter().enumerate())
        .map(|(i, t)| async move {
            let mut args = connection_options(t, opts, true, reuses(t, opts).await);
            args.push("-q".into());
            if recursive {
                args.push("-r".into());
            }
            args.push("--".into());
            match transfer {
                Transfer::To { sources, dest } => {
                    args.extend(sources.iter().map(|p| p.display().to_string()));
                    args.push(remote_spec(t.address, dest));
                }
                Transfer::Gather { sources, dir } => {
                    let into = dir.join(&t.host);
                    let made = if safe_component(&t.host) {
                        std::fs::create_dir_all(&into)
                    } else {
                        Err(std::io::Error::other("not a safe directory name"))
                    };
                    if let Err(e) = made {
                        let r = HostResult {
                            host: t.host.clone(),
                            address: t.address,
                            status: Status::Failed(1),
                            stdout: String::new(),
                            stderr: format!("cannot make {}: {e}\n", into.display()),
                        };
                        on_line(&t.host, Stream::Err, r.stderr.trim_end());
                        return (i, r);
                    }
                    args.extend(sources.iter().map(|p| remote_spec(t.address, p)));
                    args.push(format!("{}/", into.display()));
                }
            }
            (i, run_one(t, &opts.scp, args, opts, on_line).await)
        })
        .buffer_unordered(opts.fanout.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Ends every master connection in `dir` (`ssh -O exit`) and removes sockets whose master
/// is gone. Returns how many masters were ended.
pub async fn close(dir: &Path, ssh: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut closed = 0;
    for entry in entries {
        let path = entry?.path();
        let ended = Command::new(ssh)
            .arg("-O")
            .arg("exit")
            .arg("-o")
            .arg(format!("ControlPath={}", path.display()))
            .arg("--")
            .arg("cerveza-control")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ended {
            closed += 1;
            gone_within(&path, CLOSE_WAIT).await;
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(closed)
}

/// How long `close` waits for an ended master to remove its socket.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Waits until `path` is gone, at most `bound`: `ssh -O exit` answers before the
/// master has removed its socket, and a run right after `close` must not find it. The
/// socket is never removed here: a master still exiting would later remove the socket
/// of a new master at the same path.
async fn gone_within(path: &Path, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    while path.exists() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The exit code of a run: the highest remote exit code, 255 when a host was
/// unreachable, 124 when one timed out (as `timeout` does).
pub fn exit_code(results: &[HostResult]) -> u8 {
    let mut code = 0u8;
    for r in results {
        let c = match r.status {
            Status::Ok => 0,
            Status::Failed(c) => c.clamp(1, 254) as u8,
            Status::TimedOut => 124,
            Status::Unreachable => 255,
        };
        code = code.max(c);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_the_socket_to_go_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m-1");
        std::fs::write(&path, "").unwrap();
        let removed = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::remove_file(removed).unwrap();
        });
        assert!(gone_within(&path, Duration::from_secs(5)).await);
        std::fs::write(&path, "").unwrap();
        assert!(!gone_within(&path, Duration::from_millis(30)).await);
        assert!(path.exists(), "never removed here");
    }

    #[test]
    fn hostile_names_never_reach_ssh_options() {
        let t = Target::new(
            "-oProxyCommand=touch /tmp/pwned",
            "10.0.0.5".parse().unwrap(),
        );
        let args = ssh_args(&t, &Options::default(), false, false);
        assert_eq!(
            args[args.len() - 2..],
            ["--".to_owned(), "10.0.0.5".to_owned()]
        );
        assert!(!args.iter().any(|a| a.contains("ProxyCommand")));
    }

    #[test]
    fn host_keys_reuse_and_jump_hosts_become_ssh_options() {
        let mut t = Target::new("web01", "10.0.0.5".parse().unwrap());
        t.alias = Some("web01.noc.private".into());
        t.instance = Some("i-1".into());
        t.jump = Some("gw.us.noc.public".into());
        let opts = Options {
            user: Some("ubuntu".into()),
            jump: Some("vpn.noc.public".into()),
            known_hosts: Some("/k/known_hosts".into()),
            reuse: Some(Reuse {
                dir: "/run/c".into(),
                persist: Duration::from_secs(600),
            }),
            ..Options::default()
        };
        let a = ssh_args(&t, &opts, false, true).join(" ");
        for want in [
            "-o User=ubuntu",
            "-o UserKnownHostsFile=/k/known_hosts -o StrictHostKeyChecking=yes -o HostKeyAlias=web01.noc.private",
            "-o ControlMaster=auto -o ControlPath=/run/c/",
            "-o ControlPersist=600s",
            "-J gw.us.noc.public",
            "-T -- 10.0.0.5",
        ] {
            assert!(a.contains(want), "{want} in {a}");
        }
        assert!(
            !a.contains("vpn.noc.public"),
            "the region's gateway wins: {a}"
        );
        let without = ssh_args(&t, &opts, false, false).join(" ");
        assert!(!without.contains("Control"), "{without}");
    }

    #[test]
    fn a_master_is_never_shared_across_instances_or_routes() {
        let opts = Options::default();
        let dir = Path::new("/run/c");
        let mut a = Target::new("web01", "10.0.0.5".parse().unwrap());
        a.instance = Some("i-1".into());
        let mut b = a.clone();
        b.instance = Some("i-2".into());
        let mut c = a.clone();
        c.jump = Some("gw".into());
        let p = control_path(&a, &opts, dir);
        assert_eq!(p, control_path(&a.clone(), &opts, dir));
        assert_ne!(p, control_path(&b, &opts, dir));
        assert_ne!(p, control_path(&c, &opts, dir));
        assert_eq!(p.file_name().unwrap().len(), 16);
    }

    #[test]
    fn scp_names_remote_paths_and_gathers_into_safe_directories() {
        assert_eq!(
            remote_spec("10.0.0.5".parse().unwrap(), "/etc/x"),
            "10.0.0.5:/etc/x"
        );
        assert_eq!(remote_spec("fd00::5".parse().unwrap(), "x"), "[fd00::5]:x");
        assert!(safe_component("web01"));
        for bad in ["", ".", "..", "a/b", "x y", "x\ny"] {
            assert!(!safe_component(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn output_that_is_not_utf8_is_read_to_the_end() {
        let mut input = b"caf\xe9\n".to_vec();
        for i in 1..=30_000 {
            input.extend_from_slice(format!("{i}\n").as_bytes());
        }
        input.extend_from_slice(b"no newline \xff");
        let seen = std::sync::Mutex::new(Vec::new());
        let on_line = |_: &str, _: Stream, l: &str| seen.lock().unwrap().push(l.to_owned());
        let all = pump(&input[..], "h", Stream::Out, &on_line).await;
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 30_002);
        assert_eq!(seen[0], "caf\u{fffd}");
        assert_eq!(seen[30_000], "30000");
        assert_eq!(seen[30_001], "no newline \u{fffd}");
        assert!(all.starts_with("caf\u{fffd}\n1\n2\n"));
        assert!(all.ends_with("30000\nno newline \u{fffd}\n"));
    }

    #[test]
    fn exit_codes_follow_the_worst_host() {
        let r = |status| HostResult {
            host: "h".into(),
            address: "10.0.0.1".parse().unwrap(),
            status,
            stdout: String::new(),
            stderr: String::new(),
        };
        assert_eq!(exit_code(&[r(Status::Ok)]), 0);
        assert_eq!(exit_code(&[r(Status::Ok), r(Status::Failed(3))]), 3);
        assert_eq!(
            exit_code(&[r(Status::Failed(3)), r(Status::Unreachable)]),
            255
        );
        assert_eq!(exit_code(&[r(Status::TimedOut)]), 124);
    }
}
