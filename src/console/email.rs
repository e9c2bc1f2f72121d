//! `POST /manage/v1/email/test`: the test email with the current settings overlaid by the
//! unsaved values of the form (nothing is saved), answered with the outcome and the transcript.
//! The saved password goes only to the server it was saved for.

use super::manage::parse_put;
use super::{Request, Response};
use crate::app::App;
use crate::outbound::testmail;
use crate::settings::{Errors, Settings};
use serde_json::{Value as Json, json};

pub fn test(app: &App, req: &Request) -> Response {
    let body: Json = match serde_json::from_slice(&req.body) {
        Ok(Json::Object(o)) => Json::Object(o),
        Ok(_) => {
            return Response::json(
                400,
                &json!({ "errors": { "body": "must be a JSON object with \"to\"" } }),
            );
        }
        Err(e) => {
            return Response::json(
                400,
                &json!({ "errors": { "body": format!("not valid JSON: {e}") } }),
            );
        }
    };
    let to = match body.get("to") {
        Some(Json::String(to)) if crate::settings::is_email(to) => to.clone(),
        Some(Json::String(to)) => {
            return Response::json(
                400,
                &json!({ "errors": { "to": format!("{to:?} is not an email address") } }),
            );
        }
        _ => {
            return Response::json(
                400,
                &json!({ "errors": { "to": "required: the address to send the test email to" } }),
            );
        }
    };
    let latest = match app.settings.latest() {
        Ok(Some(doc)) => doc.settings,
        Ok(None) => return Response::error(503, "no settings yet"),
        Err(e) => return Response::error(500, &format!("cannot read the settings: {e}")),
    };
    let mut changes = Vec::new();
    if let Some(partial) = body.get("settings") {
        let bytes = serde_json::to_vec(partial).expect("serializes");
        changes = match parse_put(&bytes, &latest) {
            Ok(c) => c,
            Err((_, e)) => return Response::json(400, &e.to_json()),
        };
    }
    match send(app, &latest, &changes, &to) {
        Ok(result) => Response::json(200, &serde_json::to_value(&result).expect("serializes")),
        Err(e) => Response::json(400, &e.to_json()),
    }
}

/// The test email to `to` with `latest` overlaid by `changes` (nothing saved): the API's and
/// the settings page's. `Err` names the settings the overlay gets wrong.
pub fn send(
    app: &App,
    latest: &Settings,
    changes: &[(String, crate::settings::Value)],
    to: &str,
) -> Result<testmail::TestResult, Errors> {
    let mut settings = latest.clone();
    settings.update(changes)?;
    keep_password_home(latest, &mut settings, changes)?;
    let result = smol::block_on(testmail::send(&settings, to, &app.unicorn));
    crate::diagnostics::record_test(&app.db, to, &result);
    match &result.error {
        None => log::info!("test email to {to}: sent"),
        Some(e) => log::warn!("test email to {to}: {e}"),
    }
    Ok(result)
}

/// The settings that decide where and how the SMTP password goes.
const CREDENTIAL_PATH: &[&str] = &[
    "smtp.address",
    "smtp.port",
    "smtp.tls",
    "smtp.tls_verify",
    "smtp.ca_file",
    "smtp.authentication",
];

/// The stored password is write-only, and so is sent only where it was saved for: an overlay
/// that changes where or how credentials go (another server, TLS off, verification off, another
/// CA, another mechanism) must carry the password itself. Otherwise anyone holding the console
/// password could point the test at their own server with TLS off and read the SMTP password
/// in `AUTH PLAIN` (this happened).
fn keep_password_home(
    saved: &Settings,
    test: &mut Settings,
    changes: &[(String, crate::settings::Value)],
) -> Result<(), Errors> {
    let moved: Vec<&str> = CREDENTIAL_PATH
        .iter()
        .copied()
        .filter(|k| saved.get(k) != test.get(k))
        .collect();
    let typed = changes.iter().any(|(k, _)| k == "smtp.password");
    if moved.is_empty() || typed || test.smtp.authentication == crate::settings::Auth::None {
        return Ok(());
    }
    test.smtp.password.clear();
    Err(Errors::one(
        "smtp.password",
        format!(
            "type the password to test with these settings: the saved one is only sent where it was saved for, and {} changed",
            moved.join(", ")
        ),
    ))
}
