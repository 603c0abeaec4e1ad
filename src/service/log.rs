//! `hashforum.v1.LogService`: checkpoints, entries and proofs, as their exact bytes.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::caller;
use crate::error::ServiceError;
use crate::pb;
use crate::registry::{check_range, Registry, ENTRY_CHUNK};

/// The gRPC adapter for the log.
#[derive(Clone)]
pub struct LogApi {
    registry: Arc<Registry>,
}

impl LogApi {
    /// Wraps the registry.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Chunks of a range read in flight to a slow reader: the stream's memory bound.
const CHUNKS_AHEAD: usize = 4;

#[tonic::async_trait]
impl pb::server::log_service_server::LogService for LogApi {
    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        caller(&req)?;
        let req = req.into_inner();
        let note = self.registry.checkpoint(req.size, req.at_most).await?;
        Ok(Response::new(pb::GetCheckpointResponse { note }))
    }

    type GetEntriesStream = Streamed<pb::GetEntriesResponse>;

    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        caller(&req)?;
        let pb::GetEntriesRequest { start, end } = req.into_inner();
        check_range(start, end, self.registry.latest_checkpoint().head.size)?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let mut next = start;
            while next < end {
                let chunk = registry
                    .entries(next, end.min(next.saturating_add(ENTRY_CHUNK)))
                    .await
                    .map(|entries| pb::GetEntriesResponse {
                        start: next,
                        entries,
                    });
                let failed = chunk.is_err();
                next = match &chunk {
                    Ok(c) => c.start + c.entries.len() as u64,
                    Err(_) => end,
                };
                // The reader went away, or the read failed: stop.
                if tx.send(chunk.map_err(Status::from)).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_entry(
        &self,
        req: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        caller(&req)?;
        let entry = self.registry.entry(req.into_inner().index).await?;
        Ok(Response::new(pb::GetEntryResponse { entry }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        caller(&req)?;
        let req = req.into_inner();
        let (tree_size, proof) = self
            .registry
            .inclusion_proof(req.index, req.tree_size)
            .await?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            tree_size,
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        caller(&req)?;
        let req = req.into_inner();
        let (new_size, proof) = self
            .registry
            .consistency_proof(req.old_size, req.new_size)
            .await?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            new_size,
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn get_status(
        &self,
        req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        caller(&req)?;
        Ok(Response::new(self.registry.status()))
    }

    async fn add_cosignature(
        &self,
        req: Request<pb::AddCosignatureRequest>,
    ) -> Result<Response<pb::AddCosignatureResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let size = self
            .registry
            .add_cosignature(&caller, &req.checkpoint, &req.cosignature)
            .await?;
        Ok(Response::new(pb::AddCosignatureResponse { size }))
    }

    type WatchCheckpointsStream = Streamed<pb::WatchCheckpointsResponse>;

    /// The latest checkpoint at once, then each new one. A slow watcher skips to the latest:
    /// checkpoints are consistent with each other, so only the newest matters.
    async fn watch_checkpoints(
        &self,
        req: Request<pb::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        caller(&req)?;
        let mut latest = self.registry.checkpoints();
        let failed = self.registry.failed().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let note = latest.borrow_and_update().note.clone();
                if tx
                    .send(Ok(pb::WatchCheckpointsResponse { note }))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() { break },
                    () = tx.closed() => return,
                    () = failed.cancelled() => break,
                }
            }
            let _ = tx.send(Err(ServiceError::ShuttingDown.into())).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
