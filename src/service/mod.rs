//! Thin tonic adapters: authenticate the caller, convert protobuf to domain types, call the
//! registry, convert back. Only this module and `server` see `tonic::Request`.

mod admin;
mod registry;

pub use admin::AdminApi;
pub use registry::RegistryApi;

use tonic::Request;

use crate::crypto;
use crate::error::ServiceError;
use crate::registry::Registry;
use crate::state::Caller;

/// The member calling, from the TLS client certificate of the connection. The membership
/// snapshot is read on every call, so a suspension applies to already-open connections too.
fn caller<T>(registry: &Registry, req: &Request<T>) -> Result<Caller, ServiceError> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| ServiceError::Unauthenticated {
            reason: "NO_CLIENT_CERTIFICATE",
            message: "a TLS client certificate is required".into(),
        })?;
    let leaf = certs.first().ok_or_else(|| ServiceError::Unauthenticated {
        reason: "NO_CLIENT_CERTIFICATE",
        message: "a TLS client certificate is required".into(),
    })?;
    let caller = registry.caller(&crypto::cert_fingerprint(leaf))?;
    tracing::Span::current().record("member", caller.member_id.as_str());
    Ok(caller)
}
