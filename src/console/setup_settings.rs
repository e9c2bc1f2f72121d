//! The Email settings page's handlers: show it; send the test email with the form's values
//! (saved or not; the saved password only where it was saved for); save and start a
//! configuration run (the browser goes to the run's page); apply settings saved elsewhere.

use super::pages::{self, Ctx};
use super::setup::{changes, html};
use super::{Response, session};
use crate::app::App;
use crate::settings::Settings;
use crate::supervisor::{self, Refused};

/// The documents the page shows: (applied, latest saved).
fn documents(app: &App) -> Result<(Settings, Settings), Response> {
    let read = |e: crate::settings::store::StoreError| Response::error(500, &e.to_string());
    let applied = app.settings.applied().map_err(read)?;
    let latest = app.settings.latest().map_err(read)?;
    match (applied, latest) {
        (Some(a), Some(l)) => Ok((a.settings, l.settings)),
        _ => Err(Response::error(503, "no settings yet")),
    }
}

/// What a render needs beyond the documents.
#[derive(Default)]
struct Extra<'a> {
    errors: Vec<(String, String)>,
    typed: Vec<(String, String)>,
    test: Option<&'a crate::outbound::testmail::TestResult>,
    test_to: String,
    busy: bool,
    password_typed: bool,
}

fn render(app: &App, ctx: &Ctx, values: &Settings, extra: &Extra, status: u16) -> Response {
    let (applied, saved) = match documents(app) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let test = extra.test.map(|t| pages::settings::Test {
        ok: t.ok,
        error: t.error.as_deref(),
        kind: t.kind,
        detail: t.detail.as_deref(),
        fix: t.fix.as_deref(),
        reply: t.reply.as_deref(),
        transcript: &t.transcript,
    });
    let view = pages::settings::View {
        values,
        applied: &applied,
        saved: &saved,
        errors: &extra.errors,
        typed: &extra.typed,
        password_saved: !saved.smtp.password.is_empty(),
        password_typed: extra.password_typed,
        test,
        test_to: &extra.test_to,
        running: app.runs.running(),
        busy: extra.busy,
    };
    html(status, pages::settings::render(ctx, &view))
}

pub fn get(app: &App, ctx: &Ctx) -> Response {
    match documents(app) {
        Ok((_, latest)) => render(app, ctx, &latest, &Extra::default(), 200),
        Err(r) => r,
    }
}

/// The typed values of the form (the password never: it is not shown again).
fn typed(form: &[(String, String)]) -> Vec<(String, String)> {
    super::setup::FORM_KEYS
        .iter()
        .filter(|k| **k != "smtp.password")
        .filter_map(|k| session::last(form, k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}

fn client(req: &super::Request) -> Option<String> {
    req.peer.map(|p| p.ip().to_string())
}

pub fn post(
    app: &App,
    req: &super::Request,
    ctx: &Ctx,
    form: &[(String, String)],
    session_id: &str,
) -> Response {
    let (_, latest) = match documents(app) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let action = session::last(form, "action").unwrap_or("save");
    let typed_password = session::last(form, "smtp.password").filter(|p| !p.is_empty());
    // The password typed for the last test stands in for an empty field, so that saving right
    // after a successful test saves what was tested.
    let kept = app.sessions.typed_password(session_id);
    let mut form = form.to_vec();
    if typed_password.is_none()
        && let Some(pw) = &kept
    {
        form.push(("smtp.password".into(), pw.clone()));
    }
    let form = &form[..];
    let changes = changes(form, &latest);
    match action {
        "test" => {
            let to = session::last(form, "test_to")
                .unwrap_or("")
                .trim()
                .to_string();
            let password = session::last(form, "smtp.password").filter(|p| !p.is_empty());
            app.sessions.keep_typed_password(session_id, password);
            let mut extra = Extra {
                typed: typed(form),
                test_to: to.clone(),
                password_typed: password.is_some(),
                ..Extra::default()
            };
            if !crate::settings::is_email(&to) {
                let why = if to.is_empty() {
                    "type the address to send the test email to".to_string()
                } else {
                    format!("{to:?} is not an email address (name@example.com)")
                };
                extra.errors.push(("test_to".into(), why));
                return render(app, ctx, &latest, &extra, 422);
            }
            match super::email::send(app, &latest, &changes, &to) {
                Ok(result) => {
                    extra.test = Some(&result);
                    let status = if result.ok { 200 } else { 422 };
                    let mut shown = latest.clone();
                    let _ = shown.update(&changes);
                    render(app, ctx, &shown, &extra, status)
                }
                Err(errors) => {
                    extra.errors = errors.0.into_iter().collect();
                    render(app, ctx, &latest, &extra, 422)
                }
            }
        }
        "apply" => start_run(app, req, ctx, &latest),
        _ => match app.settings.update(&changes) {
            Ok(stored) => {
                app.sessions.keep_typed_password(session_id, None);
                crate::audit::record(
                    &app.db,
                    &format!("console from {}", client(req).unwrap_or_default()),
                    &crate::audit::saved(stored.version, &latest.changed_keys(&stored.settings)),
                );
                log::info!(
                    "console: settings saved as version {} from {}",
                    stored.version,
                    client(req).unwrap_or_default()
                );
                start_run(app, req, ctx, &stored.settings)
            }
            Err(crate::settings::store::SaveError::Invalid(errors)) => {
                let extra = Extra {
                    errors: errors.0.into_iter().collect(),
                    typed: typed(form),
                    ..Extra::default()
                };
                render(app, ctx, &latest, &extra, 422)
            }
            Err(crate::settings::store::SaveError::Store(e)) => {
                Response::error(500, &e.to_string())
            }
        },
    }
}

/// A configuration run of what is saved; the browser follows it on its page.
fn start_run(app: &App, req: &super::Request, ctx: &Ctx, latest: &Settings) -> Response {
    match supervisor::request(app, "console", client(req)) {
        Ok(run) => Response::empty(303).with_header("Location", &format!("/setup/runs/{}", run.id)),
        Err(Refused::Busy(_)) => {
            let extra = Extra {
                busy: true,
                ..Extra::default()
            };
            render(app, ctx, latest, &extra, 409)
        }
        Err(Refused::Failed(e)) => Response::error(503, &e),
    }
}
