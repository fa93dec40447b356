//! SDK errors to [`ProviderError`]s, keeping the service's code and message.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cerveza_core::ports::{ProviderError, ProviderErrorKind};

/// The kind of an AWS error code.
fn kind_of(code: &str) -> ProviderErrorKind {
    use ProviderErrorKind::*;
    match code {
        c if c.ends_with(".NotFound") || c == "ResourceNotFoundException" => NotFound,
        "ConditionalCheckFailedException" | "TransactionConflictException" => Conflict,
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "ProvisionedThroughputExceededException"
        | "RequestThrottled" => Throttled,
        "UnauthorizedOperation"
        | "AuthFailure"
        | "AccessDenied"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "OptInRequired" => Denied,
        "ServiceUnavailable" | "InternalError" | "InternalFailure" | "Unavailable" => Unavailable,
        // Capacity (EC2 sends these with HTTP 500, but asking again at once does not help)
        // and account quotas; `RequestLimitExceeded` is throttling, above.
        "Unsupported" | "MaxSpotInstanceCountExceeded" => Capacity,
        c if c.starts_with("Insufficient") && c.ends_with("Capacity") => Capacity,
        c if c.ends_with("LimitExceeded") => Capacity,
        c if c.starts_with("Invalid")
            || c.starts_with("Missing")
            || c.starts_with("Unsupported")
            || c.contains("Malformed")
            || c == "IncorrectInstanceState"
            || c == "ValidationException" =>
        {
            Invalid
        }
        _ => Other,
    }
}

/// The innermost cause's text ("Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Whether a credentials provider's error is in `err`'s chain: no credentials could be
/// loaded (an expired SSO session, a failing `credential_process`, none configured).
fn credentials_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A variable of the environment, when set and not empty.
pub(crate) fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Where the SDK takes credentials from, as far as the environment says.
pub(crate) enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` (the key id).
    Environment(String),
    /// `AWS_PROFILE` (its name).
    Profile(String),
    /// The default profile, or the instance's role.
    Default,
}

impl CredentialSource {
    pub(crate) fn current() -> Self {
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_PROFILE")) {
            (Some(key), _) => Self::Environment(key),
            (None, Some(profile)) => Self::Profile(profile),
            (None, None) => Self::Default,
        }
    }

    /// In words, for credential errors (the key id is not shown).
    fn describe(&self) -> String {
        match self {
            Self::Environment(_) => "the environment (AWS_ACCESS_KEY_ID)".to_owned(),
            Self::Profile(p) => format!("profile {p:?} (AWS_PROFILE)"),
            Self::Default => "the default profile, or the instance's role".to_owned(),
        }
    }
}

/// Converts any SDK error, keeping it as the source.
pub(crate) fn provider_error<E, R>(err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // A request that never left: unreachable (I/O, timeout), or no credentials to sign
    // it with; the latter is not an outage, and must never be taken for one.
    let unsent_kind = match &err {
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            Some(ProviderErrorKind::Unavailable)
        }
        SdkError::DispatchFailure(_) if credentials_failed(&err) => Some(ProviderErrorKind::Denied),
        SdkError::DispatchFailure(_) => Some(ProviderErrorKind::Other),
        SdkError::TimeoutError(_) => Some(ProviderErrorKind::Unavailable),
        _ => None,
    };
    let kind =
        unsent_kind.unwrap_or_else(|| err.code().map(kind_of).unwrap_or(ProviderErrorKind::Other));
    let message = match (&err, err.code(), err.message()) {
        (SdkError::TimeoutError(_), _, _) => "no answer in time (timeout)".to_owned(),
        (SdkError::DispatchFailure(_), _, _) => match kind {
            ProviderErrorKind::Unavailable => {
                format!("cannot reach the endpoint: {}", root_cause(&err))
            }
            ProviderErrorKind::Denied => format!(
                "no usable AWS credentials from {}: {}",
                CredentialSource::current().describe(),
                root_cause(&err)
            ),
            _ => format!("the request could not be sent: {}", root_cause(&err)),
        },
        (_, Some(c), Some(m)) => format!("{c}: {m}"),
        (_, Some(c), None) => c.to_owned(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    // A connection error's message already names its root cause, and a service
    // error's its code and message; their source chains would only repeat them.
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => None,
        SdkError::ServiceError(_) if err.code().is_some() => None,
        other => Some(Box::new(other)),
    };
    ProviderError {
        kind,
        message,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_requests_are_unreachable_only_when_the_connection_failed() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        use aws_smithy_runtime_api::http::Response;
        type E =
            SdkError<aws_sdk_ec2::operation::describe_instances::DescribeInstancesError, Response>;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let down: E = SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let e = provider_error(down);
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert!(
            e.message.starts_with("cannot reach the endpoint: refused"),
            "{}",
            e.message
        );
        let creds: E = SdkError::dispatch_failure(ConnectorError::other(
            Box::new(CredentialsError::provider_error(
                "the SSO session has expired; run `aws sso login`",
            )),
            None,
        ));
        let e = provider_error(creds);
        assert_eq!(e.kind, ProviderErrorKind::Denied, "{}", e.message);
        assert!(
            e.message.starts_with("no usable AWS credentials from "),
            "{}",
            e.message
        );
        assert!(e.message.contains("aws sso login"), "{}", e.message);
        let other: E = SdkError::dispatch_failure(ConnectorError::other("bad header".into(), None));
        assert_eq!(provider_error(other).kind, ProviderErrorKind::Other);
    }

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            kind_of("InvalidInstanceID.NotFound"),
            ProviderErrorKind::NotFound
        );
        assert_eq!(
            kind_of("ConditionalCheckFailedException"),
            ProviderErrorKind::Conflict
        );
        assert_eq!(
            kind_of("RequestLimitExceeded"),
            ProviderErrorKind::Throttled
        );
        assert_eq!(
            kind_of("InvalidAMIID.Malformed"),
            ProviderErrorKind::Invalid
        );
        for code in [
            "UnauthorizedOperation",
            "AuthFailure",
            "AccessDenied",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "RequestExpired",
        ] {
            assert_eq!(kind_of(code), ProviderErrorKind::Denied, "{code}");
        }
        for code in [
            "InsufficientInstanceCapacity",
            "InsufficientAddressCapacity",
            "Unsupported",
            "VcpuLimitExceeded",
            "InstanceLimitExceeded",
            "VolumeLimitExceeded",
            "AddressLimitExceeded",
            "MaxSpotInstanceCountExceeded",
        ] {
            assert_eq!(kind_of(code), ProviderErrorKind::Capacity, "{code}");
        }
        // Throttling stays throttling; an unsupported operation is the caller's mistake.
        assert_eq!(
            kind_of("RequestLimitExceeded"),
            ProviderErrorKind::Throttled
        );
        assert_eq!(kind_of("UnsupportedOperation"), ProviderErrorKind::Invalid);
        assert_eq!(kind_of("Whatever"), ProviderErrorKind::Other);
    }
}
