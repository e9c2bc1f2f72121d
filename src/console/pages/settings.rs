//! The Email settings page, the admin guide's one screen: the test email at the top of the
//! Email section, every field in the guide's order with the guide's labels, Enforce TLS auth,
//! then herald's own settings under Advanced, and Save settings (in the sidebar, where the
//! guide says, and below the form). An error stands beside its field, tied to it with
//! `aria-describedby`, with the value that was entered kept. Saved settings that are not in
//! force yet are listed with what they change; a few lines of script list the changes made on
//! the form before it is saved.

use super::{Ctx, Section, csrf_field, page};
use crate::settings::{KEYS, Settings, Value};
use maud::{Markup, html};

/// The outcome of a test email, as the page shows it.
pub struct Test<'a> {
    pub ok: bool,
    pub error: Option<&'a str>,
    /// The failure's kind (`TestResult::kind`) and what exactly went wrong.
    pub kind: Option<&'a str>,
    pub detail: Option<&'a str>,
    /// What to do about it, in plain words.
    pub fix: Option<&'a str>,
    /// The server's final reply (accepted or not).
    pub reply: Option<&'a str>,
    pub transcript: &'a [String],
}

pub struct View<'a> {
    /// What the form shows: the latest saved settings, or what was just submitted.
    pub values: &'a Settings,
    /// The settings in force.
    pub applied: &'a Settings,
    /// The latest saved settings (pending when they differ from `applied`).
    pub saved: &'a Settings,
    /// Errors by key, from the validator.
    pub errors: &'a [(String, String)],
    /// The values as typed, for fields whose value could not be taken (kept on the form).
    pub typed: &'a [(String, String)],
    pub password_saved: bool,
    /// A password was typed for a test email: it is not shown back, so say to type it again.
    pub password_typed: bool,
    pub test: Option<Test<'a>>,
    pub test_to: &'a str,
    /// A configuration run going on.
    pub running: Option<u64>,
    /// Saving was refused because a run is going on.
    pub busy: bool,
}

/// Errors in the order of the fields on the page, so the summary reads top to bottom.
fn in_form_order(errors: &[(String, String)]) -> Vec<&(String, String)> {
    let place = |k: &str| {
        if k == "test_to" {
            return 0;
        }
        crate::console::setup::FORM_KEYS
            .iter()
            .position(|f| *f == k)
            .map_or(usize::MAX, |p| p + 1)
    };
    let mut v: Vec<&(String, String)> = errors.iter().collect();
    v.sort_by_key(|(k, _)| place(k));
    v
}

fn id_of(key: &str) -> String {
    key.replace(['.', '_'], "-")
}

fn value_text(v: Option<Value>) -> String {
    match v {
        Some(Value::Str(s)) => s,
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        None => String::new(),
    }
}

impl View<'_> {
    fn error(&self, key: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, m)| m.as_str())
    }

    /// The value to show in a field.
    fn shown(&self, key: &str) -> String {
        if let Some((_, typed)) = self.typed.iter().find(|(k, _)| k == key) {
            return typed.clone();
        }
        value_text(self.values.get(key))
    }

    /// A value as saved, for the script's list of changes made on the page.
    fn saved_text(&self, key: &str) -> String {
        value_text(self.saved.get(key))
    }
}

/// A field's help and error ids, for `aria-describedby`.
fn described(view: &View, key: &str, help: bool) -> Option<String> {
    let id = id_of(key);
    let mut ids = Vec::new();
    if help {
        ids.push(format!("{id}-help"));
    }
    if view.error(key).is_some() {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn error_line(ctx: &Ctx, view: &View, key: &str) -> Markup {
    html! {
        @if let Some(e) = view.error(key) {
            p.error id=(format!("{}-error", id_of(key))) { (message(ctx, key, e)) }
        }
    }
}

/// A refused value's message in the page's language: in Japanese the setting's rule in
/// Japanese, then the validator's exact English words (what a support ticket quotes).
fn message(ctx: &Ctx, key: &str, msg: &str) -> Markup {
    match ctx.lang.rule(key) {
        Some(rule) => html! { (rule) " " span.detail lang="en" { "(" (msg) ")" } },
        None => html! { (msg) },
    }
}

fn help_line(ctx: &Ctx, key: &str, help: &str) -> Markup {
    html! {
        p.help id=(format!("{}-help", id_of(key))) { (ctx.t(help)) }
    }
}

/// A text field. `kind` is the input type (`text`, `email`, `url`); `numeric` asks phones for
/// digits.
fn text(ctx: &Ctx, view: &View, key: &str, kind: &str, numeric: bool, help: bool) -> Markup {
    let id = id_of(key);
    let help_key = format!("help.{key}");
    let invalid = view.error(key).is_some();
    html! {
        div.field.invalid[invalid] {
            label for=(id) { (ctx.t(&format!("field.{key}"))) }
            input id=(id) name=(key) type=(kind) value=(view.shown(key))
                inputmode=[numeric.then_some("numeric")]
                autocomplete="off" spellcheck="false"
                data-saved=(view.saved_text(key))
                data-label=(ctx.t(&format!("field.{key}")))
                aria-describedby=[described(view, key, help)]
                aria-invalid=[invalid.then_some("true")];
            @if help { (help_line(ctx, key, &help_key)) }
            (error_line(ctx, view, key))
        }
    }
}

fn checkbox(ctx: &Ctx, view: &View, key: &str, help: bool) -> Markup {
    let id = id_of(key);
    let on = view.shown(key) == "true";
    let invalid = view.error(key).is_some();
    html! {
        div.field.check.invalid[invalid] {
            // An unchecked box sends nothing: the hidden "false" before it says so.
            input type="hidden" name=(key) value="false";
            input id=(id) name=(key) type="checkbox" value="true" checked[on]
                data-saved=(view.saved_text(key))
                data-label=(ctx.t(&format!("field.{key}")))
                aria-describedby=[described(view, key, help)]
                aria-invalid=[invalid.then_some("true")];
            label for=(id) { (ctx.t(&format!("field.{key}"))) }
            @if help { (help_line(ctx, key, &format!("help.{key}"))) }
            (error_line(ctx, view, key))
        }
    }
}

fn select(ctx: &Ctx, view: &View, key: &str, prefix: &str, choices: &[&str]) -> Markup {
    let id = id_of(key);
    let current = view.shown(key);
    let invalid = view.error(key).is_some();
    html! {
        div.field.invalid[invalid] {
            label for=(id) { (ctx.t(&format!("field.{key}"))) }
            select id=(id) name=(key)
                data-saved=(view.saved_text(key))
                data-label=(ctx.t(&format!("field.{key}")))
                aria-describedby=[described(view, key, true)]
                aria-invalid=[invalid.then_some("true")] {
                @for c in choices {
                    option value=(c) selected[current == *c] { (ctx.t(&format!("{prefix}.{c}"))) }
                }
            }
            (help_line(ctx, key, &format!("help.{key}")))
            (error_line(ctx, view, key))
        }
    }
}

fn password(ctx: &Ctx, view: &View) -> Markup {
    let key = "smtp.password";
    let id = id_of(key);
    let help = if view.password_typed {
        "help.smtp.password.retype"
    } else if view.password_saved {
        "help.smtp.password.set"
    } else {
        "help.smtp.password.unset"
    };
    let invalid = view.error(key).is_some();
    html! {
        div.field.invalid[invalid] {
            label for=(id) { (ctx.t("field.smtp.password")) }
            // Never filled in: the saved password is write-only.
            input id=(id) name=(key) type="password" value="" autocomplete="new-password"
                data-secret="true" data-label=(ctx.t("field.smtp.password"))
                aria-describedby=[described(view, key, true)]
                aria-invalid=[invalid.then_some("true")];
            (help_line(ctx, key, help))
            (error_line(ctx, view, key))
        }
    }
}

fn support(ctx: &Ctx, view: &View) -> Markup {
    let kind = view.shown("smtp.support_type");
    let invalid = view.error("smtp.support_address").is_some();
    html! {
        fieldset.field.invalid[invalid] aria-describedby="smtp-support-type-help" {
            legend { (ctx.t("field.smtp.support_type")) }
            p.help id="smtp-support-type-help" { (ctx.t("help.smtp.support_type")) }
            @for (value, label, help) in [("email", "support.email", "help.support.email"), ("url", "support.url", "help.support.url")] {
                div.radio {
                    input type="radio" id=(format!("support-{value}")) name="smtp.support_type" value=(value)
                        checked[kind == value] data-saved=(view.saved_text("smtp.support_type"))
                        data-label=(ctx.t("field.smtp.support_type"))
                        aria-describedby=(format!("support-{value}-help"));
                    label for=(format!("support-{value}")) { (ctx.t(label)) }
                    p.help id=(format!("support-{value}-help")) { (ctx.t(help)) }
                }
            }
            label for="smtp-support-address" { (ctx.t("field.smtp.support_address")) }
            input id="smtp-support-address" name="smtp.support_address" type="text"
                value=(view.shown("smtp.support_address")) autocomplete="off"
                data-saved=(view.saved_text("smtp.support_address"))
                data-label=(ctx.t("field.smtp.support_address"))
                aria-describedby=[described(view, "smtp.support_address", false)]
                aria-invalid=[invalid.then_some("true")];
            (error_line(ctx, view, "smtp.support_address"))
        }
    }
}

/// A setting's value as the pending list shows it: secrets only as set / not set.
fn shown_value(ctx: &Ctx, s: &Settings, key: &str) -> String {
    let secret = crate::settings::key_def(key).is_some_and(|d| d.secret);
    let text = value_text(s.get(key));
    if secret {
        return ctx
            .t(if text.is_empty() {
                "secret.unset"
            } else {
                "secret.set"
            })
            .to_string();
    }
    match text.as_str() {
        "" => ctx.t("empty").to_string(),
        "true" => ctx.t("yes").to_string(),
        "false" => ctx.t("no").to_string(),
        _ => text,
    }
}

/// The label of a key on this page, or the key itself for keys the page does not show.
fn label(ctx: &Ctx, key: &str) -> String {
    let k = format!("field.{key}");
    let l = ctx.t(&k);
    if l == k {
        key.to_string()
    } else {
        l.to_string()
    }
}

fn test_section(ctx: &Ctx, view: &View) -> Markup {
    let open = view.test.is_some() || view.error("test_to").is_some();
    html! {
        details.test open[open] {
            summary { (ctx.t("test.title")) }
            div.test-body {
                p.help { (ctx.t("test.intro")) }
                div.field.invalid[view.error("test_to").is_some()] {
                    label for="test-to" { (ctx.t("test.to")) }
                    input id="test-to" name="test_to" type="email" value=(view.test_to)
                        autocomplete="email"
                        aria-describedby=[view.error("test_to").map(|_| "test-to-error")]
                        aria-invalid=[view.error("test_to").map(|_| "true")];
                    (error_line(ctx, view, "test_to"))
                }
                button.secondary type="submit" name="action" value="test" { (ctx.t("test.send")) }
                div.test-result role="status" aria-live="polite" {
                    @if let Some(t) = &view.test {
                        @if t.ok {
                            p.notice.good { (ctx.t("test.ok")) }
                        } @else {
                            p.notice.bad {
                                (ctx.t("test.failed")) " "
                                @match (t.kind, t.detail) {
                                    (Some(kind), Some(detail)) => {
                                        (ctx.t(&format!("test.kind.{kind}"))) ": " span lang="en" { (detail) }
                                    }
                                    _ => (t.error.unwrap_or("")),
                                }
                            }
                        }
                        @if let Some(r) = t.reply {
                            p { strong { (ctx.t("test.reply")) ": " } code { (r) } }
                        }
                        @if let Some(kind) = t.kind {
                            p { strong { (ctx.t("test.fix")) ": " } (ctx.t(&format!("test.fix.{kind}"))) }
                        } @else if let Some(f) = t.fix {
                            p { strong { (ctx.t("test.fix")) ": " } (f) }
                        }
                        p.help { (ctx.t("test.notsent")) }
                        @if !t.transcript.is_empty() {
                            h3 { (ctx.t("test.transcript")) }
                            pre.transcript tabindex="0" { @for line in t.transcript { (transcript_line(line)) "\n" } }
                        }
                    }
                }
            }
        }
    }
}

/// A line of the SMTP conversation; a server's 4xx or 5xx reply stands out (`mark`), so the
/// line that explains a failure is found at a glance.
fn transcript_line(line: &str) -> Markup {
    let refusal = line
        .strip_prefix("-> \"")
        .is_some_and(|r| matches!(r.as_bytes().first(), Some(b'4' | b'5')));
    html! {
        @if refusal { mark { (line) } } @else { (line) }
    }
}

fn pending(ctx: &Ctx, view: &View) -> Markup {
    let changed: Vec<&str> = KEYS
        .iter()
        .map(|d| d.key)
        .filter(|k| view.saved.get(k) != view.applied.get(k))
        .collect();
    html! {
        @if !changed.is_empty() && view.running.is_none() {
            section.card.pending aria-labelledby="pending-title" {
                h2 id="pending-title" { (ctx.t("pending.title")) }
                p { (ctx.t("pending.intro")) }
                table.stack {
                    thead { tr { th scope="col" { (ctx.t("col.setting")) } th scope="col" { (ctx.t("col.inforce")) } th scope="col" { (ctx.t("col.saved")) } } }
                    tbody {
                        @for k in &changed {
                            tr {
                                th scope="row" { (label(ctx, k)) }
                                td data-label=(ctx.t("col.inforce")) { (shown_value(ctx, view.applied, k)) }
                                td data-label=(ctx.t("col.saved")) { (shown_value(ctx, view.saved, k)) }
                            }
                        }
                    }
                }
                form method="post" action="/setup/settings" {
                    (csrf_field(ctx))
                    button.secondary type="submit" name="action" value="apply" { (ctx.t("pending.apply")) }
                }
            }
        }
    }
}

pub fn render(ctx: &Ctx, view: &View) -> Markup {
    let save = html! {
        button.primary type="submit" form="settings-form" name="action" value="save" { (ctx.t("save")) }
    };
    let sidebar = html! { div.sidebar-save { (save) } };
    let body = html! {
        h1 { (ctx.t("settings.title")) }
        p.lead { (ctx.t("settings.intro")) }
        @if let Some(id) = view.running {
            p.notice.info role="status" {
                (ctx.t("running.notice")) " "
                a href=(format!("/setup/runs/{id}")) { (ctx.t("running.see")) " (#" (id) ")" }
            }
        }
        @if view.busy {
            p.notice.bad role="alert" { (ctx.t("busy")) }
        }
        @if !view.errors.is_empty() {
            div.notice.bad role="alert" id="error-summary" tabindex="-1" {
                p { (ctx.t("errors.title")) }
                ul {
                    @for (k, m) in in_form_order(view.errors) {
                        li { a href=(format!("#{}", if k == "test_to" { "test-to".to_string() } else { id_of(k) })) { (label(ctx, k)) } ": " (message(ctx, k, m)) }
                    }
                }
            }
        }
        (pending(ctx, view))
        form #settings-form .settings method="post" action="/setup/settings" novalidate {
            (csrf_field(ctx))
            section.card aria-labelledby="email-title" {
                h2 id="email-title" { (ctx.t("email.section")) }
                (test_section(ctx, view))
                (checkbox(ctx, view, "smtp.enabled", true))
                (text(ctx, view, "smtp.address", "text", false, true))
                (text(ctx, view, "smtp.port", "text", true, true))
                (text(ctx, view, "smtp.domain", "text", false, true))
                (select(ctx, view, "smtp.authentication", "auth", &["none", "plain", "login", "cram-md5"]))
                (text(ctx, view, "smtp.username", "text", false, false))
                (password(ctx, view))
                (text(ctx, view, "smtp.noreply_address", "email", false, true))
                (checkbox(ctx, view, "smtp.discard_to_noreply", false))
                (support(ctx, view))
                (checkbox(ctx, view, "inbound.tls_enforced", true))
            }
            section.card aria-labelledby="advanced-title" {
                h2 id="advanced-title" { (ctx.t("advanced.title")) }
                p.help { (ctx.t("advanced.intro")) }
                (select(ctx, view, "smtp.tls", "tls", &["starttls-auto", "starttls-required", "implicit", "off"]))
                (checkbox(ctx, view, "smtp.tls_verify", true))
                (text(ctx, view, "smtp.ca_file", "text", false, true))
                (text(ctx, view, "inbound.listen", "text", false, true))
                (text(ctx, view, "replies.webhook_url", "url", false, true))
                (text(ctx, view, "replies.ca_file", "text", false, true))
            }
            div.save-bar {
                div #changes .changes aria-live="polite" hidden data-title=(ctx.t("changes.title")) data-none=(ctx.t("changes.none"))
                    data-on=(ctx.t("changes.on")) data-off=(ctx.t("changes.off")) {}
                p.help { (ctx.t("save.note")) }
                (save)
            }
        }
    };
    page(
        ctx,
        ctx.t("settings.title"),
        Section::Email,
        sidebar,
        None,
        body,
    )
}
