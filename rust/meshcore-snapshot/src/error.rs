//! Why a snapshot was rejected, with the path of the offending field.

use std::fmt;

use serde::Serialize;

/// A machine-readable class of rejection, shared with the Python mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The bytes are not JSON.
    Syntax,
    /// A field that the schema does not have.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong JSON type.
    InvalidType,
    /// A number outside its allowed range.
    OutOfRange,
    /// A value of the right type that is not allowed (empty name, unknown enum, bad IP).
    InvalidValue,
    /// A name or socket address used twice.
    Duplicate,
    /// A reference to an object that does not exist.
    UnknownReference,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::UnknownField => "unknown_field",
            Self::MissingField => "missing_field",
            Self::InvalidType => "invalid_type",
            Self::OutOfRange => "out_of_range",
            Self::InvalidValue => "invalid_value",
            Self::Duplicate => "duplicate",
            Self::UnknownReference => "unknown_reference",
        }
    }
}

/// One problem in a snapshot: where (`listeners[0].tcp_route.clusters[1].name`), what
/// class, and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct SnapshotError {
    /// Dotted path with `[i]` indexes; empty for the document itself.
    pub path: String,
    pub code: ErrorCode,
    pub message: String,
}

impl SnapshotError {
    pub fn new(path: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
