//! The diagnostics report: what an administrator (or support) needs to see when mail does not
//! flow, gathered from the running service and written as checks — each with what was found,
//! what was expected and what to do — so one report serves the console's table, the plain text
//! pasted into a ticket (`GET /setup/diagnostics`, `herald diagnostics`) and the support bundle.
//!
//! Reading only: gathering a report changes nothing but the kept copy of the previous report's
//! findings (sled tree `diagnostics`), from which "changed since the last report" is told. No
//! secret is read into a report: settings come masked.

mod outside;
mod report;

pub use report::{Check, Report, Section, State};

use outside::is_localhost;
pub use outside::{SMTP_PORT, dns_section, port_section};

use crate::app::App;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// The sled tree of what diagnostics keeps.
const TREE: &str = "diagnostics";
const LAST_TEST: &[u8] = b"last_test";
const LAST_FINDINGS: &[u8] = b"last_findings";

/// Days of validity under which a certificate is a warning.
pub const CERT_WARN_DAYS: i64 = 30;

/// The outcome of the last test email, as kept for the report (the transcript stays in
/// unicorn.log).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastTest {
    pub at: String,
    pub to: String,
    pub ok: bool,
    pub error: Option<String>,
    /// What to do about the error, as the test said it.
    #[serde(default)]
    pub fix: Option<String>,
    pub reply: Option<String>,
}

/// Keeps the outcome of a test email for the next report. Failing to keep it is logged, never
/// an error of the test.
pub fn record_test(db: &sled::Db, to: &str, result: &crate::outbound::testmail::TestResult) {
    let last = LastTest {
        at: crate::clock::rfc3339(SystemTime::now()),
        to: crate::bounded::bounded(to, crate::bounded::FIELD_MAX),
        ok: result.ok,
        error: result.error.clone(),
        fix: result.fix.clone(),
        reply: result.reply.clone(),
    };
    let kept = db
        .open_tree(TREE)
        .and_then(|t| t.insert(LAST_TEST, serde_json::to_vec(&last).expect("serializes")));
    if let Err(e) = kept {
        log::warn!("could not keep the test email's outcome for diagnostics: {e}");
    }
}

fn last_test(db: &sled::Db) -> Option<LastTest> {
    let v = db.open_tree(TREE).ok()?.get(LAST_TEST).ok()??;
    serde_json::from_slice(&v).ok()
}

/// Gathers the report of the running service, and keeps its findings for the next one.
pub fn gather(app: &App) -> Report {
    let now = SystemTime::now();
    let mut report = Report::new(crate::clock::rfc3339(now));
    report.push(service(app));
    let applied = app.settings.applied().ok().flatten();
    let pending = app.settings.pending().ok().flatten();
    if let Some(applied) = &applied {
        report.push(mail_flow(app, &applied.settings));
        let servers = crate::dns::servers(&applied.settings.diagnostics.nameservers);
        report.push(smol::block_on(dns_section(
            &servers,
            &applied.settings.hostname,
        )));
        if applied.settings.smtp.enabled && !is_localhost(&applied.settings.hostname) {
            let leaf = crate::supervisor::checks::expected_leaf(&app.db, &applied.settings);
            if let Ok(leaf) = leaf {
                report.push(smol::block_on(port_section(
                    &servers,
                    &applied.settings.hostname,
                    SMTP_PORT,
                    &leaf,
                )));
            }
        }
        report.push(certificate(app, &applied.settings, now));
    } else {
        let mut s = Section::new("Settings");
        s.push(Check::fail(
            "settings",
            "none stored",
            "applied settings",
            "start herald with a config file, or save settings in the console",
        ));
        report.push(s);
    }
    report.push(last_run(app));
    report.push(test_email(app));
    report.push(queues(app));
    // The settings last: the checks above are what to read first.
    if let Some(applied) = &applied {
        report.push(settings_section(
            &applied.settings,
            pending.as_ref().map(|p| &p.settings),
        ));
    }
    remember(app, &mut report);
    report
}

fn service(app: &App) -> Section {
    let mut s = Section::new("Service");
    s.push(Check::info("version", crate::VERSION));
    let up = app.started.elapsed().as_secs();
    s.push(Check::info(
        "uptime",
        &format!("{}d {}h {}m", up / 86_400, up / 3600 % 24, up / 60 % 60),
    ));
    let free = app.disk.free();
    let mib = free / (1 << 20);
    if app.disk.is_low() {
        s.push(Check::fail(
            "disk free",
            &format!("{mib} MiB in the data directory"),
            &format!("at least {} MiB", crate::disk::LOW_WATER / (1 << 20)),
            "free space on the data disk: new mail is refused for the moment (452) until there is",
        ));
    } else {
        s.push(Check::ok(
            "disk free",
            &format!("{mib} MiB in the data directory"),
        ));
    }
    if let Some((files, bytes)) = app.spool.body_usage() {
        s.push(Check::info(
            "reply bodies",
            &format!(
                "{:.1} MiB in segment files ({files}; each goes once every reply in it is finished)",
                bytes as f64 / (1 << 20) as f64
            ),
        ));
    }
    s
}

/// The port-25 listener in force, greeting and handshaking as a sender sees it, and the
/// smarthost, as a configuration run checks them (nothing is sent); both at once.
fn mail_flow(app: &App, settings: &Settings) -> Section {
    use crate::supervisor::checks;
    let mut s = Section::new("Mail flow");
    if !settings.smtp.enabled {
        s.push(Check::info(
            "email",
            "off: no notification is sent and port 25 is closed",
        ));
        return s;
    }
    let addr = *app.inbound_addr.lock().unwrap_or_else(|p| p.into_inner());
    let inbound = async {
        let addr = addr.ok_or_else(|| "the port-25 listener is not running".to_string())?;
        let leaf = checks::expected_leaf(&app.db, settings)?;
        checks::inbound(addr, &settings.hostname, &leaf).await
    };
    let inbound: std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + '_>> =
        Box::pin(inbound);
    let (inbound, smarthost) =
        smol::block_on(smol::future::zip(inbound, checks::smarthost(settings)));
    match inbound {
        Ok(line) => s.push(Check::ok("inbound listener", &line)),
        Err(e) => s.push(Check::fail(
            "inbound listener",
            &e,
            &format!("herald's banner for {} and its certificate", settings.hostname),
            "look at herald's log for why the listener stopped; Save settings starts a configuration run that puts it back",
        )),
    }
    match smarthost {
        Ok(line) => s.push(Check::ok("SMTP server", &line)),
        Err(e) => s.push(Check::fail(
            "SMTP server",
            &e,
            "the server answers and takes the credentials",
            "send a test email from Email settings: it shows the whole conversation and what to change",
        )),
    }
    s
}

fn settings_section(applied: &Settings, pending: Option<&Settings>) -> Section {
    let mut s = Section::new("Settings (applied, secrets masked)");
    for (key, value) in applied.masked_pairs() {
        s.push(Check::info(key, &shown(&value)));
    }
    if let Some(p) = pending {
        let changed = applied.changed_keys(p);
        if !changed.is_empty() {
            let pairs = p.masked_pairs();
            let shown: Vec<String> = changed
                .iter()
                .map(|k| {
                    let v = pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| shown(v));
                    format!("{k} = {}", v.unwrap_or_default())
                })
                .collect();
            s.push(Check::warn(
                "pending",
                &shown.join("; "),
                "nothing pending",
                "apply the pending settings (Save settings in the console, or herald config apply)",
            ));
        }
    }
    s
}

fn certificate(app: &App, settings: &Settings, now: SystemTime) -> Section {
    let mut s = Section::new("Inbound certificate");
    let now_s = crate::clock::unix_millis(now) / 1000;
    let der = crate::net::tls::load_identity(&app.db, settings)
        .map(|(certs, _key)| certs.into_iter().next().map(|c| c.to_vec()));
    match der {
        Ok(Some(der)) => match crate::x509::summary(&der) {
            Some(sum) => {
                let left = sum.days_left(now_s);
                let line = sum.describe(now_s);
                if left < 0 {
                    s.push(Check::fail(
                        "certificate",
                        &line,
                        "a valid certificate",
                        "install a renewed certificate (inbound.cert_file, inbound.key_file)",
                    ));
                } else if left < CERT_WARN_DAYS {
                    s.push(Check::warn(
                        "certificate",
                        &line,
                        &format!("at least {CERT_WARN_DAYS} days left"),
                        "renew the certificate before it expires",
                    ));
                } else {
                    s.push(Check::ok("certificate", &line));
                }
                let want = crate::net::tls::appliance_names(settings);
                let missing: Vec<&String> = want
                    .iter()
                    .filter(|n| !sum.names.iter().any(|have| name_covers(have, n)))
                    .collect();
                if missing.is_empty() {
                    s.push(Check::ok("names", &sum.names.join(", ")));
                } else {
                    s.push(Check::warn(
                        "names",
                        &sum.names.join(", "),
                        &want.join(", "),
                        "use a certificate that names these hosts, or senders that verify will not deliver over TLS",
                    ));
                }
            }
            None => s.push(Check::fail(
                "certificate",
                "not readable",
                "an X.509 certificate",
                "check inbound.cert_file",
            )),
        },
        Ok(None) => s.push(Check::fail(
            "certificate",
            "none",
            "a certificate",
            "check inbound.cert_file",
        )),
        Err(e) => s.push(Check::fail(
            "certificate",
            &e,
            "a readable certificate and key",
            "check inbound.cert_file and inbound.key_file",
        )),
    }
    s
}

/// A setting's value as the report shows it (masked already).
fn shown(v: &crate::settings::Value) -> String {
    match v.to_string() {
        s if s.is_empty() => "(empty)".into(),
        s => s,
    }
}

/// Whether the certificate name `have` (maybe `*.example.com`) covers the host `want`.
fn name_covers(have: &str, want: &str) -> bool {
    if have.eq_ignore_ascii_case(want) {
        return true;
    }
    match (have.strip_prefix("*."), want.split_once('.')) {
        (Some(base), Some((_, rest))) => base.eq_ignore_ascii_case(rest),
        _ => false,
    }
}

fn last_run(app: &App) -> Section {
    let mut s = Section::new("Last configuration run");
    match app.runs.latest() {
        Ok(Some(run)) => {
            let line = format!(
                "#{} {} at {}{}",
                run.id,
                run.status.name(),
                run.started_at,
                run.took_ms
                    .map(|ms| format!(", took {ms} ms"))
                    .unwrap_or_default()
            );
            match run.status.name() {
                "failed" => s.push(Check::fail(
                    "run",
                    &format!("{line}: {}", run.error.as_deref().unwrap_or("")),
                    "success",
                    "fix what the failed step names, then save and apply again",
                )),
                "running" => s.push(Check::info("run", &line)),
                _ => s.push(Check::ok("run", &line)),
            }
        }
        Ok(None) => s.push(Check::info("run", "none yet")),
        Err(e) => s.push(Check::fail(
            "run",
            &e,
            "readable runs",
            "see the service log",
        )),
    }
    s
}

fn test_email(app: &App) -> Section {
    let mut s = Section::new("Last test email");
    match last_test(&app.db) {
        Some(t) if t.ok => s.push(Check::ok(
            "test email",
            &format!("to {} at {}: {}", t.to, t.at, t.reply.unwrap_or_default()),
        )),
        Some(t) => {
            // The test's own advice points at the conversation shown beside it; here that
            // conversation is in unicorn.log.
            let advice = t
                .fix
                .as_deref()
                .map(|f| f.replace("the conversation below", "the test's conversation"))
                .map(|f| format!("{} ", f.trim_end()))
                .unwrap_or_default();
            let fix = format!(
                "{advice}The whole conversation is in enterprise-manage-logs/unicorn.log (in the support bundle); send the test again from Email settings to see it in place."
            );
            s.push(Check::fail(
                "test email",
                &format!("to {} at {}: {}", t.to, t.at, t.error.unwrap_or_default()),
                "delivered",
                &fix,
            ))
        }
        None => s.push(Check::info(
            "test email",
            "none sent since this data directory was made",
        )),
    }
    s
}

fn queues(app: &App) -> Section {
    let mut s = Section::new("Queues");
    let out: Vec<String> = app
        .queue
        .counts()
        .iter()
        .map(|(st, n)| format!("{} {n}", st.name()))
        .collect();
    s.push(Check::info("notifications", &out.join(", ")));
    match app.spool.counts() {
        Ok(counts) if counts.is_empty() => s.push(Check::info("replies", "none")),
        Ok(counts) => {
            let shown: Vec<String> = counts.iter().map(|(st, n)| format!("{st} {n}")).collect();
            s.push(Check::info("replies", &shown.join(", ")));
        }
        Err(e) => s.push(Check::fail(
            "replies",
            &e,
            "readable reply records",
            "see the service log",
        )),
    }
    s
}

/// Marks what changed since the last report, and keeps this one's findings.
fn remember(app: &App, report: &mut Report) {
    let Ok(tree) = app.db.open_tree(TREE) else {
        return;
    };
    let before: Option<Vec<(String, String)>> = tree
        .get(LAST_FINDINGS)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok());
    let now = report.findings();
    if let Some(before) = before {
        report.mark_changes(&before);
    }
    let _ = tree.insert(LAST_FINDINGS, serde_json::to_vec(&now).expect("serializes"));
}

#[cfg(test)]
mod tests;
