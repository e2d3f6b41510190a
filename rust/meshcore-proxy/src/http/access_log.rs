//! The log phase: one record per request, in Istio's default text format or as JSON,
//! written to a file (or `/dev/stdout`) by a thread of its own.
//!
//! The request path only formats nothing and waits for nothing: it hands the record to a
//! bounded channel with `try_send`. When the writer falls behind and the channel is full,
//! the record is dropped and counted (`access_log_dropped`), so a slow disk never slows
//! traffic.

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshcore_snapshot::{AccessLog, AccessLogFormat};
use serde_json::json;
use tracing::warn;

use super::respond::Flags;
use crate::stats::TotalCounters;

/// Records that may wait for the writer.
const QUEUE: usize = 4096;

/// What one request did, as the access log reports it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) start: SystemTime,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) protocol: &'static str,
    pub(crate) status: u16,
    pub(crate) flags: Flags,
    /// Envoy's RESPONSE_CODE_DETAILS: `via_upstream`, or why the proxy answered itself.
    pub(crate) details: Cow<'static, str>,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) duration: Duration,
    pub(crate) upstream_service_time: Option<Duration>,
    pub(crate) forwarded_for: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) authority: Option<String>,
    pub(crate) upstream_host: Option<SocketAddr>,
    pub(crate) upstream_cluster: Option<Arc<str>>,
    pub(crate) downstream_local: SocketAddr,
    pub(crate) downstream_remote: SocketAddr,
    pub(crate) route_name: Option<Arc<str>>,
    /// Durations are measured (an access log will read them).
    pub(crate) timed: bool,
}

impl Record {
    pub(crate) fn new(downstream_local: SocketAddr, downstream_remote: SocketAddr) -> Self {
        Self {
            start: UNIX_EPOCH,
            method: String::new(),
            path: String::new(),
            protocol: "HTTP/1.1",
            status: 0,
            flags: Flags::none(),
            details: Cow::Borrowed(""),
            bytes_received: 0,
            bytes_sent: 0,
            duration: Duration::ZERO,
            upstream_service_time: None,
            forwarded_for: None,
            user_agent: None,
            request_id: None,
            authority: None,
            upstream_host: None,
            upstream_cluster: None,
            downstream_local,
            downstream_remote,
            route_name: None,
            timed: false,
        }
    }

    /// Istio's default format (`meshConfig.accessLogFormat` unset).
    pub(crate) fn text(&self) -> String {
        fn or_dash(value: Option<&str>) -> &str {
            value.filter(|v| !v.is_empty()).unwrap_or("-")
        }
        format!(
            "[{}] \"{} {} {}\" {} {} {} - \"-\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} - {} {} - {}\n",
            rfc3339(self.start),
            or_dash(Some(&self.method)),
            or_dash(Some(&self.path)),
            self.protocol,
            self.status,
            self.flags,
            or_dash(Some(&self.details)),
            self.bytes_received,
            self.bytes_sent,
            self.duration.as_millis(),
            self.upstream_service_time
                .map_or_else(|| "-".to_string(), |t| t.as_millis().to_string()),
            or_dash(self.forwarded_for.as_deref()),
            or_dash(self.user_agent.as_deref()),
            or_dash(self.request_id.as_deref()),
            or_dash(self.authority.as_deref()),
            super::upstream::host(self.upstream_host),
            or_dash(self.upstream_cluster.as_deref()),
            self.downstream_local,
            self.downstream_remote,
            or_dash(self.route_name.as_deref()),
        )
    }

    /// Istio's JSON encoding: the same fields, by their Envoy names.
    pub(crate) fn json(&self) -> String {
        let mut line = json!({
            "start_time": rfc3339(self.start),
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "response_code": self.status,
            "response_flags": self.flags.to_string(),
            "response_code_details": &*self.details,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "duration": self.duration.as_millis() as u64,
            "upstream_service_time": self.upstream_service_time.map(|t| t.as_millis() as u64),
            "x_forwarded_for": self.forwarded_for,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "authority": self.authority,
            "upstream_host": self.upstream_host.map(|a| a.to_string()),
            "upstream_cluster": self.upstream_cluster.as_deref(),
            "downstream_local_address": self.downstream_local.to_string(),
            "downstream_remote_address": self.downstream_remote.to_string(),
            "route_name": self.route_name.as_deref(),
        })
        .to_string();
        line.push('\n');
        line
    }
}

/// The sending end of one access log. Dropping the last clone lets the writer thread
/// finish what is queued and exit.
#[derive(Debug)]
pub(crate) struct AccessLogger {
    pub(crate) config: AccessLog,
    sender: SyncSender<Record>,
    totals: Arc<TotalCounters>,
}

impl AccessLogger {
    /// Opens the file (append) and starts the writer thread.
    pub(crate) fn start(config: &AccessLog, totals: Arc<TotalCounters>) -> std::io::Result<Self> {
        Self::with_queue(config, totals, QUEUE)
    }

    /// [`AccessLogger::start`] with a queue of `queue` records.
    fn with_queue(
        config: &AccessLog,
        totals: Arc<TotalCounters>,
        queue: usize,
    ) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)?;
        let (sender, receiver) = sync_channel(queue);
        let format = config.format;
        std::thread::Builder::new()
            .name("meshcore-access-log".into())
            .spawn(move || write_records(receiver, BufWriter::new(file), format))?;
        Ok(Self {
            config: config.clone(),
            sender,
            totals,
        })
    }

    pub(crate) fn log(&self, record: Record) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.totals.access_log_dropped();
            }
        }
    }
}

fn write_records(receiver: Receiver<Record>, mut out: impl Write, format: AccessLogFormat) {
    while let Ok(record) = receiver.recv() {
        let mut line = encode(&record, format);
        // Write what else is waiting before flushing: one syscall per burst.
        while let Ok(next) = receiver.try_recv() {
            line.push_str(&encode(&next, format));
        }
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            warn!("access log write failed");
        }
    }
}

fn encode(record: &Record, format: AccessLogFormat) -> String {
    match format {
        AccessLogFormat::Text => record.text(),
        AccessLogFormat::Json => record.json(),
    }
}

/// `2024-05-01T12:00:00.123Z`, as Envoy's START_TIME.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::respond::ResponseFlag;

    fn record() -> Record {
        let mut r = Record::new(
            "127.0.0.1:15001".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        );
        r.start = UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        r.method = "GET".into();
        r.path = "/reviews/1".into();
        r.status = 503;
        r.flags = ResponseFlag::UpstreamConnectionFailure.into();
        r.details = "upstream_connect_failure".into();
        r.upstream_cluster = Some("outbound|9080|v2|reviews".into());
        r
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339(record().start), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn text_is_istios_default_format() {
        let line = record().text();
        assert!(
            line.starts_with("[2024-05-01T12:00:00.123Z] \"GET /reviews/1 HTTP/1.1\" 503 UF upstream_connect_failure - \"-\" 0 0 0 - "),
            "{line}"
        );
        assert!(
            line.contains(" outbound|9080|v2|reviews - 127.0.0.1:15001 127.0.0.1:40000 - -\n"),
            "{line}"
        );
    }

    #[test]
    fn json_has_envoy_field_names() {
        let value: serde_json::Value = serde_json::from_str(&record().json()).unwrap();
        assert_eq!(value["response_flags"], "UF");
        assert_eq!(value["response_code"], 503);
        assert_eq!(value["upstream_cluster"], "outbound|9080|v2|reviews");
    }

    /// A writer stuck on a FIFO nobody reads: once the pipe and the queue are full, every
    /// record is dropped and counted, and logging never blocks.
    #[test]
    fn records_are_dropped_and_counted_when_the_writer_falls_behind() {
        let dir = std::env::temp_dir().join(format!("meshcore-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stalled.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO for writing waits for a reader: open one that never reads.
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::File::open(reader_path).unwrap());
        let totals = Arc::new(TotalCounters::default());
        let config = AccessLog {
            path: fifo.to_string_lossy().into_owned(),
            format: AccessLogFormat::Json,
        };
        let logger = AccessLogger::with_queue(&config, Arc::clone(&totals), 4).unwrap();
        let _reader = reader.join().unwrap();
        // Far more than a pipe (at most 1 MiB) and the queue can hold.
        let sent = 20_000u64;
        for _ in 0..sent {
            logger.log(record());
        }
        let dropped = totals.report().access_log_dropped;
        assert!(dropped > 0 && dropped < sent, "dropped {dropped} of {sent}");
        drop(logger);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
