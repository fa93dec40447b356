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
    /// The cloud refused for capacity, an account quota, what a zone or an image offers,
    /// or the credentials: this host failed, with the cloud's words and what to do; the
    /// others go on.
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
    /// The credentials could not be loaded, are not valid, or lack a permission: not an
    /// outage, and never taken for one.
    Denied,
    /// Anything else.
    Failed,
}

impl ErrorKind {
    /// The kind of a backend's failure.
    pub fn of_provider(kind: ProviderErrorKind) -> Self {
        match kind {
            ProviderErrorKind::NotFound => ErrorKind::NotFound,
            ProviderErrorKind::Conflict => ErrorKind::Conflict,
            ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable => ErrorKind::Unavailable,
            ProviderErrorKind::Invalid => ErrorKind::Usage,
            ProviderErrorKind::Capacity => ErrorKind::Capacity,
            ProviderErrorKind::Denied => ErrorKind::Denied,
            ProviderErrorKind::Other => ErrorKind::Failed,
        }
    }
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
            // A refusal for capacity at launch may come as InvalidParameterCombination.
            Error::CloudRefused { source, .. } if source.kind == ProviderErrorKind::Denied => {
                ErrorKind::Denied
            }
            Error::CloudRefused { .. } => ErrorKind::Capacity,
            Error::Provider { source, .. } => ErrorKind::of_provider(source.kind),
        }
    }
}

/// Adds "what cerveza was doing" to backend errors.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, ProviderError> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::provider(what(), source))
    }
}

impl Error {
    /// A backend's error with what cerveza was doing, and a hint when the cloud refused
    /// for capacity, a quota or the credentials.
    pub(crate) fn provider(context: String, source: ProviderError) -> Self {
        match hint_for(&source) {
            Some(hint) => Error::CloudRefused {
                context,
                source,
                hint: hint.to_owned(),
            },
            None => Error::Provider { context, source },
        }
    }
}

/// What to do when the cloud refuses for capacity, a quota or the credentials, by its
/// error code; `None` for any other error.
pub fn hint_for(e: &ProviderError) -> Option<&'static str> {
    match e.kind {
        ProviderErrorKind::Capacity => Some(capacity_hint(e)),
        ProviderErrorKind::Denied => Some(credentials_hint(e)),
        _ => None,
    }
}

/// What to do about credentials that could not be loaded, are not valid, or lack a
/// permission.
fn credentials_hint(e: &ProviderError) -> &'static str {
    let code = |codes: &[&str]| codes.iter().any(|c| e.has_code(c));
    if e.message.starts_with("no usable AWS credentials") {
        "configure credentials: `aws configure`, `aws sso login --profile NAME` for IAM Identity Center (then AWS_PROFILE=NAME), or a role on this machine"
    } else if code(&[
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
    ]) {
        "the credentials work but lack a permission this command needs (the message names the action): grant it to the IAM user or role"
    } else if code(&["ExpiredToken", "ExpiredTokenException", "RequestExpired"]) {
        "the session has expired, or this machine's clock is off: renew it (`aws sso login`, new keys) and check the clock"
    } else if code(&["OptInRequired"]) {
        "the region is not enabled for this account: enable it (Account, AWS Regions) or take it out of `regions`"
    } else {
        "AWS does not accept these credentials: check which ones are used (`aws sts get-caller-identity`) and that the key is active"
    }
}

/// What to do when EC2 refuses for capacity or a quota, by its error code. The quota
/// codes are Service Quotas' (`aws service-quotas get-service-quota --service-code ec2
/// --quota-code L-…`).
fn capacity_hint(e: &ProviderError) -> &'static str {
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
    hints
        .iter()
        .find(|(code, _)| e.has_code(code))
        .map(|(_, hint)| *hint)
        .unwrap_or("EC2 refused for capacity or an account quota: try another zone or instance type, or raise the quota in Service Quotas")
}
