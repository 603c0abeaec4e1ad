//! Printing results and errors.

use std::io::Write;

use serde_json::{json, Value};
use tonic::Code;
use tonic_types::StatusExt;

use crate::client::ClientError;
use crate::pb;
use crate::types::HashType;

/// The canonical name of a gRPC code, as in `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

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
    json!({
        "found": true,
        "hash_type": type_name(record.hash_type),
        "value": record.value,
        "first_submitter": record.submissions.first().map(|s| s.member_id.clone()),
        "submitters": submitters,
    })
}

fn submission_json(s: &pb::Submission) -> Value {
    let labels = s.labels.clone().unwrap_or_default();
    let mut v = json!({
        "member": s.member_id,
        "log_index": s.log_index,
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
    let mut members: Vec<&str> = record
        .submissions
        .iter()
        .map(|s| s.member_id.as_str())
        .collect();
    members.sort_unstable();
    members.dedup();
    let mut out = format!(
        "{hash_type}:{value} found: {} submission(s) by {} member(s)\n",
        record.submissions.len(),
        members.len()
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
    }
    out
}

/// Parses `type:value` lines (blank lines and `#` comments skipped).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the line.
pub fn parse_lines(text: &str) -> Result<Vec<(HashType, String)>, tonic::Status> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |msg: String| tonic::Status::invalid_argument(format!("line {}: {msg}", n + 1));
        let (t, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("expected type:value, got {line:?}")))?;
        let t = HashType::parse(t.trim()).map_err(|e| bad(e.0))?;
        out.push((t, v.trim().to_owned()));
    }
    if out.is_empty() {
        return Err(tonic::Status::invalid_argument(
            "no type:value lines in the input",
        ));
    }
    Ok(out)
}

/// Reads a file, or stdin for `-`.
///
/// # Errors
/// When it cannot be read.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        Ok(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )
    }
}
