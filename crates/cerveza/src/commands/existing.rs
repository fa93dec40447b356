//! Acting on existing hosts: `cerveza stop | restart | reboot | terminate` and
//! `cerveza eip attach | detach`.

use anyhow::Result;

use super::{report, Ctx};
use crate::cli::WaitArgs;

/// Which action on existing hosts.
#[derive(Debug, Clone, Copy)]
pub enum Verb {
    /// Stop.
    Stop,
    /// Stop then start.
    Restart,
    /// Reboot.
    Reboot,
    /// Terminate; `forget` also deletes the registry record.
    Terminate {
        /// Delete the registry record too.
        forget: bool,
        /// Delete the EBS volumes too.
        delete_volumes: bool,
    },
    /// Associate an Elastic IP.
    EipAttach,
    /// Release the Elastic IP.
    EipDetach,
}

/// Runs one of the verbs on the named or selected hosts.
pub async fn run(ctx: &Ctx, verb: Verb, hosts: &[String], wait: &WaitArgs) -> Result<u8> {
    let settings = ctx.settings(wait)?;
    let wiring = ctx.wiring(ctx.backends().await, settings, false).await?;
    let hosts = ctx.existing_hosts(&wiring.backends, hosts).await?;
    let lc = wiring.lifecycle();
    let results = match verb {
        Verb::Stop => lc.stop(hosts).await,
        Verb::Restart => lc.restart(hosts).await,
        Verb::Reboot => lc.reboot(hosts).await,
        Verb::Terminate {
            forget,
            delete_volumes,
        } => lc.terminate(hosts, forget, delete_volumes).await,
        Verb::EipAttach => lc.eip_attach(hosts).await,
        Verb::EipDetach => lc.eip_detach(hosts).await,
    };
    drop(lc);
    wiring.done().await;
    report(ctx, &results)
}
