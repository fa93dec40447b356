//! `cerveza volumes list`: the fleet's EBS volumes, orphans included.

use std::collections::BTreeSet;

use anyhow::Result;
use cerveza_core::fleet;
use cerveza_core::model::Volume;
use cerveza_core::ports::ComputeRead;
use cerveza_core::selection::{Candidate, Selection};
use cerveza_core::tags;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::Ctx;
use crate::cli::{Output, VolumesCommand};
use crate::exit;
use crate::output::{self, or_dash, Table};

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    volume: &'a Volume,
    /// The host has no live instance in the volume's zone.
    orphan: bool,
}

/// Runs `volumes …`.
pub async fn run(ctx: &Ctx, command: &VolumesCommand) -> Result<u8> {
    let VolumesCommand::List { selection } = command;
    let selection = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let ec2 = &backends.ec2;
    let listing = fleet::list(
        ec2,
        product,
        &ctx.config.regions,
        &Selection::all(),
        false,
        ctx.config.region_timeout,
    )
    .await;
    // A volume attaches only within its zone: a host live in another zone (or region)
    // does not make a volume there anything but an orphan.
    let live: BTreeSet<(&str, Option<&str>)> = listing
        .instances
        .iter()
        .filter_map(|i| Some((i.host()?, i.zone.as_ref().map(|z| z.as_str()))))
        .collect();
    let per_region: Vec<_> = stream::iter(ctx.config.regions.iter())
        .map(|r| async move {
            (
                r,
                tokio::time::timeout(ctx.config.region_timeout, ec2.volumes(r, product, &[])).await,
            )
        })
        .buffer_unordered(ctx.config.regions.len().clamp(1, 32))
        .collect()
        .await;
    let mut volumes = Vec::new();
    let mut failed = listing.failed_regions.len();
    for (region, r) in per_region {
        match r {
            Ok(Ok(v)) => volumes.extend(v),
            Ok(Err(e)) => {
                failed += 1;
                eprintln!(
                    "{} region {region} left out: {e}",
                    crate::colour::warning_label()
                );
            }
            Err(_) => {
                failed += 1;
                eprintln!(
                    "{} region {region} left out: no answer in time",
                    crate::colour::warning_label()
                );
            }
        }
    }
    volumes.retain(|v| {
        selection.matches(&Candidate {
            host: v.host().unwrap_or(""),
            zone: v.zone.as_ref().map(|z| z.as_str()),
            region: v.region.as_str(),
            profile: None,
        })
    });
    // Every column a reader compares comes before the id, so two listings of one
    // fleet print in one order even where the ids differ (the README check masks them).
    volumes.sort_by(|a, b| {
        (a.host(), a.device(), &a.zone, &a.id).cmp(&(b.host(), b.device(), &b.zone, &b.id))
    });
    let rows: Vec<Row<'_>> = volumes
        .iter()
        .map(|v| Row {
            volume: v,
            orphan: !v
                .host()
                .is_some_and(|h| live.contains(&(h, v.zone.as_ref().map(|z| z.as_str())))),
        })
        .collect();
    if ctx.output == Output::Json {
        output::print_json(&rows)?;
    } else {
        let mut t = Table::new(&[
            "HOST",
            "DEVICE",
            "VOLUME",
            "ZONE",
            "SIZE",
            "TYPE",
            "STATE",
            "ATTACHED-TO",
            "PROFILE",
            "ORPHAN",
        ]);
        for r in &rows {
            let v = r.volume;
            t.row(vec![
                or_dash(v.host()),
                or_dash(v.device()),
                v.id.to_string(),
                or_dash(v.zone.as_ref().map(|z| z.as_str())),
                format!("{}G", v.size_gb),
                or_dash(v.volume_type.as_deref()),
                v.state.to_string(),
                or_dash(v.attached_to.as_ref().map(|i| i.as_str())),
                or_dash(v.tags.get(tags::VOLUME_PROFILE).map(String::as_str)),
                if r.orphan { "yes".into() } else { "-".into() },
            ]);
        }
        output::emit(&t.render());
    }
    Ok(if failed == 0 { exit::OK } else { exit::PARTIAL })
}
