//! What each line of a reply's body is: blank, quoted, an attribution, the header block or
//! separator of a quoted message, a signature delimiter, a client's line, the sender's text.
//! Most kinds show in the line itself; attributions, header blocks, `|` quotes, quoted lines
//! that lost their `>` by wrapping, and a quoted notification that lost all its marks need the
//! lines around them.

use super::{attribution, headers, markers};

/// What one line of the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blank,
    Quote,
    /// The first line of an attribution spanning `n` lines.
    Attribution(usize),
    /// A continuation line of an attribution.
    AttributionMore,
    /// The sender's text, then an attribution from byte `at` on ("ok On … wrote:").
    Glued(usize),
    /// The first line of a header block of a quoted message.
    Headers,
    /// `-----Original Message-----` and its kin.
    Separator,
    /// `-- ` (or `--`) alone: a signature follows.
    Signature,
    /// "Sent from my iPhone" and its kin.
    Client,
    /// A line of herald's own notification that reached us without quote marks.
    Notification,
    Text,
}

/// How long a quoted line must be for the unmarked line below it to be taken for the rest of it
/// (clients wrap near 72–78 columns).
const WRAPPED_QUOTE: usize = 55;

/// A line quoted with `>` (any depth, spaced or not), or Supercite's initials (`JD> `).
pub fn is_quote(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with('>') {
        return true;
    }
    // "JD> text": one to three letters, the first a capital, then `>`.
    let initials = t
        .char_indices()
        .take(4)
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .count();
    (1..=3).contains(&initials)
        && t.as_bytes()[0].is_ascii_uppercase()
        && t[initials..].starts_with('>')
        && t[initials + 1..].chars().next().is_none_or(|c| c == ' ')
}

/// The kind a line has on its own.
fn line_kind(line: &str) -> Kind {
    let t = line.trim();
    if t.is_empty() {
        Kind::Blank
    } else if is_quote(line) {
        Kind::Quote
    } else if t == "--" || line.trim_start() == "-- " || t.chars().all(|c| c == '—') {
        Kind::Signature
    } else if markers::is_separator(t) {
        Kind::Separator
    } else if markers::is_client_line(t) {
        Kind::Client
    } else {
        Kind::Text
    }
}

/// The content of a quoted line, without its marks.
fn quoted_content(line: &str) -> &str {
    line.trim_start_matches(['>', ' '])
}

/// The kinds of all lines.
pub fn classify(lines: &[&str]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = lines.iter().map(|l| line_kind(l)).collect();
    let next_non_blank =
        |kinds: &[Kind], from: usize| (from..kinds.len()).find(|&j| kinds[j] != Kind::Blank);
    let mut i = 0;
    while i < lines.len() {
        // Supercite's attribution is quoted itself: ">>>>> On …, Name said:" above `HN>` lines.
        if kinds[i] == Kind::Quote
            && let Some(rest) = lines[i].trim_start().strip_prefix(">>>>> ")
            && attribution::is_attribution(rest)
        {
            kinds[i] = Kind::Attribution(1);
        }
        if kinds[i] == Kind::Text && markers::is_underscore_rule(lines[i]) {
            // A rule of underscores is a separator above a header block, an attribution or a
            // list's footer; elsewhere it is the sender's own.
            if let Some(j) = next_non_blank(&kinds, i + 1)
                && (headers::field(lines[j]).is_some()
                    || markers::is_list_footer(lines[j])
                    || attribution_lines(lines, &kinds, j).is_some())
            {
                kinds[i] = Kind::Separator;
            }
            i += 1;
            continue;
        }
        if kinds[i] == Kind::Text {
            if let Some(at) = attribution::glued_at(lines[i]) {
                kinds[i] = Kind::Glued(at);
                i += 1;
                continue;
            }
            if let Some(n) = attribution_lines(lines, &kinds, i) {
                kinds[i] = Kind::Attribution(n);
                for k in &mut kinds[i + 1..i + n] {
                    *k = Kind::AttributionMore;
                }
                i += n;
                continue;
            }
            if headers::starts_block(lines, i) {
                kinds[i] = Kind::Headers;
            } else if attribution::is_bare_attribution(lines[i])
                && next_non_blank(&kinds, i + 1).is_some_and(|j| {
                    kinds[j] == Kind::Quote || lines[j].trim_start().starts_with('|')
                })
            {
                kinds[i] = Kind::Attribution(1);
            }
        }
        i += 1;
    }
    bar_quotes(lines, &mut kinds);
    wrapped_quotes(lines, &mut kinds);
    unmarked_notification(lines, &mut kinds);
    kinds
}

/// If an attribution starts at line `i`, how many lines it spans.
fn attribution_lines(lines: &[&str], kinds: &[Kind], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if first.len() > attribution::MAX_CHARS * 4 {
        return None;
    }
    let mut joined = String::new();
    let mut chars = 0;
    for n in 1..=attribution::MAX_LINES.min(lines.len() - i) {
        let line = lines[i + n - 1].trim();
        if n > 1 && kinds[i + n - 1] != Kind::Text {
            return None;
        }
        // A line that opens an attribution starts its own: the line above is the sender's.
        if n > 1 && attribution::opens(line) {
            return None;
        }
        if n == 2 && !attribution::may_continue(first) {
            return None;
        }
        if !joined.is_empty() && !joined.ends_with(['<', '(']) && !line.starts_with('>') {
            joined.push(' ');
            chars += 1;
        }
        joined.push_str(line);
        chars += line.chars().count();
        if chars > attribution::MAX_CHARS {
            return None;
        }
        if attribution::is_attribution(&joined) {
            return Some(n);
        }
    }
    None
}

/// A block of `| ` lines right below an attribution is a quote (some clients and list archives
/// quote so); a table (`| a | b |`) is not.
fn bar_quotes(lines: &[&str], kinds: &mut [Kind]) {
    let mut i = 0;
    while i < lines.len() {
        let after_attribution = matches!(
            kinds[i],
            Kind::Attribution(_) | Kind::AttributionMore | Kind::Glued(_)
        );
        if !after_attribution {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && matches!(kinds[j], Kind::AttributionMore | Kind::Blank) {
            j += 1;
        }
        let start = j;
        while j < lines.len() {
            let t = lines[j].trim();
            if kinds[j] == Kind::Text && t.starts_with('|') && !(t.len() > 1 && t.ends_with('|')) {
                j += 1;
            } else {
                break;
            }
        }
        for k in &mut kinds[start..j] {
            *k = Kind::Quote;
        }
        i = j.max(i + 1);
    }
}

/// A quoted line a client wrapped leaves its rest without `>` on the next line: a text line right
/// below a long quoted line that starts like the rest of a sentence (not a capital), or that is
/// the rest of a broken link, is part of the quote — not an answer to it.
fn wrapped_quotes(lines: &[&str], kinds: &mut [Kind]) {
    let mut continued = false;
    for i in 1..lines.len() {
        if kinds[i] != Kind::Text || kinds[i - 1] != Kind::Quote {
            continued = false;
            continue;
        }
        let above = quoted_content(lines[i - 1]);
        let t = lines[i].trim();
        let first = t.chars().next().unwrap_or(' ');
        let long_above = above.chars().count() >= WRAPPED_QUOTE || continued;
        let link_rest = (!t.contains(' ')
            && (above.contains("http") || above.contains("www."))
            && !above.ends_with(' '))
            || is_bracketed_link(t);
        let sentence_rest = long_above && !first.is_uppercase() && !first.is_whitespace();
        if link_rest || sentence_rest {
            kinds[i] = Kind::Quote;
            continued = true;
        } else {
            continued = false;
        }
    }
}

/// A line that is only a link in brackets, maybe with the quote's `>` wrapped behind it
/// (" (http://example.com/c/YzOTYzMmE) >": mailgun/talon `test_link_breaks_quotation_markers`).
fn is_bracketed_link(t: &str) -> bool {
    let t = t.trim_end_matches(['>', ' ']);
    let inner = t
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| t.strip_prefix('<').and_then(|r| r.strip_suffix('>')));
    inner.is_some_and(|l| {
        (l.starts_with("http://") || l.starts_with("https://") || l.starts_with("mailto:"))
            && !l.contains(' ')
    })
}

/// Herald's own notification, quoted without any mark: from an attribution down to the
/// notification's `-- ` and herald's footer line, every line is the notification's.
fn unmarked_notification(lines: &[&str], kinds: &mut [Kind]) {
    for f in 1..lines.len() {
        if !markers::is_herald_footer(lines[f]) || kinds[f - 1] != Kind::Signature {
            continue;
        }
        if lines[f].trim_start().starts_with('>') {
            continue;
        }
        kinds[f - 1] = Kind::Notification;
        kinds[f] = Kind::Notification;
        let attribution = (0..f - 1)
            .rev()
            .take_while(|&j| !matches!(kinds[j], Kind::Quote | Kind::Notification))
            .find(|&j| matches!(kinds[j], Kind::Attribution(_) | Kind::Glued(_)));
        if let Some(a) = attribution {
            for k in kinds[a + 1..f - 1].iter_mut() {
                if matches!(k, Kind::Text | Kind::Blank | Kind::Client) {
                    *k = Kind::Notification;
                }
            }
        }
    }
}
