//! Metrics in the Prometheus text format (`GET /metrics`), named as a Postfix administrator
//! already scrapes them (after postfix_exporter: `smtpd_connects_total`,
//! `smtpd_messages_processed_total`, `smtpd_messages_rejected_total{code}` …) with a `herald_`
//! prefix, in base units (seconds, bytes), and no label that names an address.
//!
//! Counters and histograms are kept here as atomics the workers bump; queue sizes and ages,
//! reply records by status and runs by outcome are read from the stores at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram with fixed bucket bounds, in seconds.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last for `+Inf`.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => format!("{b}"),
                None => "+Inf".into(),
            };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Outbound delivery delay, from queued to the smarthost's `250` (a notification may wait
/// minutes to days while it is deferred).
const DELAY_BOUNDS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0,
];
/// The webhook's answer time.
const WEBHOOK_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the workers count.
pub struct Metrics {
    pub smtpd_connects: AtomicU64,
    pub smtpd_tls: AtomicU64,
    pub smtpd_processed: AtomicU64,
    /// Refusals by reply code (RCPT, DATA, MAIL): a handful of codes, never an address.
    rejected: Mutex<BTreeMap<u16, u64>>,
    pub delivery_delay: Histogram,
    pub webhook_latency: Histogram,
    /// Notifications delivered and failed since the start.
    pub outbound_sent: AtomicU64,
    pub outbound_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            smtpd_connects: AtomicU64::new(0),
            smtpd_tls: AtomicU64::new(0),
            smtpd_processed: AtomicU64::new(0),
            rejected: Mutex::new(BTreeMap::new()),
            delivery_delay: Histogram::new(DELAY_BOUNDS),
            webhook_latency: Histogram::new(WEBHOOK_BOUNDS),
            outbound_sent: AtomicU64::new(0),
            outbound_failed: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn rejected(&self, code: u16) {
        let mut r = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(code).or_default() += 1;
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What is read from the stores at scrape time.
#[derive(Default)]
pub struct Snapshot {
    pub uptime: Duration,
    pub disk_free_bytes: u64,
    /// Notifications by status, and the age of the oldest in each (seconds).
    pub queue: Vec<(&'static str, usize, f64)>,
    /// Reply records by status (`failed:<reason>` split into its reason).
    pub replies: Vec<(String, usize)>,
    pub replies_discarded: u64,
    /// Configuration runs by outcome.
    pub runs: Vec<(&'static str, usize)>,
}

/// Reads what the stores hold now.
pub fn snapshot(app: &crate::app::App) -> Snapshot {
    let now = crate::clock::now_ms();
    let mut runs: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in app.runs.list(usize::MAX).unwrap_or_default() {
        *runs.entry(r.status.name()).or_default() += 1;
    }
    Snapshot {
        uptime: app.started.elapsed(),
        disk_free_bytes: app.disk.free(),
        queue: app
            .queue
            .summary()
            .into_iter()
            .map(|(s, n, oldest)| {
                let age = oldest.map_or(0.0, |o| (now - o).max(0) as f64 / 1000.0);
                (s.name(), n, age)
            })
            .collect(),
        replies: app.spool.counts().unwrap_or_default(),
        replies_discarded: app.spool.discarded.load(Ordering::Relaxed),
        runs: runs.into_iter().collect(),
    }
}

/// A family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    family(out, name, help, "counter");
    let _ = writeln!(out, "{name} {v}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(m: &Metrics, s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP herald_build_info herald's version.\n# TYPE herald_build_info gauge\nherald_build_info{{version=\"{}\"}} 1",
        escape(crate::VERSION)
    );
    let _ = writeln!(
        out,
        "# HELP herald_uptime_seconds Seconds since the service started.\n# TYPE herald_uptime_seconds gauge\nherald_uptime_seconds {}",
        s.uptime.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "# HELP herald_data_disk_free_bytes Free space on the data directory's disk.\n# TYPE herald_data_disk_free_bytes gauge\nherald_data_disk_free_bytes {}",
        s.disk_free_bytes
    );
    counter(
        &mut out,
        "herald_smtpd_connects_total",
        "Connections accepted on the inbound SMTP port.",
        m.smtpd_connects.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "herald_smtpd_tls_connections_total",
        "Inbound sessions that completed STARTTLS.",
        m.smtpd_tls.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "herald_smtpd_messages_processed_total",
        "Messages accepted (250 after DATA, on disk).",
        m.smtpd_processed.load(Ordering::Relaxed),
    );
    family(
        &mut out,
        "herald_smtpd_messages_rejected_total",
        "Commands refused, by reply code.",
        "counter",
    );
    for (code, n) in m.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "herald_smtpd_messages_rejected_total{{code=\"{code}\"}} {n}"
        );
    }
    counter(
        &mut out,
        "herald_smtpd_messages_discarded_total",
        "Messages to no-reply addresses, accepted and dropped.",
        s.replies_discarded,
    );
    family(
        &mut out,
        "herald_queue_messages",
        "Notifications in the outbound queue, by status.",
        "gauge",
    );
    for (status, n, _) in &s.queue {
        let _ = writeln!(out, "herald_queue_messages{{status=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "herald_queue_oldest_message_age_seconds",
        "Age of the oldest notification of each status.",
        "gauge",
    );
    for (status, _, age) in &s.queue {
        let _ = writeln!(
            out,
            "herald_queue_oldest_message_age_seconds{{status=\"{status}\"}} {age}"
        );
    }
    counter(
        &mut out,
        "herald_smtp_messages_sent_total",
        "Notifications the smarthost accepted, since the start.",
        m.outbound_sent.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "herald_smtp_messages_failed_total",
        "Notifications that failed for good, since the start.",
        m.outbound_failed.load(Ordering::Relaxed),
    );
    m.delivery_delay.write(
        &mut out,
        "herald_smtp_delivery_delay_seconds",
        "Time from queueing a notification to the smarthost's 250.",
    );
    family(
        &mut out,
        "herald_replies",
        "Reply records kept, by status and failure reason.",
        "gauge",
    );
    for (status, n) in &s.replies {
        let (status, reason) = status.split_once(':').unwrap_or((status, ""));
        let _ = writeln!(
            out,
            "herald_replies{{status=\"{}\",reason=\"{}\"}} {n}",
            escape(status),
            escape(reason)
        );
    }
    m.webhook_latency.write(
        &mut out,
        "herald_webhook_request_duration_seconds",
        "Time from sending a reply to the webhook to its answer.",
    );
    family(
        &mut out,
        "herald_config_runs",
        "Configuration runs kept, by outcome.",
        "gauge",
    );
    for (status, n) in &s.runs {
        let _ = writeln!(out, "herald_config_runs{{status=\"{status}\"}} {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.webhook_latency.observe(Duration::from_millis(3));
        m.webhook_latency.observe(Duration::from_millis(40));
        m.webhook_latency.observe(Duration::from_secs(60));
        let text = render(&m, &Snapshot::default());
        assert!(
            text.contains("herald_webhook_request_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhook_request_duration_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhook_request_duration_seconds_bucket{le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhook_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhook_request_duration_seconds_sum 60.043\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhook_request_duration_seconds_count 3\n"),
            "{text}"
        );
    }

    #[test]
    fn rejections_are_by_code_and_replies_by_reason() {
        let m = Metrics::default();
        m.rejected(550);
        m.rejected(550);
        m.rejected(530);
        let s = Snapshot {
            replies: vec![("processed".into(), 4), ("failed:empty".into(), 1)],
            ..Snapshot::default()
        };
        let text = render(&m, &s);
        assert!(text.contains("herald_smtpd_messages_rejected_total{code=\"530\"} 1\nherald_smtpd_messages_rejected_total{code=\"550\"} 2\n"), "{text}");
        assert!(
            text.contains("herald_replies{status=\"processed\",reason=\"\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_replies{status=\"failed\",reason=\"empty\"} 1\n"),
            "{text}"
        );
    }
}
