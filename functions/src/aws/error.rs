//! Turns an SDK error into an [`AwsError`]: one line naming the operation, the resource, AWS's
//! error code and message, and whether trying again later may help.
//!
//! Errors that never reached AWS get codes of their own: `Unreachable` (no connection: a wrong
//! `AWS_ENDPOINT_URL`, no network), `NoCredentials` (the SDK found none), `Timeout`,
//! `InvalidRequest` (the SDK refused to build the request) and `InvalidResponse` (an answer that
//! could not be read).

use std::any::Any;
use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::AwsError;

/// Error codes AWS services use when they refuse a request for its rate, not its content.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes for a fault on AWS's side that a later attempt may not meet.
const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServerException",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "TransactionConflictException",
];

/// Whether an AWS error code says "try again later" (throttling or a fault on AWS's side).
pub(crate) fn is_transient_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code) || SERVER_CODES.contains(&code)
}

/// One clear line for a failed SDK call: `operation` on `resource`, AWS's code and message, and
/// whether it is transient (throttling, a 5xx, a timeout, no connection).
pub fn aws_error<E, R>(operation: &str, resource: &str, err: &SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let status = err.raw_response().and_then(http_status);
    let server_fault = status.is_some_and(|s| (500..600).contains(&s));
    let (code, message, transient) = match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e
                .code()
                .map(str::to_owned)
                .or_else(|| status.map(|s| format!("Http{s}")))
                .unwrap_or_else(|| "Unknown".to_owned());
            let message = e.message().map(one_line).unwrap_or_else(|| chain(e));
            let transient = is_transient_code(&code) || server_fault;
            (code, message, transient)
        }
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), format!("no answer in time: {}", chain(err)), true),
        SdkError::DispatchFailure(dispatch) => {
            if has_source::<CredentialsError>(err) {
                let message = format!(
                    "no AWS credentials found ({}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
                    chain(err)
                );
                ("NoCredentials".to_owned(), message, false)
            } else if dispatch.is_timeout() {
                ("Timeout".to_owned(), format!("no answer in time: {}", chain(err)), true)
            } else {
                let message = format!("could not reach AWS: {}; check AWS_ENDPOINT_URL / network", chain(err));
                // A user error (a malformed request the connector refused) will not get better.
                ("Unreachable".to_owned(), message, !dispatch.is_user())
            }
        }
        SdkError::ResponseError(_) => {
            let code = status.map_or_else(|| "InvalidResponse".to_owned(), |s| format!("Http{s}"));
            (code, format!("unreadable answer: {}", chain(err)), server_fault)
        }
        SdkError::ConstructionFailure(_) => ("InvalidRequest".to_owned(), chain(err), false),
        // SdkError is non-exhaustive: a new kind is reported as it describes itself.
        _ => ("Unknown".to_owned(), chain(err), false),
    };
    AwsError { operation: operation.to_owned(), resource: resource.to_owned(), code, message, transient }
}

/// The HTTP status of a raw SDK response; every SDK client's responses are [`HttpResponse`].
fn http_status<R: 'static>(raw: &R) -> Option<u16> {
    (raw as &dyn Any).downcast_ref::<HttpResponse>().map(|r| r.status().as_u16())
}

/// Whether `err` or any error it was caused by is a `T`.
fn has_source<T: Error + 'static>(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// `err` and its causes as one line, `outer: inner: innermost`, skipping wrappers that only
/// repeat their cause (the SDK's "dispatch failure", "service error", ...).
fn chain(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = one_line(&e.to_string());
        let generic = matches!(
            text.as_str(),
            "dispatch failure"
                | "io error"
                | "user error"
                | "other"
                | "timeout"
                | "service error"
                | "response error"
                | "request has timed out"
                | "failed to construct request"
        );
        if !text.is_empty() && !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        return "no details".to_owned();
    }
    parts.join(": ")
}

/// Collapses whitespace so the report stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service(code: &str, status: u16) -> SdkError<GetItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("Rate exceeded").build();
        SdkError::service_error(GetItemError::generic(meta), response(status))
    }

    #[test]
    fn throttling_is_transient_and_keeps_aws_code_and_message() {
        let err = aws_error("GetItem", "aliasflow-history", &service("ThrottlingException", 400));
        assert_eq!(err.code, "ThrottlingException");
        assert_eq!(err.message, "Rate exceeded");
        assert!(err.transient);
        assert_eq!(err.to_string(), "GetItem on aliasflow-history: ThrottlingException: Rate exceeded");
    }

    #[test]
    fn a_5xx_is_transient_whatever_its_code() {
        assert!(aws_error("GetItem", "t", &service("SomethingOdd", 503)).transient);
        assert!(!aws_error("GetItem", "t", &service("ValidationException", 400)).transient);
    }

    #[test]
    fn a_modeled_error_keeps_its_code_and_message() {
        // The SDK's deserializer fills the metadata of a modeled error from the response.
        let meta = ErrorMetadata::builder().code("ResourceNotFoundException").message("Requested resource not found");
        let meta = meta.build();
        let e = ResourceNotFoundException::builder().message("Requested resource not found").meta(meta).build();
        let sdk: SdkError<GetItemError, HttpResponse> =
            SdkError::service_error(GetItemError::ResourceNotFoundException(e), response(400));
        let err = aws_error("GetItem", "aliasflow-history", &sdk);
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(err.message, "Requested resource not found");
        assert!(!err.transient);
    }

    #[test]
    fn an_error_without_a_code_is_named_by_its_status() {
        let sdk: SdkError<GetItemError, HttpResponse> =
            SdkError::service_error(GetItemError::unhandled("boom"), response(502));
        let err = aws_error("GetItem", "t", &sdk);
        assert_eq!(err.code, "Http502");
        assert!(err.transient);
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_names_the_endpoint_setting() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let sdk: SdkError<GetItemError, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(io.into()));
        let err = aws_error("GetItem", "aliasflow-history", &sdk);
        assert_eq!(err.code, "Unreachable");
        assert!(err.transient);
        assert!(err.message.starts_with("could not reach AWS: Connection refused"), "{}", err.message);
        assert!(err.message.contains("AWS_ENDPOINT_URL"));
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn missing_credentials_say_how_to_set_them() {
        let missing = CredentialsError::not_loaded("no providers in chain provided credentials");
        let sdk: SdkError<GetItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(missing.into(), None));
        let err = aws_error("GetItem", "aliasflow-history", &sdk);
        assert_eq!(err.code, "NoCredentials");
        assert!(!err.transient);
        assert!(err.message.contains("AWS_ACCESS_KEY_ID"), "{}", err.message);
    }

    #[test]
    fn a_timeout_is_transient() {
        let sdk: SdkError<GetItemError, HttpResponse> = SdkError::timeout_error("operation timed out");
        let err = aws_error("GetItem", "t", &sdk);
        assert_eq!(err.code, "Timeout");
        assert!(err.transient);
    }
}
