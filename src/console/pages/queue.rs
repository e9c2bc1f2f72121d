//! The Queue's pages: the list of outbound notifications (status, attempts, next attempt, last
//! error; retry one, retry all waiting), one notification with all it holds, and the
//! confirmation a drop asks for. Each action comes back with a notice that says what it did,
//! or why it was not done and what to do. Data in, markup out; `setup_queue.rs` acts.

use super::operate::{filter, stamp, status_class, when};
use super::{Ctx, Section, csrf_field, page};
use crate::outbound::queue::{Record, Refused};
use maud::{Markup, html};

/// What the page reports at its top: an action's outcome.
pub enum Notice<'a> {
    /// This notification (its id) was made due now.
    Retried(&'a str),
    /// This notification (its id) was dropped.
    Dropped(&'a str),
    /// Retry all: how many became due now.
    Flushed(usize),
    Refused(&'a Refused),
}

fn notice(ctx: &Ctx, n: &Notice) -> Markup {
    match n {
        Notice::Retried(id) => {
            html! { p.notice.good role="status" { code { (id) } " — " (ctx.t("q.retried")) } }
        }
        Notice::Dropped(id) => {
            html! { p.notice.good role="status" { code { (id) } " — " (ctx.t("q.dropped")) } }
        }
        Notice::Flushed(0) => html! { p.notice.info role="status" { (ctx.t("q.flushed.none")) } },
        Notice::Flushed(n) => {
            html! { p.notice.good role="status" { (n) " " (ctx.t("q.flushed")) } }
        }
        Notice::Refused(why) => html! {
            div.notice.bad role="alert" {
                p {
                    strong { (ctx.t("q.refused")) } " "
                    @match why {
                        Refused::NotFound => (ctx.t("q.refused.notfound")),
                        Refused::Finished(_) => (ctx.t("q.refused.finished")),
                        Refused::Sending => (ctx.t("q.refused.sending")),
                        Refused::Store(e) => { (ctx.t("q.refused.store")) " " span lang="en" { (e) } },
                    }
                }
            }
        },
    }
}

/// The retry button (and the way to the drop's confirmation) of a waiting notification.
fn actions(ctx: &Ctx, r: &Record, back: &str) -> Markup {
    html! {
        div.actions {
            form method="post" action=(format!("/setup/queue/{}/retry", r.id)) {
                (csrf_field(ctx))
                input type="hidden" name="back" value=(back);
                button.secondary type="submit" { (ctx.t("q.retry")) }
            }
            a.button.danger-link href=(format!("/setup/queue/{}/drop", r.id)) { (ctx.t("q.drop")) }
        }
    }
}

pub fn list(ctx: &Ctx, status: &str, list: &[Record], told: Option<Notice>) -> Markup {
    let back = if status.is_empty() {
        "/setup/queue".to_string()
    } else {
        format!("/setup/queue?status={status}")
    };
    let body = html! {
        h1 id="queue-title" { (ctx.t("op.queue")) }
        p.lead { (ctx.t("op.queue.lead")) }
        @if let Some(n) = &told { (notice(ctx, n)) }
        div.toolbar {
            (filter(ctx, "/setup/queue", status, &["queued", "deferred", "sent", "failed"]))
            form.flush method="post" action="/setup/queue/retry-all" {
                (csrf_field(ctx))
                button.secondary type="submit" aria-describedby="flush-help" { (ctx.t("q.flush")) }
            }
        }
        p.help id="flush-help" { (ctx.t("q.flush.help")) }
        @if list.is_empty() {
            p { (ctx.t("op.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="queue-title" {
                table.stack {
                    thead { tr {
                        th scope="col" { (ctx.t("op.col.id")) }
                        th scope="col" { (ctx.t("col.status")) }
                        th scope="col" { (ctx.t("op.col.to")) }
                        th scope="col" { (ctx.t("op.col.attempts")) }
                        th scope="col" { (ctx.t("op.col.next")) }
                        th scope="col" { (ctx.t("op.col.why")) }
                        th scope="col" { (ctx.t("q.col.actions")) }
                    } }
                    tbody {
                        @for r in list {
                            tr {
                                th scope="row" { a href=(format!("/setup/queue/{}", r.id)) { code { (r.id) } } }
                                td data-label=(ctx.t("col.status")) { span.badge.(status_class(r.status.name())) { (r.status.name()) } }
                                td data-label=(ctx.t("op.col.to")) { (r.to) br; small { (r.subject) } }
                                td.num data-label=(ctx.t("op.col.attempts")) { (r.attempts) }
                                td data-label=(ctx.t("op.col.next")) {
                                    @if r.status.waiting() { (when(r.due_ms)) }
                                }
                                td data-label=(ctx.t("op.col.why")) lang="en" { (r.last_error.as_deref().unwrap_or("")) }
                                td data-label=(ctx.t("q.col.actions")) {
                                    @if r.status.waiting() { (actions(ctx, r, &back)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, ctx.t("op.queue"), Section::Queue, html! {}, None, body)
}

/// One notification: every field of its record, and what can be done with it.
pub fn one(ctx: &Ctx, r: &Record, told: Option<Notice>) -> Markup {
    let back = format!("/setup/queue/{}", r.id);
    let body = html! {
        h1 { (ctx.t("q.one")) " " code { (r.id) } }
        p { a href="/setup/queue" { (ctx.t("q.back")) } }
        @if let Some(n) = &told { (notice(ctx, n)) }
        dl.facts {
            dt { (ctx.t("col.status")) } dd { span.badge.(status_class(r.status.name())) { (r.status.name()) } }
            dt { (ctx.t("op.col.to")) } dd { (r.to) }
            dt { (ctx.t("q.subject")) } dd { (r.subject) }
            dt { (ctx.t("q.reason")) } dd { (r.reason) }
            dt { (ctx.t("q.thread")) } dd { (r.thread.kind) " #" (r.thread.id) }
            dt { (ctx.t("q.user")) } dd { (r.user_id) }
            dt { (ctx.t("q.created")) } dd { (stamp(&r.created_at)) }
            dt { (ctx.t("op.col.attempts")) } dd { (r.attempts) }
            @if r.status.waiting() {
                dt { (ctx.t("op.col.next")) } dd { (when(r.due_ms)) }
            }
            @if let Some(e) = &r.last_error {
                dt { (ctx.t("op.col.why")) } dd lang="en" { (e) }
            }
            @if let Some(relay) = &r.relay {
                dt { (ctx.t("q.relay")) } dd { code { (relay) } }
            }
            @if let Some(reply) = &r.smtp_reply {
                dt { (ctx.t("q.reply")) } dd lang="en" { code { (reply) } }
            }
            @if let Some(at) = &r.sent_at {
                dt { (ctx.t("q.sent")) } dd { (stamp(at)) }
            }
            dt { "Message-ID" } dd { code { (r.message_id) } }
            dt { (ctx.t("q.size")) } dd { (r.size) " " (ctx.t("q.bytes")) }
        }
        @if r.status.waiting() {
            (actions(ctx, r, &back))
        } @else {
            p.help { (ctx.t("q.finished.help")) }
        }
    };
    page(ctx, ctx.t("q.one"), Section::Queue, html! {}, None, body)
}

/// The question a drop asks first: what goes, what the application will see, and that it
/// cannot be undone.
pub fn confirm_drop(ctx: &Ctx, r: &Record) -> Markup {
    let body = html! {
        h1 { (ctx.t("q.confirm.title")) }
        div.notice.warn {
            p { (ctx.t("q.confirm.lead")) }
        }
        dl.facts {
            dt { (ctx.t("op.col.id")) } dd { code { (r.id) } }
            dt { (ctx.t("op.col.to")) } dd { (r.to) }
            dt { (ctx.t("q.subject")) } dd { (r.subject) }
            dt { (ctx.t("col.status")) } dd { span.badge.(status_class(r.status.name())) { (r.status.name()) } }
            dt { (ctx.t("op.col.attempts")) } dd { (r.attempts) }
            @if let Some(e) = &r.last_error {
                dt { (ctx.t("op.col.why")) } dd lang="en" { (e) }
            }
        }
        div.actions {
            form method="post" action=(format!("/setup/queue/{}/drop", r.id)) {
                (csrf_field(ctx))
                button.danger type="submit" { (ctx.t("q.drop.confirm")) }
            }
            a.button href=(format!("/setup/queue/{}", r.id)) { (ctx.t("q.cancel")) }
        }
    };
    page(
        ctx,
        ctx.t("q.confirm.title"),
        Section::Queue,
        html! {},
        None,
        body,
    )
}
