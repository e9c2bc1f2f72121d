//! The router without sockets: settings GET/PUT in GHES's shape, errors, masking, auth.

use super::*;
use crate::settings::{Profile, Settings, SettingsStore};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::time::Instant;

const PASSWORD: &str = "console-pass-123";
const TOKEN: &str = "api-token-0123456789abcdef";

fn app() -> Arc<App> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SettingsStore::open(&db).unwrap();
    let mut s = Settings::defaults(Profile::Dev);
    s.update(&[
        (
            "api.token".into(),
            crate::settings::Value::Str(TOKEN.into()),
        ),
        (
            "replies.webhook_secret".into(),
            crate::settings::Value::Str("whsec-0123456789abcdef".into()),
        ),
        (
            "console.password".into(),
            crate::settings::Value::Str(PASSWORD.into()),
        ),
    ])
    .unwrap();
    store.save_pending(s).unwrap();
    store.apply_pending().unwrap();
    let durable = crate::durable::Durable::open(&db, None).unwrap();
    let spool = crate::inbound::spool::Spool::open(&db, durable.clone()).unwrap();
    let queue = crate::outbound::queue::Queue::open(&db, durable.clone()).unwrap();
    let dir = std::env::temp_dir().join(format!("herald-console-tests-{}", std::process::id()));
    let maillog = crate::maillog::MailLog::open(
        &dir.join("mail.log"),
        "test.example",
        crate::logfile::Rotating::Configured,
    );
    let unicorn = crate::logfile::LogFile::open(
        &dir.join("unicorn.log"),
        crate::logfile::Rotating::Configured,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let (run_requests, requested) = smol::channel::bounded(4);
    // No service takes them here: the run stays requested.
    std::mem::forget(requested);
    Arc::new(App {
        runs: crate::supervisor::runs::Runs::open(&db).unwrap(),
        run_requests,
        disk: Arc::new(crate::disk::Disk::new(&dir)),
        data_dir: dir,
        queue,
        maillog: Arc::new(maillog),
        unicorn,
        durable,
        spool,
        reply_key: crate::replies::token::ReplyKey::from_bytes(b"test key"),
        db,
        settings: store,
        started: Instant::now(),
        auth: Default::default(),
        sessions: Default::default(),
        metrics: Default::default(),
        inbound_addr: Default::default(),
    })
}

fn req(origin: Origin, method: &str, path: &str, body: &str, auth: Option<&str>) -> Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: auth
            .map(|a| vec![("Authorization".into(), a.into())])
            .unwrap_or_default(),
        body: body.as_bytes().to_vec(),
        origin,
        peer: None,
    }
}

fn control(app: &App, method: &str, path: &str, body: &str) -> Response {
    handle(app, &req(Origin::Control, method, path, body, None))
}

fn json_of(r: &Response) -> Json {
    serde_json::from_slice(&r.body).unwrap()
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        crate::crypto::base64_encode(format!("{user}:{pw}").as_bytes())
    )
}

#[test]
fn get_settings_is_ghes_shaped_and_masked() {
    let app = app();
    let r = control(&app, "GET", "/manage/v1/config/settings", "");
    assert_eq!(r.status, 200);
    let j = json_of(&r);
    let smtp = &j["smtp"];
    for k in [
        "enabled",
        "address",
        "port",
        "domain",
        "authentication",
        "username",
        "user_name",
        "password",
        "enable_starttls_auto",
        "discard-to-noreply-address",
        "support_address",
        "support_address_type",
        "noreply_address",
        "tls",
        "tls_verify",
        "ca_file",
    ] {
        assert!(smtp.get(k).is_some(), "smtp.{k} missing: {smtp}");
    }
    assert_eq!(
        smtp["port"],
        json!("587"),
        "GHES sends the port as a string"
    );
    assert_eq!(smtp["enable_starttls_auto"], json!(true));
    assert_eq!(j["api"]["token"], json!("********"));
    assert_eq!(j["console"]["password"], json!("********"));
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains(TOKEN) && !body.contains("whsec-") && !body.contains("pbkdf2"),
        "{body}"
    );
}

#[test]
fn put_ghes_object_saves_pending() {
    let app = app();
    let body = json!({"smtp": {
        "enabled": true, "address": "smtp.example.com", "port": "2525", "authentication": "login",
        "user_name": "mailer", "password": "pw", "enable_starttls_auto": false,
        "discard-to-noreply-address": false, "support_address": "https://help.example.com",
        "support_address_type": "url", "noreply_address": "noreply@example.com"
    }});
    let r = control(&app, "PUT", "/manage/v1/config/settings", &body.to_string());
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let pending = app.settings.pending().unwrap().unwrap().settings;
    assert_eq!(pending.smtp.port, 2525);
    assert_eq!(pending.smtp.username, "mailer");
    assert_eq!(pending.smtp.password, "pw");
    assert_eq!(pending.smtp.tls, crate::settings::TlsMode::Off);
    assert!(!pending.smtp.discard_to_noreply);
    let applied = app.settings.applied().unwrap().unwrap().settings;
    assert_eq!(applied.smtp.port, 587, "pending until applied");

    // GET shows the latest saved; a round trip of it changes nothing (mask keeps the password).
    let got = control(&app, "GET", "/manage/v1/config/settings", "");
    let r = control(
        &app,
        "PUT",
        "/manage/v1/config/settings",
        &String::from_utf8_lossy(&got.body),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(app.settings.pending().unwrap().unwrap().settings, pending);

    let keys = json_of(&control(&app, "GET", "/manage/v1/config/keys", ""));
    let port = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "smtp.port")
        .unwrap();
    assert_eq!(
        (
            port["value"].clone(),
            port["applied"].clone(),
            port["pending"].clone()
        ),
        (json!(2525), json!(587), json!(true))
    );
    let pw = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "smtp.password")
        .unwrap();
    assert_eq!(pw["value"], json!("********"));
    assert_eq!(pw["applied"], json!(""));
}

#[test]
fn put_alias_conflict_takes_the_changed_one() {
    let app = app();
    // A GHES client changed discard-to-noreply-address but sent herald's name back unchanged.
    let body = json!({"smtp": {"discard-to-noreply-address": false, "discard_to_noreply": true}});
    assert_eq!(
        control(&app, "PUT", "/manage/v1/config/settings", &body.to_string()).status,
        204
    );
    assert!(
        !app.settings
            .pending()
            .unwrap()
            .unwrap()
            .settings
            .smtp
            .discard_to_noreply
    );
}

#[test]
fn put_dotted_keys_and_errors() {
    let app = app();
    let r = control(
        &app,
        "PUT",
        "/manage/v1/config/settings",
        r#"{"smtp.port": 465, "smtp.tls": "implicit"}"#,
    );
    assert_eq!(r.status, 204);
    let before = app.settings.pending().unwrap();

    let r = control(
        &app,
        "PUT",
        "/manage/v1/config/settings",
        r#"{"smtp": {"port": "99999", "bogus": 1}, "smtp.support_address": "support.example.com", "ldap": {"x": 1}}"#,
    );
    assert_eq!(r.status, 400);
    let e = json_of(&r);
    assert!(
        e["errors"]["smtp.port"]
            .as_str()
            .unwrap()
            .contains("1 to 65535"),
        "{e}"
    );
    assert_eq!(e["errors"]["smtp.bogus"], json!("unknown setting"));
    assert_eq!(e["errors"]["ldap.x"], json!("unknown setting"));
    assert_eq!(app.settings.pending().unwrap(), before, "nothing saved");

    let r = control(
        &app,
        "PUT",
        "/manage/v1/config/settings",
        r#"{"smtp.support_address": "support.example.com"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        json_of(&r)["errors"]["smtp.support_address"]
            .as_str()
            .unwrap()
            .contains("http://")
    );
    let r = control(
        &app,
        "PUT",
        "/manage/v1/config/settings",
        r#"{"smtp.address": "x\r\nRCPT TO:<a@b>"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        json_of(&r)["errors"]["smtp.address"]
            .as_str()
            .unwrap()
            .contains("CR, LF")
    );
    let r = control(&app, "PUT", "/manage/v1/config/settings", "not json");
    assert_eq!(r.status, 400);
    assert!(
        json_of(&r)["errors"]["body"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(app.settings.pending().unwrap(), before, "nothing saved");
}

#[test]
fn methods_and_paths() {
    let app = app();
    let r = control(&app, "DELETE", "/manage/v1/config/settings", "");
    assert_eq!(r.status, 405);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "Allow" && v == "GET, PUT")
    );
    assert_eq!(control(&app, "GET", "/manage/v1/nope", "").status, 404);
    assert_eq!(control(&app, "GET", "/elsewhere", "").status, 404);
    let v = json_of(&control(&app, "GET", "/manage/v1/version", ""));
    assert_eq!(v["version"], json!(crate::VERSION));
}

#[test]
fn console_listener_requires_credentials() {
    let app = app();
    // Each from an address of its own (one address that keeps failing waits: see below).
    let n = std::cell::Cell::new(0u8);
    let get = |auth: Option<&str>| {
        n.set(n.get() + 1);
        let mut r = req(
            Origin::Console,
            "GET",
            "/manage/v1/config/settings",
            "",
            auth,
        );
        r.peer = Some(format!("192.0.2.{}:4000", n.get()).parse().unwrap());
        handle(&app, &r).status
    };
    assert_eq!(get(None), 401);
    assert_eq!(get(Some(&basic("api_key", "wrong-password"))), 401);
    assert_eq!(get(Some(&basic("admin", PASSWORD))), 401);
    assert_eq!(get(Some("Basic !!!")), 401);
    assert_eq!(
        get(Some(&format!("Bearer {TOKEN}"))),
        401,
        "the API token is not a console login"
    );
    assert_eq!(get(Some(&basic("api_key", PASSWORD))), 200);
    assert_eq!(get(Some(&basic("api_key", PASSWORD))), 200, "cached path");
    // One address failing again and again waits before its next try: 429 with Retry-After.
    let from = |auth: &str| {
        let mut r = req(
            Origin::Console,
            "GET",
            "/manage/v1/config/settings",
            "",
            Some(auth),
        );
        r.peer = Some("198.51.100.4:5000".parse().unwrap());
        handle(&app, &r)
    };
    for _ in 0..crate::console::auth::FREE_FAILURES {
        assert_eq!(from(&basic("api_key", "guess")).status, 401);
    }
    let r = from(&basic("api_key", "guess"));
    assert_eq!(r.status, 429);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "Retry-After" && v == "1"),
        "{r:?}"
    );
    let r = handle(
        &app,
        &req(
            Origin::Console,
            "GET",
            "/manage/v1/config/settings",
            "",
            None,
        ),
    );
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "WWW-Authenticate" && v.starts_with("Basic"))
    );

    let api = |auth: Option<&str>| {
        handle(&app, &req(Origin::Console, "GET", "/api/v1/x", "", auth)).status
    };
    assert_eq!(api(None), 401);
    assert_eq!(api(Some("Bearer nope")), 401);
    assert_eq!(
        api(Some(&basic("api_key", PASSWORD))),
        401,
        "the console password is not the API token"
    );
    assert_eq!(
        api(Some(&format!("Bearer {TOKEN}"))),
        404,
        "authenticated; no such endpoint yet"
    );
}

#[test]
fn the_stylesheet_is_served_without_login() {
    let app = app();
    let mut get = req(Origin::Console, "GET", "/static/herald.css", "", None);
    get.headers.push(("Host".into(), "127.0.0.1:8443".into()));
    let r = handle(&app, &get);
    assert_eq!(r.status, 200);
    for (k, v) in [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ] {
        assert!(r.headers.iter().any(|(h, x)| h == k && x == v), "{k}");
    }
    assert!(r.headers.iter().any(|(h, x)| h == "Content-Security-Policy"
        && x.starts_with("default-src 'self'")
        && x.contains("frame-ancestors 'none'")));
    // A name this console is not: refused (DNS rebinding), whatever the page.
    let mut evil = get.clone();
    evil.headers = vec![("Host".into(), "evil.example:8443".into())];
    assert_eq!(handle(&app, &evil).status, 421);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v.starts_with("text/css"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("--accent"));
}
