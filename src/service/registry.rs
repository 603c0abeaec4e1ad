//! `hashforum.v1.RegistryService`.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{caller, charge};
use crate::error::ServiceError;
use crate::pb;
use crate::pdq::{self, Bits, Dihedral};
use crate::quota::Kind;
use crate::registry::{
    MatchOptions, Registry, MAX_LOOKUP_BATCH, MAX_MATCH_BATCH, MAX_SUBMIT_BATCH,
    MAX_WIDE_MATCH_BATCH,
};
use crate::types::{ContentHash, HashType};
use crate::wire::{
    LookupHashesReply, LookupHashesRequest, MatchHashesRequest, SubmitEntriesRequest,
    SubmitEntryRequest,
};

/// The gRPC adapter over [`Registry`].
#[derive(Clone)]
pub struct RegistryApi {
    registry: Arc<Registry>,
}

impl RegistryApi {
    /// Wraps the registry.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl pb::server::registry_service_server::RegistryService for RegistryApi {
    async fn submit_entry(
        &self,
        req: Request<SubmitEntryRequest>,
    ) -> Result<Response<pb::SubmitEntryResponse>, Status> {
        let caller = caller(&req)?;
        charge(&req, Kind::Entries, 1)?;
        let envelope = req.into_inner().envelope.ok_or_else(|| {
            ServiceError::invalid("envelope", "MISSING_FIELD", "an envelope is required")
        })?;
        let receipts = self
            .registry
            .submit(&caller, vec![envelope], |_| "envelope".into())
            .await?;
        let receipt = receipts.into_iter().next();
        Ok(Response::new(pb::SubmitEntryResponse { receipt }))
    }

    async fn submit_entries(
        &self,
        req: Request<SubmitEntriesRequest>,
    ) -> Result<Response<pb::SubmitEntriesResponse>, Status> {
        let caller = caller(&req)?;
        check_batch("envelopes", req.get_ref().len(), MAX_SUBMIT_BATCH)?;
        charge(&req, Kind::Entries, req.get_ref().len())?;
        let req = req.into_inner();
        let envelopes = req.envelopes;
        let receipts = self
            .registry
            .submit(&caller, envelopes, |i| format!("envelopes[{i}]"))
            .await?;
        Ok(Response::new(pb::SubmitEntriesResponse { receipts }))
    }

    async fn get_provenance(
        &self,
        req: Request<pb::GetProvenanceRequest>,
    ) -> Result<Response<pb::GetProvenanceResponse>, Status> {
        caller(&req)?;
        charge(&req, Kind::Lookups, 1)?;
        let req = req.into_inner();
        let query = req.query.unwrap_or_default();
        let hash = parse_query(&query).map_err(|e| e.in_field("query"))?;
        let page = self
            .registry
            .provenance(hash, req.tree_size, req.from_index)
            .await?;
        Ok(Response::new(page))
    }

    async fn lookup_hash(
        &self,
        req: Request<pb::LookupHashRequest>,
    ) -> Result<Response<pb::LookupHashResponse>, Status> {
        caller(&req)?;
        charge(&req, Kind::Lookups, 1)?;
        let req = req.into_inner();
        let query = req.query.unwrap_or_default();
        let hash = parse_query(&query).map_err(|e| e.in_field("query"))?;
        let found = self
            .registry
            .lookup(vec![hash], req.include_envelopes)
            .await?;
        match found.into_iter().next().flatten() {
            Some(raw) => {
                let rest = pb::HashRecord::decode(raw.rest.as_slice())
                    .map_err(|e| ServiceError::Internal(format!("stored record: {e}")))?;
                Ok(Response::new(pb::LookupHashResponse {
                    record: Some(pb::HashRecord {
                        hash_type: raw.hash_type,
                        value: raw.value,
                        ..rest
                    }),
                }))
            }
            None => Err(ServiceError::NotFound {
                reason: "HASH_NOT_FOUND",
                message: format!(
                    "{}:{} is not in the registry",
                    query_type(&query),
                    query.value
                ),
            }
            .into()),
        }
    }

    async fn lookup_hashes(
        &self,
        req: Request<LookupHashesRequest>,
    ) -> Result<Response<LookupHashesReply>, Status> {
        caller(&req)?;
        check_batch("queries", req.get_ref().len(), MAX_LOOKUP_BATCH)?;
        charge(&req, Kind::Lookups, req.get_ref().len())?;
        let req = req.into_inner();
        let hashes = req
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| parse_query(q).map_err(|e| e.in_field(&format!("queries[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.registry.lookup(hashes, req.include_envelopes).await?;
        Ok(Response::new(LookupHashesReply { results }))
    }

    async fn match_hashes(
        &self,
        req: Request<MatchHashesRequest>,
    ) -> Result<Response<pb::MatchHashesResponse>, Status> {
        caller(&req)?;
        let (queries, options) = parse_match(req.get_ref())?;
        charge(&req, Kind::Lookups, queries.len())?;
        let results = self.registry.match_pdq(queries, options).await?;
        Ok(Response::new(pb::MatchHashesResponse { results }))
    }

    /// Any active member may list the incidents: submissions name them.
    async fn list_incidents(
        &self,
        req: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        caller(&req)?;
        let incidents = self.registry.incidents();
        Ok(Response::new(pb::ListIncidentsResponse { incidents }))
    }
}

fn check_batch(field: &str, len: usize, max: usize) -> Result<(), ServiceError> {
    if len == 0 {
        return Err(ServiceError::invalid(
            field,
            "EMPTY_BATCH",
            "the batch is empty",
        ));
    }
    if len > max {
        return Err(ServiceError::invalid(
            field,
            "BATCH_TOO_LARGE",
            format!("at most {max} per call, got {len}"),
        ));
    }
    Ok(())
}

/// A match request's queries and options, or the first thing wrong with it.
pub(crate) fn parse_match(
    req: &MatchHashesRequest,
) -> Result<(Vec<(Bits, Dihedral)>, MatchOptions), ServiceError> {
    match HashType::from_pb(req.hash_type) {
        Ok(HashType::Pdq) => {}
        Ok(other) => {
            return Err(ServiceError::invalid(
                "hash_type",
                "NOT_MATCHABLE",
                format!(
                    "{} hashes are not matched by distance (only PDQ is): look them up exactly",
                    other.name()
                ),
            ))
        }
        Err(e) => return Err(ServiceError::invalid("hash_type", "UNKNOWN_HASH_TYPE", e.0)),
    }
    check_batch("queries", req.len(), MAX_MATCH_BATCH)?;
    let max_distance = req.max_distance.unwrap_or(pdq::DEFAULT_MAX_DISTANCE);
    if max_distance > pdq::MAX_DISTANCE {
        return Err(ServiceError::invalid(
            "max_distance",
            "DISTANCE_OUT_OF_RANGE",
            format!(
                "max_distance must be 0 to {}, got {max_distance}",
                pdq::MAX_DISTANCE
            ),
        ));
    }
    if max_distance > pdq::DEFAULT_MAX_DISTANCE && req.len() > MAX_WIDE_MATCH_BATCH {
        return Err(ServiceError::invalid(
            "queries",
            "BATCH_TOO_LARGE",
            format!(
                "at most {MAX_WIDE_MATCH_BATCH} queries per call above distance {} (each can \
                 scan the whole index), got {}",
                pdq::DEFAULT_MAX_DISTANCE,
                req.len()
            ),
        ));
    }
    let queries = req
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let hash = ContentHash::parse(HashType::Pdq, &q.value).map_err(|e| {
                ServiceError::invalid(format!("queries[{i}].value"), "INVALID_HASH", e.0)
            })?;
            let variant = Dihedral::from_pb(q.variant).map_err(|e| {
                ServiceError::invalid(format!("queries[{i}].variant"), "UNKNOWN_VARIANT", e.0)
            })?;
            let mut bits = [0u8; 32];
            bits.copy_from_slice(hash.as_bytes());
            Ok((bits, variant))
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let options = MatchOptions {
        max_distance,
        include_inactive: req.include_inactive,
        dihedral: req.dihedral,
    };
    Ok((queries, options))
}

pub(crate) fn parse_query(q: &pb::HashQuery) -> Result<ContentHash, ServiceError> {
    let hash_type = HashType::from_pb(q.hash_type)
        .map_err(|e| ServiceError::invalid("hash_type", "UNKNOWN_HASH_TYPE", e.0))?;
    ContentHash::parse(hash_type, &q.value)
        .map_err(|e| ServiceError::invalid("value", "INVALID_HASH", e.0))
}

fn query_type(q: &pb::HashQuery) -> &'static str {
    HashType::from_pb(q.hash_type).map_or("?", HashType::name)
}
