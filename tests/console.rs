//! The console listener with real clients: openssl reads the certificate, curl verifies it
//! against the appliance name and speaks to the manage API.

use crate::harness::*;

#[test]
fn https_console_with_the_self_signed_certificate_and_basic_auth() {
    let dir = TempDir::new("console");
    let cfg = dir.write("herald.toml", &test_config(""));
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let cert = fetch_cert(&h, &dir);

    // The certificate names the host and the reply domain.
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert);
    let sans = stdout(&run_with_deadline(cmd));
    assert!(
        sans.contains("DNS:herald.test") && sans.contains("DNS:reply.herald.test"),
        "{sans}"
    );

    let password = h.initial_password();
    let auth = format!("api_key:{password}");
    let (code, body) = curl(&h, &cert, &[], "/manage/v1/config/settings");
    assert_eq!(code, 401, "{body}");
    let (code, _) = curl(
        &h,
        &cert,
        &["-u", "api_key:wrong"],
        "/manage/v1/config/settings",
    );
    assert_eq!(code, 401);

    let (code, body) = curl(&h, &cert, &["-u", &auth], "/manage/v1/config/settings");
    assert_eq!(code, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["hostname"], "herald.test");
    assert_eq!(j["smtp"]["port"], "587");

    // A GHES-style client updates the smtp object.
    let (code, body) = curl(
        &h,
        &cert,
        &[
            "-u",
            &auth,
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"smtp":{"enabled":true,"address":"smtp.example.com","port":"2525","authentication":"plain","user_name":"u","password":"pw-secret"}}"#,
        ],
        "/manage/v1/config/settings",
    );
    assert_eq!(code, 204, "{body}");
    let (_, body) = curl(&h, &cert, &["-u", &auth], "/manage/v1/config/settings");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["smtp"]["port"], "2525");
    assert_eq!(j["smtp"]["password"], "********");
    assert!(!body.contains("pw-secret"));

    let (code, body) = curl(
        &h,
        &cert,
        &[
            "-u",
            &auth,
            "-X",
            "PUT",
            "--data",
            r#"{"smtp":{"port":"0"}}"#,
        ],
        "/manage/v1/config/settings",
    );
    assert_eq!(code, 400);
    assert!(
        body.contains("smtp.port") && body.contains("1 to 65535"),
        "{body}"
    );

    // Secrets are never revealed over the network.
    let (code, body) = curl(
        &h,
        &cert,
        &["-u", &auth],
        "/manage/v1/config/secret?key=api.token",
    );
    assert_eq!(code, 403, "{body}");

    // The application API takes the bearer token, not the console password.
    let token = stdout(&h.cli(&["config", "get", "api.token", "--reveal"]))
        .trim()
        .to_string();
    let (code, _) = curl(&h, &cert, &["-u", &auth], "/api/v1/notifications/1");
    assert_eq!(code, 401);
    let (code, _) = curl(
        &h,
        &cert,
        &["-H", &format!("Authorization: Bearer {token}")],
        "/api/v1/nothing-here",
    );
    assert_eq!(code, 404);
    assert!(!h.log().contains(&password) && !h.log().contains("pw-secret"));
    h.stop();
}

/// The OpenAPI document is valid OpenAPI 3.1 (openapi-spec-validator) and every operation in it
/// answers as it says, with the examples it gives (tests/peers/openapi_check.py).
#[test]
fn the_openapi_document_is_valid_and_every_route_answers_as_documented() {
    let dir = TempDir::new("openapi");
    let cfg = dir.write(
        "herald.toml",
        &test_config(
            "\n[smtp]\nenabled = true\naddress = \"127.0.0.1\"\nport = 1\ntls = \"off\"\n",
        ),
    );
    let h = Herald::start(Some(&cfg), &dir.join("data"));
    let cacert = fetch_cert(&h, &dir);
    let doc = h.control_get("/manage/v1/openapi.json");
    let spec = dir.write("openapi.json", &doc.to_string());
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/openapi_check.py"
    ))
    .arg("--spec")
    .arg(&spec)
    .args([
        "--host",
        "herald.test",
        "--port",
        &h.console_port.to_string(),
    ])
    .arg("--cacert")
    .arg(&cacert)
    .args(["--basic", &format!("api_key:{}", h.initial_password())])
    .args(["--bearer", &h.secret("api.token")]);
    let o = run_with_deadline(cmd);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let calls = out.lines().count();
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(calls, documented, "every operation was called:\n{out}");
    h.stop();
}
