//! `GetStatus`: what this server is and how far its log is; for a replica, how far behind its
//! primary it is and whether it stopped on evidence.

use super::{Registry, Writer};
use crate::follow::Evidence;
use crate::pb;

impl Registry {
    /// This server's status.
    pub fn status(&self) -> pb::GetStatusResponse {
        let latest = self.latest_checkpoint();
        let mut status = pb::GetStatusResponse {
            checkpoint: self.cosigned(latest.head.size, &latest.note),
            size: latest.head.size,
            ..Default::default()
        };
        match &self.writer {
            Writer::Primary(_) => {
                status.set_mode(pb::get_status_response::Mode::Primary);
                status.cosigned_by = self.cosigners(latest.head.size);
                status.halted = self.halted().unwrap_or_default().to_owned();
                status.disk_full = self.disk_full();
                status.restored_unconfirmed_size = self.restored_at().unwrap_or(0);
            }
            Writer::ReadOnly {
                primary, follow, ..
            } => {
                status.set_mode(pb::get_status_response::Mode::Replica);
                status.primary = primary.clone().unwrap_or_default();
                if let Some(follow) = follow {
                    let f = follow.status.borrow().clone();
                    status.primary_size = f.primary_size.max(status.size);
                    status.lag_entries = status.primary_size - status.size;
                    status.lag_seconds = f.lag_seconds();
                    status.halted = f.halted.unwrap_or_default();
                    status.evidence = Evidence::kept(&follow.evidence_dir)
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                }
            }
        }
        status
    }
}
