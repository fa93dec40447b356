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
            Error::Provider { source, .. } => match source.kind {
                ProviderErrorKind::NotFound => ErrorKind::NotFound,
                ProviderErrorKind::Conflict => ErrorKind::Conflict,
                ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable => {
                    ErrorKind::Unavailable
                }
                ProviderErrorKind::Invalid => ErrorKind::Usage,
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
        self.map_err(|source| Error::Provider {
            context: what(),
            source,
        })
    }
}
