//! The workflows' error type and the broad kinds the CLI maps to exit codes.

use crate::names::NameError;
use crate::ports::{ProviderError, ProviderErrorKind};
use crate::profile::ProfileError;
use crate::selection::SelectionError;

/// What went wrong in a workflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name failed validation.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A selection failed to parse.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// A profile problem.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The request cannot be carried out as given (missing `--profile`, wrong zone, …).
    #[error("{host}: {message}")]
    Usage {
        /// The host.
        host: String,
        /// What to do instead.
        message: String,
    },
    /// No such host.
    #[error("{host}: {message}")]
    NotFound {
        /// The host.
        host: String,
        /// Details and a hint.
        message: String,
    },
    /// Another operator (or a stray instance) got in the way.
    #[error("{host}: {message}")]
    Conflict {
        /// The host.
        host: String,
        /// What conflicts.
        message: String,
    },
    /// The host is in a state where the action makes no sense, or the instance is not ours.
    #[error("{host}: {message}")]
    Refused {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
    /// Waiting for a state took longer than allowed.
    #[error("{host}: {id} did not become {target} within {seconds}s (last seen {last})")]
    Timeout {
        /// The host.
        host: String,
        /// The instance.
        id: String,
        /// The state waited for.
        target: String,
        /// The last state seen.
        last: String,
        /// The limit.
        seconds: u64,
    },
    /// The cloud refused for capacity, an account quota, or what a zone or an image
    /// offers: this host failed, with EC2's words and what to do; the others go on.
    #[error("{context}: {}", with_hint(source, hint))]
    CloudRefused {
        /// What cerveza was doing.
        context: String,
        /// The cloud's error.
        #[source]
        source: ProviderError,
        /// What to do about it.
        hint: String,
    },
    /// A backend call failed.
    #[error("{context}")]
    Provider {
        /// What cerveza was doing.
        context: String,
        /// The backend's error.
        #[source]
        source: ProviderError,
    },
}

/// The cloud's words, then cerveza's hint as a sentence of its own.
fn with_hint(source: &ProviderError, hint: &str) -> String {
    let said = source.to_string();
    let stop = if said.ends_with('.') { "" } else { "." };
    let mut chars = hint.chars();
    let hint = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{said}{stop} Hint: {hint}")
}

/// The broad kind of an [`Error`], for exit codes and summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or a request that needs other arguments.
    Usage,
    /// Something named does not exist.
    NotFound,
    /// Lost a race or found something in the way.
    Conflict,
    /// A service could not be reached or timed out.
    Unavailable,
    /// No capacity or quota for it where it was asked: another zone, type or a raised
    /// quota may work.
    Capacity,
    /// Anything else.
    Failed,
}

impl Error {
    /// The kind, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Profile(p) => p.kind(),
            Error::Name(_) | Error::Selection(_) | Error::Usage { .. } => ErrorKind::Usage,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Refused { .. } => ErrorKind::Failed,
            Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::CloudRefused { .. } => ErrorKind::Capacity,
            Error::Provider { source, .. } => match source.kind {
                ProviderErrorKind::NotFound => ErrorKind::NotFound,
                ProviderErrorKind::Conflict => ErrorKind::Conflict,
                ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable => {
                    ErrorKind::Unavailable
                }
                ProviderErrorKind::Invalid => ErrorKind::Usage,
                ProviderErrorKind::Capacity => ErrorKind::Capacity,
                ProviderErrorKind::Denied | ProviderErrorKind::Other => ErrorKind::Failed,
            },
        }
    }
}

/// Adds "what cerveza was doing" to backend errors.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, ProviderError> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| match capacity_hint(&source) {
            Some(hint) => Error::CloudRefused {
                context: what(),
                source,
                hint: hint.to_owned(),
            },
            None => Error::Provider {
                context: what(),
                source,
            },
        })
    }
}

/// What to do when EC2 refuses for capacity or a quota, by its error code; `None` for
/// any other error. The quota codes are Service Quotas' (`aws service-quotas
/// get-service-quota --service-code ec2 --quota-code L-…`).
pub fn capacity_hint(e: &ProviderError) -> Option<&'static str> {
    if e.kind != ProviderErrorKind::Capacity {
        return None;
    }
    let hints: [(&str, &str); 7] = [
        (
            "InsufficientInstanceCapacity",
            "EC2 has no capacity for this instance type in this zone now: try again later, or in another zone (`--zone`; a host that never got an instance may move) or with another instance type",
        ),
        (
            "Unsupported",
            "this zone does not offer the instance type: pick a zone that does (`aws ec2 describe-instance-type-offerings --location-type availability-zone --filters Name=instance-type,Values=TYPE`)",
        ),
        (
            "VcpuLimitExceeded",
            "the account's vCPU quota for this instance family in the region is used up: stop hosts you do not need, or raise the quota (Service Quotas, EC2 \"Running On-Demand Standard instances\", L-1216C47A)",
        ),
        (
            "InstanceLimitExceeded",
            "the account's instance quota in the region is used up: stop hosts you do not need, or raise the quota in Service Quotas",
        ),
        (
            "VolumeLimitExceeded",
            "the account's EBS storage quota for this volume type in the region is used up: delete volumes you do not need, or raise the quota (Service Quotas, Amazon Elastic Block Store)",
        ),
        (
            "AddressLimitExceeded",
            "the account's Elastic IP quota in the region is used up: release addresses you do not need (`aws ec2 describe-addresses` shows those associated with nothing), or raise the quota (Service Quotas, EC2 \"EC2-VPC Elastic IPs\", L-0263D0A3)",
        ),
        (
            "InsufficientAddressCapacity",
            "EC2 has no Elastic IP addresses to give in the region now: try again later",
        ),
    ];
    Some(
        hints
            .iter()
            .find(|(code, _)| e.has_code(code))
            .map(|(_, hint)| *hint)
            .unwrap_or("EC2 refused for capacity or an account quota: try another zone or instance type, or raise the quota in Service Quotas"),
    )
}
