//! Reply processing: takes each pending record from the reply queue, parses its message, drops
//! auto-replies, bounces, empty and oversized replies, de-duplicates a message a sending MTA
//! delivered twice, and POSTs the reply to `replies.webhook_url`, signed, retrying with backoff
//! for three days. Every step goes to metroplex.log in the seed's words, and every outcome onto
//! the record (`GET /manage/v1/replies`).

use super::{extract, reading, token, webhook};
use crate::app::{App, paths};
use crate::inbound::spool::{QueueId, ReplyRecord, Update};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Records worked on at once.
pub const PARALLEL: usize = 8;
/// Records taken per round.
const ROUND: usize = 256;
/// First retry after this; each later one waits twice as long, up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);
/// A reply the webhook has not taken after this long fails (`failed:webhook`).
pub const GIVE_UP: Duration = Duration::from_secs(3 * 24 * 60 * 60);

pub fn backoff(attempts: u32) -> Duration {
    crate::wake::backoff(attempts, BACKOFF_MIN, BACKOFF_MAX)
}

/// metroplex.log: `[<time> <LEVEL> (<pid>) #] <text>`, as the seed shows it. Lines are stamped
/// when they are made and collected; [`Metroplex::flush`] writes them with one `write`. The
/// processor flushes before each webhook request (so a reply's lines are in the file before
/// herald waits on the network) and whenever it saves outcomes.
pub struct Metroplex {
    file: crate::logfile::LogFile,
    /// The lines not written yet.
    lines: Mutex<String>,
    pid: u32,
}

impl Metroplex {
    pub fn open(path: &std::path::Path) -> Metroplex {
        Metroplex {
            file: crate::logfile::LogFile::open(path, crate::logfile::Rotating::Configured),
            lines: Mutex::new(String::new()),
            pid: std::process::id(),
        }
    }

    pub fn line(&self, level: &str, text: std::fmt::Arguments) {
        use std::fmt::Write as _;
        let stamp = crate::clock::rfc3339(SystemTime::now());
        let stamp = stamp.trim_end_matches('Z');
        let text = text.to_string();
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(lines, "[{stamp} {level} ({}) #] ", self.pid);
        // A CR or LF from a peer (a webhook's answer, say) would forge a line.
        lines.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
        lines.push('\n');
    }

    /// Writes the lines collected so far.
    pub fn flush(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        self.file.append(lines.as_bytes());
        lines.clear();
    }
}

pub struct Processor {
    pub app: Arc<App>,
    pub log: Metroplex,
    /// The record whose message is being read, for a crash in the middle of it.
    reading: super::reading::Reading,
    /// One message is read at a time (on a pool thread, off the executor the SMTP sessions
    /// share), so `reading` names the one.
    parse_turn: smol::lock::Mutex<()>,
    /// The webhook's TLS config and the `replies.ca_file` it was made from.
    tls: Mutex<Option<(String, Arc<rustls::ClientConfig>)>>,
    /// Connections to the webhook kept open between requests.
    conns: webhook::Pool,
}

/// Where and how a round posts its replies.
struct Hook {
    url: webhook::Url,
    tls: Arc<rustls::ClientConfig>,
    secret: String,
}

/// How one attempt at a record ended.
enum Outcome {
    /// Final: `processed`, `discarded` or `failed:<reason>`.
    Done(String),
    /// Try again later, with what went wrong.
    Retry(String),
}

impl Processor {
    /// A processor for `app`'s reply queue. A record that was being read when herald last
    /// stopped abnormally is counted against (and after [`reading::CRASHES_MAX`] set aside).
    pub fn new(app: Arc<App>) -> Result<Processor, String> {
        let path = app.path(paths::REPLIES_READING);
        let (reading, left) = super::reading::Reading::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let p = Processor {
            log: Metroplex::open(&app.path(paths::METROPLEX_LOG)),
            reading,
            parse_turn: smol::lock::Mutex::new(()),
            tls: Mutex::new(None),
            conns: webhook::Pool::default(),
            app,
        };
        if let Some(id) = left {
            p.crashed_reading(&id);
        }
        Ok(p)
    }

    /// Herald stopped abnormally while reading record `id` (`<queue id>-<n>`): one more crash on
    /// it, saved and flushed before anything is read again; at the limit it is set aside.
    fn crashed_reading(&self, id: &str) {
        let rec = id.rsplit_once('-').and_then(|(q, n)| {
            let q = QueueId(u64::from_str_radix(q, 16).ok()?);
            let n: u16 = n.parse().ok()?;
            Some((q, n, self.app.spool.record(q, n).ok()??))
        });
        let Some((q, n, old)) = rec.filter(|(_, _, r)| r.is_pending()) else {
            return;
        };
        let mut new = old.clone();
        new.crashes += 1;
        if new.crashes >= reading::CRASHES_MAX {
            new.status = "failed:internal".into();
            new.last_error = Some(format!(
                "herald stopped abnormally {} times while reading this message; it is set aside, kept for support",
                new.crashes
            ));
            log::error!(
                "replies: {id} was being read when herald stopped abnormally, {} times: set aside as failed:internal",
                new.crashes
            );
            self.log.line(
                "ERROR",
                format_args!(
                    "Moving {id} => failed (internal: herald crashed reading it {} times)",
                    new.crashes
                ),
            );
        } else {
            log::warn!(
                "replies: {id} was being read when herald stopped abnormally ({} of {} before it is set aside)",
                new.crashes,
                reading::CRASHES_MAX
            );
        }
        self.log.flush();
        let saved = self
            .app
            .spool
            .update_all(&[Update { id: q, n, old, new }])
            .and_then(|()| self.app.db.flush().map(drop).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            log::error!("replies: cannot record the crash on {id}: {e}");
        }
    }

    /// The TLS config for the webhook: the system's roots plus `replies.ca_file`, made again
    /// when that setting changes.
    fn tls(&self, ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut tls = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((file, config)) = tls.as_ref()
            && file == ca_file
        {
            return Ok(config.clone());
        }
        let config = crate::outbound::tls::roots_config(true, ca_file, "replies.ca_file")?;
        *tls = Some((ca_file.to_string(), config.clone()));
        Ok(config)
    }

    /// Runs until `stop` closes.
    pub async fn run(self: Arc<Self>, stop: smol::channel::Receiver<()>) {
        let mut warned = false;
        // Without a webhook URL a stored message is no reason to look again (settings change
        // only at a restart, and each look reads them: measured 5% of herald's CPU under the
        // inbound load); the idle check still runs.
        let (_keep, never) = smol::channel::bounded::<()>(1);
        let mut sweeps = crate::retention::Schedule::default();
        loop {
            if sweeps.due() {
                let me = self.clone();
                crate::pool::run(move || me.expire()).await;
            }
            let next = self.round(&mut warned).await;
            self.conns.close_idle();
            let wait = next
                .unwrap_or(crate::wake::IDLE_CHECK)
                .min(crate::wake::IDLE_CHECK);
            let woken = if warned {
                &never
            } else {
                &self.app.spool.woken
            };
            if !crate::wake::next_round(woken, wait, &stop).await {
                return;
            }
        }
    }

    /// Removes the records that finished more than `retention.days` ago.
    fn expire(&self) {
        let Ok(Some(doc)) = self.app.settings.applied() else {
            return;
        };
        let days = doc.settings.retention.days;
        match self.app.spool.expire(crate::clock::now_ms(), days) {
            Ok(0) => {}
            Ok(n) => log::info!("replies: removed {n} finished records older than {days} days"),
            Err(e) => log::warn!("replies: cannot remove old records: {e}"),
        }
    }

    async fn round(&self, warned: &mut bool) -> Option<Duration> {
        crate::failpoint::hit("replies.round");
        let settings = match self.app.settings.applied() {
            Ok(Some(doc)) => doc.settings,
            _ => return None,
        };
        let target = webhook::parse_url(&settings.replies.webhook_url)
            .and_then(|url| Ok((url, self.tls(&settings.replies.ca_file)?)));
        let (url, tls) = match target {
            Ok(t) => t,
            Err(e) => {
                if !*warned && !self.app.spool.due(crate::clock::now_ms(), 1).0.is_empty() {
                    log::warn!("replies are waiting: {e}");
                    *warned = true;
                }
                return None;
            }
        };
        *warned = false;
        let (ids, next_due) = self.app.spool.due(crate::clock::now_ms(), ROUND);
        let until_next =
            next_due.map(|d| Duration::from_millis((d - crate::clock::now_ms()).max(0) as u64));
        if ids.is_empty() {
            return until_next;
        }
        let n = ids.len();
        let (tx, rx) = smol::channel::unbounded();
        for id in ids {
            let _ = tx.try_send(id);
        }
        drop(tx);
        // Declared before the executor, whose tasks borrow them.
        let outcomes = crate::wake::Outcomes::default();
        let hook = Hook {
            url,
            tls,
            secret: settings.replies.webhook_secret.clone(),
        };
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..PARALLEL.min(n))
            .map(|_| {
                let (rx, hook, outcomes) = (rx.clone(), &hook, &outcomes);
                ex.spawn(async move {
                    while let Ok((id, k, rec)) = rx.try_recv() {
                        let update = self.process(id, k, rec, hook).await;
                        if let Some(group) = outcomes.push(update) {
                            self.save(group);
                        }
                    }
                })
            })
            .collect();
        let saver = ex.spawn(crate::wake::save_every(|| self.save(outcomes.take())));
        ex.run(async {
            for t in tasks {
                t.await;
            }
            saver.cancel().await;
        })
        .await;
        self.save(outcomes.take());
        Some(Duration::ZERO).filter(|_| n == ROUND).or(until_next)
    }

    /// Writes the log lines so far and saves a group of outcomes (one sled batch: see
    /// [`crate::wake::SAVE_EVERY`]).
    fn save(&self, group: Vec<Update>) {
        self.log.flush();
        if group.is_empty() {
            return;
        }
        if let Err(e) = self.app.spool.update_all(&group) {
            for u in &group {
                log::error!("replies: cannot record the outcome for {}: {e}", u.old.id);
            }
        }
    }

    /// One pending record, as `due` read it (only this processor changes records); its outcome,
    /// to be saved.
    async fn process(&self, id: QueueId, k: u16, old: ReplyRecord, hook: &Hook) -> Update {
        let shown_id = old
            .message_id
            .clone()
            .unwrap_or_else(|| format!("<{}>", old.id));
        self.log
            .line("INFO", format_args!("metroplex: processing {shown_id}"));
        let mut new = old.clone();
        let outcome = self.attempt(id, &mut new, hook).await;
        match &outcome {
            Outcome::Done(status) => {
                new.status = status.clone();
                let to = if status == "processed" {
                    "success".to_string()
                } else {
                    format!(
                        "failed ({})",
                        status.strip_prefix("failed:").unwrap_or(status)
                    )
                };
                self.log
                    .line("DEBUG", format_args!("Moving {} => {to}", old.id));
            }
            Outcome::Retry(why) => {
                new.attempts += 1;
                new.last_error = Some(crate::bounded::bounded(why, crate::bounded::ERROR_MAX));
                let received = received_ms(&old);
                if crate::clock::now_ms() - received >= GIVE_UP.as_millis() as i64 {
                    new.status = "failed:webhook".into();
                    self.log.line(
                        "DEBUG",
                        format_args!("Moving {} => failed (webhook: {why})", old.id),
                    );
                } else {
                    new.due_ms = crate::clock::now_ms() + backoff(new.attempts).as_millis() as i64;
                    self.log.line(
                        "WARN",
                        format_args!(
                            "{}: webhook: {why}; retrying in {} s",
                            old.id,
                            backoff(new.attempts).as_secs()
                        ),
                    );
                }
            }
        }
        Update { id, n: k, old, new }
    }

    async fn attempt(&self, id: QueueId, rec: &mut ReplyRecord, hook: &Hook) -> Outcome {
        let done = |s: &str| Outcome::Done(s.to_string());
        let raw = match self.app.spool.data(id) {
            Ok(Some(raw)) => raw,
            Ok(None) => return done("failed:missing"),
            Err(crate::segments::ReadError::Corrupt(why)) => {
                // Never delivered as garbage; kept as failed so it is seen.
                log::error!(
                    "replies: {} cannot be delivered: the stored message is corrupt ({why})",
                    rec.id
                );
                rec.last_error = Some(crate::bounded::bounded(
                    &format!("the stored message is corrupt: {why}"),
                    crate::bounded::ERROR_MAX,
                ));
                return done("failed:corrupt");
            }
            Err(e) => return Outcome::Retry(format!("reading the message: {e}")),
        };
        let local = rec.to.rsplit_once('@').map_or(rec.to.as_str(), |(l, _)| l);
        let Some(tok) = token::verify(&self.app.reply_key, local) else {
            // Only verified addresses are accepted at RCPT; a key change since is the only way here.
            return done("failed:bad_address");
        };
        // A panic while reading one message fails that message, not the service; a crash is
        // pinned on it by `reading` at the next boot.
        let turn = self.parse_turn.lock().await;
        self.reading.start(&rec.id);
        let from = rec.from.clone();
        let parsed = crate::pool::run(move || {
            crate::watch::caught(|| {
                crate::failpoint::message("parse", &raw);
                extract::parse(&raw, &from)
            })
        })
        .await;
        self.reading.done();
        drop(turn);
        let parsed = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                rec.last_error = Some(crate::bounded::bounded(&e, crate::bounded::ERROR_MAX));
                return done("failed:unparseable");
            }
            Err(panic) => {
                let panic = crate::bounded::bounded(&panic, crate::bounded::ERROR_MAX);
                log::error!(
                    "replies: reading {} failed with an internal error: {panic}",
                    rec.id
                );
                rec.last_error = Some(format!(
                    "herald could not read this message (an internal error: {panic}); it is kept for support"
                ));
                return done("failed:internal");
            }
        };
        if let Some(why) = parsed.auto_reply {
            rec.last_error = Some(why);
            return done("failed:auto_reply");
        }
        if parsed.text.trim().is_empty() {
            return done("failed:empty");
        }
        // The same message (Message-ID) to the same reply address is one reply, however often a
        // sending MTA delivered it.
        let digest = crate::inbound::spool::duplicate_digest(rec);
        let delivery_id = match self.app.spool.first_delivery(&digest, &rec.id) {
            Ok(None) => rec.id.clone(),
            Ok(Some(first)) if first == rec.id => first,
            Ok(Some(first)) => {
                rec.delivery_id = Some(first.clone());
                rec.last_error = Some(format!("a duplicate of {first}"));
                self.log.line(
                    "DEBUG",
                    format_args!("{} is a duplicate of {first}", rec.id),
                );
                return done("discarded");
            }
            Err(e) => return Outcome::Retry(format!("the duplicate check failed: {e}")),
        };
        rec.delivery_id = Some(delivery_id.clone());
        self.log.line("DEBUG", format_args!("Matched {}", rec.id));
        let bytes = webhook_body(
            &parsed,
            &rec.from,
            rec.message_id.as_deref(),
            &rec.received_at,
            &tok,
        );
        let sig = webhook::signature(&hook.secret, &bytes);
        let headers = [
            ("X-Herald-Signature", sig.as_str()),
            ("X-Herald-Delivery", delivery_id.as_str()),
        ];
        self.log.flush();
        let asked = std::time::Instant::now();
        let answer = webhook::post(&hook.url, &bytes, &headers, &hook.tls, &self.conns).await;
        self.app.metrics.webhook_latency.observe(asked.elapsed());
        match answer {
            Ok(code) if (200..300).contains(&code) => done("processed"),
            Ok(404 | 410) => {
                rec.last_error =
                    Some("the application says the thread or user no longer exists".into());
                done("failed:thread_gone")
            }
            Ok(code) => Outcome::Retry(format!("the webhook answered {code}")),
            Err(e) => Outcome::Retry(e),
        }
    }
}

/// The webhook's JSON body (SPEC §4). Its fields are in the order a `serde_json::Value` object
/// (sorted keys) gave them before, so the bytes of a reply's POST did not change with it; a
/// struct borrows the texts instead of copying them into a map.
#[derive(serde::Serialize)]
struct Payload<'a> {
    body: &'a str,
    from: &'a str,
    message_id: Option<&'a str>,
    received_at: &'a str,
    subject: &'a str,
    thread: Thread,
    user_id: u64,
}

#[derive(serde::Serialize)]
struct Thread {
    id: u64,
    kind: &'static str,
}

/// The bytes POSTed to the webhook for a reply (SPEC §4): `envelope_from` stands in for a
/// message without a From address.
pub fn webhook_body(
    parsed: &super::extract::Parsed,
    envelope_from: &str,
    message_id: Option<&str>,
    received_at: &str,
    tok: &super::token::Token,
) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        body: &parsed.text,
        from: if parsed.from.is_empty() {
            envelope_from
        } else {
            &parsed.from
        },
        message_id,
        received_at,
        subject: &parsed.subject,
        thread: Thread {
            id: tok.thread,
            kind: tok.kind.name(),
        },
        user_id: tok.user,
    })
    .expect("serializes")
}

/// When a record was received (unix ms), from its RFC 3339 stamp; now if unreadable.
fn received_ms(rec: &ReplyRecord) -> i64 {
    crate::clock::parse_rfc3339_ms(&rec.received_at).unwrap_or_else(crate::clock::now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metroplex_lines_are_written_together_on_flush() {
        let dir = std::env::temp_dir().join(format!("herald-metroplex-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("mail-replies/metroplex.log");
        let log = Metroplex::open(&path);
        log.line("INFO", format_args!("metroplex: processing <{}@x>", 1));
        log.line("DEBUG", format_args!("Matched {}", "A-1"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let pid = std::process::id();
        assert!(
            lines[0].starts_with('[')
                && lines[0].ends_with(&format!(" INFO ({pid}) #] metroplex: processing <1@x>")),
            "{text}"
        );
        assert!(
            lines[1].ends_with(&format!(" DEBUG ({pid}) #] Matched A-1")),
            "{text}"
        );
        log.flush();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "nothing twice"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_payload_is_byte_for_byte_the_json_object_it_was() {
        for (message_id, text) in [
            (Some("<m@x>"), "Thanks \"all\"\n\u{1F600} \u{7} ünï"),
            (None, ""),
        ] {
            let payload = Payload {
                body: text,
                from: "sam@example.org",
                message_id,
                received_at: "2026-01-01T00:00:00.000Z",
                subject: "Re: [acme] Crash (#42)",
                thread: Thread {
                    id: 42,
                    kind: "pull_request",
                },
                user_id: 7,
            };
            let value = serde_json::json!({
                "thread": { "kind": "pull_request", "id": 42 },
                "user_id": 7,
                "from": "sam@example.org",
                "subject": "Re: [acme] Crash (#42)",
                "body": text,
                "message_id": message_id,
                "received_at": "2026-01-01T00:00:00.000Z",
            });
            assert_eq!(
                String::from_utf8(serde_json::to_vec(&payload).unwrap()).unwrap(),
                String::from_utf8(serde_json::to_vec(&value).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn backoff_doubles_from_30_s_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(8), Duration::from_secs(3600));
    }
}
