//! The reply corpus (`tests/fixtures/replies/corpus/*.txt`, its format in the README there): each
//! case becomes a whole message, goes through [`parse`] and must give its expected text; then
//! every case, and every `.eml` one folder up, goes through the SMTP session machine read in two
//! pieces cut at each offset where a cut matters (around every line start of the message, the
//! CRLF, a dot to unstuff, the terminator), and what it stores must be the message, byte for
//! byte.

use super::extract::parse;
use crate::fuzzing::{stored_when_cut, transaction};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

const LANGS: &[&str] = &[
    "en", "de", "fr", "es", "it", "pt", "nl", "da", "sv", "nb", "fi", "pl", "cs", "hu", "ru", "uk",
    "tr", "vi", "ja", "zh", "ko", "xx",
];

/// One case of the corpus.
struct Case {
    name: String,
    file: String,
    lang: String,
    html: bool,
    body: String,
    expected: String,
}

impl Case {
    /// The message around the body (the README's "What the message around a body looks like").
    fn message(&self) -> Vec<u8> {
        let ctype = if self.html { "text/html" } else { "text/plain" };
        let mut m = format!(
            "From: Jane Doe <jane@example.com>\r\n\
             To: reply+i-42-0f3a9c2e5b7d4e1f8a6c0b9d2e4f6a8c-7@reply.herald.example\r\n\
             Subject: Re: [acme/app] Crash on start (#42)\r\n\
             Message-ID: <{}@corpus.example>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: {ctype}; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n",
            self.name
        );
        for line in self.body.split('\n') {
            m.push_str(line);
            m.push_str("\r\n");
        }
        m.into_bytes()
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies/corpus")
}

/// Reads one corpus file; a case that breaks the format fails the test with its place.
fn read_cases(path: &Path) -> Vec<Case> {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut cases = Vec::new();
    #[derive(PartialEq)]
    enum At {
        Between,
        Meta,
        Body,
        Expected,
    }
    let mut at = At::Between;
    let mut case: Option<(Case, bool)> = None;
    let mut body: Vec<&str> = Vec::new();
    let mut expected: Vec<&str> = Vec::new();
    let finish = |case: Option<(Case, bool)>,
                  body: &mut Vec<&str>,
                  expected: &mut Vec<&str>,
                  cases: &mut Vec<Case>| {
        if let Some((mut c, has_from)) = case {
            assert!(has_from, "{file}: {} has no from:", c.name);
            assert!(!c.lang.is_empty(), "{file}: {} has no lang:", c.name);
            while expected.last().is_some_and(|l| l.trim().is_empty()) {
                expected.pop();
            }
            assert!(
                !expected.is_empty(),
                "{file}: {} has no expected text",
                c.name
            );
            c.body = body.join("\n");
            c.expected = expected.join("\n");
            cases.push(c);
        }
        body.clear();
        expected.clear();
    };
    for (n, line) in text.split('\n').enumerate() {
        let place = format!("{file}:{}", n + 1);
        if let Some(name) = line.strip_prefix("=== ") {
            finish(case.take(), &mut body, &mut expected, &mut cases);
            let name = name.trim().to_owned();
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{place}: case names are lowercase words joined by '-': {name:?}"
            );
            let c = Case {
                name,
                file: file.clone(),
                lang: String::new(),
                html: false,
                body: String::new(),
                expected: String::new(),
            };
            case = Some((c, false));
            at = At::Meta;
            continue;
        }
        match at {
            At::Between => assert!(
                line.trim().is_empty() || line.starts_with('#'),
                "{place}: only comments and blank lines between cases"
            ),
            At::Meta => {
                let (c, has_from) = case.as_mut().unwrap();
                if line == "--- body" {
                    at = At::Body;
                } else if line.starts_with("from:") {
                    *has_from = line.len() > "from:".len();
                } else if line.starts_with("  ") && *has_from {
                } else if let Some(l) = line.strip_prefix("lang:") {
                    c.lang = l.trim().to_owned();
                    assert!(LANGS.contains(&c.lang.as_str()), "{place}: lang {l:?}");
                } else if let Some(t) = line.strip_prefix("type:") {
                    c.html = match t.trim() {
                        "text/html" => true,
                        "text/plain" => false,
                        other => panic!("{place}: type {other:?}"),
                    };
                } else {
                    panic!("{place}: expected from:, lang:, type: or --- body, got {line:?}");
                }
            }
            At::Body => {
                if line == "--- expected" {
                    at = At::Expected;
                } else {
                    body.push(line);
                }
            }
            At::Expected => expected.push(line),
        }
    }
    assert!(
        at != At::Meta && at != At::Body,
        "{file}: the last case is cut short"
    );
    finish(case, &mut body, &mut expected, &mut cases);
    cases
}

fn all_cases() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/fixtures/replies/corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let cases: Vec<Case> = files.iter().flat_map(|f| read_cases(f)).collect();
    let mut names = HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "{}: {} twice", c.file, c.name);
    }
    cases
}

fn outcome(raw: &[u8]) -> String {
    match parse(raw, "jane@example.com") {
        Ok(p) => match p.failure() {
            Some(class) => format!("failed:{class}"),
            None => p.text,
        },
        Err(e) => format!("unparseable: {e}"),
    }
}

#[test]
fn reply_corpus() {
    let cases = all_cases();
    assert!(
        cases.len() >= 200,
        "at least 200 cases, found {}",
        cases.len()
    );
    let mut by_lang: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in &cases {
        let got = outcome(&c.message());
        let entry = by_lang.entry(c.lang.as_str()).or_default();
        entry.1 += 1;
        if got == c.expected {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{} {}:\n--- got\n{got}\n--- want\n{}\n",
                c.file, c.name, c.expected
            ));
        }
    }
    let html = cases.iter().filter(|c| c.html).count();
    let figures: Vec<String> = by_lang
        .iter()
        .map(|(l, (ok, n))| format!("{l} {ok}/{n}"))
        .collect();
    eprintln!(
        "reply corpus: {}/{} passed ({html} HTML); {}",
        cases.len() - failures.len(),
        cases.len(),
        figures.join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The offsets of a transaction where reading it in two pieces could change what is stored:
/// before, at and after every line start of the DATA section (the CR and LF apart, a dot to
/// unstuff apart from its line), and every offset of the terminator and the line before it.
fn cuts_that_matter(t: &[u8], data: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    for i in data..t.len() {
        if t[i - 1] == b'\n' {
            cuts.extend([i - 1, i, i + 1]);
        }
    }
    let end = t.len() - b"QUIT\r\n".len();
    cuts.extend(end.saturating_sub(8)..end);
    cuts.retain(|&c| c > data && c < t.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn check_cuts(name: &str, message: &[u8]) -> usize {
    let mut want = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        want.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        want.extend_from_slice(b"\r\n");
    }
    let (t, data) = transaction(message);
    let cuts = cuts_that_matter(&t, data);
    for &cut in &cuts {
        let stored = stored_when_cut(&t, &[cut]);
        assert_eq!(
            stored.len(),
            1,
            "{name}: cut at {cut}: stored {}",
            stored.len()
        );
        assert!(
            stored[0] == want,
            "{name}: cut at {cut}: the stored message differs from what was sent"
        );
    }
    // All the cuts at once: a read per piece.
    let stored = stored_when_cut(&t, &cuts);
    assert!(
        stored.len() == 1 && stored[0] == want,
        "{name}: every cut at once"
    );
    cuts.len() + 1
}

#[test]
fn every_reply_survives_the_session_read_in_pieces() {
    let mut sessions = 0;
    let mut messages = 0;
    for c in all_cases() {
        sessions += check_cuts(&c.name, &c.message());
        messages += 1;
    }
    let dir = corpus_dir().parent().unwrap().to_path_buf();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "eml") {
            let raw = std::fs::read(&path).unwrap();
            sessions += check_cuts(&path.file_name().unwrap().to_string_lossy(), &raw);
            messages += 1;
        }
    }
    eprintln!("{messages} messages through the session machine, {sessions} sessions");
    assert!(messages >= 250);
}
