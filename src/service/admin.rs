//! `hashforum.v1.AdminService`: the member directory.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::caller;
use crate::pb;
use crate::registry::Registry;

/// The gRPC adapter for the directory.
#[derive(Clone)]
pub struct AdminApi {
    registry: Arc<Registry>,
}

impl AdminApi {
    /// Wraps the registry.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl pb::server::admin_service_server::AdminService for AdminApi {
    /// Any active member may list the directory: its keys are what verifies every entry.
    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        caller(&req)?;
        let members = self.registry.directory().members().cloned().collect();
        Ok(Response::new(pb::ListMembersResponse { members }))
    }

    async fn get_member(
        &self,
        req: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::GetMemberResponse>, Status> {
        caller(&req)?;
        let member = self.registry.member(&req.into_inner().member_id)?;
        Ok(Response::new(pb::GetMemberResponse {
            member: Some(member),
        }))
    }

    async fn get_member_history(
        &self,
        req: Request<pb::GetMemberHistoryRequest>,
    ) -> Result<Response<pb::GetMemberHistoryResponse>, Status> {
        caller(&req)?;
        let id = req.into_inner().member_id;
        let events = self.registry.member_history(&id).await?;
        Ok(Response::new(pb::GetMemberHistoryResponse { events }))
    }
}
