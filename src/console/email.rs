//! `POST /manage/v1/email/test`: the test email with the current settings overlaid by the
//! unsaved values of the form (nothing is saved), answered with the outcome and the transcript.

use super::manage::parse_put;
use super::{Request, Response};
use crate::app::App;
use crate::outbound::testmail;
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
    let mut settings = match app.settings.latest() {
        Ok(Some(doc)) => doc.settings,
        Ok(None) => return Response::error(503, "no settings yet"),
        Err(e) => return Response::error(500, &format!("cannot read the settings: {e}")),
    };
    if let Some(partial) = body.get("settings") {
        let bytes = serde_json::to_vec(partial).expect("serializes");
        let changes = match parse_put(&bytes, &settings) {
            Ok(c) => c,
            Err((_, e)) => return Response::json(400, &e.to_json()),
        };
        if let Err(e) = settings.update(&changes) {
            return Response::json(400, &e.to_json());
        }
    }
    let result = smol::block_on(testmail::send(&settings, &to, &app.unicorn));
    match &result.error {
        None => log::info!("test email to {to}: sent"),
        Some(e) => log::warn!("test email to {to}: {e}"),
    }
    Response::json(200, &serde_json::to_value(&result).expect("serializes"))
}
