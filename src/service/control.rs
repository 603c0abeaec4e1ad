//! `hashforum.control.v1.ControlService`: the operator's calls, served only on the data
//! directory's Unix socket (`server::control`), whose file permissions and peer check are the
//! authorization. There is no member caller here.

use std::path::PathBuf;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::backup::restore::Confirmation;
use crate::error::ServiceError;
use crate::pb::control as pb;
use crate::registry::Registry;

/// The control service over the server's registry.
pub struct ControlApi {
    registry: Arc<Registry>,
}

impl ControlApi {
    /// Serves `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl pb::control_service_server::ControlService for ControlApi {
    async fn create_backup(
        &self,
        req: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::CreateBackupResponse>, Status> {
        let out = PathBuf::from(req.into_inner().out_dir);
        if !out.is_absolute() {
            return Err(ServiceError::invalid(
                "out_dir",
                "BAD_OUT_DIR",
                "not an absolute path (the server's working directory is not the caller's)",
            )
            .into());
        }
        let manifest = self.registry.backup(out).await?;
        let manifest_json = serde_json::to_string(&manifest)
            .map_err(|e| Status::from(ServiceError::Internal(e.to_string())))?;
        Ok(Response::new(pb::CreateBackupResponse { manifest_json }))
    }

    async fn confirm_restore(
        &self,
        req: Request<pb::ConfirmRestoreRequest>,
    ) -> Result<Response<pb::ConfirmRestoreResponse>, Status> {
        let req = req.into_inner();
        let confirmation = match (req.latest_checkpoint.is_empty(), req.no_newer_checkpoint) {
            (false, false) => Confirmation::LatestCheckpoint(req.latest_checkpoint),
            (true, true) => Confirmation::NoNewerCheckpoint,
            (empty, _) => {
                let why = if empty {
                    "give the latest checkpoint others hold, or no_newer_checkpoint"
                } else {
                    "give either latest_checkpoint or no_newer_checkpoint, not both"
                };
                return Err(
                    ServiceError::invalid("latest_checkpoint", "BAD_CONFIRMATION", why).into(),
                );
            }
        };
        let (size, was_restored) = self.registry.confirm_restore(confirmation).await?;
        Ok(Response::new(pb::ConfirmRestoreResponse {
            size,
            was_restored,
        }))
    }
}
