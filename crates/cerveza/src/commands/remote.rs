//! `cerveza remote SELECTION -- COMMAND` and `cerveza ssh HOST`.
//!
//! How hosts are reached comes from the `[export]` settings that ssh-config also uses
//! (address kind, user, jump host), so `cerveza ssh` and `ssh -F <(cerveza export
//! ssh-config)` agree. `CERVEZA_SSH_CONFIG` passes an ssh config file (`-F`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use cerveza_core::model::{Instance, InstanceState};
use cerveza_core::selection::{fold_hostnames, Candidate, Selection};
use cerveza_core::{Hostname, Region};
use cerveza_export::AddressKind;
use cerveza_remote::{hostkeys, HostResult, Options, Reuse, Status, Stream, Target};

use super::Ctx;
use crate::cli::{FanoutArgs, Output};
use crate::exit;
use crate::output::{self, clean};

/// Options of `remote`.
pub struct RemoteArgs {
    /// Gather identical outputs.
    pub gather: bool,
    /// Addresses, fan-out, limit, reuse.
    pub fan: FanoutArgs,
}

pub(crate) fn ssh_options(ctx: &Ctx) -> Options {
    Options {
        config: std::env::var_os("CERVEZA_SSH_CONFIG").map(Into::into),
        user: ctx.config.export.ssh_user.clone(),
        jump: ctx.config.export.jump_host.clone(),
        reuse: ctx.config.remote.persist.and_then(|persist| {
            Some(Reuse {
                dir: control_dir()?,
                persist,
            })
        }),
        known_hosts: ctx.config.remote.known_hosts.clone(),
        ..Options::default()
    }
}

/// The ssh options of a fan-out run: `-f` (default 64), `--timeout`, `--no-reuse`.
pub(crate) fn run_options(ctx: &Ctx, fan: &FanoutArgs) -> Options {
    let mut opts = ssh_options(ctx);
    opts.fanout = fan.fanout.unwrap_or(64);
    opts.command_timeout = fan.timeout;
    if fan.no_reuse {
        opts.reuse = None;
    }
    opts
}

/// The private directory of cerveza's control sockets: `$XDG_RUNTIME_DIR/cerveza/ssh`,
/// or `/tmp/cerveza-<uid>/ssh`. Made 0700; one that is not ours or that others may
/// enter is refused (a socket there would let them use our connections), and the run
/// goes on without reuse.
pub(crate) fn control_dir() -> Option<PathBuf> {
    let dir = control_dir_path();
    match private_dir(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            eprintln!(
                "{} not reusing ssh connections: {}: {e}",
                crate::colour::warning_label(),
                dir.display()
            );
            None
        }
    }
}

fn control_dir_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("cerveza/ssh"),
        None => {
            let uid = std::fs::metadata("/proc/self").map_or(0, |m| {
                use std::os::unix::fs::MetadataExt as _;
                m.uid()
            });
            std::env::temp_dir().join(format!("cerveza-{uid}/ssh"))
        }
    }
}

/// Makes `dir` and its parent 0700 if missing, and checks both are ours and private.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let me = std::fs::metadata("/proc/self")?.uid();
    for d in [dir.parent().unwrap_or(dir), dir] {
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let m = std::fs::symlink_metadata(d)?;
        if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
            return Err(std::io::Error::other(
                "not a directory of yours that only you may enter (mode 0700)",
            ));
        }
    }
    Ok(())
}

fn address(i: &Instance, public: bool, default: AddressKind) -> Option<IpAddr> {
    let a = if public || default == AddressKind::Public {
        &i.public_ip
    } else {
        &i.private_ip
    };
    a.as_deref().and_then(|a| a.parse().ok())
}

/// `CERVEZA_TEST_ADDRESSES` (builds with the `test-hooks` feature only): the lab's sshd
/// addresses, handed out in turn, since the emulated cloud's addresses lead nowhere.
#[cfg(feature = "test-hooks")]
fn test_addresses() -> Vec<IpAddr> {
    std::env::var("CERVEZA_TEST_ADDRESSES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// A release build reaches hosts at their own addresses, whatever the environment says.
#[cfg(not(feature = "test-hooks"))]
fn test_addresses() -> Vec<IpAddr> {
    Vec::new()
}

/// Where each instance is reached: its address, its host key alias
/// (`<host>.<product>.private`, so a new address is no new key), its instance (a master
/// connection is never shared across instances) and its region's jump host.
pub(crate) fn targets(ctx: &Ctx, instances: &[&Instance], public: bool) -> Vec<Target> {
    let overrides = test_addresses();
    let product = ctx.config.product.as_ref();
    instances
        .iter()
        .enumerate()
        .filter_map(|(n, i)| {
            let host = i.host()?.to_owned();
            let address = match overrides.len() {
                0 => address(i, public, ctx.config.export.address)?,
                k => overrides[n % k],
            };
            // The alias names the host's keys in known_hosts and goes to ssh: only a
            // valid hostname (or else the instance id) may, never a raw tag.
            let alias = match Hostname::parse(&host) {
                Ok(h) => product.map(|p| format!("{h}.{p}.private")),
                Err(_) => Some(i.id.to_string()),
            }
            .filter(|a| hostkeys::safe_word(a));
            Some(Target {
                alias,
                instance: Some(i.id.to_string()),
                jump: ctx.config.jump_hosts.get(&i.region).cloned(),
                host,
                address,
            })
        })
        .collect()
}

/// The targets of `chosen`, ready to connect: hosts without an address of that kind
/// are left out with a warning, and host keys are made sure of (see
/// [`super::hostkeys::ensure`]); hosts whose keys cannot be had come back as results.
pub(crate) async fn reach(
    ctx: &Ctx,
    backends: &super::Backends,
    chosen: &[&Instance],
    public: bool,
    limit: Option<std::time::Duration>,
) -> (Vec<Target>, Vec<HostResult>) {
    let targets = targets(ctx, chosen, public);
    if targets.len() < chosen.len() {
        eprintln!(
            "warning: {} host(s) have no {} address and are left out",
            chosen.len() - targets.len(),
            if public { "public" } else { "private" }
        );
    }
    super::hostkeys::ensure(ctx, backends, targets, chosen, limit).await
}

/// Runs `remote`.
pub async fn run(
    ctx: &Ctx,
    selection: &[String],
    command: &[String],
    args: &RemoteArgs,
) -> Result<u8> {
    let sel = Selection::parse_all(selection)?;
    let backends = ctx.backends().await;
    let fleet = running_hosts(ctx, &backends, &sel).await?;
    let chosen: Vec<&Instance> = fleet.instances.iter().collect();
    let (targets, mut failed) =
        reach(ctx, &backends, &chosen, args.fan.public, args.fan.timeout).await;
    let opts = run_options(ctx, &args.fan);
    let live = !args.gather && ctx.output == Output::Table;
    let width = targets.iter().map(|t| t.host.len()).max().unwrap_or(0);
    let on_line = |host: &str, stream: Stream, line: &str| {
        if !live {
            return;
        }
        let text = format!("{host:<width$}: {}\n", clean(line));
        match stream {
            Stream::Out => output::emit(&text),
            Stream::Err => eprint!("{text}"),
        }
    };
    for f in &failed {
        on_line(&f.host, Stream::Err, f.stderr.trim_end());
    }
    let mut results = cerveza_remote::run(&targets, command, &opts, &on_line).await;
    results.append(&mut failed);
    results.sort_by(|a, b| a.host.cmp(&b.host));
    if ctx.output == Output::Json {
        output::print_json(&results)?;
    } else if args.gather {
        print_gathered(&results);
    }
    Ok(finish(&results, &fleet.left_out))
}

/// The running hosts a selection names, and the regions that could not be listed.
pub(crate) struct Chosen {
    /// The running instances selected, from the regions that answered.
    pub instances: Vec<Instance>,
    /// Regions that did not answer: selected hosts there may exist and were left out.
    pub left_out: Vec<Region>,
}

/// The running hosts a selection names, from every region that answers. A region that
/// does not answer is a warning, and the others still get the command; [`finish`] then
/// makes the exit code say the selection was partial.
pub(crate) async fn running_hosts(
    ctx: &Ctx,
    backends: &super::Backends,
    sel: &Selection,
) -> Result<Chosen> {
    let listing = ctx.live_fleet(backends).await?;
    Ok(Chosen {
        instances: running(&listing.instances, sel)?
            .into_iter()
            .cloned()
            .collect(),
        left_out: listing.failed_regions.into_iter().map(|(r, _)| r).collect(),
    })
}

/// The running instances a selection names; plain words that name no host select by
/// substring (and say so). An empty result is an error.
pub(crate) fn running<'i>(instances: &'i [Instance], sel: &Selection) -> Result<Vec<&'i Instance>> {
    select(instances, sel, "running host", |i| {
        i.state == InstanceState::Running
    })
}

/// The instances a selection names among those `keep` keeps (`what` they are, for the
/// error when there is none); plain words that name no host select by substring.
pub(crate) fn select<'i>(
    instances: &'i [Instance],
    sel: &Selection,
    what: &str,
    keep: impl Fn(&Instance) -> bool,
) -> Result<Vec<&'i Instance>> {
    let known: Vec<&str> = instances.iter().filter_map(|i| i.host()).collect();
    let (sel, notes) = sel.with_substrings(&known);
    for n in &notes {
        eprintln!("note: {n}");
    }
    let chosen: Vec<&Instance> = instances
        .iter()
        .filter(|i| keep(i))
        .filter(|i| {
            sel.matches(&Candidate {
                host: i.host().unwrap_or(""),
                zone: i.zone.as_ref().map(|z| z.as_str()),
                region: i.region.as_str(),
                profile: i.profile(),
            })
        })
        .collect();
    if chosen.is_empty() {
        bail!(exit::Coded::new(
            exit::NOT_FOUND,
            format!("selection {sel} matches no {what}")
        ));
    }
    Ok(chosen)
}

/// Prints identical outputs once, under the folded list of their hosts.
pub(crate) fn print_gathered(results: &[HostResult]) {
    let mut groups: BTreeMap<(String, String, String), Vec<&str>> = BTreeMap::new();
    for r in results {
        let status = match r.status {
            Status::Ok => String::new(),
            Status::Failed(c) => format!(" (exit code {c})"),
            Status::Unreachable => " (unreachable)".into(),
            Status::TimedOut => " (timed out)".into(),
        };
        groups
            .entry((r.stdout.clone(), r.stderr.clone(), status))
            .or_default()
            .push(&r.host);
    }
    for ((out, err, status), hosts) in groups {
        let head = format!("{}{status}", fold_hostnames(&hosts));
        let bar = "-".repeat(head.len().min(78));
        output::emit(&format!("{bar}\n{head}\n{bar}\n{}", clean_lines(&out)));
        if !err.is_empty() {
            eprint!("{}", clean_lines(&err));
        }
    }
}

/// Untrusted output, line by line: control characters escaped within each line, the
/// line breaks kept (a literal backslash-n in the output stays two characters).
fn clean_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| match l.strip_suffix('\n') {
            Some(l) => format!("{}\n", clean(l)),
            None => clean(l),
        })
        .collect()
}

/// Prints the summary line and returns the exit code: the worst host's (see
/// [`cerveza_remote::exit_code`]), and at least [`exit::PARTIAL`] when regions were
/// left out, since the hosts selected there never ran the command.
pub(crate) fn finish(results: &[HostResult], left_out: &[Region]) -> u8 {
    let count = |f: fn(&Status) -> bool| results.iter().filter(|r| f(&r.status)).count();
    eprintln!(
        "{} host(s): {} ok, {} failed, {} unreachable, {} timed out",
        results.len(),
        count(|s| *s == Status::Ok),
        count(|s| matches!(s, Status::Failed(_))),
        count(|s| *s == Status::Unreachable),
        count(|s| *s == Status::TimedOut),
    );
    let code = cerveza_remote::exit_code(results);
    if left_out.is_empty() {
        return code;
    }
    let names: Vec<&str> = left_out.iter().map(Region::as_str).collect();
    eprintln!(
        "partial: region(s) {} could not be listed; hosts selected there did not run the command",
        names.join(", ")
    );
    code.max(exit::PARTIAL)
}

/// Runs `ssh HOST [-- COMMAND]` with the terminal attached.
pub async fn ssh(ctx: &Ctx, host: &str, public: bool, command: &[String]) -> Result<u8> {
    let host = Hostname::parse(host)?;
    let backends = ctx.backends().await;
    let view = ctx.view(&backends, &host).await?;
    let inst = view
        .instance
        .filter(|i| i.state == InstanceState::Running)
        .with_context(|| format!("{host} is not running"))?;
    let (targets, failed) = reach(ctx, &backends, &[&inst], public, None).await;
    if let Some(f) = failed.first() {
        bail!(exit::Coded::new(
            exit::UNAVAILABLE,
            format!("{host}: {}", f.stderr.trim_end())
        ));
    }
    let target = targets.into_iter().next().with_context(|| {
        format!(
            "{host} has no {} address",
            if public { "public" } else { "private" }
        )
    })?;
    let opts = ssh_options(ctx);
    let reuse = cerveza_remote::reuses(&target, &opts).await;
    let args = cerveza_remote::ssh_args(&target, &opts, command.is_empty(), reuse);
    let status = std::process::Command::new(&opts.ssh)
        .args(&args)
        .args(command)
        .status()
        .with_context(|| format!("running {}", opts.ssh.display()))?;
    Ok(status
        .code()
        .map(|c| c.clamp(0, 255) as u8)
        .unwrap_or(exit::FAILURE))
}

/// Runs `remote --close`: ends every master connection cerveza keeps.
pub async fn close(ctx: &Ctx) -> Result<u8> {
    let opts = ssh_options(ctx);
    let dir = control_dir_path();
    let n = cerveza_remote::close(&dir, &opts.ssh)
        .await
        .with_context(|| format!("reading {}", dir.display()))?;
    if !ctx.quiet {
        eprintln!("closed {n} master connection(s)");
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "test-hooks"))]
    fn a_default_build_ignores_the_test_address_override() {
        // No other test reads the variable.
        std::env::set_var("CERVEZA_TEST_ADDRESSES", "127.0.0.9");
        assert!(test_addresses().is_empty());
        std::env::remove_var("CERVEZA_TEST_ADDRESSES");
    }

    #[test]
    fn gathered_output_keeps_literal_backslashes_and_escapes_control_characters() {
        assert_eq!(clean_lines("C:\\new\n"), "C:\\new\n");
        assert_eq!(clean_lines("a\nb"), "a\nb");
        assert_eq!(clean_lines("red\x1b[31m\r\n"), "red\\u{1b}[31m\\r\n");
    }
}
