//! What an administrator needs to know about a certificate, read from its DER: subject and
//! issuer (their common name and organisation), the names it is valid for (subjectAltName DNS
//! names and IP addresses), and when it expires. A small DER walker over the fields of RFC 5280
//! §4.1 that herald shows; everything else is skipped. No I/O; bounded by the input.

/// What herald shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// `CN=…, O=…` (what of them there is).
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from subjectAltName.
    pub names: Vec<String>,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
}

impl Summary {
    /// Whole days from `now` (seconds since the epoch) until it expires; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// One line for a transcript or a report.
    pub fn describe(&self, now: i64) -> String {
        let names = if self.names.is_empty() {
            "no names".to_string()
        } else {
            self.names.join(", ")
        };
        let left = self.days_left(now);
        let expiry = if left < 0 {
            format!("expired {} days ago", -left)
        } else {
            format!("expires in {left} days")
        };
        let issuer = if self.self_issued {
            "self-signed".to_string()
        } else {
            format!("issued by {}", self.issuer)
        };
        format!("{} for {names}, {issuer}, {expiry}", self.subject)
    }
}

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's contents.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = element(input)?;
        input = rest;
        Some((tag, content))
    })
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// `CN=…, O=…` of a Name.
fn name(content: &[u8]) -> String {
    let mut cn = None;
    let mut o = None;
    for (tag, rdn) in elements(content) {
        if tag != SET {
            continue;
        }
        for (tag, atv) in elements(rdn) {
            if tag != SEQUENCE {
                continue;
            }
            let mut parts = elements(atv);
            let (Some((OID, oid)), Some((_, value))) = (parts.next(), parts.next()) else {
                continue;
            };
            let text = String::from_utf8_lossy(value).into_owned();
            if oid == OID_CN {
                cn = Some(text);
            } else if oid == OID_O {
                o = Some(text);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(cn) = cn {
        out.push(format!("CN={cn}"));
    }
    if let Some(o) = o {
        out.push(format!("O={o}"));
    }
    if out.is_empty() {
        "(no common name)".to_string()
    } else {
        out.join(", ")
    }
}

/// A UTCTime or GeneralizedTime (`YYMMDDHHMMSSZ` / `YYYYMMDDHHMMSSZ`) as seconds since the epoch.
fn time(tag: u8, content: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        GENERALIZED_TIME if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (month, day) = (num(0..2)?, num(2..4)?);
    let (h, m, sec) = (num(4..6)?, num(6..8)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// subjectAltName's DNS names (`[2]`) and IP addresses (`[7]`).
fn alt_names(value: &[u8], out: &mut Vec<String>) {
    let Some((SEQUENCE, names, _)) = element(value) else {
        return;
    };
    for (tag, v) in elements(names) {
        match tag {
            0x82 => out.push(String::from_utf8_lossy(v).into_owned()),
            0x87 if v.len() == 4 => {
                out.push(std::net::Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string())
            }
            0x87 if v.len() == 16 => {
                let b: [u8; 16] = v.try_into().expect("16 bytes");
                out.push(std::net::Ipv6Addr::from(b).to_string())
            }
            _ => {}
        }
    }
}

/// Reads a certificate's DER. `None` when it is not one.
pub fn summary(der: &[u8]) -> Option<Summary> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut fields = elements(tbs).peekable();
    // version [0] EXPLICIT, when present
    if fields.peek().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.next();
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let (SEQUENCE, issuer) = fields.next()? else {
        return None;
    };
    let (SEQUENCE, validity) = fields.next()? else {
        return None;
    };
    let (SEQUENCE, subject) = fields.next()? else {
        return None;
    };
    let _spki = fields.next()?;
    let mut times = elements(validity);
    let (t1, v1) = times.next()?;
    let (t2, v2) = times.next()?;
    let mut s = Summary {
        subject: name(subject),
        issuer: name(issuer),
        names: Vec::new(),
        not_before: time(t1, v1)?,
        not_after: time(t2, v2)?,
        self_issued: issuer == subject,
    };
    for (tag, content) in fields {
        if tag != 0xa3 {
            continue;
        }
        let Some((SEQUENCE, exts, _)) = element(content) else {
            continue;
        };
        for (tag, ext) in elements(exts) {
            if tag != SEQUENCE {
                continue;
            }
            let mut parts = elements(ext);
            let Some((OID, oid)) = parts.next() else {
                continue;
            };
            if oid != OID_SAN {
                continue;
            }
            // critical BOOLEAN, when present, then the OCTET STRING
            for (tag, v) in parts {
                if tag == 0x04 {
                    alt_names(v, &mut s.names);
                }
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec![
            "mail.example.com".to_string(),
            "192.0.2.7".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.com");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Ltd");
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let s = summary(cert.der()).expect("a certificate");
        assert_eq!(s.subject, "CN=mail.example.com, O=Example Ltd");
        assert!(s.self_issued);
        assert_eq!(s.names, ["mail.example.com", "192.0.2.7"]);
        assert_eq!(s.not_after, 1_798_761_600, "2027-01-01T00:00:00Z");
        assert_eq!(s.days_left(1_798_761_600 - 10 * 86_400), 10);
        assert_eq!(
            s.describe(1_798_761_600 + 86_400),
            "CN=mail.example.com, O=Example Ltd for mail.example.com, 192.0.2.7, self-signed, expired 1 days ago"
        );
    }

    #[test]
    fn garbage_and_every_truncation_are_refused_without_a_panic() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            assert_eq!(summary(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(summary(b"not a certificate"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
