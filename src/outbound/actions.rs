//! The operator's actions on the notification queue, whichever way they come in (the console's
//! Queue page, the manage API): retry one now, retry everything waiting (Postfix's
//! `postqueue -f`), and drop one. Each is done on the queue (see its module doc for how an
//! action and an attempt never cross), told in mail.log the way Postfix's `postsuper` tells it,
//! logged, and kept in the audit trail with who asked.

use super::queue::{self, Record, Refused};
use crate::app::App;

fn id_of(id: &str) -> Result<u64, Refused> {
    queue::parse_id(id).ok_or(Refused::NotFound)
}

/// Makes the notification `id` (hex, as listed) due now.
pub fn retry(app: &App, id: &str, who: &str) -> Result<Record, Refused> {
    let rec = app.queue.retry(id_of(id)?, crate::clock::now_ms())?;
    told(app, who, &[&rec], "requeued", "retried");
    Ok(rec)
}

/// Makes every queued or deferred notification due now; returns the ones moved.
pub fn retry_all(app: &App, who: &str) -> Result<Vec<Record>, Refused> {
    let moved = app
        .queue
        .retry_all(crate::clock::now_ms())
        .map_err(Refused::Store)?;
    let refs: Vec<&Record> = moved.iter().collect();
    told(app, who, &refs, "requeued", "retried");
    log::info!(
        "outbound: {who} asked to retry every waiting notification: {} due now",
        moved.len()
    );
    if moved.is_empty() {
        crate::audit::record(
            &app.db,
            who,
            "retried all waiting notifications (none was waiting)",
        );
    }
    Ok(moved)
}

/// Gives up the notification `id`: it is failed (so the application, asking after it, hears
/// so), with who dropped it as its last error, and its message is removed.
pub fn drop(app: &App, id: &str, who: &str) -> Result<Record, Refused> {
    let rec = app
        .queue
        .drop_one(id_of(id)?, &format!("dropped by an operator: {who}"))?;
    told(app, who, &[&rec], "removed", "dropped");
    Ok(rec)
}

/// mail.log (`postsuper: <id>: requeued|removed`), the service log and the audit trail.
fn told(app: &App, who: &str, recs: &[&Record], postsuper: &str, done: &str) {
    if recs.is_empty() {
        return;
    }
    let lines: Vec<(&str, String)> = recs
        .iter()
        .map(|r| ("postsuper", format!("{}: {postsuper}", r.id)))
        .collect();
    app.maillog.write(&lines);
    for r in recs {
        log::info!("outbound: {who} {done} notification {} to <{}>", r.id, r.to);
    }
    let what = match recs {
        [one] => format!("{done} notification {} to {}", one.id, one.to),
        many => format!(
            "{done} {} waiting notifications: {}",
            many.len(),
            crate::bounded::bounded(
                &many
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::bounded::FIELD_MAX / 2
            )
        ),
    };
    crate::audit::record(&app.db, who, &what);
}
