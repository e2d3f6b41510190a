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
    let snapshot: Snapshot =
        serde_path_to_error::deserialize(&document).map_err(|e| structural_error(&e))?;
    let normal = serde_json::to_value(&snapshot)
        .map_err(|e| SnapshotError::new("", ErrorCode::InvalidValue, e.to_string()))?;
    same_shape(&document, &normal, &mut String::new())?;
    Ok(snapshot)
}

/// serde lets a struct be written as a JSON array of its fields in order; the contract
/// (and pydantic) only knows objects. The snapshot's own serialisation writes every struct
/// as an object, so wherever the input has an array and the normal form an object, the
/// input wrote a struct as an array.
fn same_shape(input: &Value, normal: &Value, path: &mut String) -> Result<(), SnapshotError> {
    match (input, normal) {
        (Value::Array(_), Value::Object(_)) => Err(SnapshotError::new(
            path.clone(),
            ErrorCode::InvalidType,
            "expected an object, found an array",
        )),
        (Value::Array(items), Value::Array(normal_items)) => {
            for (i, (item, normal_item)) in items.iter().zip(normal_items).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                same_shape(item, normal_item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        (Value::Object(fields), Value::Object(normal_fields)) => {
            for (key, value) in fields {
                if let Some(normal_value) = normal_fields.get(key) {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    same_shape(value, normal_value, path)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        _ => Ok(()),
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
