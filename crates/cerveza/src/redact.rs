//! Log output with secrets taken out.
//!
//! At `-vvv` the AWS SDK traces the credentials it resolved (the secret key is already
//! redacted, the access key id is not) and a future dependency might print more. Every
//! log record passes through [`Redacting`], which replaces each known secret (AWS
//! access key id, secret key, session token, the LDAP bind password) before it reaches
//! stderr.

use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const REDACTED: &str = "** redacted **";

/// Adds a value that must never be logged (too short values are ignored: replacing
/// every `a` would make logs unreadable, and a 3-character secret is no secret).
pub fn add_secret(value: &str) {
    let value = value.trim();
    if value.len() >= 4 {
        let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
        if !s.iter().any(|v| v == value) {
            s.push(value.to_owned());
            // Longest first, so a secret that contains another is replaced whole.
            s.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }
}

/// Registers the secrets found in the environment.
pub fn add_env_secrets() {
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "CERVEZA_LDAP_PASSWORD",
    ] {
        if let Ok(v) = std::env::var(var) {
            add_secret(&v);
        }
    }
}

/// `text` with every registered secret replaced.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

/// A [`MakeWriter`] for stderr that redacts each record.
pub struct Redacting;

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = Record;

    fn make_writer(&'a self) -> Record {
        Record(Vec::new())
    }
}

/// One log record, buffered until it is complete.
pub struct Record(Vec<u8>);

impl Write for Record {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let text = redact(&String::from_utf8_lossy(&self.0));
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_replaced_and_short_values_ignored() {
        add_secret("AKIAEXAMPLEKEY");
        add_secret("AKIAEXAMPLEKEY-and-more");
        add_secret("ab");
        assert_eq!(
            redact("id=AKIAEXAMPLEKEY-and-more key=AKIAEXAMPLEKEY lab"),
            format!("id={REDACTED} key={REDACTED} lab")
        );
    }
}
