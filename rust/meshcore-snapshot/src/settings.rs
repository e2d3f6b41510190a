//! Proxy-wide settings: HTTP limits, header handling and the access log.

use serde::{Deserialize, Serialize};

/// Envoy's default limit on the size of request headers (60 KiB).
pub const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's default limit on the number of request headers.
pub const DEFAULT_MAX_REQUEST_HEADERS: u32 = 100;

/// hyper's default SETTINGS_MAX_CONCURRENT_STREAMS for a server connection.
pub const DEFAULT_DOWNSTREAM_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

fn default_max_request_headers_kb() -> u32 {
    DEFAULT_MAX_REQUEST_HEADERS_KB
}

fn default_max_request_headers() -> u32 {
    DEFAULT_MAX_REQUEST_HEADERS
}

fn default_http2_max_concurrent_streams() -> u32 {
    DEFAULT_DOWNSTREAM_HTTP2_MAX_CONCURRENT_STREAMS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// Keep HTTP/1 header-name case as the client sent it (Envoy lowercases).
    #[serde(default)]
    pub preserve_header_case: bool,
    #[serde(default = "default_max_request_headers_kb")]
    pub max_request_headers_kb: u32,
    #[serde(default = "default_max_request_headers")]
    pub max_request_headers: u32,
    /// Streams one downstream HTTP/2 connection may have open at once (the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS); a client opening more gets its streams refused.
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Off when absent.
    #[serde(default)]
    pub access_log: Option<AccessLog>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            preserve_header_case: false,
            max_request_headers_kb: DEFAULT_MAX_REQUEST_HEADERS_KB,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            http2_max_concurrent_streams: DEFAULT_DOWNSTREAM_HTTP2_MAX_CONCURRENT_STREAMS,
            access_log: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// Istio's default text format.
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// A file path; `/dev/stdout` writes to the process's standard output.
    pub path: String,
    #[serde(default)]
    pub format: AccessLogFormat,
}
