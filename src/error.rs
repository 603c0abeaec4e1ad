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
    /// e.g. a lookup reply past its byte budget.
    #[error("{message}")]
    ResourceExhausted {
        /// Stable reason.
        reason: &'static str,
        /// For humans: what to do instead.
        message: String,
    },
    /// The server is shutting down (`UNAVAILABLE`); retry elsewhere or later.
    #[error("server is shutting down")]
    ShuttingDown,
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

    /// Puts `prefix` in front of the field path of an `Invalid` error: errors found inside one
    /// envelope name the envelope they came from.
    #[must_use]
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::Invalid {
                field,
                reason,
                message,
            } => Self::Invalid {
                field: if field.is_empty() {
                    prefix.to_owned()
                } else {
                    format!("{prefix}.{field}")
                },
                reason,
                message,
            },
            other => other,
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
            | Self::ResourceExhausted { reason, .. } => Some(reason),
            Self::ShuttingDown => Some("SHUTTING_DOWN"),
            Self::Storage(_) | Self::Internal(_) => None,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        let code = match &err {
            ServiceError::Invalid { .. } => Code::InvalidArgument,
            ServiceError::Unauthenticated { .. } => Code::Unauthenticated,
            ServiceError::PermissionDenied { .. } => Code::PermissionDenied,
            ServiceError::NotFound { .. } => Code::NotFound,
            ServiceError::AlreadyExists { .. } => Code::AlreadyExists,
            ServiceError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ServiceError::ResourceExhausted { .. } => Code::ResourceExhausted,
            ServiceError::ShuttingDown => Code::Unavailable,
            ServiceError::Storage(_) | ServiceError::Internal(_) => {
                tracing::error!(error = %err, "request failed");
                return Status::internal("internal error");
            }
        };
        let reason = err.reason().unwrap_or("INTERNAL");
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
        if let ServiceError::Invalid { field, message, .. } = &err {
            details.add_bad_request_violation(field.clone(), message.clone());
        }
        Status::with_error_details(code, err.to_string(), details)
    }
}
