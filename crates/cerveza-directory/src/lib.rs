//! The directory, as in the paper: one OpenLDAP that holds
//! * DNS records in the flat layout PowerDNS's LDAP backend (and BIND's sdb-ldap) read:
//!   one entry per name, `associatedDomain=<name>,ou=dns,<base>`, object classes
//!   `dNSDomain2` + `domainRelatedObject`, its first label in `dc`, the address in
//!   `aRecord`; each zone (`<product>.private`, `<product>.public`) has an SOA entry;
//! * users (`uid=<user>,ou=people,<base>`, `account` + `posixAccount`) whose `host`
//!   values are their grants, matched on each host by its pam filter
//!   ([`cerveza_core::access`]).
//!
//! Connections try each URI in turn with a short timeout (the paper's outage lesson),
//! optionally with StartTLS; `ldaps://` URIs use TLS from the start. The bind password
//! lives in a [`Secret`] that never prints.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use cerveza_core::access::{escape_dn_value, escape_filter_value, pam_filter, Grant};
use cerveza_core::ports::{
    Dns, DnsRead, DnsRecord, ProviderError, ProviderErrorKind, ProviderResult,
};
use cerveza_core::{Hostname, Product, Zone};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};

/// A password: shown as `***` in debug output and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to reach the directory.
#[derive(Debug, Clone)]
pub struct Settings {
    /// URIs tried in order (`ldap://`, `ldaps://`).
    pub uris: Vec<String>,
    /// Base DN (`dc=noc,dc=example`).
    pub base: String,
    /// Bind DN; anonymous when unset.
    pub bind_dn: Option<String>,
    /// Bind password.
    pub password: Option<Secret>,
    /// Upgrade `ldap://` connections with StartTLS.
    pub starttls: bool,
    /// Connect and operation timeout.
    pub timeout: Duration,
}

/// What went wrong talking to the directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No URI answered.
    #[error("no LDAP server answered ({tried}): {last}")]
    Unreachable {
        /// The URIs tried.
        tried: String,
        /// The last error.
        last: String,
    },
    /// The server refused an operation.
    #[error("{op}: {message}")]
    Ldap {
        /// What cerveza did.
        op: String,
        /// The server's answer.
        message: String,
        /// LDAP result code, when the server answered.
        code: Option<u32>,
    },
    /// A user that does not exist.
    #[error(
        "no user {0:?} in the directory (ou=people): add one with `cerveza access user add {0}`"
    )]
    NoUser(String),
    /// A user that exists already.
    #[error("user {0:?} exists already in the directory (ou=people)")]
    UserExists(String),
}

/// The first `uidNumber` cerveza gives out, clear of system and distribution ranges.
pub const FIRST_UID: u32 = 10_000;

/// A user to add: what `account` + `posixAccount` need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewUser {
    /// `uid`, checked like every user name cerveza handles.
    pub uid: String,
    /// `cn`; the uid when not given.
    pub name: Option<String>,
    /// `uidNumber`; the next free one from [`FIRST_UID`] when not given.
    pub uid_number: Option<u32>,
    /// `gidNumber`.
    pub gid_number: u32,
    /// `homeDirectory`; `/home/<uid>` when not given.
    pub home: Option<String>,
    /// `loginShell`, when given.
    pub shell: Option<String>,
}

impl From<DirectoryError> for ProviderError {
    fn from(e: DirectoryError) -> Self {
        let kind = match &e {
            DirectoryError::Unreachable { .. } => ProviderErrorKind::Unavailable,
            DirectoryError::NoUser(_) => ProviderErrorKind::NotFound,
            DirectoryError::UserExists(_) => ProviderErrorKind::Conflict,
            DirectoryError::Ldap { code: Some(50), .. }
            | DirectoryError::Ldap { code: Some(49), .. } => ProviderErrorKind::Denied,
            DirectoryError::Ldap { .. } => ProviderErrorKind::Other,
        };
        ProviderError::new(kind, e.to_string())
    }
}

fn ldap_err(op: &str) -> impl Fn(LdapError) -> DirectoryError + '_ {
    move |e| {
        let code = match &e {
            LdapError::LdapResult { result } => Some(result.rc),
            _ => None,
        };
        let message = match &e {
            LdapError::LdapResult { result } if !result.text.is_empty() => {
                format!("{} (result code {})", result.text, result.rc)
            }
            LdapError::LdapResult { result } => format!("result code {}", result.rc),
            other => other.to_string(),
        };
        DirectoryError::Ldap {
            op: op.to_owned(),
            message,
            code,
        }
    }
}

/// LDAP result codes cerveza acts on.
const NO_SUCH_OBJECT: u32 = 32;
const ALREADY_EXISTS: u32 = 68;
const VALUE_EXISTS: u32 = 20;
const NO_SUCH_ATTRIBUTE: u32 = 16;

/// A connected, bound directory.
pub struct Directory {
    ldap: Ldap,
    settings: Settings,
}

/// A user and their grants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// `uid`.
    pub uid: String,
    /// `host` values.
    pub grants: Vec<String>,
}

impl Directory {
    /// Connects to the first URI that answers and binds.
    pub async fn connect(settings: Settings) -> Result<Self, DirectoryError> {
        let mut last = "no URI configured".to_owned();
        for uri in &settings.uris {
            let conn = LdapConnSettings::new()
                .set_conn_timeout(settings.timeout)
                .set_starttls(settings.starttls && uri.starts_with("ldap://"));
            match tokio::time::timeout(settings.timeout, LdapConnAsync::with_settings(conn, uri))
                .await
            {
                Ok(Ok((conn, mut ldap))) => {
                    ldap3::drive!(conn);
                    if let (Some(dn), Some(pw)) = (&settings.bind_dn, &settings.password) {
                        let bound = ldap
                            .with_timeout(settings.timeout)
                            .simple_bind(dn, pw.expose())
                            .await
                            .and_then(|r| r.success());
                        if let Err(e) = bound {
                            return Err(ldap_err(&format!("binding to {uri} as {dn}"))(e));
                        }
                    }
                    tracing::debug!(%uri, "connected to the directory");
                    return Ok(Self { ldap, settings });
                }
                Ok(Err(e)) => {
                    tracing::warn!(%uri, error = %e, "LDAP server did not answer; trying the next");
                    last = format!("{uri}: {e}");
                }
                Err(_) => {
                    tracing::warn!(%uri, "LDAP server timed out; trying the next");
                    last = format!("{uri}: no answer within {:?}", settings.timeout);
                }
            }
        }
        Err(DirectoryError::Unreachable {
            tried: settings.uris.join(", "),
            last,
        })
    }

    fn ldap(&self) -> Ldap {
        let mut l = self.ldap.clone();
        l.with_timeout(self.settings.timeout);
        l
    }

    fn dns_base(&self) -> String {
        format!("ou=dns,{}", self.settings.base)
    }

    fn people_base(&self) -> String {
        format!("ou=people,{}", self.settings.base)
    }

    fn name_dn(&self, name: &str) -> String {
        format!(
            "associatedDomain={},{}",
            escape_dn_value(name),
            self.dns_base()
        )
    }

    async fn search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let op = format!("searching {base} for {filter}");
        match self
            .ldap()
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .and_then(|r| r.success())
        {
            Ok((entries, _)) => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
            Err(LdapError::LdapResult { result }) if result.rc == NO_SUCH_OBJECT => Ok(Vec::new()),
            Err(e) => Err(ldap_err(&op)(e)),
        }
    }

    /// Creates the SOA entry of a zone unless it exists.
    async fn ensure_zone(&self, zone: &str) -> Result<(), DirectoryError> {
        let label = zone.split('.').next().unwrap_or(zone);
        let soa = format!("ns.{zone}. hostmaster.{zone}. 1 1800 3600 86400 60");
        let ns = format!("ns.{zone}.");
        let attrs = vec![
            (
                "objectClass",
                HashSet::from(["dNSDomain2", "domainRelatedObject"]),
            ),
            ("dc", HashSet::from([label])),
            ("associatedDomain", HashSet::from([zone])),
            ("sOARecord", HashSet::from([soa.as_str()])),
            ("nSRecord", HashSet::from([ns.as_str()])),
        ];
        match self
            .ldap()
            .add(&self.name_dn(zone), attrs)
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => {
                tracing::info!(%zone, "created DNS zone");
                Ok(())
            }
            Err(LdapError::LdapResult { result }) if result.rc == ALREADY_EXISTS => Ok(()),
            Err(e) => Err(ldap_err(&format!("creating zone {zone}"))(e)),
        }
    }

    // ----- access ------------------------------------------------------------

    async fn user_entry(&self, uid: &str) -> Result<SearchEntry, DirectoryError> {
        cerveza_core::access::check_user(uid).map_err(|e| DirectoryError::Ldap {
            op: "user".into(),
            message: e.to_string(),
            code: None,
        })?;
        let filter = format!(
            "(&(objectClass=posixAccount)(uid={}))",
            escape_filter_value(uid)
        );
        self.search(&self.people_base(), &filter, &["uid", "host"])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DirectoryError::NoUser(uid.to_owned()))
    }

    /// Adds a grant to a user. Returns false when the user had it already.
    pub async fn grant(&self, uid: &str, grant: &Grant) -> Result<bool, DirectoryError> {
        self.change_grant(uid, grant, true).await
    }

    /// Removes a grant from a user. Returns false when the user did not have it.
    pub async fn revoke(&self, uid: &str, grant: &Grant) -> Result<bool, DirectoryError> {
        self.change_grant(uid, grant, false).await
    }

    /// Adds or removes one `host` value; false when there was nothing to change.
    async fn change_grant(
        &self,
        uid: &str,
        grant: &Grant,
        add: bool,
    ) -> Result<bool, DirectoryError> {
        let entry = self.user_entry(uid).await?;
        let value = grant.to_string();
        let values = HashSet::from([value.as_str()]);
        let (change, unchanged, op) = if add {
            (
                Mod::Add("host", values),
                VALUE_EXISTS,
                format!("granting {value} to {uid}"),
            )
        } else {
            (
                Mod::Delete("host", values),
                NO_SUCH_ATTRIBUTE,
                format!("revoking {value} from {uid}"),
            )
        };
        match self
            .ldap()
            .modify(&entry.dn, vec![change])
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(true),
            Err(LdapError::LdapResult { result }) if result.rc == unchanged => Ok(false),
            Err(e) => Err(ldap_err(&op)(e)),
        }
    }

    /// Users and their grants: one user, or every user with at least one grant.
    pub async fn users(&self, uid: Option<&str>) -> Result<Vec<User>, DirectoryError> {
        let entries = match uid {
            Some(u) => vec![self.user_entry(u).await?],
            // `(host=*)` is meant as a presence test here: users with any grant.
            None => {
                self.search(
                    &self.people_base(),
                    "(&(objectClass=posixAccount)(host=*))",
                    &["uid", "host"],
                )
                .await?
            }
        };
        let mut users: Vec<User> = entries
            .into_iter()
            .map(|e| {
                let mut grants = e.attrs.get("host").cloned().unwrap_or_default();
                grants.sort();
                User {
                    uid: e
                        .attrs
                        .get("uid")
                        .and_then(|v| v.first().cloned())
                        .unwrap_or_default(),
                    grants,
                }
            })
            .collect();
        users.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(users)
    }

    /// Adds a POSIX user (`account` + `posixAccount`, as the paper's hosts read them)
    /// under `ou=people`, creating that branch when the directory has none. Without a
    /// `uid_number` the next free one from 10000 on is taken.
    pub async fn add_user(&self, new: &NewUser) -> Result<NewUser, DirectoryError> {
        cerveza_core::access::check_user(&new.uid).map_err(|e| DirectoryError::Ldap {
            op: "adding a user".into(),
            message: e.to_string(),
            code: None,
        })?;
        self.ensure_people().await?;
        let mut user = new.clone();
        if user.uid_number.is_none() {
            let taken = self
                .search(
                    &self.people_base(),
                    "(objectClass=posixAccount)",
                    &["uidNumber"],
                )
                .await?
                .iter()
                .filter_map(|e| e.attrs.get("uidNumber")?.first()?.parse::<u32>().ok())
                .max();
            user.uid_number = Some(taken.map_or(FIRST_UID, |n| n.max(FIRST_UID - 1) + 1));
        }
        let uid_number = user.uid_number.unwrap_or(FIRST_UID).to_string();
        let gid_number = user.gid_number.to_string();
        let home = user
            .home
            .get_or_insert_with(|| format!("/home/{}", new.uid))
            .clone();
        let cn = user.name.get_or_insert_with(|| new.uid.clone()).clone();
        let mut attrs = vec![
            ("objectClass", HashSet::from(["account", "posixAccount"])),
            ("uid", HashSet::from([user.uid.as_str()])),
            ("cn", HashSet::from([cn.as_str()])),
            ("uidNumber", HashSet::from([uid_number.as_str()])),
            ("gidNumber", HashSet::from([gid_number.as_str()])),
            ("homeDirectory", HashSet::from([home.as_str()])),
        ];
        if let Some(shell) = &user.shell {
            attrs.push(("loginShell", HashSet::from([shell.as_str()])));
        }
        let dn = self.user_dn(&user.uid);
        match self.ldap().add(&dn, attrs).await.and_then(|r| r.success()) {
            Ok(_) => Ok(user),
            Err(LdapError::LdapResult { result }) if result.rc == ALREADY_EXISTS => {
                Err(DirectoryError::UserExists(user.uid))
            }
            Err(e) => Err(ldap_err(&format!("adding {dn}"))(e)),
        }
    }

    /// Removes a user and with it every grant. Returns false when there was none.
    pub async fn remove_user(&self, uid: &str) -> Result<bool, DirectoryError> {
        let entry = match self.user_entry(uid).await {
            Ok(e) => e,
            Err(DirectoryError::NoUser(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self
            .ldap()
            .delete(&entry.dn)
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(true),
            Err(LdapError::LdapResult { result }) if result.rc == NO_SUCH_OBJECT => Ok(false),
            Err(e) => Err(ldap_err(&format!("removing {}", entry.dn))(e)),
        }
    }

    /// Creates `ou=people` unless it exists.
    async fn ensure_people(&self) -> Result<(), DirectoryError> {
        let attrs = vec![
            ("objectClass", HashSet::from(["organizationalUnit"])),
            ("ou", HashSet::from(["people"])),
        ];
        match self
            .ldap()
            .add(&self.people_base(), attrs)
            .await
            .and_then(|r| r.success())
        {
            Ok(_)
            | Err(LdapError::LdapResult {
                result:
                    ldap3::LdapResult {
                        rc: ALREADY_EXISTS, ..
                    },
            }) => Ok(()),
            Err(e) => Err(ldap_err(&format!("creating {}", self.people_base()))(e)),
        }
    }

    fn user_dn(&self, uid: &str) -> String {
        format!("uid={},{}", escape_dn_value(uid), self.people_base())
    }

    /// Whether `uid` may log into `host` in `zone`, decided by the directory with the
    /// very filter the host runs. A user that does not exist is an error
    /// ([`DirectoryError::NoUser`]), not a "no".
    pub async fn check(
        &self,
        uid: &str,
        host: &Hostname,
        zone: &Zone,
    ) -> Result<bool, DirectoryError> {
        cerveza_core::access::check_user(uid).map_err(|e| DirectoryError::Ldap {
            op: "check".into(),
            message: e.to_string(),
            code: None,
        })?;
        let filter = format!(
            "(&(objectClass=posixAccount)(uid={}){})",
            escape_filter_value(uid),
            pam_filter(host, zone)
        );
        if !self
            .search(&self.people_base(), &filter, &["uid"])
            .await?
            .is_empty()
        {
            return Ok(true);
        }
        self.user_entry(uid).await.map(|_| false)
    }
}

#[async_trait]
impl DnsRead for Directory {
    async fn records(&self, product: &Product) -> ProviderResult<Vec<DnsRecord>> {
        let p = escape_filter_value(product.as_str());
        let filter = format!("(&(objectClass=dNSDomain2)(aRecord=*)(|(associatedDomain=*.{p}.private)(associatedDomain=*.{p}.public)))");
        let entries = self
            .search(&self.dns_base(), &filter, &["associatedDomain", "aRecord"])
            .await?;
        let mut out = Vec::new();
        for e in entries {
            let names = e.attrs.get("associatedDomain").cloned().unwrap_or_default();
            let addrs: Vec<IpAddr> = e
                .attrs
                .get("aRecord")
                .into_iter()
                .flatten()
                .filter_map(|a| a.parse().ok())
                .collect();
            for name in &names {
                for a in &addrs {
                    out.push(DnsRecord {
                        name: name.clone(),
                        address: *a,
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl Dns for Directory {
    async fn upsert(&self, product: &Product, record: &DnsRecord) -> ProviderResult<()> {
        let zone = if record.name.ends_with(".public") {
            format!("{product}.public")
        } else {
            format!("{product}.private")
        };
        self.ensure_zone(&zone).await?;
        let dn = self.name_dn(&record.name);
        let addr = record.address.to_string();
        let label = record
            .name
            .split('.')
            .next()
            .unwrap_or(&record.name)
            .to_owned();
        let attrs = vec![
            (
                "objectClass",
                HashSet::from(["dNSDomain2", "domainRelatedObject"]),
            ),
            ("dc", HashSet::from([label.as_str()])),
            ("associatedDomain", HashSet::from([record.name.as_str()])),
            ("aRecord", HashSet::from([addr.as_str()])),
        ];
        match self.ldap().add(&dn, attrs).await.and_then(|r| r.success()) {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result }) if result.rc == ALREADY_EXISTS => self
                .ldap()
                .modify(
                    &dn,
                    vec![Mod::Replace("aRecord", HashSet::from([addr.as_str()]))],
                )
                .await
                .and_then(|r| r.success())
                .map(drop)
                .map_err(|e| ldap_err(&format!("updating {}", record.name))(e).into()),
            Err(e) => Err(ldap_err(&format!("adding {}", record.name))(e).into()),
        }
    }

    async fn remove(&self, _product: &Product, name: &str) -> ProviderResult<()> {
        match self
            .ldap()
            .delete(&self.name_dn(name))
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result }) if result.rc == NO_SUCH_OBJECT => Ok(()),
            Err(e) => Err(ldap_err(&format!("removing {name}"))(e).into()),
        }
    }
}
