//! Public names in a hosted zone of the user's (`[dns] public-zone`): a real delegated
//! domain that holds other names too. cerveza never creates that zone, and changes only
//! the names it owns there: each A record it writes has a TXT record at the same name,
//! `"cerveza product=<product>"`, written in the same change batch (Route53 applies a
//! batch whole), as external-dns marks its records. A name that exists without that
//! mark is someone else's: it is refused, never overwritten, and never removed.

use aws_sdk_route53::types::{ChangeAction, ResourceRecordSet, RrType};
use cerveza_core::names::Product;
use cerveza_core::ports::{DnsRecord, ProviderError, ProviderErrorKind, ProviderResult};

use super::{a_records, pace, record_set, Route53Dns};
use crate::errors::provider_error;

/// The TXT value that marks a name as `product`'s (quoted, as Route53 wants TXT values).
fn owner(product: &Product) -> String {
    format!("\"cerveza product={product}\"")
}

/// Whether `id` is a hosted zone id (`Z0123456789ABC`, as the console shows it) rather
/// than a domain name (which is lowercase in cerveza's config).
fn is_zone_id(id: &str) -> bool {
    let id = id.trim_start_matches("/hostedzone/");
    // Route53's are `Z` and 13 to 31 uppercase letters and digits; no dot, no lowercase.
    id.len() >= 5
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Route53Dns {
    /// The user's public zone, (id, name without the trailing dot), found once; `None`
    /// when none is configured. A zone that cannot be found is an error: cerveza never
    /// makes it (it must be delegated to Route53's name servers to be of use).
    pub(super) async fn public(&self) -> ProviderResult<Option<&(String, String)>> {
        let Some(wanted) = self.public_zone.as_deref() else {
            return Ok(None);
        };
        self.public
            .get_or_try_init(|| async {
                pace().await;
                if is_zone_id(wanted) {
                    let id = wanted.trim_start_matches("/hostedzone/");
                    let out = self
                        .client
                        .get_hosted_zone()
                        .id(id)
                        .send()
                        .await
                        .map_err(provider_error)?;
                    let zone = out.hosted_zone().ok_or_else(|| missing(wanted))?;
                    if zone.config().is_some_and(|c| c.private_zone()) {
                        return Err(ProviderError::new(
                            ProviderErrorKind::Invalid,
                            format!("[dns] public-zone {wanted} is a private hosted zone: name a public one"),
                        ));
                    }
                    return Ok((id.to_owned(), zone.name().trim_end_matches('.').to_owned()));
                }
                let name = wanted.trim_end_matches('.');
                let id = self
                    .find_zone(&format!("{name}."), false)
                    .await?
                    .ok_or_else(|| missing(wanted))?;
                Ok((id, name.to_owned()))
            })
            .await
            .map(Some)
    }

    /// The record sets at exactly `name` in `zone_id`.
    async fn sets_at(&self, zone_id: &str, name: &str) -> ProviderResult<Vec<ResourceRecordSet>> {
        let fqdn = format!("{name}.");
        Ok(self
            .record_sets(zone_id, Some(name))
            .await?
            .into_iter()
            .filter(|s| s.name() == fqdn)
            .collect())
    }

    /// The A records of the public zone that `product` owns.
    pub(super) async fn owned_records(&self, product: &Product) -> ProviderResult<Vec<DnsRecord>> {
        let Some((id, _)) = self.public().await? else {
            return Ok(Vec::new());
        };
        let sets = self.record_sets(id, None).await?;
        let mark = owner(product);
        let ours: std::collections::BTreeSet<&str> = sets
            .iter()
            .filter(|s| s.r#type() == &RrType::Txt && has_value(s, &mark))
            .map(|s| s.name())
            .collect();
        let owned: Vec<ResourceRecordSet> = sets
            .iter()
            .filter(|s| ours.contains(s.name()))
            .cloned()
            .collect();
        Ok(a_records(&owned))
    }

    /// Points `record` at its address in the public zone, with the owner mark; refused
    /// when the name is someone else's.
    pub(super) async fn owned_upsert(
        &self,
        product: &Product,
        record: &DnsRecord,
    ) -> ProviderResult<()> {
        let (id, zone) = self.public().await?.ok_or_else(|| missing("?"))?;
        let sets = self.sets_at(id, &record.name).await?;
        let mark = owner(product);
        let ours = sets
            .iter()
            .any(|s| s.r#type() == &RrType::Txt && has_value(s, &mark));
        if !ours && !sets.is_empty() {
            let kinds: Vec<&str> = sets.iter().map(|s| s.r#type().as_str()).collect();
            return Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                format!(
                    "{} already has {} record(s) in hosted zone {zone} that cerveza did not make (no TXT {mark}): cerveza never changes a name it does not own there; remove it, or choose another hostname",
                    record.name,
                    kinds.join(", ")
                ),
            ));
        }
        self.change_batch(
            id,
            vec![
                (
                    ChangeAction::Upsert,
                    record_set(&record.name, RrType::A, &record.address.to_string())?,
                ),
                (
                    ChangeAction::Upsert,
                    record_set(&record.name, RrType::Txt, &mark)?,
                ),
            ],
        )
        .await
    }

    /// Removes `name` from the public zone when `product` owns it (its A record and its
    /// mark together); a name someone else owns is left as it is.
    pub(super) async fn owned_remove(&self, product: &Product, name: &str) -> ProviderResult<()> {
        let Some((id, _)) = self.public().await? else {
            return Ok(());
        };
        let sets = self.sets_at(id, name).await?;
        let mark = owner(product);
        let Some(txt) = sets
            .iter()
            .find(|s| s.r#type() == &RrType::Txt && has_value(s, &mark))
        else {
            if !sets.is_empty() {
                tracing::warn!(
                    "{name} is in the public zone but not cerveza's (no TXT {mark}): left as it is"
                );
            }
            return Ok(());
        };
        // Route53 deletes a record set only when given it exactly as it is.
        let mut changes = vec![(ChangeAction::Delete, txt.clone())];
        changes.extend(
            sets.iter()
                .filter(|s| s.r#type() == &RrType::A)
                .map(|s| (ChangeAction::Delete, s.clone())),
        );
        self.change_batch(id, changes).await
    }
}

fn has_value(set: &ResourceRecordSet, value: &str) -> bool {
    set.resource_records().iter().any(|r| r.value() == value)
}

fn missing(zone: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::NotFound,
        format!("[dns] public-zone {zone}: no public hosted zone of that name or id in this account; cerveza does not create it (create it and delegate the domain to its name servers)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_and_names_are_told_apart() {
        assert!(is_zone_id("Z0123456789ABCDEFGHIJ"));
        assert!(is_zone_id("/hostedzone/Z2FDTNDATAQYW2"));
        assert!(!is_zone_id("noc.example.com"));
        assert!(!is_zone_id("Zebra.example.com"));
        assert!(is_zone_id("471L7L6RAIU2DY2O8A04F1"), "moto's form");
    }
}
