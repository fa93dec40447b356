//! cloud-init user-data for Cerveza hosts.
//!
//! The paper: "By passing a list of files, Cerveza will automatically concat all the
//! given file to generate a compressed mime-multipart data file and pass it in the
//! user-data when launching the instance."
//!
//! [`CloudInit`] builds, for one host, the ordered parts:
//! 1. the profile's `user-data:` files, in order. A file whose first line is
//!    `## template: jinja` is rendered here (strict: an unknown variable is an error) with
//!    the host's variables, and that line is removed so cloud-init does not render it
//!    again. The type comes from the first line as cloud-init detects it, or from the
//!    profile's `type:`;
//! 2. cerveza's own parts, each switchable: hostname and fqdn (`/etc/hosts`), the
//!    resolver of the paper (`options attempts:1 timeout:1`), and puppet run from cron at a
//!    minute derived from the hostname. They come last and merge with `list(append)` and
//!    `dict(no_replace)`, so they never clobber what a profile file sets.
//!
//! The parts become one MIME multipart, gzip-compressed; the result must fit EC2's
//! 16,384 bytes, or the error lists every part with its size.

pub mod mime;
pub mod volumes;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cerveza_core::ports::{HostContext, UserDataSource};
use cerveza_core::profile::VolumeProfile;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

pub use mime::decode;

/// EC2's limit on user-data, in bytes, before base64.
pub const MAX_USER_DATA: usize = 16_384;

/// Largest user-data file read.
const MAX_FILE: u64 = 256 * 1024;

/// One part of a multipart user-data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// File name shown to cloud-init (`Content-Disposition`).
    pub name: String,
    /// MIME type (`text/cloud-config`, `text/x-shellscript`, …).
    #[serde(rename = "type")]
    pub content_type: String,
    /// The content.
    pub body: String,
}

/// What went wrong building user-data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// A file could not be read.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A template could not be rendered.
    #[error("{file}: {message}")]
    Template {
        /// The file.
        file: String,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A part that cloud-init would ignore or reject.
    #[error("{file}: {message}")]
    Rejected {
        /// The part's name.
        file: String,
        /// Why cloud-init would not take it.
        message: String,
    },
    /// The compressed blob is larger than EC2 takes.
    #[error("user-data is {size} bytes compressed, over EC2's limit of {MAX_USER_DATA}; parts (uncompressed):\n{listing}")]
    TooLarge {
        /// Compressed size.
        size: usize,
        /// Every part with its size.
        listing: String,
    },
    /// Settings that cannot work.
    #[error("{0}")]
    Config(String),
    /// A blob that is not what cerveza writes.
    #[error("cannot decode user-data: {0}")]
    Decode(String),
}

/// cloud-init's types by first line, longest prefix first (as `type_from_starts_with`).
const STARTS_WITH: &[(&str, &str)] = &[
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("## template: jinja", "text/jinja2"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#cloud-config", "text/cloud-config"),
    ("#part-handler", "text/part-handler"),
    ("#upstart-job", "text/upstart-job"),
    ("#include", "text/x-include-url"),
    ("#!", "text/x-shellscript"),
];

/// The type cloud-init gives content from its first characters (case-insensitive,
/// leading white space ignored), if any.
pub fn detect_type(body: &str) -> Option<&'static str> {
    let start: String = body
        .trim_start()
        .chars()
        .take(32)
        .collect::<String>()
        .to_lowercase();
    STARTS_WITH
        .iter()
        .find(|(prefix, _)| start.starts_with(prefix))
        .map(|(_, t)| *t)
}

/// Which of cerveza's own parts to add, and their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Set hostname, fqdn and `/etc/hosts`.
    pub hostname: bool,
    /// Write `/etc/resolv.conf` as in the paper (needs `nameservers`).
    pub resolv_conf: bool,
    /// Resolver addresses.
    pub nameservers: Vec<String>,
    /// Install puppet and run it from cron twice an hour.
    pub puppet: bool,
    /// The puppet master; `puppet.<product>.private` when unset.
    pub puppet_server: Option<String>,
    /// Configure the host's LDAP client (nslcd) with its pam filter.
    pub ldap_client: Option<LdapClient>,
}

/// The LDAP client a host gets: who may log in is decided by its pam filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapClient {
    /// Server URIs, space-separated, tried in order; `ldaps://ldap.<product>.private`
    /// when unset (the paper).
    pub uri: Option<String>,
    /// Base DN of the directory.
    pub base: String,
}

impl LdapClient {
    /// The URIs a host of `product` gets, in order.
    pub fn uris(&self, product: &str) -> Vec<String> {
        match &self.uri {
            Some(u) => u.split_whitespace().map(str::to_owned).collect(),
            None => vec![format!("ldaps://ldap.{product}.private")],
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hostname: true,
            resolv_conf: false,
            nameservers: Vec::new(),
            puppet: true,
            puppet_server: None,
            ldap_client: None,
        }
    }
}

impl Settings {
    /// Checks values that end up in generated files.
    pub fn validate(&self) -> Result<(), UserDataError> {
        if self.resolv_conf && self.nameservers.is_empty() {
            return Err(UserDataError::Config(
                "resolv-conf is on but no nameservers are set (userdata.nameservers in the config file)".into(),
            ));
        }
        for ns in &self.nameservers {
            if ns.parse::<std::net::IpAddr>().is_err() {
                return Err(UserDataError::Config(format!(
                    "nameserver {ns:?} is not an IP address"
                )));
            }
        }
        if let Some(s) = &self.puppet_server {
            let ok = !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !s.starts_with(['-', '.']);
            if !ok {
                return Err(UserDataError::Config(format!(
                    "puppet server {s:?} is not a host name"
                )));
            }
        }
        if let Some(l) = &self.ldap_client {
            let one_line = |what: &str, v: &str| {
                if v.is_empty() || v.chars().any(|c| c.is_control() || c == '\'' || c == '"') {
                    Err(UserDataError::Config(format!(
                        "LDAP client {what} {v:?} must be one line without quotes"
                    )))
                } else {
                    Ok(())
                }
            };
            one_line("base", &l.base)?;
            if let Some(u) = &l.uri {
                one_line("uri", u)?;
                // Several servers, space-separated, as nslcd's `uri` takes them.
                for one in u.split_whitespace() {
                    if !(one.starts_with("ldap://") || one.starts_with("ldaps://")) {
                        return Err(UserDataError::Config(format!(
                            "LDAP client uri {one:?} must start with ldap:// or ldaps://"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The minute past the hour (0-29) at which a host runs puppet, again 30 minutes later.
/// Derived from the hostname: stable across restarts, spread over the half hour so the
/// puppet master sees no peak (the paper's "random minutes"). Numbered hosts of one
/// name (`web01` … `web30`) step 7 minutes apart from a start their name picks, so up
/// to 30 of them never share a minute (`cerveza doctor` checks that); other names are
/// spread by their hash.
pub fn puppet_minute(host: &str) -> u32 {
    // FNV-1a: tiny, stable, and good enough to spread names.
    let fnv = |s: &str| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let stem = host.trim_end_matches(|c: char| c.is_ascii_digit());
    match host[stem.len()..].parse::<u64>() {
        // 7 and 30 share no factor: n = 1..30 gives 30 different minutes.
        Ok(n) if !stem.is_empty() => ((fnv(stem) + n % 30 * 7) % 30) as u32,
        _ => (fnv(host) % 30) as u32,
    }
}

/// How cerveza's own cloud-config parts merge with the profile's.
const MERGE_HOW: &str = "merge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [no_replace, recurse_list]\n";

/// The result of a build: the parts, the multipart text and the compressed blob.
#[derive(Debug, Clone)]
pub struct Built {
    /// The parts, in order.
    pub parts: Vec<Part>,
    /// The MIME multipart document.
    pub mime: String,
    /// gzip of `mime`: what EC2 gets.
    pub gzip: Vec<u8>,
}

/// Builds user-data for hosts from their profile and [`Settings`].
#[derive(Debug, Clone, Default)]
pub struct CloudInit {
    settings: Settings,
}

/// The variables a template may use.
fn variables(ctx: &HostContext<'_>) -> BTreeMap<&'static str, minijinja::Value> {
    let p = ctx.profile;
    let region = ctx.zone.region();
    let v = |s: &str| minijinja::Value::from(s);
    BTreeMap::from([
        ("hostname", v(ctx.host.as_str())),
        ("fqdn", v(&ctx.host.fqdn(ctx.product))),
        ("group", v(ctx.host.group().as_str())),
        ("zone", v(ctx.zone.as_str())),
        ("region", v(region.as_str())),
        ("product", v(ctx.product.as_str())),
        ("private_domain", v(&ctx.product.private_domain())),
        ("public_domain", v(&format!("{}.public", ctx.product))),
        ("profile", v(p.name.as_str())),
        ("instance_type", v(&p.instance_type)),
        ("ami", v(p.ami_for(&region).unwrap_or(""))),
        (
            "security_groups",
            minijinja::Value::from_serialize(&p.security_groups),
        ),
        ("tags", minijinja::Value::from_serialize(&p.tags)),
    ])
}

/// Renders a `## template: jinja` file; other files are returned as they are.
fn render(file: &str, text: &str, ctx: &HostContext<'_>) -> Result<String, UserDataError> {
    let Some(first) = text.lines().next() else {
        return Ok(text.to_owned());
    };
    if !first
        .trim()
        .to_lowercase()
        .starts_with("## template: jinja")
    {
        return Ok(text.to_owned());
    }
    let source = text.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    let err = |message: String| UserDataError::Template {
        file: file.to_owned(),
        message,
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| err(describe(&e)))?;
    let vars = variables(ctx);
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !vars.contains_key(v.as_str()))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(err(format!(
            "unknown template variable(s) {}; known: {}",
            unknown.join(", "),
            vars.keys().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    tmpl.render(&vars).map_err(|e| err(describe(&e)))
}

/// A minijinja error with its line (counted in the file, header line included).
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(l) => format!(
            "line {}: {}",
            l + 1,
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

/// Checks what cloud-init needs of a part.
fn check_part(part: &Part) -> Result<(), UserDataError> {
    let reject = |message: String| {
        Err(UserDataError::Rejected {
            file: part.name.clone(),
            message,
        })
    };
    if part.body.trim().is_empty() {
        return reject("the file is empty".into());
    }
    if part.content_type == "text/cloud-config" {
        match yaml_serde::from_str::<yaml_serde::Value>(&part.body) {
            Ok(yaml_serde::Value::Mapping(_)) => {}
            Ok(_) => return reject("cloud-config must be a YAML mapping (key: value)".into()),
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("line {}: ", l.line()))
                    .unwrap_or_default();
                return reject(format!("cloud-config is not valid YAML: {at}{e}"));
            }
        }
    }
    Ok(())
}

impl CloudInit {
    /// A builder with these settings.
    pub fn new(settings: Settings) -> Result<Self, UserDataError> {
        settings.validate()?;
        Ok(Self { settings })
    }

    /// The parts for one host, in order, checked.
    pub fn parts(&self, ctx: &HostContext<'_>) -> Result<Vec<Part>, UserDataError> {
        let mut parts = Vec::new();
        for f in &ctx.profile.user_data {
            let shown = f.path.display().to_string();
            let file_err = |message: String| UserDataError::File {
                file: shown.clone(),
                message,
            };
            let meta = std::fs::metadata(&f.path).map_err(|e| file_err(e.to_string()))?;
            if meta.len() > MAX_FILE {
                return Err(file_err(format!(
                    "{} bytes is more than a user-data file may have ({MAX_FILE})",
                    meta.len()
                )));
            }
            let bytes = std::fs::read(&f.path).map_err(|e| file_err(e.to_string()))?;
            if bytes.contains(&0) {
                return Err(file_err(
                    "binary file (it holds NUL bytes); user-data files are text".into(),
                ));
            }
            let text = String::from_utf8(bytes).map_err(|_| file_err("not UTF-8 text".into()))?;
            let body = render(&shown, &text, ctx)?;
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| shown.clone());
            let content_type = match (&f.content_type, detect_type(&body)) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => t.to_owned(),
                (None, None) => {
                    let first = body
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(40)
                        .collect::<String>();
                    return Err(UserDataError::Rejected {
                        file: shown,
                        message: format!(
                            "cloud-init would ignore it: its first line {first:?} names no type (#!, #cloud-config, #include, #cloud-boothook, …); start it with one or set `type:` in the profile"
                        ),
                    });
                }
            };
            let part = Part {
                name,
                content_type,
                body,
            };
            check_part(&part)?;
            parts.push(part);
        }
        parts.extend(self.own_parts(ctx));
        for vp in ctx.volumes {
            parts.push(Part {
                name: format!("cerveza-volumes-{}.sh", vp.name),
                content_type: "text/cloud-boothook".into(),
                body: volumes::script(vp),
            });
        }
        if !ctx.volumes.is_empty() {
            parts.push(Self::volumes_config(ctx.volumes));
        }
        Ok(parts)
    }

    /// Cerveza's own parts for a host.
    pub fn own_parts(&self, ctx: &HostContext<'_>) -> Vec<Part> {
        let s = &self.settings;
        let (host, product) = (ctx.host.as_str(), ctx.product.as_str());
        let fqdn = ctx.host.fqdn(ctx.product);
        let cloud_config = |name: &str, body: String| Part {
            name: name.to_owned(),
            content_type: "text/cloud-config".into(),
            body: format!("#cloud-config\n{body}{MERGE_HOW}"),
        };
        let mut parts = Vec::new();
        if s.hostname {
            parts.push(cloud_config(
                "cerveza-hostname.cfg",
                format!("# cerveza: {host} of product {product}\nhostname: {host}\nfqdn: {fqdn}\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: true\n"),
            ));
        }
        if s.resolv_conf {
            let mut b = String::from("# cerveza: short timeouts, one attempt (the paper's outage lesson)\nmanage_resolv_conf: true\nresolv_conf:\n  nameservers:\n");
            for ns in &s.nameservers {
                let _ = writeln!(b, "    - {ns}");
            }
            let _ = write!(
                b,
                "  searchdomains:\n    - {product}.private\n    - {product}.public\n  domain: {product}.private\n  options:\n    attempts: 1\n    timeout: 1\n"
            );
            parts.push(cloud_config("cerveza-resolv.cfg", b));
        }
        if s.puppet {
            let server = s
                .puppet_server
                .clone()
                .unwrap_or_else(|| format!("puppet.{product}.private"));
            let m = puppet_minute(host);
            parts.push(cloud_config(
                "cerveza-puppet.cfg",
                format!(
                    "# cerveza: puppet from cron twice an hour, not as a daemon (the paper)\npuppet:\n  install: true\n  start_service: false\n  conf:\n    agent:\n      server: {server}\n      certname: {fqdn}\nwrite_files:\n  - path: /etc/cron.d/cerveza-puppet\n    permissions: '0644'\n    content: |\n      # minute {m} derived from the hostname, spreading hosts over the half hour\n      {m},{m30} * * * * root /usr/bin/puppet agent --onetime --no-daemonize --logdest syslog >/dev/null 2>&1\n",
                    m30 = m + 30
                ),
            ));
        }
        if let Some(l) = &s.ldap_client {
            let uri = l.uris(product).join(" ");
            let filter = cerveza_core::access::pam_filter(ctx.host, ctx.zone);
            parts.push(cloud_config(
                "cerveza-ldap.cfg",
                format!(
                    "# cerveza: LDAP logins for the users granted this host; local accounts first and\n# short timeouts, so a directory outage never locks anyone out (the paper)\npackages:\n  - nslcd\n  - libnss-ldapd\n  - libpam-ldapd\nwrite_files:\n  - path: /etc/nslcd.conf\n    permissions: '0640'\n    content: |\n      uid nslcd\n      gid nslcd\n      uri {uri}\n      base {base}\n      tls_reqcert demand\n      tls_cacertfile /etc/ssl/certs/ca-certificates.crt\n      bind_timelimit 3\n      timelimit 5\n      idle_timelimit 60\n      reconnect_sleeptime 1\n      reconnect_retrytime 10\n      nss_initgroups_ignoreusers ALLLOCAL\n      pam_authz_search (&(objectClass=posixAccount)(uid=$username){filter})\nruncmd:\n  - [sed, -i, -E, 's/^(passwd|group|shadow):.*/\\1: files ldap/', /etc/nsswitch.conf]\n  - [systemctl, restart, nslcd]\n",
                    base = l.base
                ),
            ));
        }
        parts
    }

    /// The first boot's half of the volume parts: the tools the assembler needs, then its
    /// units started once more (they may have waited for those tools).
    fn volumes_config(vps: &[VolumeProfile]) -> Part {
        let mut packages: Vec<&str> = vps.iter().flat_map(volumes::packages).collect();
        packages.sort_unstable();
        packages.dedup();
        let mut body = String::from(
        "#cloud-config\n# cerveza: the tools that find and assemble EBS volumes (NVMe on Nitro instances)\npackages:\n",
    );
        for p in packages {
            let _ = writeln!(body, "  - {p}");
        }
        body.push_str("runcmd:\n");
        for vp in vps {
            let _ = writeln!(
                body,
                "  - [systemctl, --no-block, start, {}]",
                volumes::unit_instance(vp)
            );
        }
        body.push_str(MERGE_HOW);
        Part {
            name: "cerveza-volumes.cfg".into(),
            content_type: "text/cloud-config".into(),
            body,
        }
    }

    /// The parts, multipart and gzip for a host; errors when over [`MAX_USER_DATA`].
    pub fn build(&self, ctx: &HostContext<'_>) -> Result<Built, UserDataError> {
        let parts = self.parts(ctx)?;
        let mime = mime::multipart(&parts);
        let gzip = mime::gzip(mime.as_bytes());
        if gzip.len() > MAX_USER_DATA {
            let mut listing = String::new();
            for p in &parts {
                let _ = writeln!(
                    listing,
                    "  {:>8} bytes  {:<26} {}",
                    p.body.len(),
                    p.content_type,
                    p.name
                );
            }
            let _ = write!(
                listing,
                "  {:>8} bytes  multipart, {} compressed",
                mime.len(),
                gzip.len()
            );
            return Err(UserDataError::TooLarge {
                size: gzip.len(),
                listing,
            });
        }
        Ok(Built { parts, mime, gzip })
    }
}

impl UserDataSource for CloudInit {
    fn user_data(&self, host: &HostContext<'_>) -> Result<Option<Vec<u8>>, String> {
        self.build(host)
            .map(|b| Some(b.gzip))
            .map_err(|e| e.to_string())
    }
}
