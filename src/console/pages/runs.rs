//! A configuration run as it goes (the page reloads itself every second while it runs, and
//! stops once it has ended), and the list of kept runs.

use super::{Ctx, Section, page};
use crate::supervisor::runs::{Run, Status, StepStatus};
use maud::{Markup, html};

fn status_class(s: &str) -> &'static str {
    match s {
        "success" => "good",
        "failed" => "bad",
        "warning" | "rolled_back" => "warn",
        "running" => "info",
        _ => "quiet",
    }
}

/// A run's own messages are English: marked so on a page in another language.
fn english_in(ctx: &Ctx) -> Option<&'static str> {
    (ctx.lang != super::Lang::En).then_some("en")
}

fn step_status(s: StepStatus) -> &'static str {
    s.name()
}

fn took(ms: Option<u64>) -> String {
    match ms {
        Some(ms) if ms >= 1000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms} ms"),
        None => "…".into(),
    }
}

/// A time stamp as `YYYY-MM-DD HH:MM:SS UTC`.
fn when(stamp: &str) -> String {
    stamp
        .get(..19)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or_else(|| stamp.to_string())
}

fn changes(ctx: &Ctx, run: &Run) -> String {
    if run.changed.is_empty() {
        return ctx.t("run.nothing").to_string();
    }
    run.changed
        .iter()
        .map(|k| {
            let l = ctx.t(&format!("field.{k}"));
            if l.starts_with("field.") {
                k.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(ctx: &Ctx, run: &Run) -> Markup {
    let running = run.is_running();
    let title = format!("{} #{}", ctx.t("run.title"), run.id);
    let body = html! {
        h1 { (title) }
        @match run.status {
            Status::Running => p.notice.info role="status" { (ctx.t("run.running")) },
            Status::Success => p.notice.good role="status" { (ctx.t("run.success")) },
            Status::Failed => div.notice.bad role="alert" {
                p { (ctx.t("run.failed")) }
                @if let Some(e) = &run.error { p lang=[english_in(ctx)] { strong { (e) } } }
                p { (ctx.t("run.fix")) }
            },
        }
        dl.facts {
            dt { (ctx.t("run.started")) } dd { (when(&run.started_at)) }
            dt { (ctx.t("run.took")) } dd { (took(run.took_ms)) }
            dt { (ctx.t("run.by")) } dd {
                (ctx.t(&format!("trigger.{}", run.trigger)))
                @if let Some(c) = &run.client { " (" (c) ")" }
            }
            dt { (ctx.t("run.changed")) } dd { (changes(ctx, run)) }
        }
        h2 id="steps-title" { (ctx.t("run.steps")) }
        div.table-wrap tabindex="0" role="region" aria-labelledby="steps-title" {
            table.steps.stack {
                thead { tr {
                    th scope="col" { (ctx.t("col.step")) }
                    th scope="col" { (ctx.t("col.status")) }
                    th scope="col" { (ctx.t("col.what")) }
                    th scope="col" { (ctx.t("col.time")) }
                } }
                tbody {
                    @for s in &run.steps {
                        tr {
                            th scope="row" { (ctx.t(&format!("step.{}", s.name))) }
                            td data-label=(ctx.t("col.status")) { span.badge.(status_class(step_status(s.status))) { (ctx.t(&format!("status.{}", step_status(s.status)))) } }
                            td data-label=(ctx.t("col.what")) lang=[english_in(ctx)] { (s.message) }
                            td.num data-label=(ctx.t("col.time")) {
                                @if s.status == StepStatus::NotRun { "—" } @else { (took(s.took_ms)) }
                            }
                        }
                    }
                }
            }
        }
        @if !running {
            p { a.button href="/setup/settings" { (ctx.t("run.back")) } }
        }
    };
    page(
        ctx,
        &title,
        Section::Runs,
        html! {},
        running.then_some(1),
        body,
    )
}

pub fn list(ctx: &Ctx, runs: &[Run]) -> Markup {
    let body = html! {
        h1 id="runs-title" { (ctx.t("runs.title")) }
        @if runs.is_empty() {
            p { (ctx.t("runs.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="runs-title" {
                table.stack {
                    thead { tr {
                        th scope="col" { (ctx.t("col.run")) }
                        th scope="col" { (ctx.t("col.status")) }
                        th scope="col" { (ctx.t("col.started")) }
                        th scope="col" { (ctx.t("run.took")) }
                        th scope="col" { (ctx.t("col.changes")) }
                    } }
                    tbody {
                        @for r in runs {
                            tr {
                                th scope="row" { a href=(format!("/setup/runs/{}", r.id)) { "#" (r.id) } }
                                td data-label=(ctx.t("col.status")) { span.badge.(status_class(r.status.name())) { (ctx.t(&format!("status.{}", r.status.name()))) } }
                                td data-label=(ctx.t("col.started")) { (when(&r.started_at)) }
                                td.num data-label=(ctx.t("run.took")) { (took(r.took_ms)) }
                                td data-label=(ctx.t("col.changes")) { (changes(ctx, r)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        ctx,
        ctx.t("runs.title"),
        Section::Runs,
        html! {},
        None,
        body,
    )
}
