//! The diagnostics report as a page: one table per section (check, state, what was found, what
//! was expected, what to do), the summary on top, what changed since the last report below, and
//! the plain text for a ticket one link away. The checks' own words are English (the report is
//! also the text support reads): marked so on a page in another language.

use super::{Ctx, Section, page};
use crate::diagnostics::{Report, State};
use maud::{Markup, html};

fn state_class(s: State) -> &'static str {
    match s {
        State::Ok => "good",
        State::Warn => "warn",
        State::Fail => "bad",
        State::Info => "quiet",
    }
}

fn state_key(s: State) -> &'static str {
    match s {
        State::Ok => "diag.ok",
        State::Warn => "diag.warn",
        State::Fail => "diag.fail",
        State::Info => "diag.info",
    }
}

pub fn render(ctx: &Ctx, report: &Report) -> Markup {
    let en = (ctx.lang != super::Lang::En).then_some("en");
    let (fail, warn) = (report.count(State::Fail), report.count(State::Warn));
    let body = html! {
        h1 { (ctx.t("diag.title")) }
        @if fail + warn == 0 {
            p.notice.good role="status" { (ctx.t("diag.all_ok")) }
        } @else {
            div.notice.bad[fail > 0].warn[fail == 0] role="status" {
                p { (ctx.t("diag.failed")) " " strong { (fail) } " · " (ctx.t("diag.to_look")) " " strong { (warn) } }
                ul {
                    @for (n, s) in report.sections.iter().enumerate() {
                        @for (m, c) in s.rows.iter().enumerate() {
                            @if matches!(c.state, State::Fail | State::Warn) {
                                li {
                                    a href=(format!("#diag-{n}-{m}")) lang=[en] { (s.title) " — " (c.name) }
                                    ": " (ctx.t(state_key(c.state)))
                                }
                            }
                        }
                    }
                }
            }
        }
        p.links {
            a href="/setup/diagnostics?format=text" { (ctx.t("diag.text")) }
            a href="/setup/support-bundle" download { (ctx.t("diag.bundle")) }
        }
        p.lead { (ctx.t("diag.bundle_help")) }
        p.lead { (ctx.t("diag.generated")) " " time { (report.generated_at) } }
        @for (n, s) in report.sections.iter().enumerate() {
            @let id = format!("diag-{n}");
            h2 id=(id) lang=[en] { (s.title) }
            @if s.rows.iter().all(|c| c.state == State::Info && c.fix.is_none()) {
                // Facts only (the settings, the counts): a plain two-column table.
                div.table-wrap tabindex="0" role="region" aria-labelledby=(id) {
                    table.facts {
                        thead { tr {
                            th scope="col" { (ctx.t("diag.col.item")) }
                            th scope="col" { (ctx.t("diag.col.value")) }
                        } }
                        tbody {
                            @for c in &s.rows {
                                tr {
                                    th scope="row" lang=[en] { (c.name) }
                                    td lang=[en] { (c.found) }
                                }
                            }
                        }
                    }
                }
            } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby=(id) {
                table.stack.diag {
                    thead { tr {
                        th scope="col" { (ctx.t("diag.col.check")) }
                        th scope="col" { (ctx.t("diag.col.state")) }
                        th scope="col" { (ctx.t("diag.col.found")) }
                        th scope="col" { (ctx.t("diag.col.expected")) }
                    } }
                    tbody {
                        @for (m, c) in s.rows.iter().enumerate() {
                            tr id=(format!("diag-{n}-{m}")) {
                                th scope="row" lang=[en] { (c.name) }
                                td data-label=(ctx.t("diag.col.state")) {
                                    span.badge.(state_class(c.state)) { (ctx.t(state_key(c.state))) }
                                }
                                td.found data-label=(ctx.t("diag.col.found")) lang=[en] {
                                    (c.found)
                                    @if let Some(fix) = &c.fix {
                                        span.fix { (ctx.t("diag.todo")) ": " (fix) }
                                    }
                                }
                                td data-label=(ctx.t("diag.col.expected")) lang=[en] {
                                    @if let Some(e) = &c.expected { (e) }
                                }
                            }
                        }
                    }
                }
            }
            }
        }
        h2 { (ctx.t("diag.changed")) }
        @let changes = report.changes();
        @if !report.compared {
            p { (ctx.t("diag.first")) }
        } @else if changes.is_empty() {
            p { (ctx.t("diag.nothing")) }
        } @else {
            ul lang=[en] {
                @for (s, c) in changes {
                    li { (s.title) " / " (c.name) ": " (c.was.as_deref().unwrap_or("")) " → " (c.state.label()) " " (c.found) }
                }
            }
        }
    };
    page(
        ctx,
        ctx.t("diag.title"),
        Section::Diagnostics,
        html! {},
        None,
        body,
    )
}
