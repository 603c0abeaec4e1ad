//! The incident view: every incident the forum's admins declared, open or closed.
//!
//! Part of the `Directory`: loaded from the `incidents` column family at start-up, changed only
//! by incident statements through [`Incidents::apply`] (called by `state::check`), and
//! published with the membership after each commit. The sequencer checks that a submission
//! names an open incident here, without reads. Incidents are few (GIFCT handled a few hundred
//! events a year), so the whole view lives in memory.
//!
//! Invariant: an incident id is declared once, ever; a closed incident stays closed.

use std::collections::BTreeMap;

use prost::Message;

use crate::entry::IncidentAction;
use crate::error::ServiceError;
use crate::pb;
use crate::storage::{StorageError, Store};
use crate::types::{IncidentId, MemberId};

/// Every incident, by id.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    by_id: BTreeMap<String, pb::Incident>,
}

impl Incidents {
    /// Loads the incidents from the store.
    ///
    /// # Errors
    /// When the store fails or holds an undecodable incident.
    pub fn load(store: &Store) -> Result<Self, StorageError> {
        let mut by_id = BTreeMap::new();
        for value in store.incidents()? {
            let incident =
                pb::Incident::decode(value.as_slice()).map_err(|e| StorageError::Corrupt {
                    cf: "incidents",
                    reason: e.to_string(),
                })?;
            by_id.insert(incident.incident_id.clone(), incident);
        }
        Ok(Self { by_id })
    }

    /// Every incident, in order of declaration.
    pub fn list(&self) -> Vec<pb::Incident> {
        let mut all: Vec<pb::Incident> = self.by_id.values().cloned().collect();
        all.sort_by_key(|i| i.declared_at_log_index);
        all
    }

    /// An incident by id.
    pub fn get(&self, id: &str) -> Option<&pb::Incident> {
        self.by_id.get(id)
    }

    /// Checks that `id` names an open incident.
    ///
    /// # Errors
    /// `NOT_FOUND` (`UNKNOWN_INCIDENT`) or `FAILED_PRECONDITION` (`INCIDENT_CLOSED`).
    pub fn check_open(&self, id: &IncidentId) -> Result<(), ServiceError> {
        match self.by_id.get(id.as_str()) {
            None => Err(unknown(id)),
            Some(incident) if incident.closure.is_some() => Err(closed(id)),
            Some(_) => Ok(()),
        }
    }

    /// Applies an incident statement by `admin`, at log index `index` sequenced at `time_ms`,
    /// returning the incident as changed.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` (`INCIDENT_EXISTS`) when declaring an id declared before, open or
    /// closed; `NOT_FOUND` (`UNKNOWN_INCIDENT`) or `FAILED_PRECONDITION` (`INCIDENT_CLOSED`)
    /// when closing one that is not open. The field is `incident_id`. On error nothing changes.
    pub fn apply(
        &mut self,
        action: &IncidentAction,
        admin: &MemberId,
        index: u64,
        time_ms: u64,
    ) -> Result<pb::Incident, ServiceError> {
        let field = "incident_id";
        let incident = match action {
            IncidentAction::Declare { id, title, level } => {
                if self.by_id.contains_key(id.as_str()) {
                    return Err(ServiceError::AlreadyExists {
                        reason: "INCIDENT_EXISTS",
                        message: format!(
                            "incident {id} was already declared (ids are never reused)"
                        ),
                    }
                    .in_field(field));
                }
                pb::Incident {
                    incident_id: id.to_string(),
                    title: title.clone(),
                    level: *level as i32,
                    declared_by: admin.to_string(),
                    declared_at_log_index: index,
                    declared_at_unix_ms: time_ms,
                    closure: None,
                }
            }
            IncidentAction::Close { id, reason } => {
                let mut incident = match self.by_id.get(id.as_str()) {
                    None => return Err(unknown(id).in_field(field)),
                    Some(open) if open.closure.is_none() => open.clone(),
                    Some(_) => return Err(closed(id).in_field(field)),
                };
                incident.closure = Some(pb::IncidentClosure {
                    closed_by: admin.to_string(),
                    reason: reason.clone(),
                    log_index: index,
                    sequenced_at_unix_ms: time_ms,
                });
                incident
            }
        };
        self.by_id
            .insert(incident.incident_id.clone(), incident.clone());
        Ok(incident)
    }
}

fn unknown(id: &IncidentId) -> ServiceError {
    ServiceError::NotFound {
        reason: "UNKNOWN_INCIDENT",
        message: format!("no incident {id} was declared"),
    }
}

fn closed(id: &IncidentId) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: "INCIDENT_CLOSED",
        message: format!("incident {id} is closed"),
    }
}
