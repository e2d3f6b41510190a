//! Bytes to a [`Snapshot`], with rejections that name the offending field.
//!
//! serde reports *what* went wrong; `serde_path_to_error` adds *where*. The message text
//! is serde's, the path and [`ErrorCode`] are the contract shared with Python.

use serde_json::Value;
use serde_json::error::Category;

use crate::{ErrorCode, Snapshot, SnapshotError};

/// Parses and validates. On rejection, every problem found is returned in document order
/// (a structural error stops parsing, so it comes alone).
pub fn parse(bytes: &[u8]) -> Result<Snapshot, Vec<SnapshotError>> {
    let snapshot = parse_unvalidated(bytes).map_err(|e| vec![e])?;
    snapshot.validate()?;
    Ok(snapshot)
}

/// Parses the structure only: JSON syntax, types and unknown fields.
pub fn parse_unvalidated(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let document: Value = serde_json::from_slice(bytes)
        .map_err(|e| SnapshotError::new("", ErrorCode::Syntax, e.to_string()))?;
    require_objects(&document)?;
    serde_path_to_error::deserialize(&document).map_err(|e| structural_error(&e))
}

/// serde lets a struct be written as a JSON array of its fields in order; the contract
/// (and pydantic) only knows objects, so every struct position must hold an object.
fn require_objects(document: &Value) -> Result<(), SnapshotError> {
    object(document, "")?;
    for (i, listener) in items(document, "listeners") {
        let at = format!("listeners[{i}]");
        object(listener, &at)?;
        if let Some(route) = listener.get("tcp_route").filter(|r| !r.is_null()) {
            object(route, &format!("{at}.tcp_route"))?;
            for (j, target) in items(route, "clusters") {
                object(target, &format!("{at}.tcp_route.clusters[{j}]"))?;
            }
        }
    }
    for (i, cluster) in items(document, "clusters") {
        let at = format!("clusters[{i}]");
        object(cluster, &at)?;
        for (j, endpoint) in items(cluster, "endpoints") {
            object(endpoint, &format!("{at}.endpoints[{j}]"))?;
        }
    }
    Ok(())
}

fn items<'a>(parent: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    parent
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn object(value: &Value, path: &str) -> Result<(), SnapshotError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(SnapshotError::new(
            path,
            ErrorCode::InvalidType,
            format!("expected an object, found {}", json_type(value)),
        ))
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn structural_error(e: &serde_path_to_error::Error<serde_json::Error>) -> SnapshotError {
    let inner = e.inner();
    if matches!(
        inner.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return SnapshotError::new("", ErrorCode::Syntax, inner.to_string());
    }
    let mut path = e.path().to_string();
    if path == "." {
        path.clear();
    }
    // serde's messages carry the line/column suffix; the path says more, so drop it.
    let text = inner.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let code = classify(&message);
    if code == ErrorCode::MissingField {
        // serde points at the struct that lacks the field; the contract points at the field.
        if let Some(field) = backticked(&message) {
            path = join(&path, field);
        }
    }
    SnapshotError::new(path, code, message)
}

fn classify(message: &str) -> ErrorCode {
    if message.starts_with("unknown field") {
        ErrorCode::UnknownField
    } else if message.starts_with("missing field") {
        ErrorCode::MissingField
    } else if message.starts_with("invalid type") {
        ErrorCode::InvalidType
    } else if message.starts_with("invalid value: integer") {
        ErrorCode::OutOfRange
    } else {
        ErrorCode::InvalidValue
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}
