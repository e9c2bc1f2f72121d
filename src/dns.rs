//! A small DNS stub resolver for the diagnostics' checks: one question to the configured servers
//! (`diagnostics.nameservers`, else `/etc/resolv.conf`), over UDP with a timeout and a retry,
//! again over TCP when the answer is truncated. Messages are built and parsed with `simple-dns`;
//! only what the checks read (A, AAAA, MX, CNAME and the response code) comes out.

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long one try waits for its answer.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries per server over UDP.
pub const TRIES: usize = 2;
/// The largest UDP answer read (RFC 6891 leaves room above 512 octets).
const UDP_MAX: usize = 4096;
/// The DNS port (RFC 1035 §4.2).
pub const PORT: u16 = 53;

/// What the checks ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    A,
    Aaaa,
    Mx,
}

impl Kind {
    fn qtype(self) -> QTYPE {
        match self {
            Kind::A => QTYPE::TYPE(TYPE::A),
            Kind::Aaaa => QTYPE::TYPE(TYPE::AAAA),
            Kind::Mx => QTYPE::TYPE(TYPE::MX),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::A => "A",
            Kind::Aaaa => "AAAA",
            Kind::Mx => "MX",
        }
    }
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Address(IpAddr),
    Mx { preference: u16, exchange: String },
    Cname(String),
}

/// An answer: the server that gave it, its response code, the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub server: SocketAddr,
    /// `NOERROR`, `NXDOMAIN` …
    pub rcode: String,
    pub records: Vec<Record>,
    /// Whether it came over TCP after a truncated UDP answer.
    pub over_tcp: bool,
}

impl Answer {
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Address(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    /// MX exchanges, lowercased without the final dot, by preference.
    pub fn exchanges(&self) -> Vec<(u16, String)> {
        let mut mx: Vec<(u16, String)> = self
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Mx {
                    preference,
                    exchange,
                } => Some((*preference, exchange.clone())),
                _ => None,
            })
            .collect();
        mx.sort();
        mx
    }
}

/// The servers of a `diagnostics.nameservers` value: IP addresses, each with an optional port,
/// separated by commas.
pub fn parse_servers(s: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = part
            .parse::<SocketAddr>()
            .or_else(|_| part.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, PORT)))
            .map_err(|_| format!("{part:?} is not an IP address (with an optional :port)"))?;
        if addr.port() == 0 {
            return Err(format!("{part:?} has port 0"));
        }
        out.push(addr);
    }
    Ok(out)
}

/// The `nameserver` lines of a resolv.conf (resolv.conf(5)); loopback's stub resolver when
/// there are none, as the C library does.
pub fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, PORT))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORT));
        out.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), PORT));
    }
    out
}

/// The servers to ask: the configured ones, else those of `/etc/resolv.conf`.
pub fn servers(configured: &str) -> Vec<SocketAddr> {
    match parse_servers(configured) {
        Ok(s) if !s.is_empty() => s,
        _ => resolv_conf_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
    }
}

/// The query for `name`, with recursion desired.
pub fn query(id: u16, name: &str, kind: Kind) -> Result<Vec<u8>, String> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname = Name::new(name).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
    p.questions.push(Question::new(
        qname,
        kind.qtype(),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    p.build_bytes_vec().map_err(|e| e.to_string())
}

/// What an answer to query `id` says, or why it is not one; `Ok(None)` when it is truncated.
pub fn read_answer(id: u16, bytes: &[u8]) -> Result<Option<(String, Vec<Record>)>, String> {
    let p = Packet::parse(bytes).map_err(|e| format!("not a DNS message: {e}"))?;
    if p.id() != id {
        return Err("an answer to another query".into());
    }
    // A query echoed back (anything listening on the port that is not a DNS server) is not an
    // answer.
    if !p.has_flags(PacketFlag::RESPONSE) {
        return Err("a query, not an answer (is a DNS server listening there?)".into());
    }
    if p.has_flags(PacketFlag::TRUNCATION) {
        return Ok(None);
    }
    let rcode = match p.rcode() {
        RCODE::NoError => "NOERROR".to_string(),
        RCODE::NameError => "NXDOMAIN".to_string(),
        RCODE::ServerFailure => "SERVFAIL".to_string(),
        RCODE::Refused => "REFUSED".to_string(),
        other => format!("{other:?}").to_uppercase(),
    };
    let records = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(Record::Address(IpAddr::V4(Ipv4Addr::from(a.address)))),
            RData::AAAA(a) => Some(Record::Address(IpAddr::V6(Ipv6Addr::from(a.address)))),
            RData::MX(mx) => Some(Record::Mx {
                preference: mx.preference,
                exchange: normal(&mx.exchange.to_string()),
            }),
            RData::CNAME(c) => Some(Record::Cname(normal(&c.0.to_string()))),
            _ => None,
        })
        .collect();
    Ok(Some((rcode, records)))
}

/// A name lowercased, without its final dot.
pub fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn timed<T>(f: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    f.or(async {
        smol::Timer::after(TRY_TIMEOUT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        ))
    })
    .await
}

async fn over_udp(
    server: SocketAddr,
    id: u16,
    q: &[u8],
) -> Result<Option<(String, Vec<Record>)>, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = smol::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(q).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; UDP_MAX];
    // One deadline for the whole try: answers to other queries (late ones, or a flood of them)
    // are skipped without extending it.
    let wait = async {
        loop {
            let n = sock.recv(&mut buf).await?;
            match read_answer(id, &buf[..n]) {
                Err(e) if e.starts_with("an answer to another") => continue,
                other => return Ok(other),
            }
        }
    };
    timed(wait).await.map_err(|e| e.to_string())?
}

async fn over_tcp(server: SocketAddr, id: u16, q: &[u8]) -> Result<(String, Vec<Record>), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut tcp = timed(smol::net::TcpStream::connect(server))
        .await
        .map_err(io)?;
    // RFC 1035 §4.2.2: each message after its two-octet length.
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    timed(tcp.write_all(&framed)).await.map_err(io)?;
    let mut len = [0u8; 2];
    timed(tcp.read_exact(&mut len)).await.map_err(io)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    timed(tcp.read_exact(&mut buf)).await.map_err(io)?;
    read_answer(id, &buf)?.ok_or_else(|| "truncated over TCP".into())
}

/// Asks `servers` in turn for `name`; the first answer, or why none came.
pub async fn resolve(servers: &[SocketAddr], name: &str, kind: Kind) -> Result<Answer, String> {
    let mut why = Vec::new();
    for &server in servers {
        for _ in 0..TRIES {
            let id = u16::from_be_bytes([
                crate::crypto::random_bytes(2)[0],
                crate::crypto::random_bytes(2)[1],
            ]);
            let q = query(id, name, kind)?;
            match over_udp(server, id, &q).await {
                Ok(Some((rcode, records))) => {
                    return Ok(Answer {
                        server,
                        rcode,
                        records,
                        over_tcp: false,
                    });
                }
                Ok(None) => match over_tcp(server, id, &q).await {
                    Ok((rcode, records)) => {
                        return Ok(Answer {
                            server,
                            rcode,
                            records,
                            over_tcp: true,
                        });
                    }
                    Err(e) => {
                        why.push(format!("{server} (TCP after a truncated answer): {e}"));
                        break;
                    }
                },
                Err(e) => why.push(format!("{server}: {e}")),
            }
        }
    }
    why.dedup();
    Err(format!("no DNS server answered ({})", why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_from_the_setting_and_from_resolv_conf() {
        assert_eq!(
            parse_servers("1.1.1.1, [::1]:5353 ,127.0.0.1:53").unwrap(),
            vec![
                "1.1.1.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap(),
                "127.0.0.1:53".parse().unwrap()
            ]
        );
        assert_eq!(parse_servers("").unwrap(), vec![]);
        assert!(
            parse_servers("dns.example.com")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(parse_servers("1.1.1.1:0").is_err());
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            resolv_conf_servers(conf),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(resolv_conf_servers("").len(), 2);
    }

    #[test]
    fn a_query_and_its_answer_byte_for_byte() {
        let q = query(0x1234, "reply.herald.test", Kind::Mx).unwrap();
        // Header: id, flags RD, one question; then the name in labels, type 15 (MX), class 1.
        assert_eq!(&q[..12], &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x05reply\x06herald\x04test\x00\x00\x0f\x00\x01");
        // An answer: the same header with QR, RA; the question; one MX 10 herald.test.
        let mut a = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        a.extend_from_slice(&q[12..]);
        a.extend_from_slice(&[0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0x0e, 0x10, 0, 15, 0, 10]);
        a.extend_from_slice(b"\x06herald\x04test\x00");
        let (rcode, records) = read_answer(0x1234, &a).unwrap().unwrap();
        assert_eq!(rcode, "NOERROR");
        assert_eq!(
            records,
            vec![Record::Mx {
                preference: 10,
                exchange: "herald.test".into()
            }]
        );
        assert!(
            read_answer(0x4321, &a)
                .unwrap_err()
                .contains("another query")
        );
        assert!(
            read_answer(0x1234, &q)
                .unwrap_err()
                .contains("not an answer"),
            "an echoed query"
        );
        a[2] |= 0x02; // TC
        assert_eq!(read_answer(0x1234, &a).unwrap(), None);
        assert!(read_answer(1, b"\x00").is_err());
    }
}
