//! The delivery worker: takes due notifications from the queue and sends them through the
//! smarthost over a few reused connections (RSET between messages, a new connection when the
//! server closed an idle one). Transient failures are retried with exponential backoff for five
//! days; permanent ones fail at once with the server's reply kept; an authentication or
//! configuration failure pauses delivery until the settings change. Every outcome goes to
//! mail.log in Postfix's words.

use super::queue::{Record, Status};
use super::session::{Session, Target};
use crate::app::App;
use crate::bounded::{ERROR_MAX, bounded};
use crate::settings::Settings;
use crate::smtp::client::{Failure, Kind, Timeouts};
use crate::wake::Outcomes;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Connections used at once.
pub const PARALLEL: usize = 4;
/// Messages taken per round.
const ROUND: usize = 256;
/// First retry after this; each later one waits twice as long, up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);
/// A notification not delivered after this long fails (RFC 5321 §4.5.4.1: 4-5 days).
pub const GIVE_UP: Duration = Duration::from_secs(5 * 24 * 60 * 60);

pub struct Worker {
    pub app: Arc<App>,
    /// Open sessions between rounds, with the settings fingerprint they were opened with and
    /// when they went idle: the next round uses them instead of connecting again.
    idle: Mutex<Vec<(String, Session, Instant)>>,
    /// The target of the applied settings, built once per fingerprint (reading the system's
    /// roots for TLS is not free).
    target: Mutex<Option<(String, Target)>>,
    /// Outcomes not saved yet (see [`Worker::save`]).
    unsaved: Outcomes<Unsaved>,
}

/// One attempt's outcome, to be saved.
struct Unsaved {
    id: u64,
    old: Record,
    new: Record,
    lines: Vec<(&'static str, String)>,
}

/// An idle connection is closed (QUIT) after this long without a message.
const IDLE_KEEP: Duration = Duration::from_secs(5);

/// What about the settings stopped delivery: the same settings will not work again.
fn fingerprint(s: &Settings) -> String {
    crate::crypto::sha256_hex(
        serde_json::to_string(&s.smtp)
            .expect("serializes")
            .as_bytes(),
    )
}

/// The wait before attempt `attempts + 1`.
pub fn backoff(attempts: u32) -> Duration {
    crate::wake::backoff(attempts, BACKOFF_MIN, BACKOFF_MAX)
}

impl Worker {
    pub fn new(app: Arc<App>) -> Worker {
        Worker {
            app,
            idle: Mutex::new(Vec::new()),
            target: Mutex::new(None),
            unsaved: Outcomes::default(),
        }
    }

    /// Saves a group of outcomes in one sled batch, then writes their mail.log lines (so a
    /// `status=sent` line is never ahead of the record). An outcome waits in memory at most
    /// [`crate::wake::SAVE_EVERY`]; after a crash in between, the message is sent again, never
    /// lost.
    fn save(&self, group: Vec<Unsaved>) {
        if group.is_empty() {
            return;
        }
        let updates: Vec<_> = group.iter().map(|u| (u.id, &u.old, &u.new)).collect();
        if let Err(e) = self.app.queue.update_all(&updates) {
            for u in &group {
                log::error!("outbound: cannot record the outcome for {}: {e}", u.new.id);
            }
        }
        let lines: Vec<(&str, String)> = group.into_iter().flat_map(|u| u.lines).collect();
        self.app.maillog.write(&lines);
    }

    fn take_idle(&self, print: &str) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle
            .iter()
            .position(|(p, s, _)| p == print && s.is_ready())?;
        Some(idle.swap_remove(i).1)
    }

    fn put_idle(&self, print: &str, s: Session) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((
            print.to_string(),
            s,
            Instant::now(),
        ));
    }

    /// QUITs the idle sessions that waited too long, or all with `all`.
    async fn close_idle(&self, all: bool) {
        let old: Vec<Session> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let (keep, old): (Vec<_>, Vec<_>) = idle
                .drain(..)
                .partition(|(_, _, since)| !all && since.elapsed() < IDLE_KEEP);
            *idle = keep;
            old.into_iter().map(|(_, s, _)| s).collect()
        };
        for s in old {
            if s.is_ready() {
                let _ = s.quit().await;
            }
        }
    }

    fn target_for(&self, print: &str, settings: &Settings) -> Result<Target, Failure> {
        let mut cached = self.target.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, t)) = cached.as_ref()
            && p == print
        {
            return Ok(t.clone());
        }
        let t = Target::from_settings(settings, Timeouts::RFC5321, false)?;
        *cached = Some((print.to_string(), t.clone()));
        Ok(t)
    }

    /// Runs until `stop` closes.
    pub async fn run(self: Arc<Self>, stop: smol::channel::Receiver<()>) {
        // A worker that died mid-round (started again by `watch`) left its ids taken.
        self.app.queue.release_all();
        // Settings (by fingerprint) that failed authentication or configuration: not retried.
        let mut paused: Option<(String, String)> = None;
        let mut sweeps = crate::retention::Schedule::default();
        loop {
            if sweeps.due() {
                self.expire().await;
            }
            let next = self.round(&mut paused).await;
            self.close_idle(false).await;
            let wait = next
                .unwrap_or(crate::wake::IDLE_CHECK)
                .min(crate::wake::IDLE_CHECK);
            if !crate::wake::next_round(&self.app.queue.woken, wait, &stop).await {
                self.close_idle(true).await;
                return;
            }
        }
    }

    /// Removes the notifications that finished more than `retention.days` ago, off the
    /// executor (a sweep of a large backlog reads and writes sled for a while).
    async fn expire(&self) {
        let Ok(Some(doc)) = self.app.settings.applied() else {
            return;
        };
        let days = doc.settings.retention.days;
        let queue = self.app.queue.clone();
        match crate::pool::run(move || queue.expire(crate::clock::now_ms(), days)).await {
            Ok(0) => {}
            Ok(n) => {
                log::info!("outbound: removed {n} finished notifications older than {days} days")
            }
            Err(e) => log::warn!("outbound: cannot remove old notifications: {e}"),
        }
    }

    /// One round: sends what is due. Returns how long until the next message is due.
    async fn round(&self, paused: &mut Option<(String, String)>) -> Option<Duration> {
        let settings = match self.app.settings.applied() {
            Ok(Some(doc)) => doc.settings,
            _ => return None,
        };
        if !settings.smtp.enabled {
            return None;
        }
        let print = fingerprint(&settings);
        if self.app.queue.take_retry_asked()
            && let Some((_, why)) = paused.take()
        {
            log::info!("outbound: an operator asked for a retry since \"{why}\": delivering again");
        }
        if let Some((p, why)) = paused.as_ref() {
            if *p == print {
                return None;
            }
            log::info!("outbound: settings changed since \"{why}\": delivering again");
            *paused = None;
        }
        let (ids, next_due) = self.app.queue.due(crate::clock::now_ms(), ROUND);
        let until_next =
            next_due.map(|d| Duration::from_millis((d - crate::clock::now_ms()).max(0) as u64));
        if ids.is_empty() {
            return until_next;
        }
        let target = match self.target_for(&print, &settings) {
            Ok(t) => t,
            Err(f) => {
                for (id, rec) in &ids {
                    self.outcome(*id, rec, Err(&f), None);
                }
                self.save(self.unsaved.take());
                self.app.queue.release_all();
                *paused = Some((print, f.detail.clone()));
                return None;
            }
        };
        let (tx, rx) = smol::channel::unbounded();
        let n = ids.len();
        for due in ids {
            let _ = tx.try_send(due);
        }
        drop(tx);
        let lanes = PARALLEL.min(n);
        let stop_reason: Arc<std::sync::Mutex<Option<String>>> = Default::default();
        // The lanes run side by side on an executor that lives for this round.
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..lanes)
            .map(|_| {
                ex.spawn(self.lane(&target, &settings, &print, rx.clone(), stop_reason.clone()))
            })
            .collect();
        let saver = ex.spawn(crate::wake::save_every(|| self.save(self.unsaved.take())));
        ex.run(async {
            for t in tasks {
                t.await;
            }
            saver.cancel().await;
        })
        .await;
        drop(ex);
        self.save(self.unsaved.take());
        // What a lane left in the channel when delivery paused part way is due again.
        self.app.queue.release_all();
        let reason = stop_reason.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(why) = reason {
            log::warn!("outbound: delivery paused until the settings change: {why}");
            *paused = Some((print, why));
            return None;
        }
        Some(Duration::ZERO).filter(|_| n == ROUND).or(until_next)
    }

    /// One connection's share of a round.
    async fn lane(
        &self,
        target: &Target,
        settings: &Settings,
        print: &str,
        ids: smol::channel::Receiver<(u64, Record)>,
        stop_reason: Arc<std::sync::Mutex<Option<String>>>,
    ) {
        let from = settings.noreply_address();
        let mut session: Option<Session> = None;
        let mut first = true;
        while let Ok((id, rec)) = ids.try_recv() {
            if stop_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
            {
                break;
            }
            if first {
                // Only a lane with work takes a kept connection.
                session = self.take_idle(print);
                first = false;
            }
            let Ok(Some(message)) = self.app.queue.message(id) else {
                log::error!(
                    "outbound: notification {} has no message; failing it",
                    rec.id
                );
                let f = Failure::new(
                    Kind::Rejected,
                    true,
                    crate::smtp::client::Stage::Connect,
                    "the stored message is missing",
                );
                self.outcome(id, &rec, Err(&f), None);
                continue;
            };
            // A connection the server closed while idle is opened again once, for free.
            let mut fresh = false;
            // Where the attempt went: the relay of the connection used or tried.
            let mut relay = session.as_ref().map(|s| s.relay.clone());
            let result = loop {
                if session.as_ref().is_none_or(|s| !s.is_ready()) {
                    fresh = true;
                    session = None;
                    match Session::open(target).await {
                        Ok(s) => {
                            relay = Some(s.relay.clone());
                            session = Some(s);
                        }
                        Err(e) => {
                            relay = e.relay;
                            break Err(e.failure);
                        }
                    }
                }
                let s = session.as_mut().expect("open");
                match s.send(&from, &rec.to, &message).await {
                    // Only a failure before DATA: once the final dot was sent the server may
                    // have the message, and sending it again on a new connection would double it.
                    Err(f)
                        if !fresh
                            && f.kind == Kind::Network
                            && !s.is_ready()
                            && matches!(
                                f.stage,
                                crate::smtp::client::Stage::Rset | crate::smtp::client::Stage::Mail
                            ) =>
                    {
                        session = None;
                        continue;
                    }
                    r => break r,
                }
            };
            match &result {
                Ok(reply) => self.outcome(id, &rec, Ok(&reply.one_line()), relay.as_deref()),
                Err(f) => {
                    self.outcome(id, &rec, Err(f), relay.as_deref());
                    // Settings that cannot work, and credentials the server refused for good
                    // (535), pause delivery; a 4xx to AUTH is retried like any deferral.
                    if f.kind == Kind::Config || (f.kind == Kind::Auth && f.permanent) {
                        *stop_reason.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(f.detail.clone());
                    } else if f.stage == crate::smtp::client::Stage::Connect {
                        // The server cannot be reached: the rest of this round waits for the
                        // next attempt with the same error, instead of each message trying again.
                        while let Ok((other, other_rec)) = ids.try_recv() {
                            self.outcome(other, &other_rec, Err(f), None);
                        }
                        break;
                    } else if session.as_ref().is_none_or(|s| !s.is_ready()) {
                        // The server broke the session (421, a dropped connection): the next
                        // message gets a new one.
                        session = None;
                    }
                }
            }
        }
        if let Some(s) = session
            && s.is_ready()
        {
            self.put_idle(print, s);
        }
    }

    /// Records an attempt's outcome and logs it the way Postfix does.
    fn outcome(&self, id: u64, old: &Record, result: Result<&str, &Failure>, relay: Option<&str>) {
        let now = crate::clock::now_ms();
        let mut rec: Record = old.clone();
        rec.attempts += 1;
        rec.relay = relay.map(str::to_string);
        let delay = (now - rec.created_ms).max(0) as f64 / 1000.0;
        let relay_text = relay.unwrap_or("none");
        let (status, dsn, text) = match result {
            Ok(reply) => {
                rec.status = Status::Sent;
                crate::metrics::Metrics::inc(&self.app.metrics.outbound_sent);
                self.app
                    .metrics
                    .delivery_delay
                    .observe(std::time::Duration::from_millis(
                        (now - rec.created_ms).max(0) as u64,
                    ));
                rec.sent_at = Some(crate::clock::rfc3339(SystemTime::now()));
                rec.last_error = None;
                rec.smtp_reply = Some(bounded(reply, ERROR_MAX));
                ("sent", "2.0.0".to_string(), reply.to_string())
            }
            Err(f) => {
                let expired = now - rec.created_ms >= GIVE_UP.as_millis() as i64;
                // The server's text is copied: bounded (a reply may be 128 lines of 2 KiB).
                let why = format!("{}: {}", super::testmail::headline(f.kind), f.detail);
                rec.last_error = Some(bounded(&why, ERROR_MAX));
                rec.smtp_reply = f.reply.as_ref().map(|r| bounded(&r.one_line(), ERROR_MAX));
                if f.permanent && !matches!(f.kind, Kind::Auth | Kind::Config) || expired {
                    rec.status = Status::Failed;
                    crate::metrics::Metrics::inc(&self.app.metrics.outbound_failed);
                    let text = if expired && !f.permanent {
                        format!(
                            "gave up after {} days: {}",
                            GIVE_UP.as_secs() / 86400,
                            f.detail
                        )
                    } else {
                        f.detail.clone()
                    };
                    ("bounced", f.dsn(), text)
                } else {
                    rec.status = Status::Deferred;
                    rec.due_ms = now + backoff(rec.attempts).as_millis() as i64;
                    ("deferred", f.dsn(), f.detail.clone())
                }
            }
        };
        let mut lines = vec![(
            "smtp",
            format!(
                "{}: to=<{}>, relay={relay_text}, delay={delay:.2}, dsn={dsn}, status={status} ({})",
                rec.id,
                rec.to,
                bounded(&text, ERROR_MAX)
            ),
        )];
        if status != "deferred" {
            lines.push(("qmgr", format!("{}: removed", rec.id)));
        }
        let unsaved = Unsaved {
            id,
            old: old.clone(),
            new: rec,
            lines,
        };
        if let Some(group) = self.unsaved.push(unsaved) {
            self.save(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(240));
        assert_eq!(backoff(7), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
    }
}
