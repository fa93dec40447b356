//! The host registry: one DynamoDB table in a home region.
//!
//! Key: `product` (partition) and `hostname` (sort). Attributes: `profile`, `zone`,
//! `region`, `instance_id`, `state`, `generation`, `updated_at`, `updated_by`.
//! Reads are strongly consistent; every write is conditional (`attribute_not_exists`
//! to claim a hostname, `generation = :expected` afterwards). Reads of a table that
//! does not exist yet see an empty registry; the first write creates it.
//!
//! Each write also stores a random `write_id`. When the answer to a conditional write
//! is lost (a reset connection, a 500 after the work was done) the SDK retries it, and
//! the retry fails its own condition. The item is then read back: if it carries this
//! write's id, the first attempt landed and the write succeeded; otherwise another
//! operator won and the caller gets `Conflict`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use cerveza_core::model::{HostRecord, InstanceId, InstanceState};
use cerveza_core::names::{Hostname, Product, ProfileName, Zone};
use cerveza_core::ports::{
    ProviderError, ProviderErrorKind, ProviderResult, Registry, RegistryRead,
};
use tokio::sync::OnceCell;

use crate::errors::provider_error;

type Item = HashMap<String, AttributeValue>;

/// The registry table.
pub struct DynamoRegistry {
    pub(crate) client: Client,
    pub(crate) table: String,
    ready: OnceCell<()>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn bad_item(what: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Other,
        format!("registry item has no valid {what}"),
    )
}

/// A fresh id for one write.
fn write_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn to_item(r: &HostRecord) -> Item {
    let mut item = Item::from([
        ("product".into(), s(r.product.as_str())),
        ("hostname".into(), s(r.hostname.as_str())),
        ("profile".into(), s(r.profile.as_str())),
        ("zone".into(), s(r.zone.as_str())),
        ("region".into(), s(r.region().as_str())),
        ("state".into(), s(r.state.name())),
        ("generation".into(), n(r.generation)),
        ("updated_at".into(), n(r.updated_at)),
        ("updated_by".into(), s(&r.updated_by)),
    ]);
    if let Some(id) = &r.instance_id {
        item.insert("instance_id".into(), s(id.as_str()));
    }
    if !r.claim.is_empty() {
        item.insert("claim".into(), s(&r.claim));
    }
    item
}

fn from_item(item: &Item) -> ProviderResult<HostRecord> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let num = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    Ok(HostRecord {
        product: text("product")
            .and_then(|p| Product::parse(&p).ok())
            .ok_or_else(|| bad_item("product"))?,
        hostname: text("hostname")
            .and_then(|h| Hostname::parse(&h).ok())
            .ok_or_else(|| bad_item("hostname"))?,
        profile: text("profile")
            .and_then(|p| ProfileName::parse(&p).ok())
            .ok_or_else(|| bad_item("profile"))?,
        zone: text("zone")
            .and_then(|z| Zone::parse(&z).ok())
            .ok_or_else(|| bad_item("zone"))?,
        instance_id: text("instance_id").map(InstanceId::from),
        state: InstanceState::from_name(&text("state").unwrap_or_default()),
        generation: num("generation")
            .and_then(|g| u64::try_from(g).ok())
            .ok_or_else(|| bad_item("generation"))?,
        updated_at: num("updated_at").unwrap_or(0),
        updated_by: text("updated_by").unwrap_or_default(),
        // It goes into launch tokens and a tag: what cerveza writes, or nothing.
        claim: match text("claim") {
            None => String::new(),
            Some(c)
                if !c.is_empty() && c.len() <= 32 && c.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                c
            }
            Some(_) => return Err(bad_item("claim")),
        },
    })
}

fn key(product: &Product, host: &Hostname) -> Item {
    Item::from([
        ("product".into(), s(product.as_str())),
        ("hostname".into(), s(host.as_str())),
    ])
}

impl DynamoRegistry {
    /// The registry in `table`, in the SDK config's region (the home region). Every
    /// call, retries included, is given up after `timeout`: an unreachable registry
    /// is reported in seconds, so commands that can go on without it do.
    pub fn new(config: &SdkConfig, table: impl Into<String>, timeout: Duration) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(timeout)
            .operation_attempt_timeout(timeout)
            .build();
        let client = aws_sdk_dynamodb::config::Builder::from(config)
            .timeout_config(timeouts)
            .build();
        Self {
            client: Client::from_conf(client),
            table: table.into(),
            ready: OnceCell::new(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table if it does not exist and waits until it is active.
    pub async fn ensure_table(&self) -> ProviderResult<()> {
        self.ready
            .get_or_try_init(|| async {
                let exists = match self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                {
                    Ok(out) => out.table().and_then(|t| t.table_status()).cloned(),
                    Err(e) => {
                        let e = provider_error(e);
                        if e.kind != ProviderErrorKind::NotFound {
                            return Err(e);
                        }
                        None
                    }
                };
                if exists == Some(TableStatus::Active) {
                    return Ok(());
                }
                if exists.is_none() {
                    tracing::info!(table = %self.table, "creating the registry table");
                    let attr = |name: &str| {
                        AttributeDefinition::builder()
                            .attribute_name(name)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .expect("complete attribute definition")
                    };
                    let key = |name: &str, kind| {
                        KeySchemaElement::builder()
                            .attribute_name(name)
                            .key_type(kind)
                            .build()
                            .expect("complete key schema")
                    };
                    let created = self
                        .client
                        .create_table()
                        .table_name(&self.table)
                        .attribute_definitions(attr("product"))
                        .attribute_definitions(attr("hostname"))
                        .key_schema(key("product", KeyType::Hash))
                        .key_schema(key("hostname", KeyType::Range))
                        .billing_mode(BillingMode::PayPerRequest)
                        .send()
                        .await;
                    if let Err(e) = created {
                        // Another operator creating it at the same time is fine.
                        if e.as_service_error()
                            .map(|s| s.is_resource_in_use_exception())
                            != Some(true)
                        {
                            return Err(provider_error(e));
                        }
                    }
                }
                for _ in 0..120 {
                    let out = self
                        .client
                        .describe_table()
                        .table_name(&self.table)
                        .send()
                        .await
                        .map_err(provider_error)?;
                    if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!(
                        "registry table {} did not become active within 60s",
                        self.table
                    ),
                ))
            })
            .await
            .map(drop)
    }
}

impl DynamoRegistry {
    /// A conditional write that failed its condition succeeded after all when the
    /// stored item carries this write's id: an earlier attempt of the same call landed
    /// and only its answer was lost.
    async fn unless_ours(
        &self,
        res: ProviderResult<()>,
        record: &HostRecord,
        id: &str,
    ) -> ProviderResult<()> {
        match res {
            Err(e) if e.kind == ProviderErrorKind::Conflict => {
                let stored = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(&record.product, &record.hostname)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(provider_error)?;
                let ours = stored
                    .item()
                    .and_then(|i| i.get("write_id"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|w| w == id);
                if ours {
                    tracing::debug!(host = %record.hostname, "registry write landed on an earlier attempt");
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

/// A missing table reads as an empty registry.
fn missing_table<T>(e: ProviderError, empty: T) -> ProviderResult<T> {
    if e.kind == ProviderErrorKind::NotFound {
        Ok(empty)
    } else {
        Err(e)
    }
}

#[async_trait]
impl RegistryRead for DynamoRegistry {
    fn describe(&self) -> String {
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "its home region".into());
        format!("the registry (DynamoDB table {} in {region})", self.table)
    }

    async fn get(&self, product: &Product, host: &Hostname) -> ProviderResult<Option<HostRecord>> {
        let res = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(product, host)))
            .consistent_read(true)
            .send()
            .await;
        match res {
            Ok(out) => out.item().map(from_item).transpose(),
            Err(e) => missing_table(provider_error(e), None),
        }
    }

    async fn list(&self, product: &Product) -> ProviderResult<Vec<HostRecord>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", "product")
            .expression_attribute_values(":p", s(product.as_str()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(p) => {
                    for item in p.items() {
                        out.push(from_item(item)?);
                    }
                }
                Err(e) => return missing_table(provider_error(e), Vec::new()),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Registry for DynamoRegistry {
    async fn create(&self, record: &HostRecord) -> ProviderResult<()> {
        self.ensure_table().await?;
        let id = write_id();
        let mut item = to_item(record);
        item.insert("write_id".into(), s(&id));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#h)")
            .expression_attribute_names("#h", "hostname")
            .send()
            .await
            .map(drop)
            .map_err(provider_error);
        self.unless_ours(res, record, &id).await
    }

    async fn update(&self, record: &HostRecord, expected_generation: u64) -> ProviderResult<()> {
        self.ensure_table().await?;
        let id = write_id();
        let mut item = to_item(record);
        item.insert("write_id".into(), s(&id));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#g = :g")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_values(":g", n(expected_generation))
            .send()
            .await
            .map(drop)
            .map_err(provider_error);
        self.unless_ours(res, record, &id).await
    }

    async fn delete(
        &self,
        product: &Product,
        host: &Hostname,
        expected_generation: u64,
    ) -> ProviderResult<()> {
        self.ensure_table().await?;
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(product, host)))
            .condition_expression("#g = :g")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_values(":g", n(expected_generation))
            .send()
            .await
            .map(drop)
            .map_err(provider_error);
        match res {
            // Gone is what was asked for, whether this call's first attempt (whose
            // answer was lost) or someone else deleted it.
            Err(e) if e.kind == ProviderErrorKind::Conflict => {
                match self.get(product, host).await? {
                    None => Ok(()),
                    Some(_) => Err(e),
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Answer, Canned, Reply, Request};

    const TABLE_ACTIVE: &str = r#"{"Table":{"TableName":"cerveza-hosts","TableStatus":"ACTIVE"}}"#;
    const CONDITION_FAILED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;

    fn item(profile: &str, write_id: &str) -> String {
        format!(
            r#"{{"Item":{{"product":{{"S":"noc"}},"hostname":{{"S":"web01"}},"profile":{{"S":"{profile}"}},"zone":{{"S":"us-east-1b"}},"region":{{"S":"us-east-1"}},"instance_id":{{"S":"i-0a"}},"state":{{"S":"stopped"}},"generation":{{"N":"3"}},"updated_at":{{"N":"1"}},"updated_by":{{"S":"alice@box"}},"write_id":{{"S":"{write_id}"}}}}}}"#
        )
    }

    fn record() -> HostRecord {
        HostRecord {
            product: Product::parse("noc").unwrap_or_else(|e| panic!("{e}")),
            hostname: Hostname::parse("web01").unwrap_or_else(|e| panic!("{e}")),
            profile: ProfileName::parse("Web").unwrap_or_else(|e| panic!("{e}")),
            zone: Zone::parse("us-east-1b").unwrap_or_else(|e| panic!("{e}")),
            instance_id: None,
            state: InstanceState::Pending,
            generation: 1,
            updated_at: 0,
            updated_by: "bob@box".into(),
            claim: "00ff00ff00ff00ff".into(),
        }
    }

    #[tokio::test]
    async fn a_record_is_read_into_typed_fields_and_a_bad_one_is_refused() {
        let server = Canned::serve(vec![
            Answer::json(200, &item("Web", "w")),
            Answer::json(200, &item("not a profile!", "w")),
            Answer::json(200, "{}"),
            Answer::json(
                200,
                &item("Web", "w").replace(
                    r#""write_id""#,
                    r#""claim":{"S":"0123456789abcdef"},"write_id""#,
                ),
            ),
            Answer::json(
                200,
                &item("Web", "w").replace(r#""write_id""#, r#""claim":{"S":"x=y"},"write_id""#),
            ),
        ])
        .await;
        let registry =
            DynamoRegistry::new(&server.sdk().await, "cerveza-hosts", Duration::from_secs(5));
        let r = record();
        let got = registry
            .get(&r.product, &r.hostname)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a record"));
        assert_eq!(got.profile.as_str(), "Web");
        assert_eq!(got.state, InstanceState::Stopped);
        assert_eq!(got.instance_id, Some(InstanceId::new("i-0a")));
        assert_eq!(got.generation, 3);
        let e = registry
            .get(&r.product, &r.hostname)
            .await
            .expect_err("a profile name that cannot be");
        assert!(e.message.contains("no valid profile"), "{}", e.message);
        assert!(matches!(
            registry.get(&r.product, &r.hostname).await,
            Ok(None)
        ));
        assert_eq!(got.claim, "", "a record from before claims had ids");
        let claimed = registry.get(&r.product, &r.hostname).await;
        assert_eq!(
            claimed.ok().flatten().map(|c| c.claim).as_deref(),
            Some("0123456789abcdef")
        );
        // The claim goes into launch tokens and a tag: only what cerveza writes is taken.
        let e = registry
            .get(&r.product, &r.hostname)
            .await
            .expect_err("a claim that cannot be");
        assert!(e.message.contains("no valid claim"), "{}", e.message);
        let asked = server.requests();
        assert_eq!(asked[0].target, "DynamoDB_20120810.GetItem");
        assert!(
            asked[0].body.contains(r#""ConsistentRead":true"#),
            "{asked:?}"
        );
    }

    /// The write id a PutItem sent.
    fn sent_write_id(body: &str) -> String {
        let key = r#""write_id":{"S":""#;
        let at = body
            .find(key)
            .unwrap_or_else(|| panic!("no write id in {body}"))
            + key.len();
        body[at..].split('"').next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn a_failed_condition_is_a_conflict_unless_the_stored_write_is_ours() {
        // Someone else's item is stored: a conflict. The table is checked once.
        let server = Canned::serve(vec![
            Answer::json(200, TABLE_ACTIVE),
            Answer::json(400, CONDITION_FAILED),
            Answer::json(200, &item("Web", "someone-else")),
        ])
        .await;
        let registry =
            DynamoRegistry::new(&server.sdk().await, "cerveza-hosts", Duration::from_secs(5));
        let e = registry.create(&record()).await.expect_err("conflict");
        assert_eq!(e.kind, ProviderErrorKind::Conflict);
        let asked = server.requests();
        let targets: Vec<&str> = asked.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "DynamoDB_20120810.DescribeTable",
                "DynamoDB_20120810.PutItem",
                "DynamoDB_20120810.GetItem"
            ]
        );
        assert!(
            asked[1].body.contains("attribute_not_exists(#h)"),
            "a create is conditional: {}",
            asked[1].body
        );
        assert_eq!(sent_write_id(&asked[1].body).len(), 32);

        // The stored item carries the write id this very call sent (its first attempt
        // landed, only the answer was lost): success, not a conflict.
        let server = Canned::reply(vec![
            Answer::json(200, TABLE_ACTIVE).into(),
            Answer::json(400, CONDITION_FAILED).into(),
            Reply::From(Box::new(|so_far: &[Request]| {
                Answer::json(200, &item("Web", &sent_write_id(&so_far[1].body)))
            })),
        ])
        .await;
        let registry =
            DynamoRegistry::new(&server.sdk().await, "cerveza-hosts", Duration::from_secs(5));
        let mut r = record();
        r.generation = 3;
        registry
            .update(&r, 2)
            .await
            .unwrap_or_else(|e| panic!("our own write: {e}"));
        let asked = server.requests();
        assert!(asked[1].body.contains("#g = :g"), "{}", asked[1].body);
        assert!(
            asked[1].body.contains(r#"":g":{"N":"2"}"#),
            "{}",
            asked[1].body
        );
    }

    #[tokio::test]
    async fn a_registry_that_never_answers_is_given_up_within_its_timeout() {
        let server = Canned::silent().await;
        let registry = DynamoRegistry::new(
            &server.sdk().await,
            "cerveza-hosts",
            Duration::from_millis(300),
        );
        let r = record();
        let started = std::time::Instant::now();
        let e = registry
            .get(&r.product, &r.hostname)
            .await
            .expect_err("no answer");
        assert_eq!(e.kind, ProviderErrorKind::Unavailable, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "gave up after {:?}",
            started.elapsed()
        );
    }
}
