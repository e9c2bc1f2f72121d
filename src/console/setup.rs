//! The console's pages over HTTP (`/`, `/setup/*`, `/static/*`): the guards every page
//! passes (a known `Host`; for a form, `Sec-Fetch-Site` judged before `Origin`, then the form's
//! token), the session, the language, and the handlers that turn requests into the data
//! [`super::pages`] renders. Every answer carries a strict CSP, `nosniff`, `no-referrer` and
//! `no-store`.

use super::pages::{self, Ctx, Lang};
use super::session::{self, LANG_COOKIE, LOGIN_COOKIE};
use super::{Request, Response};
use crate::app::App;
use crate::settings::{Settings, Value};

/// The console's one stylesheet and few lines of script, built into the binary.
const STYLESHEET: &str = include_str!("../../static/herald.css");
const SCRIPT: &str = include_str!("../../static/herald.js");

/// Every page forbids what it does not need: no other origin, no inline script or style, no
/// framing, forms only to itself.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The settings the Email settings form carries, in its order.
pub const FORM_KEYS: &[&str] = &[
    "smtp.enabled",
    "smtp.address",
    "smtp.port",
    "smtp.domain",
    "smtp.authentication",
    "smtp.username",
    "smtp.password",
    "smtp.noreply_address",
    "smtp.discard_to_noreply",
    "smtp.support_type",
    "smtp.support_address",
    "inbound.tls_enforced",
    "smtp.tls",
    "smtp.tls_verify",
    "smtp.ca_file",
    "inbound.listen",
    "replies.webhook_url",
    "replies.ca_file",
];

fn secure(mut r: Response) -> Response {
    for (k, v) in [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-store"),
    ] {
        if !r.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
            r.headers.push((k.into(), v.into()));
        }
    }
    r
}

pub(super) fn html(status: u16, markup: maud::Markup) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body: markup.into_string().into_bytes(),
        download: None,
    }
}

pub(super) fn redirect(to: &str) -> Response {
    Response::empty(303).with_header("Location", to)
}

/// The request's language: the switch's cookie, else `Accept-Language`.
fn lang_of(req: &Request) -> Lang {
    session::cookie_value(req.header("Cookie"), LANG_COOKIE)
        .and_then(Lang::from_code)
        .unwrap_or_else(|| Lang::from_accept_language(req.header("Accept-Language").unwrap_or("")))
}

/// Whether `Host` names this console: its host name, `localhost`, or an IP address. Anything
/// else (a name an attacker's DNS points here, DNS rebinding) is refused.
fn known_host(req: &Request, hostname: &str) -> bool {
    let Some(host) = req.header("Host") else {
        // HTTP/1.0 without Host, or the control socket's clients: nothing to check.
        return req.origin == super::Origin::Control;
    };
    let name = if let Some(v6) = host.strip_prefix('[') {
        return v6
            .split(']')
            .next()
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    let name = name.trim_end_matches('.');
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || (!hostname.is_empty() && name.eq_ignore_ascii_case(hostname))
}

/// Whether a form post comes from this console's own pages: `Sec-Fetch-Site` first (a browser
/// that sends it says so exactly; under `Referrer-Policy: no-referrer` Chromium's same-origin
/// posts carry `Origin: null`), else `Origin` against `Host`, else (a client that sends
/// neither, like curl) the form's token decides alone.
fn same_site(req: &Request) -> bool {
    if let Some(site) = req.header("Sec-Fetch-Site") {
        return site.eq_ignore_ascii_case("same-origin");
    }
    match req.header("Origin") {
        None => true,
        Some("null") => false,
        Some(origin) => {
            let host = req.header("Host").unwrap_or("");
            origin
                .strip_prefix("https://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        }
    }
}

/// A `next`/`back` target: only a path of this console.
pub(super) fn local_path(p: &str) -> &str {
    let ok = (p.starts_with("/setup/") || p == "/")
        && !p.starts_with("//")
        && !p.contains(['\\', '\r', '\n'])
        && p.len() < 200;
    if ok { p } else { "/setup/settings" }
}

pub fn route(app: &App, req: &Request) -> Response {
    secure(route_inner(app, req))
}

fn route_inner(app: &App, req: &Request) -> Response {
    let lang = lang_of(req);
    let applied = match app.settings.applied() {
        Ok(Some(s)) => s.settings,
        _ => return Response::error(503, "settings are not readable"),
    };
    let path = req.path.as_str();
    let bare = Ctx {
        lang,
        csrf: None,
        path,
    };
    if !known_host(req, &applied.hostname) {
        return html(421, pages::error(&bare, bare.t("error.host")));
    }
    match (req.method.as_str(), path) {
        ("GET" | "HEAD", "/static/herald.css") => {
            return Response {
                status: 200,
                headers: vec![("Content-Type".into(), "text/css; charset=utf-8".into())],
                body: STYLESHEET.as_bytes().to_vec(),
                download: None,
            };
        }
        ("GET" | "HEAD", "/static/herald.js") => {
            return Response {
                status: 200,
                headers: vec![(
                    "Content-Type".into(),
                    "text/javascript; charset=utf-8".into(),
                )],
                body: SCRIPT.as_bytes().to_vec(),
                download: None,
            };
        }
        ("GET", "/setup/lang") => {
            let to = req
                .query_param("to")
                .and_then(Lang::from_code)
                .unwrap_or(Lang::En);
            let back = local_path(req.query_param("back").unwrap_or("/setup/settings"));
            return redirect(back).with_header(
                "Set-Cookie",
                &session::cookie(
                    LANG_COOKIE,
                    to.code(),
                    Some(std::time::Duration::from_secs(365 * 86_400)),
                ),
            );
        }
        ("GET", "/setup/login") => {
            let next = req.query_param("next").unwrap_or("/setup/settings");
            return login_page(app, &bare, None, next, 200);
        }
        ("POST", "/setup/login") => return login(app, req, &bare, &applied),
        _ => {}
    }
    // Everything else needs a session.
    let cookie = session::cookie_value(req.header("Cookie"), session::COOKIE);
    let live = cookie.and_then(|id| app.sessions.get(id, &applied.console.password_hash));
    let Some(live) = live else {
        if req.method == "GET" && (path == "/" || path.starts_with("/setup")) {
            let next = if path == "/" || path == "/setup" || path == "/setup/" {
                "/setup/settings"
            } else {
                path
            };
            if cookie.is_some() {
                return login_page(app, &bare, Some("login.expired"), next, 200);
            }
            return redirect(&format!("/setup/login?next={next}"));
        }
        if req.method == "POST" {
            return login_page(app, &bare, Some("login.expired"), "/setup/settings", 401);
        }
        return html(404, pages::error(&bare, bare.t("error.notfound")));
    };
    let ctx = Ctx {
        lang,
        csrf: Some(&live.csrf),
        path,
    };
    if req.method == "POST" {
        let form = session::form(&req.body);
        let token = session::last(&form, "_csrf").unwrap_or("");
        if !same_site(req) || !session::same_token(token, &live.csrf) {
            log::warn!(
                "console: refused a form post to {path} from {}: {}",
                req.peer.map_or("?".into(), |p| p.ip().to_string()),
                if same_site(req) {
                    "wrong form token"
                } else {
                    "another site"
                }
            );
            return html(403, pages::error(&ctx, ctx.t("error.forbidden")));
        }
        return match path {
            "/setup/logout" => {
                if let Some(id) = cookie {
                    app.sessions.end(id);
                }
                redirect("/setup/login")
                    .with_header("Set-Cookie", &session::cookie(session::COOKIE, "", None))
            }
            "/setup/settings" => {
                super::setup_settings::post(app, req, &ctx, &form, cookie.unwrap_or(""))
            }
            "/setup/reply-lab" => {
                let raw = session::last(&form, "raw").unwrap_or("");
                let to = session::last(&form, "to").unwrap_or("");
                let lab =
                    crate::replies::lab::examine(&applied, &app.reply_key, raw.as_bytes(), to, "");
                html(
                    200,
                    pages::lab::render(&ctx, &pages::lab::Form { raw, to }, Some(&lab)),
                )
            }
            _ => super::setup_queue::post(app, req, &ctx, &form, path)
                .unwrap_or_else(|| html(404, pages::error(&ctx, ctx.t("error.notfound")))),
        };
    }
    if let Some(answer) = super::setup_queue::get(app, req, &ctx, path) {
        return answer;
    }
    match path {
        "/" | "/setup" | "/setup/" => redirect("/setup/settings"),
        "/setup/settings" => super::setup_settings::get(app, &ctx),
        "/setup/diagnostics" if req.query_param("format") == Some("text") => {
            super::diagnostics_text(app)
        }
        "/setup/support-bundle" => super::manage::support_bundle(app),
        "/setup/replies" => {
            let status = req.query_param("status").unwrap_or("");
            let failed: Vec<String> = app
                .spool
                .counts()
                .unwrap_or_default()
                .into_iter()
                .map(|(s, _)| s)
                .filter(|s| s.starts_with("failed:"))
                .collect();
            let wanted = (!status.is_empty()).then_some(status);
            match app.spool.replies(wanted, 200) {
                Ok(list) => {
                    let refused = crate::maillog::recent_refusals(
                        &app.path(crate::app::paths::MAIL_LOG),
                        100,
                    );
                    html(
                        200,
                        pages::operate::replies(&ctx, status, &list, &failed, &refused),
                    )
                }
                Err(e) => Response::error(500, &e),
            }
        }
        "/setup/audit" => {
            let mut rows: Vec<pages::operate::AuditRow> = crate::audit::list(&app.db, 500)
                .into_iter()
                .map(|e| pages::operate::AuditRow {
                    at: e.at,
                    who: e.who,
                    what: e.what,
                })
                .collect();
            for r in app.runs.list(200).unwrap_or_default() {
                let who = match &r.client {
                    Some(c) => format!("{} from {c}", r.trigger),
                    None => r.trigger.clone(),
                };
                let changed = if r.changed.is_empty() {
                    "nothing changed".to_string()
                } else {
                    r.changed.join(", ")
                };
                rows.push(pages::operate::AuditRow {
                    at: r.started_at.clone(),
                    who,
                    what: format!(
                        "configuration run #{}: {} ({changed})",
                        r.id,
                        r.status.name()
                    ),
                });
            }
            // Newest first; a run started in the same millisecond as the save it follows goes
            // above it.
            rows.sort_by(|a, b| {
                b.at.cmp(&a.at).then_with(|| {
                    let run =
                        |r: &pages::operate::AuditRow| r.what.starts_with("configuration run");
                    run(b).cmp(&run(a))
                })
            });
            html(200, pages::operate::audit(&ctx, &rows))
        }
        "/setup/reply-lab" => html(
            200,
            pages::lab::render(&ctx, &pages::lab::Form { raw: "", to: "" }, None),
        ),
        "/setup/diagnostics" => html(
            200,
            pages::diagnostics::render(&ctx, &crate::diagnostics::gather(app)),
        ),
        "/setup/runs" => match app.runs.list(100) {
            Ok(runs) => html(200, pages::runs::list(&ctx, &runs)),
            Err(e) => Response::error(500, &e),
        },
        _ if path.starts_with("/setup/replies/") => {
            reply_page(app, &ctx, &path["/setup/replies/".len()..])
        }
        _ => match path
            .strip_prefix("/setup/runs/")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(id) => match app.runs.get(id) {
                Ok(Some(run)) => html(200, pages::runs::run(&ctx, &run)),
                Ok(None) => html(404, pages::error(&ctx, ctx.t("error.notfound"))),
                Err(e) => Response::error(500, &e),
            },
            None => html(404, pages::error(&ctx, ctx.t("error.notfound"))),
        },
    }
}

/// One reply: its record, the text taken from its message, the raw message's beginning.
fn reply_page(app: &App, ctx: &Ctx, id: &str) -> Response {
    let parsed = id.split_once('-').and_then(|(q, n)| {
        Some((
            crate::inbound::spool::QueueId(u64::from_str_radix(q, 16).ok()?),
            n.parse::<u16>().ok()?,
        ))
    });
    let Some((qid, n)) = parsed else {
        return html(404, pages::error(ctx, ctx.t("error.notfound")));
    };
    match app.spool.record(qid, n) {
        Ok(Some(rec)) => {
            let raw = app.spool.data(qid).ok().flatten();
            let text = raw.as_deref().map(|r| {
                crate::replies::extract::parse(r, &rec.from)
                    .map(|p| p.text)
                    .unwrap_or_default()
            });
            html(
                200,
                pages::operate::reply(ctx, &rec, raw.as_deref(), text.as_deref()),
            )
        }
        Ok(None) => html(404, pages::error(ctx, ctx.t("error.notfound"))),
        Err(e) => Response::error(500, &e),
    }
}

/// The sign-in page with a fresh form token in its cookie.
fn login_page(_app: &App, ctx: &Ctx, problem: Option<&str>, next: &str, status: u16) -> Response {
    let token = crate::crypto::hex(&crate::crypto::random_bytes(16));
    let markup = pages::login::render(
        ctx,
        &pages::login::Login {
            token: &token,
            problem,
            next: local_path(next),
        },
    );
    html(status, markup).with_header(
        "Set-Cookie",
        &session::cookie(
            LOGIN_COOKIE,
            &token,
            Some(std::time::Duration::from_secs(3600)),
        ),
    )
}

fn login(app: &App, req: &Request, ctx: &Ctx, applied: &Settings) -> Response {
    let form = session::form(&req.body);
    let next = local_path(session::last(&form, "next").unwrap_or("/setup/settings")).to_string();
    let token = session::last(&form, "_login").unwrap_or("");
    let cookie = session::cookie_value(req.header("Cookie"), LOGIN_COOKIE).unwrap_or("");
    if !same_site(req) || !session::same_token(token, cookie) {
        return login_page(app, ctx, Some("login.stale"), &next, 403);
    }
    let password = session::last(&form, "password").unwrap_or("");
    let client = req
        .peer
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| {
            p.ip()
        });
    let hash = &applied.console.password_hash;
    match app.auth.check(client, true, password, hash) {
        Ok(()) => {
            let (id, _) = app.sessions.create(hash);
            log::info!("console: signed in from {client}");
            app.unicorn.append(
                format!(
                    "[{}] console: signed in from {client}\n",
                    crate::clock::rfc3339(std::time::SystemTime::now())
                )
                .as_bytes(),
            );
            redirect(&next)
                .with_header("Set-Cookie", &session::cookie(session::COOKIE, &id, None))
                .with_header("Set-Cookie", &session::cookie(LOGIN_COOKIE, "", None))
        }
        Err(super::auth::Denied::Wrong) => {
            log::warn!(
                "console: a wrong password from {client} ({} failures)",
                app.auth.failures(client)
            );
            login_page(app, ctx, Some("login.wrong"), &next, 401)
        }
        Err(super::auth::Denied::Throttled(wait)) => {
            log::warn!("console: throttled a sign-in from {client}");
            login_page(app, ctx, Some("login.throttled"), &next, 429)
                .with_header("Retry-After", &wait.as_secs().max(1).to_string())
        }
    }
}

/// The form's values as changes to `latest`: only keys whose value differs (an empty password
/// field keeps the saved one).
pub fn changes(form: &[(String, String)], latest: &Settings) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for key in FORM_KEYS {
        let Some(v) = session::last(form, key) else {
            continue;
        };
        if *key == "smtp.password" && v.is_empty() {
            continue;
        }
        let now = match latest.get(key) {
            Some(Value::Str(s)) => s,
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            None => String::new(),
        };
        if now != v {
            out.push((key.to_string(), Value::Str(v.to_string())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            path: "/setup/settings".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            origin: super::super::Origin::Console,
            peer: None,
        }
    }

    #[test]
    fn only_known_hosts_are_served() {
        for (host, ok) in [
            ("ghe.example.com", true),
            ("GHE.example.com:8443", true),
            ("ghe.example.com.", true),
            ("10.0.0.68", true),
            ("10.0.0.68:8443", true),
            ("[::1]:8443", true),
            ("localhost:8443", true),
            ("evil.example", false),
            ("ghe.example.com.evil.example", false),
            ("[nonsense]", false),
        ] {
            assert_eq!(
                known_host(&req(&[("Host", host)]), "ghe.example.com"),
                ok,
                "{host}"
            );
        }
        assert!(
            !known_host(&req(&[]), "ghe.example.com"),
            "no Host on the console"
        );
    }

    #[test]
    fn sec_fetch_site_is_judged_before_origin() {
        assert!(same_site(&req(&[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "null")
        ])));
        assert!(!same_site(&req(&[("Sec-Fetch-Site", "cross-site")])));
        assert!(!same_site(&req(&[("Sec-Fetch-Site", "same-site")])));
        assert!(same_site(&req(&[
            ("Origin", "https://h:8443"),
            ("Host", "h:8443")
        ])));
        assert!(!same_site(&req(&[
            ("Origin", "https://evil"),
            ("Host", "h:8443")
        ])));
        assert!(!same_site(&req(&[("Origin", "null")])));
        assert!(same_site(&req(&[])), "neither: the token decides");
    }

    #[test]
    fn redirect_targets_stay_on_the_console() {
        assert_eq!(local_path("/setup/runs/3"), "/setup/runs/3");
        for bad in [
            "https://evil",
            "//evil/setup/",
            "/setup/\r\nX: y",
            "/etc",
            "javascript:x",
        ] {
            assert_eq!(local_path(bad), "/setup/settings", "{bad}");
        }
    }
}
