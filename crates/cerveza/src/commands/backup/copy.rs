//! `backup --copy-to REGION`: a set's members copied to another region, tagged as they
//! are there (EC2 copies no user tags), within EBS's limits on copies in progress.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use cerveza_core::backup::{self, BackupSet, Snapshot, SnapshotState};
use cerveza_core::ports::{Compute as _, ComputeRead as _, ProviderErrorKind};
use cerveza_core::{Product, Region};

use super::{state_of, Row};
use crate::commands::{Backends, Backoff, Ctx};

/// Copies each completed set of `rows` to each region of `to` but its own (one
/// CopySnapshot per member, tagged as the member is, with where it came from), within
/// EC2's limits: a destination with too many copies in progress is asked again after a
/// pause (until the wait timeout), not failed. Members copied there already (a rerun,
/// another operator) are not copied again. One row per copy, its copies pending.
pub(in crate::commands) async fn copy_sets(
    ctx: &Ctx,
    backends: &Backends,
    rows: &[Row],
    to: &[Region],
) -> Result<Vec<Result<Row, (String, String)>>> {
    let product = ctx.config.product()?;
    let wanted: Vec<&Row> = rows
        .iter()
        .filter(|r| r.set.is_some() && r.state == "completed")
        .collect();
    // The sets, read back with their members' tags, once per source region.
    let mut sets: Vec<BackupSet> = Vec::new();
    let sources: std::collections::BTreeSet<&str> =
        wanted.iter().map(|r| r.region.as_str()).collect();
    for region in sources {
        let region = Region::parse(region)?;
        sets.extend(backup::sets(
            backends.ec2.snapshots(&region, product).await?,
        ));
    }
    let jobs = to.iter().map(|dest| {
        let (sets, wanted) = (&sets, &wanted);
        async move {
            let mut out = Vec::new();
            // What is there already: copies are found by the snapshot they copy.
            let there: Vec<Snapshot> = match backends.ec2.snapshots(dest, product).await {
                Ok(s) => s
                    .into_iter()
                    .filter(|s| s.state != SnapshotState::Error)
                    .filter(|s| s.tags.contains_key(backup::COPIED_FROM))
                    .collect(),
                Err(e) => {
                    for r in wanted.iter() {
                        out.push(Err((
                            r.host.clone(),
                            format!("copying to {dest}: {dest} cannot be read: {e}"),
                        )));
                    }
                    return out;
                }
            };
            for r in wanted.iter().filter(|r| r.region != dest.as_str()) {
                let Some(set) = sets
                    .iter()
                    .find(|s| Some(&s.id) == r.set.as_ref() && s.region.as_str() == r.region)
                else {
                    out.push(Err((
                        r.host.clone(),
                        format!(
                            "copying to {dest}: set {} is not listed in {} any more",
                            r.set.as_deref().unwrap_or("?"),
                            r.region
                        ),
                    )));
                    continue;
                };
                out.push(copy_one(ctx, backends, set, dest, &there).await);
            }
            out
        }
    });
    Ok(futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// Copies one set's members to `dest` (those not in `there`, the copies in `dest`
/// before this command, yet).
async fn copy_one(
    ctx: &Ctx,
    backends: &Backends,
    set: &BackupSet,
    dest: &Region,
    there: &[Snapshot],
) -> Result<Row, (String, String)> {
    let fail = |why: String| {
        (
            set.host.clone(),
            format!("copying set {} to {dest}: {why}", set.id),
        )
    };
    if !ctx.quiet {
        eprintln!(
            "{}: copying set {} ({} snapshot(s), {} GiB) from {} to {dest}",
            set.host,
            set.id,
            set.members.len(),
            set.size_gb(),
            set.region
        );
    }
    let product = ctx.config.product().map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + ctx.config.wait_timeout;
    let mut copies = Vec::new();
    for m in &set.members {
        let tags = set.copy_tags(m);
        if there
            .iter()
            .any(|c| c.tags.get(backup::COPIED_FROM) == tags.get(backup::COPIED_FROM))
        {
            continue;
        }
        let mut backoff = Backoff::new(ctx.config.poll_interval);
        let copy = loop {
            let e = match backends.ec2.copy_snapshot(dest, m, &tags).await {
                Ok(c) => break c,
                // At most so many copies in progress per destination region (20, by
                // default): the next one goes when an earlier one is done.
                Err(e)
                    if (e.has_code("ResourceLimitExceeded") || e.kind.is_transient())
                        && Instant::now() + backoff.next() < deadline =>
                {
                    e
                }
                Err(e) => return Err(fail(format!("{}: {e}", m.id))),
            };
            tracing::debug!(error = %e, "{dest}: copying {} again after a pause", m.id);
            backoff.pause().await;
            // CopySnapshot has no idempotency token: after an answer that may have been
            // lost, the copy is looked for first (a second one would only be a
            // duplicate, deleted with the set, but it would take the time and space of
            // a whole copy).
            if e.kind == ProviderErrorKind::Unavailable {
                if let Some(c) = copied(backends, (dest, product), &tags).await {
                    break c;
                }
            }
        };
        copies.push(copy);
    }
    // Copied before (all of it, or some): this row waits for the whole set there.
    let mine = there
        .iter()
        .filter(|c| c.tags.get(backup::SET) == Some(&set.id))
        .cloned();
    let listed = backup::sets(mine.chain(copies).collect())
        .into_iter()
        .find(|s| s.id == set.id && &s.region == dest);
    let members = listed.map(|s| s.members).unwrap_or_default();
    Ok(Row {
        host: set.host.clone(),
        set: Some(set.id.clone()),
        region: dest.to_string(),
        size_gb: set.size_gb(),
        state: if members.len() == set.members.len() {
            state_of(&members)
        } else {
            "incomplete".into()
        },
        snapshots: members.into_iter().map(|s| s.id).collect(),
        frozen: Vec::new(),
        copied_from: Some(set.region.to_string()),
    })
}

/// The copy carrying `tags`'s [`backup::COPIED_FROM`] in `dest`, if it is listed there.
async fn copied(
    backends: &Backends,
    (dest, product): (&Region, &Product),
    tags: &BTreeMap<String, String>,
) -> Option<Snapshot> {
    let listed = backends.ec2.snapshots(dest, product).await.ok()?;
    listed.into_iter().find(|c| {
        c.state != SnapshotState::Error
            && c.tags.get(backup::COPIED_FROM) == tags.get(backup::COPIED_FROM)
    })
}
