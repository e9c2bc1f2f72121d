//! The operator's pages: **Replies** (what came in on port 25 and what became of it, filterable
//! by status, each with its raw message and the text taken from it) and **Audit** (who changed
//! what); the Queue's pages are in `queue.rs`. Data in, markup out; the handlers in `setup.rs`
//! read the stores.

use super::{Ctx, Section, page};
use crate::inbound::spool::ReplyRecord;
use maud::{Markup, html};

/// How much of a raw message the reply page shows.
pub const RAW_SHOWN: usize = 16 * 1024;

pub(super) fn status_class(s: &str) -> &'static str {
    match s {
        "processed" | "sent" => "good",
        "pending" | "queued" => "info",
        "deferred" => "warn",
        "discarded" => "quiet",
        _ => "bad",
    }
}

/// A GET form choosing a status (works without script).
pub(super) fn filter(ctx: &Ctx, action: &str, current: &str, choices: &[&str]) -> Markup {
    html! {
        form.filter method="get" action=(action) {
            label for="status" { (ctx.t("op.status")) }
            select id="status" name="status" {
                option value="" selected[current.is_empty()] { (ctx.t("op.all")) }
                @for c in choices {
                    option value=(c) selected[current == *c] { (c) }
                }
            }
            button type="submit" { (ctx.t("op.show")) }
        }
    }
}

pub fn replies(
    ctx: &Ctx,
    status: &str,
    list: &[ReplyRecord],
    failed: &[String],
    refused: &[crate::maillog::Refusal],
) -> Markup {
    let mut choices = vec!["pending", "processed", "discarded"];
    choices.extend(failed.iter().map(String::as_str));
    let body = html! {
        h1 id="replies-title" { (ctx.t("op.replies")) }
        p.lead { (ctx.t("op.replies.lead")) }
        (filter(ctx, "/setup/replies", status, &choices))
        @if list.is_empty() {
            p { (ctx.t("op.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="replies-title" {
                table.stack {
                    thead { tr {
                        th scope="col" { (ctx.t("op.col.id")) }
                        th scope="col" { (ctx.t("col.status")) }
                        th scope="col" { (ctx.t("op.col.received")) }
                        th scope="col" { (ctx.t("op.col.from")) }
                        th scope="col" { (ctx.t("op.col.why")) }
                    } }
                    tbody {
                        @for r in list {
                            tr {
                                th scope="row" { a href=(format!("/setup/replies/{}", r.id)) { code { (r.id) } } }
                                td data-label=(ctx.t("col.status")) { span.badge.(status_class(&r.status)) { (r.status) } }
                                td data-label=(ctx.t("op.col.received")) { (stamp(&r.received_at)) }
                                td data-label=(ctx.t("op.col.from")) { (r.from) }
                                td data-label=(ctx.t("op.col.why")) lang="en" { (r.last_error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if status.is_empty() {
            h2 id="refused-title" { (ctx.t("op.refused")) }
            p.help { (ctx.t("op.refused.help")) }
            @if refused.is_empty() {
                p { (ctx.t("op.none")) }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-labelledby="refused-title" {
                    table.stack {
                        thead { tr {
                            th scope="col" { (ctx.t("op.col.when")) }
                            th scope="col" { (ctx.t("op.col.what")) }
                        } }
                        tbody {
                            @for r in refused {
                                tr {
                                    th scope="row" { (r.when) }
                                    td data-label=(ctx.t("op.col.what")) lang="en" { (r.what) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        ctx,
        ctx.t("op.replies"),
        Section::Replies,
        html! {},
        None,
        body,
    )
}

pub fn reply(ctx: &Ctx, r: &ReplyRecord, raw: Option<&[u8]>, text: Option<&str>) -> Markup {
    let body = html! {
        h1 { (ctx.t("op.reply")) " " code { (r.id) } }
        p { a href="/setup/replies" { (ctx.t("op.back")) } }
        dl.facts {
            dt { (ctx.t("col.status")) } dd { span.badge.(status_class(&r.status)) { (r.status) } }
            dt { (ctx.t("op.col.received")) } dd { (stamp(&r.received_at)) }
            dt { (ctx.t("op.col.from")) } dd { (r.from) }
            dt { (ctx.t("op.col.to")) } dd { (r.to) }
            dt { "Message-ID" } dd { (r.message_id.as_deref().unwrap_or("—")) }
            dt { (ctx.t("op.col.client")) } dd { (r.client) " (HELO " (r.helo) ")" }
            dt { "TLS" } dd { (ctx.t(if r.tls { "yes" } else { "no" })) }
            dt { (ctx.t("op.col.attempts")) } dd { (r.attempts) }
            @if let Some(e) = &r.last_error {
                dt { (ctx.t("op.col.why")) } dd lang="en" { (e) }
            }
        }
        h2 { (ctx.t("lab.text")) }
        @match text {
            Some(t) if !t.trim().is_empty() => pre.transcript { (t) },
            Some(_) => p { (ctx.t("lab.text.none")) },
            None => p { (ctx.t("op.gone")) },
        }
        h2 { (ctx.t("op.raw")) }
        @match raw {
            Some(raw) => {
                @if raw.len() > RAW_SHOWN {
                    p.help { (ctx.t("op.raw.cut")) " " (RAW_SHOWN / 1024) " KiB" }
                }
                pre.transcript { (String::from_utf8_lossy(&raw[..raw.len().min(RAW_SHOWN)])) }
            }
            None => p { (ctx.t("op.gone")) },
        }
    };
    page(
        ctx,
        ctx.t("op.reply"),
        Section::Replies,
        html! {},
        None,
        body,
    )
}

/// When `ms` (unix ms) is, as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    stamp(&crate::clock::rfc3339(t))
}

/// An RFC 3339 stamp as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn stamp(s: &str) -> String {
    s.get(..19)
        .map_or(s.to_string(), |d| format!("{} UTC", d.replace('T', " ")))
}

/// One line of the audit page: when, who, what.
pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub what: String,
}

pub fn audit(ctx: &Ctx, rows: &[AuditRow]) -> Markup {
    let body = html! {
        h1 id="audit-title" { (ctx.t("op.audit")) }
        p.lead { (ctx.t("op.audit.lead")) }
        @if rows.is_empty() {
            p { (ctx.t("op.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="audit-title" {
                table.stack {
                    thead { tr {
                        th scope="col" { (ctx.t("op.col.when")) }
                        th scope="col" { (ctx.t("op.col.who")) }
                        th scope="col" { (ctx.t("op.col.what")) }
                    } }
                    tbody {
                        @for r in rows {
                            tr {
                                th scope="row" { (stamp(&r.at)) }
                                td data-label=(ctx.t("op.col.who")) lang="en" { (r.who) }
                                td data-label=(ctx.t("op.col.what")) lang="en" { (r.what) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, ctx.t("op.audit"), Section::Audit, html! {}, None, body)
}
