//! Parallel commands over OpenSSH: `cerveza remote mysql -- uptime`.
//!
//! The system `ssh` is used, so the user's ssh config, agent, keys and jump hosts all
//! work. Hosts are reached by address, never by a name from the cloud, and the address
//! comes after `--`: nothing a tag says can become an ssh option or shell syntax locally.
//! Fan-out is bounded; every connection has a short timeout (`BatchMode`, no prompts), and
//! commands an optional one.

use std::net::IpAddr;
use std::path::PathBuf;
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
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ssh program.
    pub ssh: PathBuf,
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ssh: PathBuf::from("ssh"),
            config: None,
            user: None,
            jump: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: None,
            fanout: 64,
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

/// The ssh arguments for one target (everything before the command). Batch runs get
/// `BatchMode` (never a prompt) and no terminal; an interactive login gets neither.
pub fn ssh_args(target: &Target, opts: &Options, interactive: bool) -> Vec<String> {
    let mut a = vec![
        "-o".to_owned(),
        format!("ConnectTimeout={}", connect_seconds(opts)),
    ];
    if !interactive {
        a.extend(["-o".to_owned(), "BatchMode=yes".to_owned(), "-T".to_owned()]);
    }
    if let Some(c) = &opts.config {
        a.push("-F".into());
        a.push(c.display().to_string());
    }
    if let Some(u) = &opts.user {
        a.push("-l".into());
        a.push(u.clone());
    }
    if let Some(j) = &opts.jump {
        a.push("-J".into());
        a.push(j.clone());
    }
    a.push("--".into());
    a.push(target.address.to_string());
    a
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
    command: &[String],
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
    let child = Command::new(&opts.ssh)
        .args(ssh_args(target, opts, false))
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            result.stderr = format!("cannot run {}: {e}\n", opts.ssh.display());
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
        .map(|(i, t)| async move { (i, run_one(t, &command_for(t), opts, on_line).await) })
        .buffer_unordered(opts.fanout.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
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

    #[test]
    fn hostile_names_never_reach_ssh_options() {
        let t = Target {
            host: "-oProxyCommand=touch /tmp/pwned".into(),
            address: "10.0.0.5".parse().unwrap(),
        };
        let args = ssh_args(&t, &Options::default(), false);
        assert_eq!(
            args[args.len() - 2..],
            ["--".to_owned(), "10.0.0.5".to_owned()]
        );
        assert!(!args.iter().any(|a| a.contains("ProxyCommand")));
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
