//! Configuration runs (SPEC §1 "Applying"): the pending settings are validated, put in force
//! service by service while herald keeps running ([`crate::service::live`]), checked as a client
//! would see them, and only then made the applied settings; if a step fails, what changed is put
//! back and the run ends `failed`, naming the step and why. One run at a time; each is a record
//! ([`runs`]) that the console's run page, the manage API and `herald config apply --wait`
//! follow as it goes.
//!
//! The steps, in order (a step whose settings did not change is `skipped`):
//! 1. `validate` — the whole document passes the validator again (files it names may have
//!    changed since it was saved);
//! 2. `inbound` — the port-25 listener of the new settings takes over (or stops, with email
//!    off), then `inbound_check` — it greets with herald's banner and STARTTLS shows the
//!    configured certificate;
//! 3. `console` — the console's certificate (and listener, if it moved), checked by a handshake;
//! 4. `smarthost` — with email on, the SMTP server answers and takes the credentials;
//! 5. `webhook` — its server can be reached (a failure here is a `warning`: replies wait, and
//!    nothing is lost);
//! 6. `apply` — the settings become the applied ones; the workers take them at once.

pub mod checks;
pub mod runs;

use crate::app::App;
use crate::service::live::Live;
use crate::settings::{Settings, Stored};
use runs::{Busy, Event, Run, Status, Step, StepStatus};
use std::time::{Instant, SystemTime};

/// Keys whose change means a new port-25 listener generation.
/// Every step of a run, in order.
pub const STEPS: &[&str] = &[
    "validate",
    "inbound",
    "inbound_check",
    "console",
    "smarthost",
    "webhook",
    "apply",
];

const INBOUND_KEYS: &[&str] = &[
    "hostname",
    "smtp.enabled",
    "smtp.noreply_address",
    "smtp.discard_to_noreply",
    "inbound.",
];
/// Keys of the console's listener and certificate.
const CONSOLE_KEYS: &[&str] = &[
    "hostname",
    "inbound.cert_file",
    "inbound.key_file",
    "console.listen",
];
/// Keys of the smarthost.
const SMARTHOST_KEYS: &[&str] = &[
    "hostname",
    "smtp.enabled",
    "smtp.address",
    "smtp.port",
    "smtp.domain",
    "smtp.authentication",
    "smtp.username",
    "smtp.password",
    "smtp.tls",
    "smtp.ca_file",
];
const WEBHOOK_KEYS: &[&str] = &["replies.webhook_url", "replies.ca_file"];

fn touches(changed: &[String], keys: &[&str]) -> bool {
    changed.iter().any(|c| {
        keys.iter().any(|k| {
            if k.ends_with('.') {
                c.starts_with(k)
            } else {
                c == k
            }
        })
    })
}

/// Why a run was not started.
#[derive(Debug)]
pub enum Refused {
    /// Another run is going on.
    Busy(u64),
    /// The settings or the store cannot be read, or the service is not taking runs.
    Failed(String),
}

/// Asks for a run of the latest saved settings; returns it as begun (`running`). `trigger` is
/// `console`, `api` or `cli`; `client` the address it came from, if over the network.
pub fn request(app: &App, trigger: &str, client: Option<String>) -> Result<Run, Refused> {
    let fail = |e: String| Refused::Failed(e);
    let applied = app
        .settings
        .applied()
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no settings yet".into()))?;
    let latest = app
        .settings
        .latest()
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no settings yet".into()))?;
    let changed = applied
        .settings
        .changed_keys(&latest.settings)
        .into_iter()
        .map(str::to_string)
        .collect();
    let run = match app
        .runs
        .begin(trigger, client, applied.version, latest.version, changed)
        .map_err(fail)?
    {
        Ok(run) => run,
        Err(Busy(id)) => return Err(Refused::Busy(id)),
    };
    if app.run_requests.try_send(run.id).is_err() {
        let mut run = run;
        finish(
            app,
            &mut run,
            Instant::now(),
            Some("herald is stopping: the run was not started".into()),
        );
        return Err(Refused::Failed(
            "herald is stopping; try again once it runs".into(),
        ));
    }
    log::info!(
        "configuration run {} started ({trigger}{}); changes: {}",
        run.id,
        run.client
            .as_deref()
            .map(|c| format!(" from {c}"))
            .unwrap_or_default(),
        if run.changed.is_empty() {
            "none".into()
        } else {
            run.changed.join(", ")
        }
    );
    Ok(run)
}

fn now() -> String {
    crate::clock::rfc3339(SystemTime::now())
}

/// A run as it goes: its record, saved after every change.
struct Progress<'a> {
    app: &'a App,
    run: Run,
    started: Instant,
}

impl Progress<'_> {
    fn event(&mut self, severity: &str, name: &str, body: String) {
        self.run.events.push(Event {
            timestamp: now(),
            severity_text: severity.into(),
            body,
            event_name: name.into(),
        });
    }

    fn save(&self) {
        if let Err(e) = self.app.runs.save(&self.run) {
            log::error!(
                "configuration run {}: cannot save its record: {e}",
                self.run.id
            );
        }
    }

    fn start(&mut self, name: &str) {
        self.run.steps.push(Step {
            name: name.into(),
            status: StepStatus::Running,
            message: String::new(),
            started_at: now(),
            finished_at: None,
            took_ms: None,
        });
        self.event("INFO", "step_start", format!("{name}: started"));
        self.save();
    }

    fn end(&mut self, status: StepStatus, message: String, began: Instant) {
        let step = self.run.steps.last_mut().expect("a step was started");
        step.status = status;
        step.message = message.clone();
        step.finished_at = Some(now());
        step.took_ms = Some(began.elapsed().as_millis() as u64);
        let name = step.name.clone();
        let severity = match status {
            StepStatus::Failed => "ERROR",
            StepStatus::Warning => "WARN",
            _ => "INFO",
        };
        self.event(
            severity,
            "step_end",
            format!("{name}: {} — {message}", status.name()),
        );
        self.save();
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.start(name);
        self.end(StepStatus::Skipped, why.into(), Instant::now());
    }
}

/// Ends `run` as success (`error` none) or failed, and saves it.
fn finish(app: &App, run: &mut Run, started: Instant, error: Option<String>) {
    run.status = if error.is_some() {
        Status::Failed
    } else {
        Status::Success
    };
    run.finished_at = Some(now());
    run.took_ms = Some(started.elapsed().as_millis() as u64);
    run.events.push(Event {
        timestamp: now(),
        severity_text: if error.is_some() { "ERROR" } else { "INFO" }.into(),
        body: match &error {
            None => format!("run {} finished: success", run.id),
            Some(e) => format!("run {} failed: {e}", run.id),
        },
        event_name: "run_end".into(),
    });
    run.error = error;
    if let Err(e) = app.runs.save(run) {
        log::error!("configuration run {}: cannot save its record: {e}", run.id);
    }
}

/// Carries out run `id` on the live services.
pub async fn execute(app: &App, live: &mut Live, id: u64) {
    let run = match app.runs.get(id) {
        Ok(Some(r)) => r,
        other => {
            log::error!("configuration run {id}: its record cannot be read: {other:?}");
            return;
        }
    };
    let mut p = Progress {
        app,
        run,
        started: Instant::now(),
    };
    p.event("INFO", "run_start", format!("run {id} started"));
    let outcome = steps(&mut p, live).await;
    let started = p.started;
    let mut run = p.run;
    match outcome {
        Ok(()) => {
            live.finish().await;
            finish(app, &mut run, started, None);
            log::info!(
                "configuration run {id}: success in {} ms",
                run.took_ms.unwrap_or(0)
            );
        }
        Err(why) => {
            let undone = live.undo().await;
            for s in run
                .steps
                .iter_mut()
                .filter(|s| s.status == StepStatus::Success && undone.contains(&s.name.as_str()))
            {
                s.status = StepStatus::RolledBack;
                s.message = format!("{}; put back as it was", s.message);
            }
            let reached: Vec<String> = run.steps.iter().map(|s| s.name.clone()).collect();
            for name in STEPS.iter().filter(|n| !reached.iter().any(|r| r == *n)) {
                run.steps.push(Step {
                    name: name.to_string(),
                    status: StepStatus::NotRun,
                    message: "not run: an earlier step failed".into(),
                    started_at: now(),
                    finished_at: None,
                    took_ms: None,
                });
            }
            log::error!(
                "configuration run {id} failed: {why}; the settings in force are unchanged"
            );
            finish(app, &mut run, started, Some(why));
        }
    }
}

/// The steps; `Err` names the failed step and why (the step is already marked failed).
async fn steps(p: &mut Progress<'_>, live: &mut Live) -> Result<(), String> {
    let app = p.app;
    let read = || -> Result<(Stored, Stored), String> {
        let applied = app
            .settings
            .applied()
            .map_err(|e| e.to_string())?
            .ok_or("no settings")?;
        let latest = app
            .settings
            .latest()
            .map_err(|e| e.to_string())?
            .ok_or("no settings")?;
        Ok((applied, latest))
    };
    // validate
    p.start("validate");
    let t = Instant::now();
    let (applied, target) = match read() {
        Ok(x) => x,
        Err(e) => {
            p.end(StepStatus::Failed, e.clone(), t);
            return Err(format!("validate: {e}"));
        }
    };
    // Saved again since the run was asked for: this run applies what is saved now.
    if target.version != p.run.to_version {
        p.run.to_version = target.version;
        p.run.changed = applied
            .settings
            .changed_keys(&target.settings)
            .into_iter()
            .map(str::to_string)
            .collect();
    }
    let next: Settings = target.settings.clone();
    if let Err(e) = next.validate() {
        let msg =
            e.0.iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ");
        p.end(StepStatus::Failed, msg.clone(), t);
        return Err(format!("validate: {msg}"));
    }
    p.end(
        StepStatus::Success,
        format!(
            "version {} is valid ({} changed)",
            target.version,
            if p.run.changed.is_empty() {
                "nothing".into()
            } else {
                p.run.changed.join(", ")
            }
        ),
        t,
    );
    let changed = p.run.changed.clone();
    // The first run after a boot that brought no listener up, or settings unchanged: a run
    // still checks what is in force.
    let fail = |p: &mut Progress, step: &str, e: String, t: Instant| {
        p.end(StepStatus::Failed, e.clone(), t);
        Err(format!("{step}: {e}"))
    };

    // inbound
    if touches(&changed, INBOUND_KEYS) {
        p.start("inbound");
        let t = Instant::now();
        match live.swap_inbound(&next).await {
            Ok(()) => {
                let what = match &live.inbound {
                    Some(g) => format!(
                        "the port-25 listener for {} now serves {}",
                        next.reply_domain(),
                        g.addr
                    ),
                    None => "email is off: the port-25 listener stopped taking connections".into(),
                };
                p.end(StepStatus::Success, what, t);
            }
            Err(e) => return fail(p, "inbound", e, t),
        }
    } else {
        p.skip("inbound", "nothing the port-25 listener uses changed");
    }
    if let Some(g) = &live.inbound {
        p.start("inbound_check");
        let t = Instant::now();
        let leaf = match checks::expected_leaf(&app.db, &next) {
            Ok(l) => l,
            Err(e) => return fail(p, "inbound_check", e, t),
        };
        match checks::inbound(g.addr, &next.hostname, &leaf).await {
            Ok(m) => p.end(StepStatus::Success, m, t),
            Err(e) => return fail(p, "inbound_check", e, t),
        }
    } else {
        p.skip("inbound_check", "email is off");
    }

    // console
    p.start("console");
    let t = Instant::now();
    if touches(&changed, CONSOLE_KEYS)
        && let Err(e) = live.swap_console(&next).await
    {
        return fail(p, "console", e, t);
    }
    let leaf = match checks::expected_leaf(&app.db, &next) {
        Ok(l) => l,
        Err(e) => return fail(p, "console", e, t),
    };
    match checks::console(live.console.addr, &next.hostname, &leaf).await {
        Ok(m) => p.end(StepStatus::Success, m, t),
        Err(e) => return fail(p, "console", e, t),
    }

    // smarthost
    if next.smtp.enabled && touches(&changed, SMARTHOST_KEYS) {
        p.start("smarthost");
        let t = Instant::now();
        match checks::smarthost(&next).await {
            Ok(m) => p.end(StepStatus::Success, m, t),
            Err(e) => return fail(p, "smarthost", e, t),
        }
    } else if !next.smtp.enabled {
        p.skip("smarthost", "email is off");
    } else {
        p.skip(
            "smarthost",
            "nothing the SMTP server connection uses changed",
        );
    }

    // webhook
    if touches(&changed, WEBHOOK_KEYS) && !next.replies.webhook_url.is_empty() {
        p.start("webhook");
        let t = Instant::now();
        match checks::webhook(&next).await {
            Ok(m) => p.end(StepStatus::Success, m, t),
            Err(e) => p.end(
                StepStatus::Warning,
                format!("{e}; replies wait until it can be reached, nothing is lost"),
                t,
            ),
        }
    } else {
        p.skip(
            "webhook",
            "replies.webhook_url and replies.ca_file did not change",
        );
    }

    // apply
    p.start("apply");
    let t = Instant::now();
    if let Err(e) = app.settings.apply(&target) {
        return fail(p, "apply", e.to_string(), t);
    }
    crate::logfile::configure(&target.settings);
    app.queue.wake();
    app.spool.wake();
    p.end(
        StepStatus::Success,
        format!(
            "version {} is in force (was {})",
            target.version, applied.version
        ),
        t,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_steps_a_change_touches() {
        let c = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(touches(&c(&["inbound.tls_enforced"]), INBOUND_KEYS));
        assert!(touches(&c(&["smtp.enabled"]), INBOUND_KEYS));
        assert!(!touches(&c(&["smtp.port"]), INBOUND_KEYS));
        assert!(touches(&c(&["smtp.port"]), SMARTHOST_KEYS));
        assert!(!touches(&c(&["inbound.tls_enforced"]), CONSOLE_KEYS));
        assert!(touches(&c(&["inbound.cert_file"]), CONSOLE_KEYS));
        assert!(!touches(&c(&["replies.webhook_secret"]), WEBHOOK_KEYS));
    }
}
