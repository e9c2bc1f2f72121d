//! The reply lab page: a form to paste a raw email (or pick an `.eml`, read into the form by a few
//! lines of script) and an envelope recipient, and below it what herald would do with the
//! message — recipients as `RCPT` would judge them, the fate, the reply text beside the body it
//! was taken from, the webhook's body. Nothing is stored or sent. The message's own text and
//! herald's verdict details are shown as they are (escaped), marked as English where the
//! service's words are.

use super::{Ctx, Section, csrf_field, page};
use crate::replies::lab::{Fate, Lab, Verdict};
use maud::{Markup, html};

/// What the form holds.
pub struct Form<'a> {
    pub raw: &'a str,
    pub to: &'a str,
}

fn verdict(ctx: &Ctx, v: &Verdict) -> Markup {
    match v {
        Verdict::Reply { kind, thread, user } => html! {
            span.badge.good { (ctx.t("lab.reply")) }
            " " (kind) " #" (thread) ", " (ctx.t("lab.user")) " " (user)
        },
        Verdict::Discarded => html! { span.badge.quiet { (ctx.t("lab.discarded")) } },
        Verdict::Refused(why) => html! {
            span.badge.bad { (ctx.t("lab.refused")) } " " span lang="en" { (why) }
        },
    }
}

fn fate(ctx: &Ctx, f: &Fate) -> Markup {
    match f {
        Fate::Posted(_) => html! { p.notice.good role="status" { (ctx.t("lab.fate.posted")) } },
        Fate::Failed(class, why) => html! {
            p.notice.warn role="status" {
                (ctx.t("lab.fate.failed")) " " code { "failed:" (class) } ": " span lang="en" { (why) }
            }
        },
        Fate::Discarded => html! { p.notice.info role="status" { (ctx.t("lab.fate.discarded")) } },
        Fate::Refused => html! { p.notice.bad role="status" { (ctx.t("lab.fate.refused")) } },
        Fate::Unreadable(e) => html! {
            p.notice.bad role="status" { (ctx.t("lab.fate.unreadable")) " " span lang="en" { (e) } }
        },
    }
}

pub fn render(ctx: &Ctx, form: &Form, lab: Option<&Lab>) -> Markup {
    let body = html! {
        h1 { (ctx.t("lab.title")) }
        p.lead { (ctx.t("lab.lead")) }
        form.card method="post" action="/setup/reply-lab" {
            (csrf_field(ctx))
            div.field {
                label for="lab-raw" { (ctx.t("lab.raw")) }
                textarea id="lab-raw" name="raw" rows="14" spellcheck="false" required
                    aria-describedby="lab-raw-help" { (form.raw) }
                p.help id="lab-raw-help" { (ctx.t("lab.raw.help")) }
            }
            div.field id="lab-file-field" hidden {
                label for="lab-file" { (ctx.t("lab.file")) }
                input id="lab-file" type="file" accept=".eml,message/rfc822,text/plain"
                    aria-describedby="lab-file-help";
                p.help id="lab-file-help" { (ctx.t("lab.file.help")) }
            }
            div.field {
                label for="lab-to" { (ctx.t("lab.to")) }
                input id="lab-to" name="to" type="text" value=(form.to) autocomplete="off"
                    spellcheck="false" aria-describedby="lab-to-help";
                p.help id="lab-to-help" { (ctx.t("lab.to.help")) }
            }
            button.primary type="submit" { (ctx.t("lab.examine")) }
        }
        @if let Some(lab) = lab {
            section aria-labelledby="lab-result" {
                h2 id="lab-result" { (ctx.t("lab.result")) }
                (fate(ctx, &lab.fate))
                h3 { (ctx.t("lab.recipients")) }
                @if lab.recipients.is_empty() {
                    p { (ctx.t("lab.no_recipients")) }
                } @else {
                    p.help { (ctx.t(if lab.from_headers { "lab.from_headers" } else { "lab.from_envelope" })) }
                    ul {
                        @for r in &lab.recipients {
                            li { code { (r.address) } " — " (verdict(ctx, &r.verdict)) }
                        }
                    }
                }
                @if let Some(p) = &lab.parsed {
                    h3 { (ctx.t("lab.message")) }
                    dl.facts {
                        dt { (ctx.t("lab.from")) } dd { (p.from) }
                        dt { (ctx.t("lab.subject")) } dd { (p.subject) }
                        dt { "Message-ID" } dd { (p.message_id.as_deref().unwrap_or("—")) }
                    }
                    h3 { (ctx.t("lab.text")) }
                    @if p.text.trim().is_empty() {
                        p { (ctx.t("lab.text.none")) }
                    } @else {
                        pre.transcript { (p.text) }
                    }
                    h3 { (ctx.t("lab.body")) }
                    p.help { (ctx.t("lab.body.help")) }
                    pre.transcript { (p.body.as_deref().unwrap_or("")) }
                }
                @if let Fate::Posted(json) = &lab.fate {
                    h3 { (ctx.t("lab.webhook")) }
                    pre.transcript { (json) }
                }
            }
        }
    };
    page(ctx, ctx.t("lab.title"), Section::Lab, html! {}, None, body)
}
