//! Thin tonic adapters: take the caller that `auth` admitted, convert protobuf to domain types,
//! call the registry, convert back. Only this module, `auth` and `server` see gRPC requests.
//!
//! Authentication and role checks are not here: `auth::AuthLayer` has done them, from the one
//! policy table, before the request body was read.

mod admin;
mod control;
mod log;
mod registry;

pub use admin::AdminApi;
pub use control::ControlApi;
pub use log::LogApi;
pub use registry::RegistryApi;
/// For the fuzz targets: the server's parsing of lookup and match queries.
pub(crate) use registry::{parse_match, parse_query};

use tonic::Request;

use crate::error::ServiceError;
use crate::state::Caller;

/// The member calling, as admitted by `auth::AuthLayer`. Every handler asks for it, so that a
/// service mounted without the layer refuses every call instead of serving it unchecked.
fn caller<T>(req: &Request<T>) -> Result<Caller, ServiceError> {
    req.extensions().get::<Caller>().cloned().ok_or_else(|| {
        ServiceError::Internal("no admitted caller: the auth layer is not mounted".into())
    })
}

/// Charges the caller's quota (put on the request by the server's budget layer) `n` entries
/// or lookups; without quotas, free.
fn charge<T>(req: &Request<T>, kind: crate::quota::Kind, n: usize) -> Result<(), ServiceError> {
    match req
        .extensions()
        .get::<std::sync::Arc<crate::quota::MemberQuota>>()
    {
        Some(quota) => quota.charge(kind, n),
        None => Ok(()),
    }
}
