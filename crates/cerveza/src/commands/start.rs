//! `cerveza start`: launch, start or relaunch hosts by name.

use anyhow::Result;
use cerveza_core::lifecycle::Lifecycle;
use cerveza_core::selection::expand_hostnames;
use cerveza_core::{ProfileName, Zone};
use cerveza_userdata::CloudInit;

use super::{report, report_plan_errors, Ctx};
use crate::cli::WaitArgs;
use crate::progress;

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
    let backends = ctx.backends().await;
    let progress = progress::reporter(ctx.quiet);
    let cloud_init = CloudInit::new(ctx.config.userdata.clone())?;
    let dns = ctx.dns(&backends).await;
    let mut lc = Lifecycle::new(
        &backends.ec2,
        &backends.registry,
        &settings,
        progress.as_ref(),
    )
    .with_user_data(&cloud_init);
    if let Some(d) = &dns {
        lc = lc.with_dns(d.as_ref());
    }
    let results = lc.start(&profiles, hosts, zone, profile).await;
    drop(progress);
    match results {
        Ok(results) => report(ctx, &results),
        Err(errors) => Ok(report_plan_errors(&errors)),
    }
}
