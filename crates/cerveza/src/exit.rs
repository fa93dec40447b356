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
/// Some hosts or regions failed, others worked.
pub const PARTIAL: u8 = 5;
/// A service was unreachable or a wait timed out.
pub const UNAVAILABLE: u8 = 6;

/// The exit code for an error kind.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Conflict => CONFLICT,
        ErrorKind::Unavailable => UNAVAILABLE,
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

/// The exit code for any error reaching `main`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            return for_kind(e.kind());
        }
        if cause.is::<NameError>()
            || cause.is::<cerveza_core::selection::SelectionError>()
            || cause.is::<crate::commands::ProfilesInvalid>()
            || cause.is::<cerveza_core::access::AccessError>()
        {
            return USAGE;
        }
        if let Some(d) = cause.downcast_ref::<cerveza_directory::DirectoryError>() {
            return match d {
                cerveza_directory::DirectoryError::NoUser(_) => NOT_FOUND,
                cerveza_directory::DirectoryError::Unreachable { .. } => UNAVAILABLE,
                cerveza_directory::DirectoryError::Ldap { .. } => FAILURE,
            };
        }
        if let Some(p) = cause.downcast_ref::<ProfileError>() {
            return match p {
                ProfileError::Unknown { .. } => NOT_FOUND,
                _ => USAGE,
            };
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
