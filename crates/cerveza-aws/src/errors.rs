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
        | "AccessDeniedException"
        | "UnrecognizedClientException"
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

/// Converts any SDK error, keeping it as the source.
pub(crate) fn provider_error<E, R>(err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ProviderErrorKind::Unavailable,
        _ => err.code().map(kind_of).unwrap_or(ProviderErrorKind::Other),
    };
    let message = match (&err, err.code(), err.message()) {
        (SdkError::TimeoutError(_), _, _) => "no answer in time (timeout)".to_owned(),
        (SdkError::DispatchFailure(_), _, _) => {
            format!("cannot reach the endpoint: {}", root_cause(&err))
        }
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
        assert_eq!(kind_of("UnauthorizedOperation"), ProviderErrorKind::Denied);
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
