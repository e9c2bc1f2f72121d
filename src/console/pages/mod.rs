//! The console's pages: each a function from the data it shows to maud `Markup`, with no I/O,
//! so tests render them without a socket. Everything shown is escaped by maud; no page uses
//! `PreEscaped` on anything that came from outside. The frame of every page is here: the skip
//! link, the header with the language switch and sign-out, and the Settings sidebar that the
//! admin guide walks through ("[設定] サイドバーで [メール アドレス] をクリック").

pub mod diagnostics;
pub mod i18n;
pub mod lab;
pub mod login;
pub mod operate;
pub mod queue;
pub mod runs;
pub mod settings;

pub use i18n::Lang;
use maud::{DOCTYPE, Markup, html};

/// What every page knows about the request it answers.
pub struct Ctx<'a> {
    pub lang: Lang,
    /// The session's form token when signed in (sign-out and every form carry it).
    pub csrf: Option<&'a str>,
    /// The page's own path, for the language switch to come back to.
    pub path: &'a str,
}

impl Ctx<'_> {
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }
}

/// Which sidebar item is the page's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Email,
    Runs,
    Diagnostics,
    Replies,
    Queue,
    Lab,
    Audit,
    None,
}

/// The hidden field that carries the session's form token.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(token) = ctx.csrf {
            input type="hidden" name="_csrf" value=(token);
        }
    }
}

/// A whole page: `title` in the tab and as the page's heading context, `sidebar_extra` below
/// the sidebar's links (the Save settings button on the settings page), `refresh` seconds for
/// a page that must reload itself (a run in progress).
pub fn page(
    ctx: &Ctx,
    title: &str,
    section: Section,
    sidebar_extra: Markup,
    refresh: Option<u32>,
    body: Markup,
) -> Markup {
    let signed_in = ctx.csrf.is_some();
    let other = ctx.lang.other();
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh {
                    meta http-equiv="refresh" content=(s);
                }
                title { (title) " · herald" }
                link rel="stylesheet" href="/static/herald.css";
                script src="/static/herald.js" defer {}
            }
            body {
                a.skip href="#main" { (ctx.t("skip")) }
                header.top {
                    div.brand {
                        span.mark aria-hidden="true" { "h" }
                        span.name { "herald" }
                        span.sub { (ctx.t("console")) }
                    }
                    div.tools {
                        a.lang href=(format!("/setup/lang?to={}&back={}", other.code(), ctx.path))
                            lang=(other.code()) hreflang=(other.code()) {
                            span.visually-hidden { (ctx.t("lang.switch")) ": " }
                            (other.own_name())
                        }
                        @if signed_in {
                            form.signout method="post" action="/setup/logout" {
                                (csrf_field(ctx))
                                button.link type="submit" { (ctx.t("signout")) }
                            }
                        }
                    }
                }
                div.frame.solo[!signed_in] {
                    @if signed_in {
                        nav.sidebar aria-label=(ctx.t("nav.label")) {
                            h2.sidebar-title { (ctx.t("nav.settings")) }
                            ul {
                                li { a href="/setup/settings" aria-current=[(section == Section::Email).then_some("page")] { (ctx.t("nav.email")) } }
                                li { a href="/setup/runs" aria-current=[(section == Section::Runs).then_some("page")] { (ctx.t("nav.runs")) } }
                            }
                            h2.sidebar-title { (ctx.t("nav.troubleshooting")) }
                            ul {
                                li { a href="/setup/diagnostics" aria-current=[(section == Section::Diagnostics).then_some("page")] { (ctx.t("nav.diagnostics")) } }
                                li { a href="/setup/replies" aria-current=[(section == Section::Replies).then_some("page")] { (ctx.t("nav.replies")) } }
                                li { a href="/setup/queue" aria-current=[(section == Section::Queue).then_some("page")] { (ctx.t("nav.queue")) } }
                                li { a href="/setup/reply-lab" aria-current=[(section == Section::Lab).then_some("page")] { (ctx.t("nav.lab")) } }
                                li { a href="/setup/audit" aria-current=[(section == Section::Audit).then_some("page")] { (ctx.t("nav.audit")) } }
                            }
                            (sidebar_extra)
                        }
                    }
                    main id="main" tabindex="-1" { (body) }
                }
            }
        }
    }
}

/// A page that says what went wrong and what to do (403, 404, 421 ...).
pub fn error(ctx: &Ctx, message: &str) -> Markup {
    let body = html! {
        h1 { (ctx.t("error.title")) }
        p.notice.bad role="alert" { (message) }
        p { a href="/setup/settings" { (ctx.t("run.back")) } }
    };
    page(
        ctx,
        ctx.t("error.title"),
        Section::None,
        html! {},
        None,
        body,
    )
}

#[cfg(test)]
mod tests;
