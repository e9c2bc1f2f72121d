//! The bodies of the fuzz targets (`fuzz/`): one function per parser that reads what the
//! internet sends, each checking more than "no panic". The fuzz crate's targets are one line
//! each; the unit test below runs every kept input (`fuzz/seeds/<target>/`, the crashes kept in
//! `fuzz/regressions/<target>/`, and the reply fixtures) through the same functions, so what a
//! fuzzer once found stays found. Not used by the service itself.

use crate::smtp::proto::{REPLY_LINE_MAX, Reply};
use crate::smtp::server::{Config, Event, Policy, Server, Timeouts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A target: the input is everything it gets.
pub type Target = fn(&[u8]);

/// The targets, by the names of their folders under `fuzz/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("smtp_server", smtp_server),
    ("smtp_client", smtp_client),
    ("reply_extract", reply_extract),
    ("settings_file", settings_file),
    ("webhook_answer", webhook_answer),
    ("dns_answer", dns_answer),
    ("http_request", http_request),
];

// ---------------------------------------------------------------------------------------------
// smtp_server: the port-25 session machine

struct AcceptSome;

impl Policy for AcceptSome {
    fn recipient(&self, local: &str, domain: &str) -> Result<bool, Reply> {
        match domain {
            "reply.example.test" if local.starts_with('r') => Ok(false),
            "noreply.example.test" => Ok(true),
            _ => Err(Reply::new(550, "5.7.1", "Relay access denied")),
        }
    }
}

const SERVER_LIMIT: u64 = 4096;

fn server_config(budget: u64, limit: u64) -> Config {
    Config {
        hostname: "mx.example.test".into(),
        max_message_size: limit,
        tls_available: true,
        tls_enforced: false,
        timeouts: Timeouts::default(),
        max_errors: 20,
        budget: crate::smtp::budget::DataBudget::new(budget),
    }
}

/// Runs a session over `chunks`; `fail_every` makes every n-th store fail.
fn server_session(chunks: &[&[u8]], fail_every: u8, budget: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    session_limited(chunks, fail_every, budget, SERVER_LIMIT)
}

fn session_limited(
    chunks: &[&[u8]],
    fail_every: u8,
    budget: u64,
    limit: u64,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let t0 = Instant::now();
    let mut s = Server::new(server_config(budget, limit), Arc::new(AcceptSome), t0);
    s.greet(t0);
    let mut out = s.take_output();
    let mut stored = Vec::new();
    let mut n = 0u32;
    for (i, c) in chunks.iter().enumerate() {
        if s.is_closed() {
            break;
        }
        let now = t0 + Duration::from_millis(i as u64);
        if s.wants_input() {
            s.receive(c, now);
        }
        loop {
            out.extend(s.take_output());
            let Some(e) = s.poll_event() else { break };
            match e {
                Event::Deliver(env) => {
                    assert!(!s.wants_input(), "reading while storing");
                    assert!(env.data.len() as u64 <= limit, "stored past the limit");
                    n += 1;
                    if fail_every != 0 && n.is_multiple_of(u32::from(fail_every)) {
                        s.stored(Err("injected".into()), now);
                    } else {
                        stored.push(env.data);
                        s.stored(Ok(format!("Q{n}")), now);
                    }
                }
                Event::Admit => {
                    assert!(!s.wants_input(), "reading before the 354");
                    s.admitted(now);
                }
                Event::StartTls => {
                    assert!(!s.wants_input(), "reading plaintext after STARTTLS");
                    s.tls_started(now);
                }
                Event::Rejected(_) | Event::Close => {}
            }
        }
    }
    (out, stored)
}

fn check_reply_lines(out: &[u8]) {
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
        assert!(line.len() <= REPLY_LINE_MAX, "reply line too long");
        assert!(line.len() >= 6, "short reply line {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "no code: {line:?}"
        );
        assert!(
            line[3] == b' ' || line[3] == b'-',
            "bad separator: {line:?}"
        );
    }
}

/// Arbitrary client bytes, split into reads at arbitrary points, with the adapter's answers
/// (stored / store failed / TLS up) and the DATA memory budget (ample, or too small for any
/// message: DATA is then answered 452 at admission) chosen by the input too. Beyond "no panic":
/// every reply line is well-formed (`ddd-` or `ddd `, CRLF, at most 512 octets); the machine
/// never asks for input while it waits on the adapter; a stored message never exceeds the size
/// limit; splitting the bytes differently never changes the replies or the stored messages.
pub fn smtp_server(input: &[u8]) {
    if input.len() < 2 {
        return;
    }
    let (ctl, data) = input.split_at(2);
    let split = usize::from(ctl[0]) * data.len() / 256;
    let fail_every = ctl[1] % 4;
    let budget = if ctl[1] & 0x10 != 0 { 100 } else { 1 << 20 };
    let whole = server_session(&[data], fail_every, budget);
    check_reply_lines(&whole.0);
    let halves = server_session(&[&data[..split], &data[split..]], fail_every, budget);
    // STARTTLS discards the rest of a read, so splits legitimately differ after it.
    let has_starttls = data.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS"));
    if !has_starttls {
        assert_eq!(whole, halves, "split at {split} changed the session");
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            whole,
            server_session(&bytes, fail_every, budget),
            "byte by byte changed the session"
        );
    }
}

/// The bytes of one SMTP transaction carrying `message` (lines ending in CRLF, dot-stuffed), and
/// where its DATA section starts in them.
#[cfg(test)]
pub(crate) fn transaction(message: &[u8]) -> (Vec<u8>, usize) {
    let mut t = b"EHLO client.example.test\r\nMAIL FROM:<jane@example.com>\r\n\
        RCPT TO:<x@noreply.example.test>\r\nDATA\r\n"
        .to_vec();
    let start = t.len();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b".") {
            t.push(b'.');
        }
        t.extend_from_slice(line);
        t.extend_from_slice(b"\r\n");
    }
    t.extend_from_slice(b".\r\nQUIT\r\n");
    (t, start)
}

/// What the session machine stored of `transaction` read in pieces cut at `cuts` (ascending
/// offsets), with messages up to 1 MiB.
#[cfg(test)]
pub(crate) fn stored_when_cut(transaction: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &c in cuts {
        chunks.push(&transaction[from..c]);
        from = c;
    }
    chunks.push(&transaction[from..]);
    session_limited(&chunks, 0, 1 << 24, 1 << 20).1
}

// ---------------------------------------------------------------------------------------------
// smtp_client: the smarthost session machine and its reply parser

const FUZZ_USER: &str = "fuzz-user";
const FUZZ_PASSWORD: &str = "s3cret-Fuzz-Pa55";

/// Drives a client session with `server` bytes in `chunks`; returns what it wrote and the
/// transcript. Every time the session is ready it submits a message, at most three.
fn client_session(ctl: u8, chunks: &[&[u8]]) -> (Vec<u8>, Vec<crate::smtp::client::Said>) {
    use crate::smtp::client::{
        Client, ClientConfig, Credentials, Event as C, Mechanism, Timeouts as T, TlsMode,
    };
    let tls = [
        TlsMode::StartTlsAuto,
        TlsMode::StartTlsRequired,
        TlsMode::Implicit,
        TlsMode::Off,
    ][usize::from(ctl & 3)];
    let auth = [None, Some(Mechanism::Plain), Some(Mechanism::Login)]
        .get(usize::from((ctl >> 2) & 3))
        .copied()
        .unwrap_or(Some(Mechanism::CramMd5))
        .map(|mechanism| Credentials {
            mechanism,
            username: FUZZ_USER.into(),
            password: FUZZ_PASSWORD.into(),
        });
    let cfg = ClientConfig {
        helo_name: "herald.example.test".into(),
        tls,
        auth,
        timeouts: T::RFC5321,
        transcript: true,
    };
    let t0 = Instant::now();
    let mut c = Client::new(cfg, tls == TlsMode::Implicit, t0).expect("a clean config");
    let (mut out, mut transcript, mut sent) = (Vec::new(), Vec::new(), 0);
    for (i, chunk) in chunks.iter().enumerate() {
        let now = t0 + Duration::from_millis(i as u64);
        c.receive(chunk, now);
        loop {
            out.extend(c.take_output());
            let Some(e) = c.poll_event() else { break };
            match e {
                C::StartTls => c.tls_started(now),
                // A Ready may be stale: replies the server sent unasked came after it.
                C::Ready if sent < 3 && c.is_ready() => {
                    sent += 1;
                    let body = format!("Subject: {sent}\r\n\r\n.\r\nline\r\n");
                    // A refusal here is the server's SIZE, said before anything is sent.
                    if let Err(f) =
                        c.submit("from@example.test", "to@example.test", body.as_bytes(), now)
                    {
                        assert_eq!(f.status, Some("5.3.4"), "a ready session refused: {f:?}");
                    }
                }
                C::Ready if sent == 3 && c.is_ready() => {
                    sent += 1;
                    c.quit(now);
                }
                _ => {}
            }
        }
        transcript.extend(c.take_transcript());
        if c.is_closed() {
            break;
        }
    }
    c.on_timeout(t0 + Duration::from_secs(3600));
    out.extend(c.take_output());
    transcript.extend(c.take_transcript());
    (out, transcript)
}

/// Arbitrary server bytes against the client session (TLS mode and SASL mechanism from the
/// first byte), whole and split in two. Beyond "no panic": every line sent ends in CRLF with no
/// other CR; the transcript never holds the password in any form the mechanisms send it; the
/// reply parser gives the same replies however the bytes are split.
pub fn smtp_client(input: &[u8]) {
    use crate::smtp::client::Said;
    use crate::smtp::replies::ReplyParser;
    let Some((&ctl, server)) = input.split_first() else {
        return;
    };
    let split = server.len() / 2;
    // Whole, and in two reads (what the client sends may differ: a server that answers before
    // it was asked is seen at another moment).
    let (mut out, mut transcript) = client_session(ctl, &[server]);
    let (out2, transcript2) = client_session(ctl, &[&server[..split], &server[split..]]);
    out.extend(out2);
    transcript.extend(transcript2);
    let secrets = [
        FUZZ_PASSWORD.to_string(),
        crate::crypto::base64_encode(FUZZ_PASSWORD.as_bytes()),
        crate::crypto::base64_encode(format!("\0{FUZZ_USER}\0{FUZZ_PASSWORD}").as_bytes()),
    ];
    // What herald sent (the server may echo anything back; that is not herald's leak).
    for said in &transcript {
        if let Said::Sent(line) = said {
            for s in &secrets {
                assert!(!line.contains(s.as_str()), "a credential in the transcript");
            }
        }
    }
    // Commands only (a body is dot-stuffed, with its own CRLFs): a line is never split.
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "a line without CRLF: {line:?}");
        assert!(!line[..line.len() - 2].contains(&b'\r'), "a bare CR");
    }
    // Line by line within each read, as the client feeds it (an error drops what the same
    // call completed, and the session ends there anyway).
    let feed = |chunks: &[&[u8]]| {
        let mut p = ReplyParser::default();
        let mut got = Vec::new();
        for c in chunks {
            for piece in c.split_inclusive(|&b| b == b'\n') {
                match p.feed(piece, |_| ()) {
                    Ok(r) => got.extend(r),
                    Err(e) => return (got, Some(e)),
                }
            }
        }
        (got, None)
    };
    let whole = feed(&[server]);
    for r in &whole.0 {
        assert!((200..600).contains(&r.code));
        assert!(r.lines.len() <= crate::smtp::replies::REPLY_LINES_MAX);
    }
    assert_eq!(whole, feed(&[&server[..split], &server[split..]]));
}

// ---------------------------------------------------------------------------------------------
// reply_extract: mail-parser, then the reply text rules

/// Arbitrary bytes as a received message, end to end (mail-parser → [`crate::replies::extract`]),
/// and as text through the HTML and plain-text rules directly. Beyond "no panic": the reply text
/// is never longer than the text it came from allows (no rule makes text out of nothing).
pub fn reply_extract(input: &[u8]) {
    use crate::replies::extract;
    let _ = extract::parse(input, "sender@example.test");
    let _ = extract::parse(input, "");
    let text = String::from_utf8_lossy(input);
    let plain = extract::reply_text(&text);
    assert!(plain.len() <= text.len() + 16, "reply text grew");
    let from_html = extract::html_to_text(&text);
    let _ = extract::reply_text(&from_html);
    let _ = extract::unflow(&text, true);
    let _ = extract::unflow(&text, false);
}

// ---------------------------------------------------------------------------------------------
// settings_file: the boot config file

/// Arbitrary text as the boot config file. Beyond "no panic": a file that is accepted gives a
/// document the validator accepts again, and importing its changes again changes nothing.
pub fn settings_file(input: &[u8]) {
    use crate::settings::{Profile, Settings};
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let base = Settings::defaults(Profile::Board);
    if let Ok((file, settings)) = crate::settings::parse_file(text, &base) {
        settings
            .validate()
            .expect("an accepted file gives valid settings");
        let mut again = settings.clone();
        again
            .update(&file.changes)
            .expect("the same changes apply again");
        // A password is hashed with a fresh salt each time it is set.
        again.console.password_hash = settings.console.password_hash.clone();
        assert_eq!(again, settings, "importing the file twice changed it");
    }
}

// ---------------------------------------------------------------------------------------------
// webhook_answer: what the application's webhook server answers

/// Arbitrary bytes as the webhook server's answer. Beyond "no panic": a connection is only kept
/// for a complete final answer, and a prefix of an answer is never judged complete differently
/// from the whole (a status found early stays the status).
pub fn webhook_answer(input: &[u8]) {
    use crate::replies::webhook::{reusable, status};
    let code = status(input);
    if let Some(c) = code {
        assert!((200..600).contains(&c));
    }
    if reusable(input) == Some(true) {
        assert!(code.is_some(), "kept a connection without a final status");
    }
    for cut in [input.len() / 3, input.len() / 2] {
        if let Some(early) = status(&input[..cut]) {
            assert_eq!(Some(early), code, "a longer answer changed its status");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dns_answer: what a DNS server (or anyone spoofing one) answers the diagnostics

/// Arbitrary bytes as the answer to query `id` (the first two bytes). Beyond "no panic": an
/// answer with another id is never taken, names come out lowercased without their final dot,
/// and no more records come out than the message has room for.
pub fn dns_answer(input: &[u8]) {
    use crate::dns::{Record, read_answer};
    if input.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([input[0], input[1]]);
    let msg = &input[2..];
    if let Ok(Some((_, records))) = read_answer(id, msg) {
        assert!(
            msg.len() >= 12 && msg[..2] == input[..2],
            "took an answer to another query"
        );
        // Each record takes at least 11 octets (a compressed name, type, class, TTL, length).
        assert!(
            records.len() <= msg.len() / 11 + 1,
            "more records than octets allow"
        );
        for r in records {
            if let Record::Mx { exchange: n, .. } | Record::Cname(n) = r {
                assert!(!n.ends_with('.') && n == n.to_ascii_lowercase(), "{n:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// http_request: what a client sends the console's HTTPS front or the control socket

/// Arbitrary bytes as a client's request. Beyond "no panic": a head is never found in a prefix of
/// the bytes it was found in (nor refused there), its fields carry no line break (nothing to
/// smuggle into the router), and a chunked body decodes the same fed whole or in two pieces.
pub fn http_request(input: &[u8]) {
    use crate::console::wire::{Chunked, Framing, Parsed, check_length, parse_head};
    let Parsed::Head(head, len) = parse_head(input) else {
        return;
    };
    assert!(len <= input.len(), "a head longer than the bytes");
    for cut in [len / 2, len.saturating_sub(1)] {
        assert!(
            matches!(parse_head(&input[..cut]), Parsed::Incomplete),
            "a prefix of a head was taken or refused"
        );
    }
    for (k, v) in &head.fields {
        assert!(
            !k.contains(['\r', '\n', ':']) && !v.contains(['\r', '\n']),
            "{k:?}: {v:?}"
        );
    }
    assert!(!head.method.is_empty() && !head.method.contains([' ', '\r', '\n']));
    if check_length(&head).is_err() || head.framing != Framing::Chunked {
        return;
    }
    let body = &input[len..];
    let decode = |pieces: &[&[u8]]| {
        let mut c = Chunked::new(&head);
        let mut buf: Vec<u8> = Vec::new();
        for p in pieces {
            buf.extend_from_slice(p);
            match c.feed(&buf, &head) {
                Ok((used, done)) => {
                    buf.drain(..used);
                    if done {
                        return Some(Ok(c.body));
                    }
                }
                Err(r) => return Some(Err(r.status)),
            }
        }
        None
    };
    let whole = decode(&[body]);
    let split = decode(&[&body[..body.len() / 2], &body[body.len() / 2..]]);
    if let (Some(w), Some(s)) = (&whole, &split) {
        assert_eq!(w, s, "a chunked body decoded differently in two pieces");
    }
}

#[cfg(test)]
mod tests {
    use super::TARGETS;
    use std::path::Path;

    /// Every kept input of every target: the seeds, the crashes a fuzzer found (kept under
    /// `fuzz/regressions/<target>/`, named after what they caught), and for `reply_extract`
    /// the reply fixtures too.
    #[test]
    fn every_kept_fuzz_input_replays_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut ran = 0;
        for (name, target) in TARGETS {
            let mut dirs = vec![
                root.join("fuzz/seeds").join(name),
                root.join("fuzz/regressions").join(name),
            ];
            if *name == "reply_extract" {
                dirs.push(root.join("tests/fixtures/replies"));
                dirs.push(root.join("tests/fixtures/replies/corpus"));
            }
            let mut seen = 0;
            for dir in dirs {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries {
                    let path = e.unwrap().path();
                    if path.is_dir() {
                        continue;
                    }
                    let bytes = std::fs::read(&path).unwrap();
                    let result = std::panic::catch_unwind(|| target(&bytes));
                    assert!(result.is_ok(), "{name}: {} fails", path.display());
                    seen += 1;
                }
            }
            assert!(seen > 0, "{name} has no kept inputs");
            ran += seen;
        }
        assert!(ran >= TARGETS.len());
    }
}
