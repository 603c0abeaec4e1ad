//! The service error and its one mapping to `tonic::Status`.
//!
//! Client mistakes get a specific code, a stable reason in `google.rpc.ErrorInfo` and, for bad
//! fields, a `google.rpc.BadRequest` naming the field. Our own failures are logged in full and
//! sent as a bare `INTERNAL`: internal details never reach the client.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::storage::StorageError;

/// The `ErrorInfo.domain` of every hashforum error.
pub const ERROR_DOMAIN: &str = "hashforum.v1";

/// Everything a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field is malformed (`INVALID_ARGUMENT`).
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `envelopes[3].payload.hash_submission.value`.
        field: String,
        /// Stable machine-readable reason, e.g. `INVALID_HASH`.
        reason: &'static str,
        /// What is wrong, for humans.
        message: String,
    },
    /// The caller's certificate is not bound to an active member (`UNAUTHENTICATED`).
    #[error("{message}")]
    Unauthenticated {
        /// Stable reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// The caller may not do this (`PERMISSION_DENIED`).
    #[error("{message}")]
    PermissionDenied {
        /// Stable reason, e.g. `MISSING_ROLE`.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// The thing asked for does not exist (`NOT_FOUND`).
    #[error("{message}")]
    NotFound {
        /// Stable reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// It exists already (`ALREADY_EXISTS`): a member id, a certificate, a key.
    #[error("{message}")]
    AlreadyExists {
        /// Stable reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// Not possible in the registry's current state (`FAILED_PRECONDITION`), e.g. reinstating
    /// an active member or removing the last admin.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// The request asks for more than the server gives in one call (`RESOURCE_EXHAUSTED`),
    /// e.g. a lookup reply past its byte budget; or the server's disk is full (`DISK_FULL`).
    #[error("{message}")]
    ResourceExhausted {
        /// Stable reason.
        reason: &'static str,
        /// For humans: what to do instead.
        message: String,
    },
    /// Past what exists yet (`OUT_OF_RANGE`), e.g. a log index or tree size beyond the latest
    /// checkpoint: it may exist later.
    #[error("{field}: {message}")]
    OutOfRange {
        /// The request field.
        field: String,
        /// Stable reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// Over a member's quota (`RESOURCE_EXHAUSTED`, `QUOTA_EXCEEDED`), with a `RetryInfo`.
    #[error("{message}")]
    QuotaExceeded {
        /// Which quota: `entries`, `lookups` or `calls` (in the `ErrorInfo` metadata).
        quota: &'static str,
        /// For humans.
        message: String,
        /// When to retry.
        retry_after: std::time::Duration,
    },
    /// The server stayed at its call budget (`UNAVAILABLE`, `OVERLOADED`), with a
    /// `RetryInfo`.
    #[error("the server is overloaded: no call slot came free within {waited:?}; retry later")]
    Overloaded {
        /// How long the call waited for a slot.
        waited: std::time::Duration,
        /// When to retry.
        retry_after: std::time::Duration,
    },
    /// The server is shutting down (`UNAVAILABLE`); retry elsewhere or later.
    #[error("server is shutting down")]
    ShuttingDown,
    /// Not now (`UNAVAILABLE`): retry later, e.g. a write waiting for its replicas.
    #[error("{message}")]
    Unavailable {
        /// Stable reason.
        reason: &'static str,
        /// For humans: what happened, what to do.
        message: String,
    },
    /// A refusal about one element of a request, such as the third envelope of a batch:
    /// `field` names it. `INVALID_ARGUMENT` errors carry their path in their own `field`
    /// instead; this is for the others (`NOT_FOUND`, `PERMISSION_DENIED`, ...), which have no
    /// `BadRequest`. The code and reason are `error`'s; the path is in the message and in the
    /// `ErrorInfo` metadata under `field`.
    #[error("{field}: {error}")]
    At {
        /// Path of the element, e.g. `envelopes[2]`.
        field: String,
        /// The refusal.
        error: Box<ServiceError>,
    },
    /// Storage failed (`INTERNAL`, logged).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bug or broken invariant (`INTERNAL`, logged).
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError {
    /// An `INVALID_ARGUMENT` for `field`.
    pub fn invalid(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }

    /// A `PERMISSION_DENIED`.
    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    /// Puts `prefix` in front of the error's field path: errors found inside one envelope
    /// name the envelope they came from, whatever their code. Our own failures (storage,
    /// bugs, shutdown) are about no element and stay as they are.
    #[must_use]
    pub fn in_field(self, prefix: &str) -> Self {
        let join = |field: String| {
            if field.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{field}")
            }
        };
        match self {
            Self::Invalid {
                field,
                reason,
                message,
            } => Self::Invalid {
                field: join(field),
                reason,
                message,
            },
            Self::At { field, error } => Self::At {
                field: join(field),
                error,
            },
            Self::ShuttingDown | Self::Storage(_) | Self::Internal(_) => self,
            other => Self::At {
                field: prefix.to_owned(),
                error: Box::new(other),
            },
        }
    }

    /// The stable reason, or `None` for internal errors.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { reason, .. }
            | Self::Unauthenticated { reason, .. }
            | Self::PermissionDenied { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::AlreadyExists { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::ResourceExhausted { reason, .. }
            | Self::Unavailable { reason, .. }
            | Self::OutOfRange { reason, .. } => Some(reason),
            Self::ShuttingDown => Some("SHUTTING_DOWN"),
            Self::QuotaExceeded { .. } => Some("QUOTA_EXCEEDED"),
            Self::Overloaded { .. } => Some("OVERLOADED"),
            Self::At { error, .. } => error.reason(),
            Self::Storage(_) | Self::Internal(_) => None,
        }
    }
}

impl ServiceError {
    fn code(&self) -> Code {
        match self {
            ServiceError::Invalid { .. } => Code::InvalidArgument,
            ServiceError::Unauthenticated { .. } => Code::Unauthenticated,
            ServiceError::PermissionDenied { .. } => Code::PermissionDenied,
            ServiceError::NotFound { .. } => Code::NotFound,
            ServiceError::AlreadyExists { .. } => Code::AlreadyExists,
            ServiceError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ServiceError::ResourceExhausted { .. } | ServiceError::QuotaExceeded { .. } => {
                Code::ResourceExhausted
            }
            ServiceError::OutOfRange { .. } => Code::OutOfRange,
            ServiceError::ShuttingDown
            | ServiceError::Unavailable { .. }
            | ServiceError::Overloaded { .. } => Code::Unavailable,
            ServiceError::At { error, .. } => error.code(),
            ServiceError::Storage(_) | ServiceError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        let code = err.code();
        let Some(reason) = err.reason() else {
            tracing::error!(error = %err, "request failed");
            return Status::internal("internal error");
        };
        let mut metadata = HashMap::new();
        match &err {
            ServiceError::At { field, .. } | ServiceError::OutOfRange { field, .. } => {
                metadata.insert("field".to_owned(), field.clone());
            }
            ServiceError::QuotaExceeded { quota, .. } => {
                metadata.insert("quota".to_owned(), (*quota).to_owned());
            }
            _ => {}
        }
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
        if let ServiceError::QuotaExceeded { retry_after, .. }
        | ServiceError::Overloaded { retry_after, .. } = &err
        {
            details.set_retry_info(Some(*retry_after));
        }
        if let ServiceError::Invalid { field, message, .. } = &err {
            details.add_bad_request_violation(field.clone(), message.clone());
        }
        Status::with_error_details(code, err.to_string(), details)
    }
}

/// The canonical name of a gRPC code, as in `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
