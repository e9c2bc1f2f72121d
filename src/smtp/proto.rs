//! SMTP vocabulary shared by the server and (later) the client: RFC limits as named constants,
//! replies, commands and their parsing, and mailbox syntax. No I/O here.

use std::fmt::Write as _;

/// A command line, command word to CRLF (RFC 5321 §4.5.3.1.4).
pub const COMMAND_LINE_MAX: usize = 512;
/// MAIL may grow by the SIZE parameter (RFC 1870 §3: 26 octets) and BODY (RFC 6152 / 1652: 14).
pub const MAIL_LINE_EXTRA: usize = 26 + 14;
/// The line buffer of the command receiver: the longest command line we accept.
pub const LINE_BUFFER: usize = COMMAND_LINE_MAX + MAIL_LINE_EXTRA;
/// A local part (RFC 5321 §4.5.3.1.1).
pub const LOCAL_PART_MAX: usize = 64;
/// A domain (RFC 5321 §4.5.3.1.2).
pub const DOMAIN_MAX: usize = 255;
/// A path, `<` to `>` inclusive (RFC 5321 §4.5.3.1.3).
pub const PATH_MAX: usize = 256;
/// Recipients per transaction a server must accept (RFC 5321 §4.5.3.1.8).
pub const RECIPIENTS_MAX: usize = 100;
/// A reply line, code to CRLF (RFC 5321 §4.5.3.1.5).
pub const REPLY_LINE_MAX: usize = 512;

/// One SMTP reply: a code, an enhanced status code (RFC 3463) where one applies, and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply that carries no enhanced code: the greeting, EHLO/HELO and 3xx (RFC 2034 §3).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// The wire form: `code-text` lines then `code text`, each ending in CRLF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map_or("", String::as_str);
            let sep = if i + 1 == n { ' ' } else { '-' };
            let mut line = String::new();
            let _ = write!(line, "{}{sep}", self.code);
            if let Some(e) = self.enhanced {
                line.push_str(e);
                if !text.is_empty() {
                    line.push(' ');
                }
            }
            // Nothing we put in a reply may break the line structure or its length limit.
            line.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
            let mut cut = line.len().min(REPLY_LINE_MAX - 2);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// The reply as one line of text for logs: `550 5.1.1 text`.
    pub fn summary(&self) -> String {
        let text = self.lines.join(" ");
        match self.enhanced {
            Some(e) => format!("{} {e} {text}", self.code),
            None => format!("{} {text}", self.code),
        }
    }
}

/// A command as the server understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: String,
        params: Vec<String>,
    },
    Rcpt {
        to: String,
        params: Vec<String>,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// Recognized but not offered (AUTH, BDAT, ETRN, EXPN, TURN …).
    NotImplemented(String),
    /// Not a command at all.
    Unknown(String),
}

/// Why a command line could not be parsed: the reply to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub Reply);

fn syntax(code: u16, enhanced: &'static str, text: impl Into<String>) -> SyntaxError {
    SyntaxError(Reply::new(code, enhanced, text))
}

/// Parses one command line (without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, SyntaxError> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(syntax(500, "5.5.2", "Syntax error: command is not ASCII"));
    };
    if !line.is_ascii() {
        return Err(syntax(500, "5.5.2", "Syntax error: command is not ASCII"));
    }
    if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(syntax(
            500,
            "5.5.2",
            "Syntax error: control character in command",
        ));
    }
    let (verb, rest) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(syntax(
                501,
                "5.5.4",
                format!("Syntax: {verb} takes no arguments"),
            ))
        }
    };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.split_whitespace().next().unwrap_or("");
            if domain.is_empty() {
                return Err(syntax(501, "5.5.4", format!("Syntax: {verb} hostname")));
            }
            Ok(if verb == "EHLO" {
                Command::Ehlo(domain.into())
            } else {
                Command::Helo(domain.into())
            })
        }
        "MAIL" => {
            let arg = strip_keyword(rest, "FROM:")
                .ok_or_else(|| syntax(501, "5.5.4", "Syntax: MAIL FROM:<address>"))?;
            let (path, params) = split_path(arg)?;
            Ok(Command::Mail { from: path, params })
        }
        "RCPT" => {
            let arg = strip_keyword(rest, "TO:")
                .ok_or_else(|| syntax(501, "5.5.4", "Syntax: RCPT TO:<address>"))?;
            let (path, params) = split_path(arg)?;
            Ok(Command::Rcpt { to: path, params })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" | "BDAT" | "ETRN" | "EXPN" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
            Ok(Command::NotImplemented(verb))
        }
        _ => Ok(Command::Unknown(verb)),
    }
}

/// `FROM:<x>` with optional space after the colon (tolerated, as most servers do).
fn strip_keyword<'a>(rest: &'a str, kw: &str) -> Option<&'a str> {
    let head = rest.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw)
        .then(|| rest[kw.len()..].trim_start())
}

/// `<path> PARAM PARAM` → (path without brackets, params).
fn split_path(arg: &str) -> Result<(String, Vec<String>), SyntaxError> {
    if !arg.starts_with('<') {
        return Err(syntax(
            501,
            "5.1.7",
            "Syntax: address must be in angle brackets",
        ));
    }
    let end = arg
        .find('>')
        .ok_or_else(|| syntax(501, "5.1.7", "Syntax: missing '>' after address"))?;
    if end + 1 > PATH_MAX {
        return Err(syntax(501, "5.1.7", "Address too long"));
    }
    let path = &arg[1..end];
    let params = arg[end + 1..]
        .split_whitespace()
        .map(String::from)
        .collect();
    Ok((path.to_string(), params))
}

/// A mailbox `local@domain` that herald will consider. Refuses everything that has ever been used
/// to make a server relay: source routes (`@a:b@c`), percent hacks (`a%b@c`), bang paths (`a!b@c`),
/// quoted local parts, and more than one `@`.
pub fn parse_mailbox(path: &str) -> Result<(String, String), Reply> {
    let bad = |why: &str| Reply::new(501, "5.1.3", format!("Bad address syntax: {why}"));
    if path.starts_with('@') {
        return Err(bad("source routes are not accepted"));
    }
    if path.starts_with('"') {
        return Err(bad("quoted local parts are not accepted"));
    }
    if path.matches('@').count() != 1 {
        return Err(bad("an address has exactly one @"));
    }
    let (local, domain) = path.split_once('@').expect("one @");
    if local.contains('%') || local.contains('!') {
        return Err(bad("% and ! routing is not accepted"));
    }
    if local.is_empty() || local.len() > LOCAL_PART_MAX {
        return Err(bad("local part must be 1 to 64 octets"));
    }
    const ATEXT: &[u8] = b"!#$&'*+-/=?^_`{|}~";
    let atoms_ok = local.split('.').all(|a| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || ATEXT.contains(&b))
    });
    if !atoms_ok {
        return Err(bad("local part is not a dot-atom"));
    }
    if domain.is_empty() || domain.len() > DOMAIN_MAX {
        return Err(bad("domain must be 1 to 255 octets"));
    }
    let domain_ok = match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        // Address literals (RFC 5321 §4.1.3): an IPv4 address or `IPv6:` and an IPv6 address.
        Some(lit) => match lit
            .strip_prefix("IPv6:")
            .or_else(|| lit.strip_prefix("ipv6:"))
        {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        },
        None => crate::settings::is_host_name(domain),
    };
    if !domain_ok {
        return Err(bad("domain is not a host name"));
    }
    Ok((local.to_string(), domain.to_ascii_lowercase()))
}

/// The reverse path of MAIL FROM: empty (`<>`, bounces) or a mailbox.
pub fn parse_reverse_path(path: &str) -> Result<String, Reply> {
    if path.is_empty() {
        return Ok(String::new());
    }
    // A source route in the reverse path is obsolete; RFC 5321 §4.1.2 lets us ignore it.
    let path = match path.rsplit_once(':') {
        Some((route, mailbox)) if route.starts_with('@') => mailbox,
        _ => path,
    };
    parse_mailbox(path).map(|(l, d)| format!("{l}@{d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_encoding() {
        assert_eq!(
            Reply::new(250, "2.1.0", "Ok").to_bytes(),
            b"250 2.1.0 Ok\r\n"
        );
        let r = Reply::plain(
            250,
            vec!["mx.example".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
        let evil = Reply::new(550, "5.1.1", "no <a\r\nb>");
        assert_eq!(evil.to_bytes(), b"550 5.1.1 no <a  b>\r\n");
        let long = Reply::new(250, "2.0.0", "x".repeat(1000)).to_bytes();
        assert_eq!(long.len(), REPLY_LINE_MAX);
        assert_eq!(Reply::plain(354, vec![]).to_bytes(), b"354 \r\n");
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"EHLO client.example").unwrap(),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(parse_command(b"helo x").unwrap(), Command::Helo("x".into()));
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME").unwrap(),
            Command::Mail {
                from: "a@b.example".into(),
                params: vec!["SIZE=100".into(), "BODY=8BITMIME".into()]
            }
        );
        assert_eq!(
            parse_command(b"mail from: <>").unwrap(),
            Command::Mail {
                from: "".into(),
                params: vec![]
            }
        );
        assert_eq!(
            parse_command(b"RCPT TO:<x@y.example>").unwrap(),
            Command::Rcpt {
                to: "x@y.example".into(),
                params: vec![]
            }
        );
        assert_eq!(parse_command(b"DATA").unwrap(), Command::Data);
        assert_eq!(parse_command(b"data").unwrap(), Command::Data);
        assert_eq!(parse_command(b"NOOP whatever").unwrap(), Command::Noop);
        assert_eq!(parse_command(b"STARTTLS").unwrap(), Command::StartTls);
        assert_eq!(
            parse_command(b"AUTH PLAIN x").unwrap(),
            Command::NotImplemented("AUTH".into())
        );
        assert_eq!(
            parse_command(b"FOO").unwrap(),
            Command::Unknown("FOO".into())
        );
        for (bad, code) in [
            (&b"EHLO"[..], 501),
            (b"MAIL TO:<a@b>", 501),
            (b"MAIL FROM:a@b", 501),
            (b"RCPT TO:<a@b", 501),
            (b"DATA now", 501),
            (b"QUIT now", 501),
            (b"EHLO \x01x", 500),
            (b"EHLO \xc3\xa9", 500),
        ] {
            let e = parse_command(bad).unwrap_err();
            assert_eq!(e.0.code, code, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn mailboxes_that_never_relay() {
        assert_eq!(
            parse_mailbox("Reply+i-1@Reply.Example.COM").unwrap(),
            ("Reply+i-1".into(), "reply.example.com".into())
        );
        for bad in [
            "@relay.example:user@target.example",
            "user%target.example@reply.example.com",
            "target!user@reply.example.com",
            "\"user@target\"@reply.example.com",
            "user@target.example@reply.example.com",
            "user",
            "@reply.example.com",
            "user@",
            "a..b@reply.example.com",
            ".a@reply.example.com",
            "a@-bad.example",
            "a@[x], size=1, nrcpt=1 (queue active) relay=x ]",
            "a@[999.1.1.1]",
            "a@[IPv6:zz::1]",
        ] {
            assert!(parse_mailbox(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_mailbox(&format!("{}@x.example", "a".repeat(65))).is_err());
        assert_eq!(parse_reverse_path("").unwrap(), "");
        assert_eq!(parse_mailbox("a@[192.0.2.1]").unwrap().1, "[192.0.2.1]");
        assert_eq!(
            parse_mailbox("a@[IPv6:2001:db8::1]").unwrap().1,
            "[ipv6:2001:db8::1]"
        );
        assert_eq!(
            parse_reverse_path("@a.example:u@b.example").unwrap(),
            "u@b.example"
        );
    }
}
