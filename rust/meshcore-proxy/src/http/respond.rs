//! Every response the proxy makes itself, in one place, so each explains itself the same
//! way (compare linkerd's `errors/respond.rs`):
//!
//! - an Envoy response flag (`NR`, `UH`, `UF`, ...) for the access log and the per-flag
//!   counters, so existing Istio dashboards and habits carry over;
//! - an RFC 9209 `proxy-status` header naming the error type and the details, e.g.
//!   `meshcore; error=connection_refused; details="connect 127.0.0.1:9082: refused"`;
//! - `x-meshcore-decision`: which config object decided, where it sent the request and what
//!   went wrong, e.g. `VirtualService/default/reviews http[1] -> outbound|9080|v2|reviews;
//!   UF connect refused 127.0.0.1:9082`;
//! - `grpc-status` / `grpc-message` as well when the request was gRPC, since gRPC clients
//!   read those rather than the HTTP status.
//!
//! Redirects and direct responses are local replies too: they carry the decision header,
//! no flag and no `proxy-status` (they are answers, not errors).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

use super::body::{self, Body};

pub(crate) const PROXY_STATUS: HeaderName = HeaderName::from_static("proxy-status");
pub(crate) const DECISION: HeaderName = HeaderName::from_static("x-meshcore-decision");
/// The name this proxy uses in `proxy-status`.
const PROXY_NAME: &str = "meshcore";

/// Envoy's response flags that meshcore sets. The letters are Envoy's, so access logs and
/// metrics read the same as Istio's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ResponseFlag {
    /// No route (or virtual host) for the request.
    NoRoute,
    /// No healthy upstream: the cluster has no endpoint.
    NoHealthyUpstream,
    /// Upstream connection failure (refused, unreachable, connect timeout).
    UpstreamConnectionFailure,
    /// Upstream connection terminated (reset / closed before a full response).
    UpstreamConnectionTermination,
    /// Upstream request timeout.
    UpstreamRequestTimeout,
    /// Upstream retry limit exceeded.
    UpstreamRetryLimitExceeded,
    /// Downstream protocol error (malformed request, headers over the limits).
    DownstreamProtocolError,
    /// Downstream connection terminated before the response was complete.
    DownstreamConnectionTermination,
    /// Upstream overflow: the endpoint's connection limit was reached.
    UpstreamOverflow,
    /// Upstream protocol error (malformed response).
    UpstreamProtocolError,
}

impl ResponseFlag {
    pub(crate) const ALL: [ResponseFlag; 10] = [
        Self::NoRoute,
        Self::NoHealthyUpstream,
        Self::UpstreamConnectionFailure,
        Self::UpstreamConnectionTermination,
        Self::UpstreamRequestTimeout,
        Self::UpstreamRetryLimitExceeded,
        Self::DownstreamProtocolError,
        Self::DownstreamConnectionTermination,
        Self::UpstreamOverflow,
        Self::UpstreamProtocolError,
    ];

    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::NoRoute => "NR",
            Self::NoHealthyUpstream => "UH",
            Self::UpstreamConnectionFailure => "UF",
            Self::UpstreamConnectionTermination => "UC",
            Self::UpstreamRequestTimeout => "UT",
            Self::UpstreamRetryLimitExceeded => "URX",
            Self::DownstreamProtocolError => "DPE",
            Self::DownstreamConnectionTermination => "DC",
            Self::UpstreamOverflow => "UO",
            Self::UpstreamProtocolError => "UPE",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The flags of one request: `-` when none, else Envoy's comma-separated codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    pub(crate) fn none() -> Self {
        Self(0)
    }

    pub(crate) fn with(self, flag: ResponseFlag) -> Self {
        Self(self.0 | flag.bit())
    }

    pub(crate) fn with_all(self, other: Flags) -> Self {
        Self(self.0 | other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        ResponseFlag::ALL
            .into_iter()
            .filter(move |f| self.0 & f.bit() != 0)
    }
}

impl From<ResponseFlag> for Flags {
    fn from(flag: ResponseFlag) -> Self {
        Self::none().with(flag)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for flag in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(flag.code())?;
        }
        Ok(())
    }
}

/// RFC 9209 proxy error types meshcore reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyError {
    DestinationNotFound,
    DestinationUnavailable,
    ConnectionRefused,
    ConnectionTimeout,
    ConnectionTerminated,
    ConnectionLimitReached,
    HttpResponseTimeout,
    HttpRequestError,
    HttpProtocolError,
}

impl ProxyError {
    fn as_str(self) -> &'static str {
        match self {
            Self::DestinationNotFound => "destination_not_found",
            Self::DestinationUnavailable => "destination_unavailable",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionTimeout => "connection_timeout",
            Self::ConnectionTerminated => "connection_terminated",
            Self::ConnectionLimitReached => "connection_limit_reached",
            Self::HttpResponseTimeout => "http_response_timeout",
            Self::HttpRequestError => "http_request_error",
            Self::HttpProtocolError => "http_protocol_error",
        }
    }
}

/// Who decided: the config object and where it sent the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// e.g. `VirtualService/default/reviews http[1]`, or `RouteConfig/outbound`.
    pub(crate) by: Arc<str>,
    /// e.g. the cluster name.
    pub(crate) target: Option<Arc<str>>,
}

/// A response the proxy makes itself.
#[derive(Debug, Clone)]
pub(crate) struct LocalReply {
    pub(crate) status: StatusCode,
    pub(crate) flags: Flags,
    error: Option<ProxyError>,
    pub(crate) details: String,
    pub(crate) decision: Decision,
    body: Option<Bytes>,
    location: Option<HeaderValue>,
}

impl LocalReply {
    fn error(
        status: StatusCode,
        flag: ResponseFlag,
        error: ProxyError,
        details: String,
        decision: Decision,
    ) -> Self {
        Self {
            status,
            flags: flag.into(),
            error: Some(error),
            details,
            decision,
            body: None,
            location: None,
        }
    }

    /// No virtual host or no route matched: 404 NR.
    pub(crate) fn no_route(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            ResponseFlag::NoRoute,
            ProxyError::DestinationNotFound,
            details,
            decision,
        )
    }

    /// The cluster has no endpoint: 503 UH.
    pub(crate) fn no_healthy_upstream(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::NoHealthyUpstream,
            ProxyError::DestinationUnavailable,
            details,
            decision,
        )
    }

    /// Connect refused or failed: 503 UF.
    pub(crate) fn connect_failed(refused: bool, details: String, decision: Decision) -> Self {
        let error = if refused {
            ProxyError::ConnectionRefused
        } else {
            ProxyError::DestinationUnavailable
        };
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::UpstreamConnectionFailure,
            error,
            details,
            decision,
        )
    }

    /// Connect timed out: 503 UF.
    pub(crate) fn connect_timeout(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::UpstreamConnectionFailure,
            ProxyError::ConnectionTimeout,
            details,
            decision,
        )
    }

    /// The upstream reset or closed before a response: 503 UC.
    pub(crate) fn upstream_reset(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::UpstreamConnectionTermination,
            ProxyError::ConnectionTerminated,
            details,
            decision,
        )
    }

    /// The upstream sent something that is not HTTP: 502 UPE.
    pub(crate) fn upstream_protocol_error(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::BAD_GATEWAY,
            ResponseFlag::UpstreamProtocolError,
            ProxyError::HttpProtocolError,
            details,
            decision,
        )
    }

    /// The route's timeout (or the last per-try timeout) passed: 504 UT.
    pub(crate) fn timeout(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::GATEWAY_TIMEOUT,
            ResponseFlag::UpstreamRequestTimeout,
            ProxyError::HttpResponseTimeout,
            details,
            decision,
        )
    }

    /// The endpoint's connection limit is reached and none freed in time: 503 UO.
    pub(crate) fn overflow(details: String, decision: Decision) -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::UpstreamOverflow,
            ProxyError::ConnectionLimitReached,
            details,
            decision,
        )
    }

    /// A malformed request: 400 DPE.
    pub(crate) fn bad_request(details: String) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            ResponseFlag::DownstreamProtocolError,
            ProxyError::HttpRequestError,
            details,
            Decision {
                by: "Listener".into(),
                target: None,
            },
        )
    }

    /// Request headers over the configured size or count: 431 DPE.
    pub(crate) fn headers_too_large(details: String) -> Self {
        Self::error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ResponseFlag::DownstreamProtocolError,
            ProxyError::HttpRequestError,
            details,
            Decision {
                by: "ProxySettings".into(),
                target: None,
            },
        )
    }

    /// A route's `direct_response`.
    pub(crate) fn direct(status: StatusCode, body: Option<Bytes>, decision: Decision) -> Self {
        Self {
            status,
            flags: Flags::none(),
            error: None,
            details: "direct_response".into(),
            decision,
            body,
            location: None,
        }
    }

    /// A route's `redirect`.
    pub(crate) fn redirect(status: StatusCode, location: HeaderValue, decision: Decision) -> Self {
        Self {
            status,
            flags: Flags::none(),
            error: None,
            details: "redirect".into(),
            decision,
            body: None,
            location: Some(location),
        }
    }

    /// Adds a flag (e.g. URX when retries ran out).
    pub(crate) fn also(mut self, flag: ResponseFlag) -> Self {
        self.flags = self.flags.with(flag);
        self
    }

    /// Envoy's RESPONSE_CODE_DETAILS for the access log.
    pub(crate) fn log_details(&self) -> std::borrow::Cow<'static, str> {
        let Some(flag) = self.flags.iter().next() else {
            return self.details.clone().into();
        };
        match flag {
            ResponseFlag::NoRoute => "route_not_found",
            ResponseFlag::NoHealthyUpstream => "no_healthy_upstream",
            ResponseFlag::UpstreamConnectionFailure => "upstream_connect_failure",
            ResponseFlag::UpstreamConnectionTermination => "upstream_reset_before_response_started",
            ResponseFlag::UpstreamRequestTimeout => "upstream_response_timeout",
            ResponseFlag::UpstreamRetryLimitExceeded => "upstream_retry_limit_exceeded",
            ResponseFlag::DownstreamProtocolError
                if self.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE =>
            {
                "request_headers_too_large"
            }
            ResponseFlag::DownstreamProtocolError => "downstream_protocol_error",
            ResponseFlag::DownstreamConnectionTermination => "downstream_remote_disconnect",
            ResponseFlag::UpstreamOverflow => "upstream_overflow",
            ResponseFlag::UpstreamProtocolError => "upstream_protocol_error",
        }
        .into()
    }

    /// The `x-meshcore-decision` value.
    pub(crate) fn decision_header(&self) -> String {
        let mut value = self.decision.by.to_string();
        if let Some(target) = &self.decision.target {
            value.push_str(" -> ");
            value.push_str(target);
        }
        if !self.flags.is_empty() {
            value.push_str("; ");
            value.push_str(&self.flags.to_string());
            value.push(' ');
            value.push_str(&self.details);
        }
        value
    }

    /// The `proxy-status` value (RFC 9209), for errors only.
    pub(crate) fn proxy_status(&self) -> Option<String> {
        let error = self.error?;
        Some(format!(
            "{PROXY_NAME}; error={}; details={}",
            error.as_str(),
            sf_string(&self.details)
        ))
    }

    /// The body: the configured one, else for an error `<flags>: <details>`, else none.
    fn body_bytes(&self) -> Bytes {
        match &self.body {
            Some(body) => body.clone(),
            None if self.error.is_some() => {
                Bytes::from(format!("{}: {}\n", self.flags, self.details))
            }
            None => Bytes::new(),
        }
    }

    /// The reply as HTTP/1.1 bytes with `Connection: close`, for a connection the HTTP
    /// server never took (see `malformed.rs`): the same status, headers and body as
    /// [`LocalReply::into_response`] gives a plain HTTP/1 client.
    pub(crate) fn to_http1_close(&self) -> Vec<u8> {
        let body = self.body_bytes();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status.as_str(),
            self.status.canonical_reason().unwrap_or("")
        );
        let mut header = |name: &HeaderName, value: &str| {
            // Only values a header can carry (the same filter as `into_response`).
            if header_value(value).is_some() {
                head.push_str(name.as_str());
                head.push_str(": ");
                head.push_str(value);
                head.push_str("\r\n");
            }
        };
        if let Some(status) = self.proxy_status() {
            header(&PROXY_STATUS, &status);
        }
        header(&DECISION, &self.decision_header());
        if !body.is_empty() {
            header(&CONTENT_TYPE, "text/plain; charset=utf-8");
        }
        header(&CONTENT_LENGTH, &body.len().to_string());
        header(&CONNECTION, "close");
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }

    /// The response; `grpc` when the request was gRPC (content-type `application/grpc`).
    pub(crate) fn into_response(mut self, grpc: bool) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if let Some(status) = self.proxy_status().and_then(|v| header_value(&v)) {
            headers.insert(PROXY_STATUS, status);
        }
        if let Some(decision) = header_value(&self.decision_header()) {
            headers.insert(DECISION, decision);
        }
        if let Some(location) = self.location.take() {
            headers.insert(LOCATION, location);
        }
        if grpc && self.error.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(
                HeaderName::from_static("grpc-status"),
                HeaderValue::from_static(grpc_status(self.status)),
            );
            if let Some(message) = header_value(&self.details) {
                headers.insert(HeaderName::from_static("grpc-message"), message);
            }
            return response;
        }
        let body = self.body_bytes();
        if !body.is_empty() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            *response.body_mut() = body::full(body);
        }
        response
    }
}

/// gRPC status for an HTTP status, as gRPC's HTTP mapping has it.
fn grpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "13",
        401 => "16",
        403 => "7",
        404 => "12",
        429 | 502..=504 => "14",
        _ => "2",
    }
}

/// A header value from text: bytes outside visible ASCII become `?`, so the header can
/// always be sent.
fn header_value(text: &str) -> Option<HeaderValue> {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&cleaned).ok()
}

/// A structured-field string (RFC 8941): quoted, with `"` and `\` escaped.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            by: "VirtualService/default/reviews http[1]".into(),
            target: Some("outbound|9080|v2|reviews".into()),
        }
    }

    #[test]
    fn flags_print_like_envoy() {
        assert_eq!(Flags::none().to_string(), "-");
        let flags = Flags::from(ResponseFlag::UpstreamConnectionFailure)
            .with(ResponseFlag::UpstreamRetryLimitExceeded);
        assert_eq!(flags.to_string(), "UF,URX");
    }

    #[test]
    fn a_connect_failure_explains_itself() {
        let reply =
            LocalReply::connect_failed(true, "connect refused 127.0.0.1:9082".into(), decision());
        let response = reply.into_response(false);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[PROXY_STATUS],
            "meshcore; error=connection_refused; details=\"connect refused 127.0.0.1:9082\""
        );
        assert_eq!(
            response.headers()[DECISION],
            "VirtualService/default/reviews http[1] -> outbound|9080|v2|reviews; UF connect refused 127.0.0.1:9082"
        );
    }

    #[test]
    fn details_are_escaped_in_proxy_status() {
        let reply = LocalReply::no_route("no host \"a\\b\"".into(), Decision::default());
        assert_eq!(
            reply.proxy_status().unwrap(),
            "meshcore; error=destination_not_found; details=\"no host \\\"a\\\\b\\\"\""
        );
    }

    #[test]
    fn grpc_requests_get_grpc_status() {
        let response = LocalReply::timeout("after 1s".into(), decision()).into_response(true);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn a_redirect_is_not_an_error() {
        let reply = LocalReply::redirect(
            StatusCode::MOVED_PERMANENTLY,
            HeaderValue::from_static("http://a/new"),
            decision(),
        );
        assert!(reply.proxy_status().is_none());
        let response = reply.into_response(false);
        assert_eq!(response.headers()[LOCATION], "http://a/new");
        assert_eq!(
            response.headers()[DECISION],
            "VirtualService/default/reviews http[1] -> outbound|9080|v2|reviews"
        );
    }
}
