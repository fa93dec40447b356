//! `backup list` (the sets, their state, size and age) and `backup prune` (never a
//! host's newest complete set).

use std::time::Duration;

use anyhow::Result;
use cerveza_core::backup::{self, BackupSet, SetState};
use cerveza_core::ports::{Compute as _, ComputeRead as _};
use cerveza_core::selection::{Candidate, Selection};
use cerveza_core::tags;
use serde::Serialize;

use crate::cli::Output;
use crate::commands::{Backends, Ctx};
use crate::exit;
use crate::output::{self, Table};

/// One row of `backup list`.
#[derive(Debug, Serialize)]
struct ListRow<'a> {
    host: &'a str,
    set: &'a str,
    region: &'a str,
    members: usize,
    expected: usize,
    state: SetState,
    size_gb: i64,
    started: Option<i64>,
    snapshots: Vec<&'a str>,
}

/// The product's snapshot sets of the hosts `selection` names, in every configured
/// region, and the regions that could not be read.
pub(in crate::commands) async fn read_sets(
    ctx: &Ctx,
    backends: &Backends,
    selection: &[String],
) -> Result<(Vec<BackupSet>, Vec<String>)> {
    let sel = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    // Each region bounded by the region timeout: one that does not answer is left
    // out (and named), not waited on for the SDK's minute.
    let limit = ctx.config.region_timeout;
    let reads = futures::future::join_all(ctx.config.regions.iter().map(|r| async move {
        let read = tokio::time::timeout(limit, backends.ec2.snapshots(r, product)).await;
        (
            r,
            read.map_err(|_| format!("no answer within {}s (region-timeout)", limit.as_secs_f64())),
        )
    }))
    .await;
    let mut snapshots = Vec::new();
    let mut failed = Vec::new();
    for (region, read) in reads {
        match read.and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(s) => snapshots.extend(s),
            Err(e) => {
                eprintln!("{} {region}: {e}", crate::colour::warning_label());
                failed.push(region.to_string());
            }
        }
    }
    let sets = backup::sets(snapshots)
        .into_iter()
        .filter(|s| {
            sel.is_all()
                || sel.matches(&Candidate {
                    host: &s.host,
                    zone: None,
                    region: s.region.as_str(),
                    profile: s
                        .members
                        .first()
                        .and_then(|m| m.tags.get(tags::PROFILE))
                        .map(String::as_str),
                })
        })
        .collect();
    Ok((sets, failed))
}

/// Runs `backup list [SELECTION]`.
pub async fn list(ctx: &Ctx, selection: &[String]) -> Result<u8> {
    let backends = ctx.backends().await;
    let (sets, failed) = read_sets(ctx, &backends, selection).await?;
    let rows: Vec<ListRow<'_>> = sets
        .iter()
        .map(|s| ListRow {
            host: &s.host,
            set: &s.id,
            region: s.region.as_str(),
            members: s.members.len(),
            expected: s.expected,
            state: s.state(),
            size_gb: s.size_gb(),
            started: s.started(),
            snapshots: s.members.iter().map(|m| m.id.as_str()).collect(),
        })
        .collect();
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let now = cerveza_core::lifecycle::now();
        let mut t = Table::new(&["HOST", "SET", "REGION", "MEMBERS", "STATE", "SIZE", "AGE"]);
        for r in &rows {
            t.row(vec![
                r.host.to_owned(),
                r.set.to_owned(),
                r.region.to_owned(),
                format!("{}/{}", r.members, r.expected),
                state_name(r.state).to_owned(),
                format!("{} GiB", r.size_gb),
                r.started
                    .map_or_else(|| "-".into(), |t| output::age(now - t)),
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// One row of `backup prune`.
#[derive(Debug, Serialize)]
struct PruneRow<'a> {
    host: &'a str,
    set: &'a str,
    region: &'a str,
    state: SetState,
    action: backup::Prune,
}

/// Runs `backup prune [SELECTION] (--keep N | --older-than D) [--dry-run]`.
pub async fn prune(
    ctx: &Ctx,
    selection: &[String],
    keep: Option<usize>,
    older_than: Option<Duration>,
    dry_run: bool,
) -> Result<u8> {
    let backends = ctx.backends().await;
    let (sets, failed) = read_sets(ctx, &backends, selection).await?;
    if !failed.is_empty() {
        // A host's newest complete set may be in a region that did not answer.
        anyhow::bail!(exit::Coded::new(
            exit::PARTIAL,
            format!(
                "not pruning while {} cannot be read: a host's newest complete set may be there",
                failed.join(", ")
            )
        ));
    }
    let now = cerveza_core::lifecycle::now();
    let older = older_than.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let actions = backup::prune(&sets, keep, older, now);
    let mut errors = 0;
    for (set, action) in sets.iter().zip(&actions) {
        if *action != backup::Prune::Delete || dry_run {
            continue;
        }
        if !ctx.quiet {
            eprintln!(
                "{}: deleting set {} ({} snapshot(s))",
                set.host,
                set.id,
                set.snapshots().count()
            );
        }
        for m in set.snapshots() {
            if let Err(e) = backends.ec2.delete_snapshot(&set.region, &m.id).await {
                errors += 1;
                eprintln!(
                    "{} {}: deleting {} of set {}: {e}",
                    crate::colour::error_label(),
                    set.host,
                    m.id,
                    set.id
                );
            }
        }
    }
    let rows: Vec<PruneRow<'_>> = sets
        .iter()
        .zip(&actions)
        .map(|(s, a)| PruneRow {
            host: &s.host,
            set: &s.id,
            region: s.region.as_str(),
            state: s.state(),
            action: *a,
        })
        .collect();
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&["HOST", "SET", "REGION", "STATE", "ACTION"]);
        for r in &rows {
            let action = match (r.action, dry_run) {
                (backup::Prune::Delete, true) => "would delete",
                (backup::Prune::Delete, false) => "deleted",
                (backup::Prune::Keep, _) => "kept",
                (backup::Prune::KeepLastComplete, _) => "kept: its newest complete set",
                (backup::Prune::KeepPending, _) => "kept: still being taken",
            };
            t.row(vec![
                r.host.to_owned(),
                r.set.to_owned(),
                r.region.to_owned(),
                state_name(r.state).to_owned(),
                action.to_owned(),
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if errors == 0 { exit::OK } else { exit::PARTIAL })
}

fn state_name(s: SetState) -> &'static str {
    match s {
        SetState::Complete => "complete",
        SetState::Pending => "pending",
        SetState::Incomplete => "incomplete",
    }
}
