//! Host keys from each instance's console output: made sure of before every connection
//! (`remote`, `ssh`, `copy`, `release deploy`, `doctor`), and `cerveza hostkeys sync`.
//! The judgement (what the console says, what may replace what) is
//! `cerveza_remote::hostkeys`; this module reads the consoles and reports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use cerveza_core::model::{Instance, InstanceState};
use cerveza_core::selection::Selection;
use cerveza_remote::hostkeys::{self, console_keys, KnownHosts, RecordError, Recorded};
use cerveza_remote::{HostResult, Status, Target};
use futures::stream::{self, StreamExt as _};
use serde::Serialize;

use super::{Backends, Ctx};
use crate::cli::Output;
use crate::exit;
use crate::output::{self, Table};

/// An instance this young may not have posted its console output yet: waiting for it is
/// worth it (EC2 posts it a few minutes after boot).
const YOUNG: Duration = Duration::from_secs(15 * 60);

/// How long a connection waits at most for a young host's keys when it has no limit.
const WAIT: Duration = Duration::from_secs(180);

/// Consoles read at once.
const CONSOLES_AT_ONCE: usize = 16;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What reading one console gave.
enum Console {
    /// The keys of its host key block.
    Keys(Vec<String>),
    /// No key block (yet).
    NoKeys,
    /// The call failed.
    Failed(String),
}

/// Reads an instance's console; with `wait`, keeps reading a young instance's until its
/// keys appear or `wait` is over.
async fn read_console(
    ctx: &Ctx,
    backends: &Backends,
    i: &Instance,
    wait: Option<Duration>,
) -> Console {
    let start = Instant::now();
    let young = i
        .launch_time
        .is_some_and(|t| now_secs() - t < YOUNG.as_secs() as i64);
    let mut said = false;
    loop {
        match backends.ec2.console_output(&i.region, &i.id).await {
            Ok(text) => {
                let keys = console_keys(text.as_deref().unwrap_or(""));
                if !keys.is_empty() {
                    return Console::Keys(keys);
                }
            }
            Err(e) => {
                return Console::Failed(format!(
                    "reading its console output: {e} (this needs ec2:GetConsoleOutput; [remote] host-keys = \"ssh\" leaves host keys to your ssh config)"
                ))
            }
        }
        let Some(wait) = wait.filter(|w| young && start.elapsed() + Duration::from_secs(2) < *w)
        else {
            return Console::NoKeys;
        };
        // Said once it is more than a moment: EC2 takes minutes, the lab seconds.
        if !said && !ctx.quiet && start.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "{}: waiting for its host keys in its console output (cloud-init prints them at first boot; up to {})",
                i.host().unwrap_or("?"),
                humantime::format_duration(wait)
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A host that cannot be connected to, as a result of the run.
fn refused(t: &Target, why: String) -> HostResult {
    HostResult {
        host: t.host.clone(),
        address: t.address,
        status: Status::Unreachable,
        stdout: String::new(),
        stderr: format!("{why}\n"),
    }
}

/// Makes sure cerveza's known_hosts has the keys of each target's current instance,
/// reading the consoles of those it lacks (a new host, a relaunched one). Returns the
/// targets to connect to and, as unreachable results, those whose keys could not be
/// had: no key block in the console yet, or keys that differ from the ones recorded for
/// the same instance. With host keys left to ssh (`[remote] host-keys = "ssh"`), every
/// target goes on as it is.
pub(crate) async fn ensure(
    ctx: &Ctx,
    backends: &Backends,
    targets: Vec<Target>,
    instances: &[&Instance],
    limit: Option<Duration>,
) -> (Vec<Target>, Vec<HostResult>) {
    let Some(path) = ctx.config.remote.known_hosts.clone() else {
        return (targets, Vec::new());
    };
    let known = match KnownHosts::load(&path) {
        Ok(k) => k,
        Err(e) => {
            let why = format!("cannot read the host keys in {}: {e}", path.display());
            let failed = targets.iter().map(|t| refused(t, why.clone())).collect();
            return (Vec::new(), failed);
        }
    };
    let by_id: BTreeMap<String, &Instance> =
        instances.iter().map(|i| (i.id.to_string(), *i)).collect();
    let missing: Vec<(&Target, &Instance)> = targets
        .iter()
        .filter_map(|t| {
            let (alias, id) = (t.alias.as_deref()?, t.instance.as_deref()?);
            (known.instance_of(alias) != Some(id)).then(|| Some((t, *by_id.get(id)?)))?
        })
        .collect();
    if missing.is_empty() {
        return (targets, Vec::new());
    }
    let wait = Some(limit.unwrap_or(WAIT));
    let read: Vec<(&Target, &Instance, Console)> = stream::iter(missing)
        .map(|(t, i)| async move { (t, i, read_console(ctx, backends, i, wait).await) })
        .buffer_unordered(CONSOLES_AT_ONCE)
        .collect()
        .await;
    let mut refusals: BTreeMap<String, String> = BTreeMap::new();
    let recorded = hostkeys::update(&path, |known| {
        let mut changed = false;
        for (t, i, console) in &read {
            let alias = t.alias.as_deref().unwrap_or(&t.host);
            match console {
                Console::Keys(keys) => match known.record(alias, i.id.as_str(), keys) {
                    Ok(Recorded::Unchanged) => {}
                    Ok(Recorded::Added) => changed = true,
                    Ok(Recorded::Replaced { old_instance }) => {
                        changed = true;
                        if !ctx.quiet {
                            eprintln!(
                                "{}: new instance {}: its host keys replace those of {old_instance}",
                                t.host, i.id
                            );
                        }
                    }
                    Err(e) => {
                        refusals.insert(t.host.clone(), e.to_string());
                    }
                },
                Console::NoKeys => {
                    refusals.insert(t.host.clone(), format!(
                        "no host keys for {} ({}) yet: its console output has none. cloud-init prints them at first boot and EC2 posts the console a few minutes later; try again then (or `cerveza hostkeys sync {}`)",
                        t.host, i.id, t.host
                    ));
                }
                Console::Failed(e) => {
                    refusals.insert(t.host.clone(), format!("no host keys for {}: {e}", t.host));
                }
            }
        }
        Ok::<_, std::io::Error>(((), changed))
    });
    if let Err(e) = recorded {
        let why = format!("cannot record host keys in {}: {e}", path.display());
        for (t, _, _) in &read {
            refusals
                .entry(t.host.clone())
                .or_insert_with(|| why.clone());
        }
    }
    let (ok, bad): (Vec<Target>, Vec<Target>) = targets
        .into_iter()
        .partition(|t| !refusals.contains_key(&t.host));
    let failed = bad
        .iter()
        .map(|t| refused(t, refusals.remove(&t.host).unwrap_or_default()))
        .collect();
    (ok, failed)
}

/// One row of `hostkeys sync`.
#[derive(Debug, Serialize)]
struct Row {
    host: String,
    instance: String,
    keys: usize,
    change: String,
}

/// Runs `hostkeys sync [SELECTION]`.
pub async fn sync(ctx: &Ctx, selection: &[String], no_wait: bool) -> Result<u8> {
    let path = ctx.config.remote.known_hosts.clone().ok_or_else(|| {
        exit::Coded::new(
            exit::USAGE,
            "host keys are left to your ssh config ([remote] host-keys = \"ssh\"): there is nothing for cerveza to sync",
        )
    })?;
    let sel = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let listing = ctx.live_fleet(&backends).await?;
    let chosen = super::remote::select(&listing.instances, &sel, "host", |i| {
        !matches!(
            i.state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    })?;
    let read: Vec<(&Instance, Console)> = stream::iter(chosen)
        .map(|i| {
            let backends = &backends;
            let wait = (!no_wait).then_some(WAIT);
            async move { (i, read_console(ctx, backends, i, wait).await) }
        })
        .buffer_unordered(CONSOLES_AT_ONCE)
        .collect()
        .await;
    let mut rows = Vec::new();
    let (mut differ, mut missing) = (0, 0);
    hostkeys::update(&path, |known| {
        let mut changed = false;
        for (i, console) in &read {
            let host = i.host().unwrap_or("?").to_owned();
            let Ok(name) = cerveza_core::Hostname::parse(&host) else {
                rows.push(Row {
                    host: host.clone(),
                    instance: i.id.to_string(),
                    keys: 0,
                    change: "skipped: its hostname tag is not a valid hostname".into(),
                });
                missing += 1;
                continue;
            };
            let alias = format!("{name}.{product}.private");
            let (keys, change) = match console {
                Console::Keys(keys) => (
                    keys.len(),
                    match known.record(&alias, i.id.as_str(), keys) {
                        Ok(Recorded::Unchanged) => "unchanged".to_owned(),
                        Ok(Recorded::Added) => {
                            changed = true;
                            "added".to_owned()
                        }
                        Ok(Recorded::Replaced { old_instance }) => {
                            changed = true;
                            format!("replaced the keys of {old_instance}")
                        }
                        Err(RecordError::Differs { .. }) => {
                            differ += 1;
                            "REFUSED: differ from the keys recorded for this instance".to_owned()
                        }
                        Err(e @ RecordError::Unsafe(_)) => {
                            missing += 1;
                            format!("skipped: {e}")
                        }
                    },
                ),
                Console::NoKeys => {
                    missing += 1;
                    (0, "none in its console output yet".to_owned())
                }
                Console::Failed(e) => {
                    missing += 1;
                    (0, e.clone())
                }
            };
            rows.push(Row {
                host,
                instance: i.id.to_string(),
                keys,
                change,
            });
        }
        Ok::<_, std::io::Error>(((), changed))
    })
    .with_context(|| format!("recording host keys in {}", path.display()))?;
    rows.sort_by(|a, b| a.host.cmp(&b.host));
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&["HOST", "INSTANCE", "KEYS", "CHANGE"]);
        for r in &rows {
            t.row(vec![
                r.host.clone(),
                r.instance.clone(),
                r.keys.to_string(),
                output::clean(&r.change),
            ]);
        }
        output::emit(&t.render());
    }
    if differ > 0 {
        eprintln!(
            "{} {differ} host(s) show other keys than the ones recorded for the same instance in {}: someone may be impersonating them; if their keys were regenerated on purpose, delete their lines there and sync again",
            crate::colour::error_label(),
            output::tilde(&path)
        );
        return Ok(exit::FAILURE);
    }
    if !ctx.quiet {
        eprintln!("{} host(s); keys in {}", rows.len(), output::tilde(&path));
    }
    Ok(if missing > 0 || !listing.failed_regions.is_empty() {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
