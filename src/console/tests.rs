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

/// A notification queued straight into the store, due in an hour.
fn queued(app: &App, to: &str) -> String {
    let id = app.queue.new_id();
    let rec = crate::outbound::queue::Record {
        id: format!("{id:X}"),
        status: crate::outbound::queue::Status::Deferred,
        to: to.into(),
        user_id: 7,
        thread: crate::outbound::queue::Thread {
            kind: "issue".into(),
            id: 42,
        },
        reason: "mention".into(),
        subject: "Re: <b>bold</b> (#42)".into(),
        message_id: "m@example.test".into(),
        reply_to: "r@reply.example.test".into(),
        size: 1,
        attempts: 1,
        last_error: Some("connection refused".into()),
        created_at: "2026-12-01T00:00:00Z".into(),
        created_ms: crate::clock::now_ms(),
        due_ms: crate::clock::now_ms() + 3_600_000,
        sent_at: None,
        relay: None,
        smtp_reply: None,
    };
    app.queue
        .enqueue(id, &rec, b"Subject: x\r\n\r\nx\r\n")
        .unwrap();
    rec.id
}

#[test]
fn the_manage_api_retries_and_drops_and_says_why_it_would_not() {
    let app = app();
    let id = queued(&app, "a@example.org");
    let r = control(&app, "POST", &format!("/manage/v1/queue/{id}/retry"), "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_of(&r)["status"], "deferred");
    let r = control(&app, "GET", &format!("/manage/v1/queue/{id}/retry"), "");
    assert_eq!(r.status, 405);
    let r = control(&app, "POST", &format!("/manage/v1/queue/{id}/drop"), "");
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["status"], "failed");
    assert_eq!(
        json_of(&r)["last_error"],
        "dropped by an operator: control socket (CLI)"
    );
    let r = control(&app, "POST", &format!("/manage/v1/queue/{id}/drop"), "");
    assert_eq!(r.status, 409);
    let e = json_of(&r)["message"].as_str().unwrap().to_string();
    assert!(e.contains("failed already") && e.contains(&id), "{e}");
    assert_eq!(
        control(&app, "POST", "/manage/v1/queue/ZZ/retry", "").status,
        404
    );
    assert_eq!(
        control(&app, "POST", &format!("/manage/v1/queue/{id}/bounce"), "").status,
        404
    );
    let other = queued(&app, "b@example.org");
    let r = control(&app, "POST", "/manage/v1/queue/retry-all", "");
    assert_eq!(json_of(&r)["retried"], json!([other]));
    // Each action is in the audit trail, with who asked; and in mail.log as postsuper says it.
    let audit: Vec<String> = crate::audit::list(&app.db, 10)
        .into_iter()
        .map(|e| format!("{}: {}", e.who, e.what))
        .collect();
    assert!(
        audit.contains(&format!(
            "control socket (CLI): dropped notification {id} to a@example.org"
        )),
        "{audit:?}"
    );
    assert!(
        audit.contains(&format!(
            "control socket (CLI): retried notification {other} to b@example.org"
        )),
        "{audit:?}"
    );
    let log = std::fs::read_to_string(app.data_dir.join("mail.log")).unwrap();
    assert!(log.contains("postsuper["), "{log}");
    assert!(log.contains(&format!("{id}: removed")), "{log}");
    assert!(log.contains(&format!("{other}: requeued")), "{log}");
}

/// The console's Queue: an action is a form post with the session's token, answered with a
/// redirect to a page whose notice says what was done; a drop asks first.
#[test]
fn the_queue_page_retries_and_drops_behind_a_confirmation() {
    let app = app();
    let id = queued(&app, "c@example.org");
    let hash = app
        .settings
        .applied()
        .unwrap()
        .unwrap()
        .settings
        .console
        .password_hash;
    let (session, _) = app.sessions.create(&hash);
    let csrf = app.sessions.get(&session, &hash).unwrap().csrf;
    let page = |method: &str, path: &str, body: &str| {
        let mut r = req(Origin::Console, method, path, body, None);
        r.headers.push(("Host".into(), "127.0.0.1:8443".into()));
        r.headers.push((
            "Cookie".into(),
            format!("{}={session}", super::session::COOKIE),
        ));
        r.headers
            .push(("Sec-Fetch-Site".into(), "same-origin".into()));
        r.peer = Some("192.0.2.9:5555".parse().unwrap());
        handle(&app, &r)
    };
    let body = |r: &Response| String::from_utf8_lossy(&r.body).to_string();
    let location = |r: &Response| {
        r.headers
            .iter()
            .find(|(k, _)| k == "Location")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let list = page("GET", "/setup/queue", "");
    assert_eq!(list.status, 200);
    let html = body(&list);
    assert!(html.contains(&format!("/setup/queue/{id}/retry")), "{html}");
    assert!(html.contains(&format!("/setup/queue/{id}/drop")), "{html}");
    assert!(html.contains("Re: &lt;b&gt;bold&lt;/b&gt;"), "escaped");
    // Without the form's token: refused, nothing done.
    let r = page(
        "POST",
        &format!("/setup/queue/{id}/retry"),
        "back=/setup/queue",
    );
    assert_eq!(r.status, 403);
    // Retry from the list: back to the list, which says so.
    let r = page(
        "POST",
        &format!("/setup/queue/{id}/retry"),
        &format!("_csrf={csrf}&back=%2Fsetup%2Fqueue%3Fstatus%3Ddeferred"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        location(&r),
        format!("/setup/queue?status=deferred&done=retried&id={id}")
    );
    let html = body(&page("GET", &location(&r), ""));
    assert!(html.contains("Retried"), "{html}");
    // Drop: the link asks first, and says what the application will see.
    let confirm = body(&page("GET", &format!("/setup/queue/{id}/drop"), ""));
    assert!(confirm.contains("cannot be undone"), "{confirm}");
    assert!(confirm.contains("c@example.org"), "{confirm}");
    let r = page(
        "POST",
        &format!("/setup/queue/{id}/drop"),
        &format!("_csrf={csrf}"),
    );
    assert_eq!(location(&r), format!("/setup/queue/{id}?done=dropped"));
    let html = body(&page("GET", &location(&r), ""));
    assert!(html.contains("Dropped"), "{html}");
    assert!(
        html.contains("dropped by an operator: console from 192.0.2.9"),
        "{html}"
    );
    assert!(
        !html.contains(&format!("/setup/queue/{id}/retry")),
        "finished: no actions"
    );
    // Again: not done, and the page says why and what to do.
    let r = page(
        "POST",
        &format!("/setup/queue/{id}/drop"),
        &format!("_csrf={csrf}"),
    );
    assert_eq!(r.status, 409);
    assert!(body(&r).contains("already sent or failed"), "{}", body(&r));
    assert_eq!(page("GET", "/setup/queue/nope", "").status, 404);
    // Retry all: how many, on the list.
    queued(&app, "d@example.org");
    let r = page("POST", "/setup/queue/retry-all", &format!("_csrf={csrf}"));
    assert_eq!(location(&r), "/setup/queue?done=flushed&n=1");
    assert!(body(&page("GET", &location(&r), "")).contains("1 waiting notifications are due now"));
    let audit = crate::audit::list(&app.db, 10);
    assert!(
        audit.iter().any(
            |e| e.who == "console from 192.0.2.9" && e.what.starts_with("dropped notification")
        ),
        "{audit:?}"
    );
}
