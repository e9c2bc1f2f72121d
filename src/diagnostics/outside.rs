//! The checks made from the outside, as a sending server or the admin guide's DNS steps see
//! herald: the DNS records the guide asks for (over the configured nameservers, `crate::dns`),
//! and port 25 at every address `reply.<hostname>` resolves to.

use super::{Check, Section};

/// The port senders deliver to (RFC 5321 §4.5.4.2 names none other).
pub const SMTP_PORT: u16 = 25;

/// Port 25 on every address `reply.<hostname>` resolves to, as a sending server reaches it: this
/// herald must answer there (its banner, then its certificate over STARTTLS), so a firewall, a
/// NAT that points elsewhere, or another MTA in front is told apart. `port` is 25 but for tests.
pub async fn port_section(
    servers: &[std::net::SocketAddr],
    hostname: &str,
    port: u16,
    leaf: &rustls::pki_types::CertificateDer<'_>,
) -> Section {
    use crate::dns::{Kind, resolve};
    use crate::supervisor::checks;
    use smol::future::FutureExt;
    let mut s = Section::new("Port 25 from the internet");
    let reply = format!("reply.{hostname}");
    let (a, aaaa) = smol::future::zip(
        resolve(servers, &reply, Kind::A),
        resolve(servers, &reply, Kind::Aaaa),
    )
    .await;
    let mut addresses: Vec<std::net::IpAddr> = Vec::new();
    for x in [&a, &aaaa].into_iter().flatten() {
        addresses.extend(x.addresses());
    }
    if addresses.is_empty() {
        s.push(Check::info(
            "port 25",
            &format!("not checked: {reply} has no address (see DNS above)"),
        ));
        return s;
    }
    let expected = format!("herald's banner for {hostname} and its certificate");
    for ip in addresses {
        let at = std::net::SocketAddr::new(ip, port);
        let name = format!("port {port} at {ip}");
        let reached = smol::net::TcpStream::connect(at)
            .or(async {
                smol::Timer::after(checks::CHECK_TIMEOUT).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out",
                ))
            })
            .await;
        let check = match reached {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Check::fail(
                &name,
                &format!("connection refused at {at}"),
                &expected,
                "nothing listens there: check that inbound.listen covers this address (0.0.0.0:25), and that a NAT forwards port 25 to this appliance",
            ),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Check::fail(
                &name,
                &format!(
                    "no answer from {at} within {} s",
                    checks::CHECK_TIMEOUT.as_secs()
                ),
                &expected,
                "a firewall drops the connection: open TCP port 25 to every sending server (senders' addresses cannot be listed)",
            ),
            Err(e) => Check::fail(
                &name,
                &format!("cannot connect to {at}: {e}"),
                &expected,
                "check the route and the firewall to this address",
            ),
            Ok(tcp) => {
                drop(tcp);
                match checks::inbound(at, hostname, leaf).await {
                    Ok(line) => Check::ok(&name, &line),
                    Err(e) if e.contains(checks::NOT_HERALD) => Check::fail(
                        &name,
                        &e,
                        &expected,
                        "another mail server answers there: point the MX and A records of reply.<hostname> at this appliance, or forward port 25 to it",
                    ),
                    Err(e) if e.contains(checks::OTHER_CERTIFICATE) => Check::fail(
                        &name,
                        &e,
                        &expected,
                        "another herald or a proxy answers there: point reply.<hostname> at this appliance",
                    ),
                    Err(e) => Check::fail(
                        &name,
                        &e,
                        &expected,
                        "look at herald's log and at mail.log for this connection",
                    ),
                }
            }
        };
        s.push(check);
    }
    s
}

/// The DNS records the admin guide asks for, as the configured servers answer them: the A record
/// of the host name, the A (or AAAA) record of `reply.<hostname>` (a wildcard `*.<hostname>`
/// counts), and the MX records of `reply.<hostname>` and `noreply.<hostname>` pointing at the host
/// name. Each failure gives the record to create in zone-file form.
pub async fn dns_section(servers: &[std::net::SocketAddr], hostname: &str) -> Section {
    use crate::dns::{Kind, resolve};
    let mut s = Section::new("DNS");
    if is_localhost(hostname) {
        s.push(Check::info(
            "records",
            &format!("not checked: {hostname} is not a name in the DNS; set hostname to the appliance's name"),
        ));
        return s;
    }
    let reply = format!("reply.{hostname}");
    let noreply = format!("noreply.{hostname}");
    // A name nobody made: if it resolves, a wildcard is what answers for reply.<hostname>.
    let probe = format!(
        "herald-check-{}.{hostname}",
        crate::crypto::hex(&crate::crypto::random_bytes(4))
    );
    let asked: Vec<String> = servers.iter().map(|a| a.to_string()).collect();
    s.push(Check::info("servers asked", &asked.join(", ")));
    let (host_a, (host_aaaa, (reply_a, (reply_aaaa, (reply_mx, (noreply_mx, probe_a)))))) = {
        use smol::future::zip;
        zip(
            resolve(servers, hostname, Kind::A),
            zip(
                resolve(servers, hostname, Kind::Aaaa),
                zip(
                    resolve(servers, &reply, Kind::A),
                    zip(
                        resolve(servers, &reply, Kind::Aaaa),
                        zip(
                            resolve(servers, &reply, Kind::Mx),
                            zip(
                                resolve(servers, &noreply, Kind::Mx),
                                resolve(servers, &probe, Kind::A),
                            ),
                        ),
                    ),
                ),
            ),
        )
        .await
    };
    let unchecked = |name: &str, e: &str, expected: &str| {
        Check::warn(
            name,
            &format!("could not check: {e}"),
            expected,
            "check diagnostics.nameservers (or the appliance's /etc/resolv.conf): the DNS servers must answer from here",
        )
    };
    let addresses = |a: &Result<crate::dns::Answer, String>,
                     b: &Result<crate::dns::Answer, String>| {
        let mut all = Vec::new();
        for x in [a, b].into_iter().flatten() {
            all.extend(x.addresses());
        }
        all
    };
    let shown = |ips: &[std::net::IpAddr]| {
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let how = |a: &Result<crate::dns::Answer, String>| match a {
        Ok(x) if x.over_tcp => " (over TCP: the UDP answer was truncated)",
        _ => "",
    };

    // The host name's own address.
    let host_ips = addresses(&host_a, &host_aaaa);
    let name = format!("A of {hostname}");
    match (&host_a, &host_aaaa) {
        (Err(e), Err(_)) => s.push(unchecked(
            &name,
            e,
            "an A record with this appliance's address",
        )),
        _ if host_ips.is_empty() => s.push(Check::fail(
            &name,
            &format!("no A or AAAA record ({})", rcode(&host_a)),
            "an A record with this appliance's address",
            &format!("create the record: {hostname}. 3600 IN A <this appliance's address>"),
        )),
        _ => s.push(Check::ok(
            &name,
            &format!("{}{}", shown(&host_ips), how(&host_a)),
        )),
    }

    // reply.<hostname>: where senders deliver replies.
    let reply_ips = addresses(&reply_a, &reply_aaaa);
    let wildcard = probe_a.as_ref().is_ok_and(|p| !p.addresses().is_empty());
    let name = format!("A of {reply}");
    let expected = if host_ips.is_empty() {
        "an A record with this appliance's address (or a wildcard *.<hostname>)".to_string()
    } else {
        format!("{} (as {hostname})", shown(&host_ips))
    };
    match (&reply_a, &reply_aaaa) {
        (Err(e), Err(_)) => s.push(unchecked(&name, e, &expected)),
        _ if reply_ips.is_empty() => s.push(Check::fail(
            &name,
            &format!("no A or AAAA record ({})", rcode(&reply_a)),
            &expected,
            &format!(
                "create the record: {reply}. 3600 IN A <this appliance's address> (or *.{hostname}. 3600 IN A <address>)"
            ),
        )),
        _ if !host_ips.is_empty() && !reply_ips.iter().all(|ip| host_ips.contains(ip)) => {
            s.push(Check::warn(
                &name,
                &format!("{}{}", shown(&reply_ips), how(&reply_a)),
                &expected,
                &format!(
                    "point {reply} at this appliance (as {hostname}): replies sent to another address never reach herald"
                ),
            ))
        }
        _ => s.push(Check::ok(
            &name,
            &format!(
                "{}{}{}",
                shown(&reply_ips),
                if wildcard { " (from the wildcard *.".to_string() + hostname + ")" } else { String::new() },
                how(&reply_a)
            ),
        )),
    }

    // The two MX records.
    for (domain, answer) in [(&reply, &reply_mx), (&noreply, &noreply_mx)] {
        let name = format!("MX of {domain}");
        let expected = format!("MX 10 {hostname}.");
        match answer {
            Err(e) => s.push(unchecked(&name, e, &expected)),
            Ok(a) => {
                let mx = a.exchanges();
                let found = if mx.is_empty() {
                    format!("no MX record ({})", a.rcode)
                } else {
                    mx.iter()
                        .map(|(p, e)| format!("MX {p} {e}."))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if mx.iter().any(|(_, e)| e.eq_ignore_ascii_case(hostname)) {
                    s.push(Check::ok(&name, &format!("{found}{}", how(answer))));
                } else {
                    s.push(Check::fail(
                        &name,
                        &found,
                        &expected,
                        &format!(
                            "{} the record: {domain}. 3600 IN MX 10 {hostname}.",
                            if mx.is_empty() {
                                "create"
                            } else {
                                "change it to"
                            }
                        ),
                    ));
                }
            }
        }
    }
    s
}

/// localhost (the developer's defaults) is never in the DNS (RFC 6761 §6.3).
pub(super) fn is_localhost(hostname: &str) -> bool {
    let host = hostname.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The response code of an answer, for a finding.
fn rcode(a: &Result<crate::dns::Answer, String>) -> String {
    match a {
        Ok(x) => x.rcode.clone(),
        Err(e) => e.clone(),
    }
}
