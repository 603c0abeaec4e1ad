//! Printing results and errors: one function per kind of thing printed, text and JSON.

use std::io::Write;

use serde_json::{json, Value};
use tonic_types::StatusExt;

use crate::client::ClientError;
use crate::pb;
use crate::types::{HashType, Role};

pub use crate::error::code_name;

/// One line for an error: the gRPC code name first, then the message and the stable reason.
pub fn error_line(err: &anyhow::Error) -> String {
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        let reason = status
            .get_details_error_info()
            .map(|i| format!(" [{}]", i.reason))
            .unwrap_or_default();
        return format!("{}: {}{reason}", code_name(status.code()), status.message());
    }
    if err.downcast_ref::<ClientError>().is_some() {
        return format!("UNAVAILABLE: {err:#}");
    }
    format!("error: {err:#}")
}

/// Prints an error as one line on stderr.
pub fn report_error(err: &anyhow::Error) {
    let line = error_line(err).replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A hash type's name from its wire value.
pub fn type_name(v: i32) -> &'static str {
    HashType::from_pb(v).map_or("unknown", HashType::name)
}

/// The JSON of one lookup result.
pub fn record_json(hash_type: &str, value: &str, record: Option<&pb::HashRecord>) -> Value {
    let Some(record) = record else {
        return json!({ "found": false, "hash_type": hash_type, "value": value, "submitters": [] });
    };
    let submitters: Vec<Value> = record.submissions.iter().map(submission_json).collect();
    let tallies = record.tallies.unwrap_or_default();
    json!({
        "found": true,
        "hash_type": type_name(record.hash_type),
        "value": record.value,
        "status": record_status_name(record.status),
        "first_submitter": record.submissions.first().map(|s| s.member_id.clone()),
        "submitters": submitters,
        "tallies": {
            "agree": tallies.agree,
            "disagree": tallies.disagree,
            "false_positive": tallies.false_positive,
        },
        "opinions": record.opinions.iter().map(opinion_json).collect::<Vec<_>>(),
        "withdrawal": record.withdrawal.as_ref().map(|w| json!({
            "member": w.member_id,
            "reason": w.reason,
            "log_index": w.log_index,
            "sequenced_at": format_ms(w.sequenced_at_unix_ms),
        })),
    })
}

/// A record status's name.
pub fn record_status_name(status: i32) -> &'static str {
    match pb::RecordStatus::try_from(status) {
        Ok(pb::RecordStatus::Active) => "active",
        Ok(pb::RecordStatus::Disputed) => "disputed",
        Ok(pb::RecordStatus::Retracted) => "retracted",
        Ok(pb::RecordStatus::Withdrawn) => "withdrawn",
        _ => "unknown",
    }
}

/// An opinion's name, as the CLI takes it.
pub fn opinion_name(opinion: i32) -> &'static str {
    match pb::OpinionKind::try_from(opinion) {
        Ok(pb::OpinionKind::Agree) => "agree",
        Ok(pb::OpinionKind::Disagree) => "disagree",
        Ok(pb::OpinionKind::FalsePositive) => "false_positive",
        _ => "unknown",
    }
}

fn opinion_json(o: &pb::Opinion) -> Value {
    json!({
        "member": o.member_id,
        "opinion": opinion_name(o.opinion),
        "reason": o.reason,
        "log_index": o.log_index,
        "first_log_index": o.first_log_index,
        "sequenced_at": format_ms(o.sequenced_at_unix_ms),
    })
}

fn submission_json(s: &pb::Submission) -> Value {
    let labels = s.labels.clone().unwrap_or_default();
    let mut v = json!({
        "member": s.member_id,
        "log_index": s.log_index,
        "first_log_index": s.first_log_index,
        "sequenced_at": format_ms(s.sequenced_at_unix_ms),
        "labels": {
            "entity": labels.entity,
            "behaviour": labels.behaviour,
            "content_type": labels.content_type,
        },
        "tags": s.tags,
    });
    if let Some(q) = s.quality {
        v["quality"] = json!(q);
    }
    if !s.incident_id.is_empty() {
        v["incident"] = json!(s.incident_id);
    }
    v["retracted"] = json!(s.retraction.is_some());
    if let Some(r) = &s.retraction {
        v["retraction"] = json!({
            "log_index": r.log_index,
            "reason": r.reason,
            "sequenced_at": format_ms(r.sequenced_at_unix_ms),
        });
    }
    if let Some(env) = &s.envelope {
        v["envelope"] = envelope_json(env);
    }
    v
}

/// A DSSE envelope in the DSSE JSON form (base64 payload and signatures).
pub fn envelope_json(env: &pb::Envelope) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "payloadType": env.payload_type,
        "payload": b64.encode(&env.payload),
        "signatures": env.signatures.iter().map(|s| json!({
            "keyid": s.keyid,
            "sig": b64.encode(&s.sig),
        })).collect::<Vec<_>>(),
    })
}

/// RFC 3339 time of a Unix-milliseconds timestamp.
pub fn format_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A human summary of one lookup result, several lines.
pub fn record_text(hash_type: &str, value: &str, record: Option<&pb::HashRecord>) -> String {
    let Some(record) = record else {
        return format!("{hash_type}:{value} not found\n");
    };
    let mut out = format!(
        "{hash_type}:{value} found ({}): submitted by {} member(s), first by {}\n",
        record_status_name(record.status),
        record.submissions.len(),
        record
            .submissions
            .first()
            .map_or("nobody", |s| s.member_id.as_str()),
    );
    for s in &record.submissions {
        let l = s.labels.clone().unwrap_or_default();
        out.push_str(&format!(
            "  {:<12} log index {:<8} {}  entity={:?} behaviour={:?} content_type={:?} tags=[{}]\n",
            s.member_id,
            s.log_index,
            format_ms(s.sequenced_at_unix_ms),
            l.entity,
            l.behaviour,
            l.content_type,
            s.tags.join(",")
        ));
        if !s.incident_id.is_empty() {
            out.push_str(&format!("    incident {}\n", s.incident_id));
        }
        if let Some(r) = &s.retraction {
            out.push_str(&format!(
                "    retracted at log index {} {}: {:?}\n",
                r.log_index,
                format_ms(r.sequenced_at_unix_ms),
                r.reason
            ));
        }
    }
    if let Some(t) = &record.tallies {
        out.push_str(&format!(
            "  opinions: agree {} disagree {} false_positive {}\n",
            t.agree, t.disagree, t.false_positive
        ));
    }
    for o in &record.opinions {
        out.push_str(&format!(
            "    {:<12} {:<14} log index {:<8} {}  {:?}\n",
            o.member_id,
            opinion_name(o.opinion),
            o.log_index,
            format_ms(o.sequenced_at_unix_ms),
            o.reason
        ));
    }
    if let Some(w) = &record.withdrawal {
        out.push_str(&format!(
            "  withdrawn by {} at log index {} {}: {:?}\n",
            w.member_id,
            w.log_index,
            format_ms(w.sequenced_at_unix_ms),
            w.reason
        ));
    }
    out
}

/// An incident level's name, as the CLI takes it.
pub fn incident_level_name(level: i32) -> &'static str {
    match pb::IncidentLevel::try_from(level) {
        Ok(pb::IncidentLevel::Incident) => "incident",
        Ok(pb::IncidentLevel::ContentIncident) => "content-incident",
        Ok(pb::IncidentLevel::ContentIncidentProtocol) => "cip",
        Ok(pb::IncidentLevel::PerpetratorContentIncident) => "pci",
        _ => "unknown",
    }
}

/// The JSON of an incident.
pub fn incident_json(i: &pb::Incident) -> Value {
    json!({
        "incident_id": i.incident_id,
        "title": i.title,
        "level": incident_level_name(i.level),
        "open": i.closure.is_none(),
        "declared_by": i.declared_by,
        "declared_at_log_index": i.declared_at_log_index,
        "declared_at": format_ms(i.declared_at_unix_ms),
        "closure": i.closure.as_ref().map(|c| json!({
            "closed_by": c.closed_by,
            "reason": c.reason,
            "log_index": c.log_index,
            "closed_at": format_ms(c.sequenced_at_unix_ms),
        })),
    })
}

/// One line per incident: id, open or closed, level, declaring index, title.
pub fn incident_line(i: &pb::Incident) -> String {
    let state = match &i.closure {
        None => "open".to_owned(),
        Some(c) => format!("closed at {}", c.log_index),
    };
    format!(
        "{}\t{state}\t{}\tdeclared at {} by {}\t{}",
        i.incident_id,
        incident_level_name(i.level),
        i.declared_at_log_index,
        i.declared_by,
        i.title
    )
}

/// Prints the receipts of submitted entries: the log index of each, and whether it was
/// already in the log.
pub fn print_receipts(receipts: &[pb::Receipt], json: bool) {
    for r in receipts {
        if json {
            println!("{}", receipt_json(r));
        } else if r.duplicate {
            println!("already logged at index {}", r.log_index);
        } else {
            println!("logged at index {}", r.log_index);
        }
    }
}

/// The JSON of a receipt.
pub fn receipt_json(r: &pb::Receipt) -> Value {
    json!({
        "log_index": r.log_index,
        "entry_hash": hex::encode(&r.entry_hash),
        "duplicate": r.duplicate,
    })
}

/// A member status's name.
pub fn status_name(status: i32) -> &'static str {
    match pb::MemberStatus::try_from(status) {
        Ok(pb::MemberStatus::Active) => "active",
        Ok(pb::MemberStatus::Suspended) => "suspended",
        Ok(pb::MemberStatus::Removed) => "removed",
        _ => "unknown",
    }
}

/// Role names from wire values.
pub fn role_names(roles: &[i32]) -> Vec<&'static str> {
    roles
        .iter()
        .map(|r| Role::from_pb(*r).map_or("unknown", Role::name))
        .collect()
}

/// One line about a signing key.
pub fn key_line(k: &pb::SigningKey) -> String {
    let revoked = k
        .revoked_at_log_index
        .map_or(String::new(), |i| format!(", revoked at {i}"));
    format!(
        "{}\tvalid from {}{revoked}",
        k.keyid, k.valid_from_log_index
    )
}

/// The JSON of a member's signing key.
pub fn key_json(k: &pb::SigningKey) -> Value {
    json!({
        "keyid": k.keyid,
        "public_key": hex::encode(&k.public_key),
        "valid_from_log_index": k.valid_from_log_index,
        "revoked_at_log_index": k.revoked_at_log_index,
    })
}

/// The JSON of a member.
pub fn member_json(m: &pb::Member) -> Value {
    json!({
        "member_id": m.member_id,
        "display_name": m.display_name,
        "roles": role_names(&m.roles),
        "status": status_name(m.status),
        "added_at_log_index": m.added_at_log_index,
        "cert_sha256": m.cert_sha256.iter().map(hex::encode).collect::<Vec<_>>(),
        "retired_cert_sha256": m.retired_cert_sha256.iter().map(hex::encode).collect::<Vec<_>>(),
        "keys": m.keys.iter().map(key_json).collect::<Vec<_>>(),
    })
}

/// One line per member: id, status, roles, display name.
pub fn member_line(m: &pb::Member) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        m.member_id,
        status_name(m.status),
        role_names(&m.roles).join(","),
        m.display_name
    )
}

/// A member, several lines.
pub fn member_text(m: &pb::Member) -> String {
    let mut out = format!(
        "member:   {}\nname:     {}\nstatus:   {}\nroles:    {}\nadded at: log index {}\n",
        m.member_id,
        m.display_name,
        status_name(m.status),
        role_names(&m.roles).join(", "),
        m.added_at_log_index
    );
    for fp in &m.cert_sha256 {
        out.push_str(&format!("cert:     sha256 {}\n", hex::encode(fp)));
    }
    for fp in &m.retired_cert_sha256 {
        out.push_str(&format!("retired:  sha256 {}\n", hex::encode(fp)));
    }
    for k in &m.keys {
        out.push_str(&format!("key:      {}\n", key_line(k)));
    }
    out
}

/// The JSON of a member event.
pub fn event_json(e: &pb::MemberEvent) -> Value {
    json!({
        "log_index": e.log_index,
        "sequenced_at_unix_ms": e.sequenced_at_unix_ms,
        "author": e.author,
        "action": e.action,
        "keyid": e.envelope.as_ref()
            .and_then(|env| env.signatures.first())
            .map(|s| s.keyid.clone()),
    })
}

/// One line per member event.
pub fn event_line(e: &pb::MemberEvent) -> String {
    format!(
        "{}\t{}\t{}\tby {}",
        e.log_index,
        format_ms(e.sequenced_at_unix_ms),
        e.action,
        e.author
    )
}
