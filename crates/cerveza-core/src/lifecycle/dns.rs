//! Publishing a host's names: `<host>.<product>.private` and `.public` (or the public
//! zone the backend was given).

use super::Lifecycle;
use crate::error::{Context, Error};
use crate::model::Instance;
use crate::names::Hostname;
use crate::ports::{dns_names, DnsRecord};

impl Lifecycle<'_> {
    /// Points the host's names at the instance's addresses; a missing address removes
    /// its name (a stopped host has no public address).
    pub(super) async fn publish(&self, host: &Hostname, inst: &Instance) -> Result<(), Error> {
        let Some(dns) = self.dns else {
            return Ok(());
        };
        self.progress.step(host, "publishing its DNS names");
        let domains = dns
            .domains(self.product())
            .await
            .context(|| format!("{host}: finding its DNS domains (`cerveza dns sync` retries)"))?;
        let ip = |a: &Option<String>| {
            a.as_deref()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        };
        let [private, public] = dns_names(&domains, host);
        for (name, addr) in [
            (private, ip(&inst.private_ip)),
            (public, ip(&inst.public_ip)),
        ] {
            let done = match addr {
                Some(address) => {
                    dns.upsert(
                        self.product(),
                        &DnsRecord {
                            name: name.clone(),
                            address,
                        },
                    )
                    .await
                }
                None => dns.remove(self.product(), &name).await,
            };
            done.context(|| {
                format!(
                    "{host}: publishing {name} (the instance is fine; `cerveza dns sync` retries)"
                )
            })?;
        }
        Ok(())
    }

    /// Removes the host's names.
    pub(super) async fn unpublish(&self, host: &Hostname) -> Result<(), Error> {
        let Some(dns) = self.dns else {
            return Ok(());
        };
        let domains = dns
            .domains(self.product())
            .await
            .context(|| format!("{host}: finding its DNS domains (`cerveza dns sync` retries)"))?;
        for name in dns_names(&domains, host) {
            dns.remove(self.product(), &name)
                .await
                .context(|| format!("{host}: removing {name} (`cerveza dns sync` retries)"))?;
        }
        Ok(())
    }
}
