//! `GET /manage/v1/openapi.json`: the OpenAPI 3.1 description of the manage API and the
//! application API, built from the same tables the router and the validator use (the settings'
//! schema comes from [`crate::settings::KEYS`]), so it cannot drift from them. A test checks it
//! with `openapi-spec-validator` and calls every operation with its examples, comparing each
//! answer with what is documented.

use crate::settings::{KEYS, Kind};
use serde_json::{Map, Value as Json, json};

fn error(description: &str) -> Json {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn ok(description: &str, schema: &str) -> Json {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
    })
}

/// The settings document as `GET /manage/v1/config/settings` shows it: sections of keys, with
/// GHES's names in `smtp` beside herald's.
fn settings_schema() -> Json {
    let mut sections: Map<String, Json> = Map::new();
    let mut top: Map<String, Json> = Map::new();
    for def in KEYS {
        let ty = match def.kind {
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Choice(c) => json!({"type": "string", "enum": c}),
            Kind::Text => json!({"type": "string"}),
        };
        let mut ty = ty;
        ty["description"] = Json::String(def.rule.to_string());
        match def.key.split_once('.') {
            None => {
                top.insert(def.key.into(), ty);
            }
            Some((section, name)) => {
                let s = sections
                    .entry(section)
                    .or_insert_with(|| json!({"type": "object", "properties": {}}));
                s["properties"][name] = ty;
            }
        }
    }
    let smtp = &mut sections["smtp"]["properties"];
    smtp["port"] =
        json!({"type": ["string", "integer"], "description": "1 to 65535 (GHES sends a string)"});
    smtp["user_name"] = json!({"type": "string", "description": "GHES's name for username"});
    smtp["enable_starttls_auto"] =
        json!({"type": "boolean", "description": "GHES's: smtp.tls is a STARTTLS mode"});
    smtp["discard-to-noreply-address"] =
        json!({"type": "boolean", "description": "GHES's name for discard_to_noreply"});
    smtp["support_address_type"] = json!({"type": "string", "enum": ["email", "url"], "description": "GHES's name for support_type"});
    for (name, s) in sections {
        top.insert(name, s);
    }
    json!({"type": "object", "properties": top})
}

/// The whole document.
pub fn document() -> Json {
    let basic = json!([{"basic": []}]);
    let bearer = json!([{"bearer": []}]);
    let run_id = json!({"name": "run_id", "in": "query", "required": false,
        "schema": {"type": "integer", "minimum": 1}, "description": "a run's number; the latest without it"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "herald",
            "version": crate::VERSION,
            "description": "The manage API (HTTP Basic `api_key:<console password>` on the console listener; no authentication on `control.sock`) and the application API (bearer `api.token`). The manage API's shapes are GitHub Enterprise Server's, with herald's fields beside them.",
        },
        "servers": [{"url": "https://{host}:8443", "variables": {"host": {"default": "localhost"}}}],
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "user api_key, the console password"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "api.token"},
            },
            "schemas": schemas(),
        },
        "paths": paths(&basic, &bearer, &run_id),
    })
}

/// The shapes of the bodies.
fn schemas() -> Json {
    let mut all = json!({
                    "Error": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
                    "Errors": {"type": "object", "required": ["errors"], "properties": {"errors": {
                        "type": "object", "additionalProperties": {"type": "string"},
                        "description": "each setting (or field) that was wrong, and why"}}},
                    "Settings": {},
                    "Keys": {"type": "object", "required": ["applied_version", "keys"], "properties": {
                        "applied_version": {"type": "integer"},
                        "pending_version": {"type": ["integer", "null"]},
                        "keys": {"type": "array", "items": {"type": "object", "required": ["key", "value", "secret"], "properties": {
                            "key": {"type": "string"}, "value": {}, "secret": {"type": "boolean"},
                            "pending": {"type": "boolean"}, "applied": {}}}},
                    }},
                    "RunStarted": {"type": "object", "required": ["run_id"], "properties": {"run_id": {"type": "integer"}}},
                    "Busy": {"type": "object", "required": ["message", "run_id"], "properties": {
                        "message": {"type": "string"}, "run_id": {"type": "integer", "description": "the run going on"}}},
                    "Run": {"type": "object",
                        "required": ["running", "successful", "nodes", "run_id", "status", "started_at", "steps"],
                        "properties": {
                            "running": {"type": "boolean"},
                            "successful": {"type": "boolean"},
                            "nodes": {"type": "array", "items": {"type": "object", "properties": {
                                "run_id": {"type": "integer"}, "hostname": {"type": "string"},
                                "running": {"type": "boolean"}, "successful": {"type": "boolean"}}}},
                            "run_id": {"type": "integer"},
                            "status": {"type": "string", "enum": ["running", "success", "failed"]},
                            "started_at": {"type": "string", "format": "date-time"},
                            "finished_at": {"type": ["string", "null"], "format": "date-time"},
                            "took_ms": {"type": ["integer", "null"]},
                            "trigger": {"type": "string", "enum": ["console", "api", "cli", "boot"]},
                            "from_version": {"type": "integer"},
                            "to_version": {"type": "integer"},
                            "changed": {"type": "array", "items": {"type": "string"}},
                            "error": {"type": ["string", "null"]},
                            "steps": {"type": "array", "items": {"type": "object", "required": ["name", "status", "message"], "properties": {
                                "name": {"type": "string", "enum": ["validate", "inbound", "inbound_check", "console", "smarthost", "webhook", "apply"]},
                                "status": {"type": "string", "enum": ["running", "success", "skipped", "warning", "failed", "rolled_back", "not_run"]},
                                "message": {"type": "string"},
                                "started_at": {"type": "string"}, "finished_at": {"type": ["string", "null"]},
                                "took_ms": {"type": ["integer", "null"]}}}},
                        }},
                    "Events": {"type": "object", "required": ["nodes"], "properties": {"nodes": {"type": "array", "items": {
                        "type": "object", "required": ["node", "events"], "properties": {
                            "node": {"type": "string"},
                            "events": {"type": "array", "items": {"type": "object",
                                "required": ["timestamp", "severity_text", "body", "event_name", "config_run_id"],
                                "properties": {
                                    "timestamp": {"type": "string", "format": "date-time"},
                                    "severity_text": {"type": "string", "enum": ["INFO", "WARN", "ERROR"]},
                                    "body": {"type": "string"}, "event_name": {"type": "string"},
                                    "config_run_id": {"type": "string"}, "hostname": {"type": "string"}}}}}}}}},
                    "TestResult": {"type": "object", "required": ["ok", "transcript"], "properties": {
                        "ok": {"type": "boolean"}, "error": {"type": "string"},
                        "kind": {"type": "string", "enum": ["rejected", "config", "tls", "auth", "timeout", "network"]},
                        "detail": {"type": "string"}, "fix": {"type": "string"},
                        "reply": {"type": "string"}, "transcript": {"type": "array", "items": {"type": "string"}}}},
                    "Replies": {"type": "object", "required": ["replies"], "properties": {"replies": {"type": "array", "items": {
                        "type": "object", "required": ["id", "status", "from", "to", "received_at", "tls"], "properties": {
                            "id": {"type": "string"}, "status": {"type": "string"}, "from": {"type": "string"},
                            "to": {"type": "string"}, "message_id": {"type": ["string", "null"]},
                            "received_at": {"type": "string"}, "tls": {"type": "boolean"},
                            "attempts": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
                            "delivery_id": {"type": ["string", "null"]}}}},
                        "counts": {"type": "object", "description": "records by status (pending, processed, discarded, failed:<reason>)", "additionalProperties": {"type": "integer"}},
                        "store": {"type": "object", "description": "where message bodies are kept: segment files beside sled, and their bytes on disk", "properties": {"segment_files": {"type": "integer"}, "segment_bytes": {"type": "integer"}}}}},
                    "Notification": {"type": "object", "required": ["id", "status", "attempts"], "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["queued", "deferred", "sent", "failed"]},
                        "attempts": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
                        "sent_at": {"type": ["string", "null"]}}},
                    "Queue": {"type": "object", "required": ["notifications", "counts"], "properties": {
                        "notifications": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}}}},
                    "NewNotification": {"type": "object", "required": ["to", "user_id", "subject", "text", "thread", "reason"], "properties": {
                        "to": {"type": "string", "format": "email"}, "user_id": {"type": ["integer", "string"]},
                        "subject": {"type": "string"}, "text": {"type": "string"}, "html": {"type": "string"},
                        "thread": {"type": "object", "required": ["kind", "id"], "properties": {
                            "kind": {"type": "string", "enum": ["issue", "pull_request", "commit", "discussion"]},
                            "id": {"type": ["integer", "string"]}}},
                        "reason": {"type": "string"}}},
                    "Queued": {"type": "object", "required": ["id", "reply_to", "message_id"], "properties": {
                        "id": {"type": "string"}, "reply_to": {"type": "string"}, "message_id": {"type": "string"}}},
    });
    all["Settings"] = settings_schema();
    all
}

/// Every operation.
fn paths(basic: &Json, bearer: &Json, run_id: &Json) -> Json {
    let mut manage = json!({
    "/manage/v1/config/settings": {
        "get": {"summary": "The latest saved settings, secrets masked", "security": basic,
            "responses": {"200": ok("the settings", "Settings"), "401": error("no or wrong credentials")}},
        "put": {"summary": "Save some settings as pending (a configuration run applies them)", "security": basic,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"type": "object"}, "example": {"smtp": {"port": "587"}}}}},
            "responses": {"204": {"description": "saved as pending"}, "400": ok("nothing saved: what was wrong", "Errors"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/config/keys": {
        "get": {"summary": "Every key with its value (masked), and the applied one where a pending value differs", "security": basic,
            "responses": {"200": ok("the keys", "Keys"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/config/apply": {
        "get": {"summary": "A configuration run, in GHES's shape with its steps", "security": basic,
            "parameters": [run_id],
            "responses": {"200": ok("the run", "Run"), "404": error("no such run, or none yet"), "400": error("run_id is not a number"), "401": error("no or wrong credentials")}},
        "post": {"summary": "Start a configuration run of the saved settings", "security": basic,
            "responses": {"202": ok("started", "RunStarted"), "409": ok("another run is going on", "Busy"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/config/apply/events": {
        "get": {"summary": "A run's events, in GHES's shape", "security": basic,
            "parameters": [run_id],
            "responses": {"200": ok("the events", "Events"), "404": error("no such run, or none yet"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/email/test": {
        "post": {"summary": "Send the test email with the saved settings overlaid by `settings` (nothing saved)", "security": basic,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"type": "object", "required": ["to"], "properties": {"to": {"type": "string", "format": "email"}, "settings": {"type": "object"}}},
                "example": {"to": "admin@example.org"}}}},
            "responses": {"200": ok("the outcome and the conversation", "TestResult"), "400": ok("bad address or settings", "Errors"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/replies": {
        "get": {"summary": "Received replies, newest first", "security": basic,
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"}, "description": "pending, processed, discarded or failed:<reason>"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "example": 10},
            ],
            "responses": {"200": ok("the replies", "Replies"), "400": error("bad status or limit"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/queue": {
        "get": {"summary": "Outbound notifications, newest first, with counts by status", "security": basic,
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["queued", "deferred", "sent", "failed"]}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "example": 10},
            ],
            "responses": {"200": ok("the queue", "Queue"), "400": error("bad status or limit"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/queue/retry-all": {
        "post": {"summary": "Make every queued or deferred notification due now (Postfix's postqueue -f); recorded in the audit trail", "security": basic,
            "responses": {"200": {"description": "the ids made due", "content": {"application/json": {"schema": {"type": "object", "required": ["retried"], "properties": {"retried": {"type": "array", "items": {"type": "string"}}}}}}}, "401": error("no or wrong credentials"), "500": error("the queue could not be written")}},
    },
    "/manage/v1/queue/{id}/retry": {
        "post": {"summary": "Make a queued or deferred notification due now; recorded in the audit trail", "security": basic,
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "0"}],
            "responses": {"200": ok("its new state", "Notification"), "404": error("no such notification"), "409": error("sent or failed already, or an attempt is under way"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/queue/{id}/drop": {
        "post": {"summary": "Give up a queued or deferred notification: it becomes failed and its message is removed; recorded in the audit trail", "security": basic,
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "0"}],
            "responses": {"200": ok("its new state", "Notification"), "404": error("no such notification"), "409": error("sent or failed already, or an attempt is under way"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/reply-address": {
        "get": {"summary": "A valid reply address, to test the inbound path by hand", "security": basic,
            "parameters": [
                {"name": "kind", "in": "query", "required": true, "schema": {"type": "string", "enum": ["issue", "pull_request", "commit", "discussion"]}, "example": "issue"},
                {"name": "thread", "in": "query", "required": true, "schema": {"type": "integer"}, "example": 42},
                {"name": "user", "in": "query", "required": true, "schema": {"type": "integer"}, "example": 7},
            ],
            "responses": {"200": {"description": "the address", "content": {"application/json": {"schema": {"type": "object", "required": ["address"], "properties": {"address": {"type": "string"}}}}}}, "400": error("bad kind, thread or user"), "401": error("no or wrong credentials")}},
    },
    "/manage/v1/version": {
        "get": {"summary": "herald's version and uptime", "security": basic,
            "responses": {"200": {"description": "the version", "content": {"application/json": {"schema": {"type": "object", "required": ["version", "uptime_seconds"], "properties": {"version": {"type": "string"}, "uptime_seconds": {"type": "integer"}}}}}}, "401": error("no or wrong credentials")}},
    },
    "/manage/v1/support-bundle": {
        "get": {"summary": "The support bundle: a tar.gz of the logs, diagnostics.txt and settings.json, secrets masked", "security": basic,
            "responses": {"200": {"description": "the bundle", "content": {"application/gzip": {"schema": {"type": "string", "contentEncoding": "binary"}}}}, "401": error("no or wrong credentials"), "507": error("the data disk is full")}},
    },
    "/metrics": {
        "get": {"summary": "Metrics in the Prometheus text format (herald_ names after postfix_exporter's, base units, no address labels)", "security": basic,
            "responses": {"200": {"description": "the exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": error("no or wrong credentials")}},
    },
    "/setup/diagnostics": {
        "get": {"summary": "The diagnostics report, as plain text for a support ticket (in a browser session the console's page)", "security": basic,
            "responses": {"200": {"description": "the report", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": error("no or wrong credentials")}},
    },
    "/manage/v1/openapi.json": {
        "get": {"summary": "This document", "security": basic,
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"], "properties": {"openapi": {"type": "string"}, "paths": {"type": "object"}}}}}}, "401": error("no or wrong credentials")}},
    }});
    let app = json!({"/api/v1/notifications": {
            "post": {"summary": "Queue a notification email (on disk before the 202)", "security": bearer,
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NewNotification"},
                    "example": {"to": "user@example.org", "user_id": 7, "subject": "Re: [octo/app] Fix it (#42)", "text": "Hello", "thread": {"kind": "issue", "id": 42}, "reason": "mention"}}}},
                "responses": {"202": ok("queued", "Queued"), "400": ok("what was wrong with each field", "Errors"), "401": error("no or wrong token"), "503": error("email is off, or the store cannot take it now"), "507": error("the data disk is nearly full: retry later")}},
        },
        "/api/v1/notifications/{id}": {
            "get": {"summary": "A notification's state", "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "0"}],
                "responses": {"200": ok("its state", "Notification"), "404": error("no such notification"), "401": error("no or wrong token")}},
        },
    });
    for (k, v) in app.as_object().expect("an object") {
        manage[k] = v.clone();
    }
    manage
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_settings_key_is_described() {
        let doc = super::document();
        let s = &doc["components"]["schemas"]["Settings"]["properties"];
        for def in crate::settings::KEYS {
            let v = match def.key.split_once('.') {
                None => &s[def.key],
                Some((sec, name)) => &s[sec]["properties"][name],
            };
            assert!(v.is_object(), "{} is not described", def.key);
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
