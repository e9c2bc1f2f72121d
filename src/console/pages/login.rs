//! The sign-in page: the console password, and what went wrong with the last try (always the
//! same words for a wrong password, whatever was wrong).

use super::{Ctx, Section, page};
use maud::{Markup, html};

pub struct Login<'a> {
    /// The sign-in form's token (its cookie holds the same).
    pub token: &'a str,
    /// A catalogue key: `login.wrong`, `login.throttled`, `login.expired`, `login.stale`.
    pub problem: Option<&'a str>,
    /// Where to go once signed in (a `/setup/` path).
    pub next: &'a str,
}

pub fn render(ctx: &Ctx, v: &Login) -> Markup {
    let described = if v.problem.is_some() {
        "password-help password-error"
    } else {
        "password-help"
    };
    let body = html! {
        div.card.narrow {
            h1 { (ctx.t("login.title")) }
            @if let Some(p) = v.problem {
                p.notice.bad id="password-error" role="alert" { (ctx.t(p)) }
            }
            form method="post" action="/setup/login" {
                input type="hidden" name="_login" value=(v.token);
                input type="hidden" name="next" value=(v.next);
                div.field {
                    label for="password" { (ctx.t("login.password")) }
                    input id="password" name="password" type="password" required
                        autocomplete="current-password" autofocus
                        aria-describedby=(described)
                        aria-invalid=[v.problem.map(|_| "true")];
                    p.help id="password-help" { (ctx.t("login.help")) }
                }
                button.primary type="submit" { (ctx.t("login.submit")) }
            }
        }
    };
    page(
        ctx,
        ctx.t("login.title"),
        Section::None,
        html! {},
        None,
        body,
    )
}
