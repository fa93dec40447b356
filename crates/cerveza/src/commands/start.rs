//! `cerveza start`: launch, start or relaunch hosts by name.

use anyhow::Result;
use cerveza_core::selection::expand_hostnames;
use cerveza_core::{ProfileName, Zone};

use super::{report, report_plan_errors, Ctx};
use crate::cli::WaitArgs;

/// Runs `start`.
pub async fn run(
    ctx: &Ctx,
    hosts: &[String],
    zone: Option<&Zone>,
    profile: Option<&ProfileName>,
    wait: &WaitArgs,
) -> Result<u8> {
    let hosts = expand_hostnames(hosts)?;
    let settings = ctx.settings(wait)?;
    let profiles = ctx.profiles()?;
    let wiring = ctx.wiring(ctx.backends().await, settings, true).await?;
    let results = wiring
        .lifecycle()
        .start(&profiles, hosts, zone, profile)
        .await;
    wiring.done().await;
    match results {
        Ok(results) => report(ctx, &results),
        Err(errors) => Ok(report_plan_errors(&errors)),
    }
}
