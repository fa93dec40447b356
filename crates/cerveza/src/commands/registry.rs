//! `cerveza registry sync`: the registry brought in line with the instances' tags.

use anyhow::Result;
use cerveza_core::lifecycle::{Lifecycle, SyncChange};

use super::Ctx;
use crate::cli::{Output, RegistryCommand, WaitArgs};
use crate::exit;
use crate::output::{self, Table};
use crate::progress;

/// Runs `registry …`.
pub async fn run(ctx: &Ctx, command: &RegistryCommand) -> Result<u8> {
    let RegistryCommand::Sync = command;
    let settings = ctx.settings(&WaitArgs::default())?;
    let backends = ctx.backends().await;
    let progress = progress::reporter(ctx.quiet);
    let lc = Lifecycle::new(
        &backends.ec2,
        &backends.registry,
        &settings,
        progress.as_ref(),
    );
    let rows = lc.sync_registry().await?;
    drop(progress);
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&["HOST", "REGION", "CHANGE"]);
        for r in &rows {
            let change = match &r.change {
                SyncChange::Unchanged => "unchanged".to_owned(),
                SyncChange::Updated { from, to } => format!("updated: {from} -> {to}"),
                SyncChange::Created => "created from its tags".to_owned(),
                SyncChange::Skipped { reason } => format!("skipped: {reason}"),
            };
            t.row(vec![r.host.to_string(), r.region.to_string(), change]);
        }
        output::emit(&t.render());
    }
    let changed = rows
        .iter()
        .filter(|r| matches!(r.change, SyncChange::Updated { .. } | SyncChange::Created))
        .count();
    let skipped = rows
        .iter()
        .filter(|r| matches!(r.change, SyncChange::Skipped { .. }))
        .count();
    if !ctx.quiet {
        eprintln!(
            "{} record(s): {changed} brought up to date, {skipped} skipped",
            rows.len()
        );
    }
    Ok(if skipped > 0 { exit::PARTIAL } else { exit::OK })
}
