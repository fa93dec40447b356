//! Exit codes, and printing an error with its whole cause chain.

use cerveza_core::profile::ProfileError;
use cerveza_core::{Error, ErrorKind, NameError};

/// Everything worked.
pub const OK: u8 = 0;
/// Something failed.
pub const FAILURE: u8 = 1;
/// Bad arguments or invalid input (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// A named host or profile does not exist.
pub const NOT_FOUND: u8 = 3;
/// Another operator or a stray resource got in the way.
pub const CONFLICT: u8 = 4;
/// Some hosts or regions failed, others worked; or the cloud had no capacity or quota
/// for a host where it was asked (another zone, type or a raised quota may work).
pub const PARTIAL: u8 = 5;
/// A service was unreachable or a wait timed out.
pub const UNAVAILABLE: u8 = 6;
/// The AWS credentials could not be loaded, were refused, or lack a permission.
pub const DENIED: u8 = 7;

/// The exit code for an error kind.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Conflict => CONFLICT,
        ErrorKind::Unavailable => UNAVAILABLE,
        ErrorKind::Capacity => PARTIAL,
        ErrorKind::Denied => DENIED,
        ErrorKind::Failed => FAILURE,
    }
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Coded {
    code: u8,
    message: String,
}

impl Coded {
    /// A message with an exit code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// Invalid configuration: a config file, a `CERVEZA_*` variable or a file they name.
/// Wrapped around everything [`crate::config::Config::load`] reports, so every command
/// exits with [`USAGE`] for it, as clap does for a bad flag.
#[derive(Debug)]
pub struct InvalidConfig(pub anyhow::Error);

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for InvalidConfig {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The kind of one error in a chain, when cerveza knows it. This is the one mapping from
/// error types to kinds; [`code_of`] turns the first known kind into the exit code.
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use cerveza_directory::DirectoryError;
    if let Some(e) = cause.downcast_ref::<Error>() {
        return Some(e.kind());
    }
    if let Some(p) = cause.downcast_ref::<ProfileError>() {
        return Some(p.kind());
    }
    if let Some(p) = cause.downcast_ref::<cerveza_core::ports::ProviderError>() {
        return Some(ErrorKind::of_provider(p.kind));
    }
    if let Some(d) = cause.downcast_ref::<DirectoryError>() {
        return Some(match d {
            DirectoryError::NoUser(_) => ErrorKind::NotFound,
            DirectoryError::UserExists(_) => ErrorKind::Conflict,
            DirectoryError::Unreachable { .. } => ErrorKind::Unavailable,
            DirectoryError::Ldap { .. } => ErrorKind::Failed,
        });
    }
    let invalid = cause.is::<InvalidConfig>()
        || cause.is::<NameError>()
        || cause.is::<cerveza_core::selection::SelectionError>()
        || cause.is::<crate::commands::ProfilesInvalid>()
        || cause.is::<cerveza_core::access::AccessError>()
        || cause.is::<cerveza_userdata::UserDataError>()
        || cause.is::<clap::Error>();
    invalid.then_some(ErrorKind::Usage)
}

/// The exit code for any error reaching `main`: the first cause that carries a code or
/// a known kind decides; anything else is a plain failure.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(kind) = kind_of(cause) {
            return for_kind(kind);
        }
    }
    FAILURE
}

/// An error and its causes on one line: `a: b: c` (repeats left out).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_known_cause_decides_the_code() {
        let config = anyhow::Error::new(InvalidConfig(anyhow::anyhow!("bad value")));
        assert_eq!(code_of(&config), USAGE);
        let unknown = anyhow::Error::new(ProfileError::Unknown {
            name: "Wbe".into(),
            suggestions: vec!["Web".into()],
            known: 1,
        });
        assert_eq!(code_of(&unknown), NOT_FOUND);
        // A code given on purpose wins over the kind of what it wraps.
        let coded = anyhow::Error::new(Coded::new(CONFLICT, "taken")).context("starting");
        assert_eq!(code_of(&coded), CONFLICT);
        assert_eq!(code_of(&anyhow::anyhow!("something else")), FAILURE);
        // A backend's error outside the workflows decides by its kind: credentials are
        // their own code, never an outage.
        let denied = anyhow::Error::new(cerveza_core::ports::ProviderError::new(
            cerveza_core::ports::ProviderErrorKind::Denied,
            "AuthFailure: AWS was not able to validate the provided access credentials",
        ))
        .context("listing us-east-1");
        assert_eq!(code_of(&denied), DENIED);
    }
}
