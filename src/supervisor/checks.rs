//! What a configuration run checks once it has put settings in force, each as a client would
//! see it: the port-25 listener greets with herald's banner and its STARTTLS handshake shows the
//! configured certificate; the console's TLS handshake shows it too; the smarthost answers and
//! takes the credentials (nothing is sent); the webhook's server can be reached. Each answers
//! with what it saw, in words for the run's page, or why it failed.

use crate::outbound::session::{Session, Target};
use crate::settings::Settings;
use crate::smtp::replies::{ReplyParser, ServerReply};
use futures_rustls::TlsConnector;
use rustls::pki_types::{CertificateDer, ServerName};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// No single wait of a check is longer than this: a run should take well under a second.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

async fn timed<T>(what: &str, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    f.or(async {
        smol::Timer::after(CHECK_TIMEOUT).await;
        Err(format!(
            "{what} did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        ))
    })
    .await
}

/// Where to connect to reach a listener bound to `addr` from this machine.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The leaf certificate herald presents with `s`.
pub fn expected_leaf(db: &sled::Db, s: &Settings) -> Result<CertificateDer<'static>, String> {
    let (certs, _) = crate::net::tls::load_identity(db, s)?;
    certs
        .into_iter()
        .next()
        .ok_or_else(|| "no certificate is configured".into())
}

/// One reply from an SMTP server over `conn`.
async fn reply<S: AsyncReadExt + Unpin>(
    conn: &mut S,
    parser: &mut ReplyParser,
) -> Result<ServerReply, String> {
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection was closed".into());
        }
        let mut got = parser.feed(&buf[..n], |_| ()).map_err(|e| e.to_string())?;
        if !got.is_empty() {
            return Ok(got.remove(0));
        }
    }
}

async fn command<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    conn: &mut S,
    parser: &mut ReplyParser,
    line: &str,
    want: u16,
) -> Result<ServerReply, String> {
    conn.write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let r = reply(conn, parser).await?;
    if r.code != want {
        return Err(format!("{line} was answered {}", r.one_line()));
    }
    Ok(r)
}

/// What [`inbound`]'s errors say when something answers that is not this herald: another MTA's
/// banner, or another certificate (another herald, or a proxy in front).
pub const NOT_HERALD: &str = "not herald's banner";
pub const OTHER_CERTIFICATE: &str = "showed another certificate than the one configured";

/// The port-25 listener at `addr`: herald's banner for `hostname`, then STARTTLS with the
/// certificate `leaf`.
pub async fn inbound(
    addr: SocketAddr,
    hostname: &str,
    leaf: &CertificateDer<'_>,
) -> Result<String, String> {
    let at = reachable(addr);
    timed("the inbound listener", async {
        let mut tcp = TcpStream::connect(at)
            .await
            .map_err(|e| format!("cannot connect to {at}: {e}"))?;
        let mut parser = ReplyParser::default();
        let banner = reply(&mut tcp, &mut parser).await?;
        let first = banner.lines.first().cloned().unwrap_or_default();
        if banner.code != 220 || !first.starts_with(&format!("{hostname} ESMTP herald")) {
            return Err(format!(
                "{at} greeted with {:?}, {NOT_HERALD} for {hostname}",
                banner.one_line()
            ));
        }
        command(&mut tcp, &mut parser, "EHLO herald-check.invalid", 250).await?;
        command(&mut tcp, &mut parser, "STARTTLS", 220).await?;
        let name = ServerName::try_from(hostname.to_string()).map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(crate::outbound::tls::unverified_config())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("the STARTTLS handshake failed: {e}"))?;
        let shown = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        let version = tls
            .get_ref()
            .1
            .protocol_version()
            .map_or("TLS".to_string(), |v| format!("{v:?}").replace('_', "."));
        let mut parser = ReplyParser::default();
        command(&mut tls, &mut parser, "EHLO herald-check.invalid", 250).await?;
        let _ = command(&mut tls, &mut parser, "QUIT", 221).await;
        if shown.as_ref() != Some(leaf) {
            return Err(format!("the STARTTLS handshake {OTHER_CERTIFICATE}"));
        }
        Ok(format!(
            "{at} answered {:?}; STARTTLS ({version}) showed the configured certificate",
            banner.one_line()
        ))
    })
    .await
}

/// The console at `addr`: a TLS handshake showing `leaf`.
pub async fn console(
    addr: SocketAddr,
    hostname: &str,
    leaf: &CertificateDer<'_>,
) -> Result<String, String> {
    let at = reachable(addr);
    timed("the console", async {
        let tcp = TcpStream::connect(at)
            .await
            .map_err(|e| format!("cannot connect to {at}: {e}"))?;
        let name = ServerName::try_from(hostname.to_string()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(crate::outbound::tls::unverified_config())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("the TLS handshake failed: {e}"))?;
        let shown = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        if shown.as_ref() != Some(leaf) {
            return Err("the console showed another certificate than the one configured".into());
        }
        Ok(format!("https://{at}/ showed the configured certificate"))
    })
    .await
}

/// The smarthost of `s`: connected, greeted, TLS and authentication as configured; nothing is
/// sent and the session ends with QUIT. Over TLS, what its certificate says (names, issuer,
/// days to expiry) is part of the answer.
pub async fn smarthost(s: &Settings) -> Result<String, String> {
    use crate::smtp::client::Timeouts;
    // With a transcript kept (never shown: only its certificate line is read), to see the
    // certificate the server shows.
    let target = Target::from_settings(s, Timeouts::RFC5321.capped(CHECK_TIMEOUT), true)
        .map_err(|f| f.detail)?;
    timed("the SMTP server", async {
        let session = Session::open(&target).await.map_err(|e| {
            format!(
                "{}: {}",
                crate::outbound::testmail::headline(e.failure.kind),
                e.failure.detail
            )
        })?;
        let relay = session.relay.clone();
        let tls = session.tls_active();
        let said = session.quit().await;
        let certificate = said
            .iter()
            .find_map(|l| l.strip_prefix("Certificate: "))
            .map(|c| format!("; its certificate: {c}"))
            .unwrap_or_default();
        let how = match (tls, s.smtp.authentication) {
            (true, crate::settings::Auth::None) => "over TLS".to_string(),
            (false, crate::settings::Auth::None) => "without TLS".to_string(),
            (tls, _) => format!(
                "{}, signed in as {}",
                if tls { "over TLS" } else { "without TLS" },
                s.smtp.username
            ),
        };
        Ok(format!("{relay} answered {how}{certificate}"))
    })
    .await
}

/// The webhook's server: reachable over TCP (and TLS for https, with `replies.ca_file`).
pub async fn webhook(s: &Settings) -> Result<String, String> {
    let url = crate::replies::webhook::parse_url(&s.replies.webhook_url)?;
    timed("the webhook", async {
        let tcp = crate::net::connect(&url.host, url.port)
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
        if url.tls {
            let tls =
                crate::outbound::tls::roots_config(true, &s.replies.ca_file, "replies.ca_file")?;
            let name = ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
            TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| crate::outbound::tls::explain(&e, &url.host))?;
        }
        Ok(format!(
            "{}:{} can be reached{}",
            url.host,
            url.port,
            if url.tls { " over TLS" } else { "" }
        ))
    })
    .await
}
