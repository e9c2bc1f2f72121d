//! The text rules of reply extraction: given the decoded plain-text body of a reply, keep what
//! the sender wrote and drop the quoted notification and the signature.
//!
//! The body is cleaned first (CRLF, the invisible marks clients add: zero-width spaces, Gmail's
//! `ᐧ`, no-break spaces at line ends), then each line is classified ([`lines`]: blank, quote,
//! attribution, header block, separator, signature, client line, herald's own notification
//! without marks, text), then:
//!
//! 1. everything from the first header block, separator or `-- ` signature on is cut;
//! 2. an attribution followed by a quote that has new text after it (an inline reply, or a reply
//!    below the quote) loses only its own line: the quote stays, so an inline answer is never
//!    taken for blank; an attribution followed by nothing but quotes, or by unquoted text (a
//!    quoted message without `>` marks), cuts the rest; text glued before an attribution on its
//!    line stays;
//! 3. client lines ("Sent from my iPhone") go, where they stand alone or end the text;
//! 4. quotes and blank lines after the last new text are dropped, and a closing `-Name` line;
//! 5. no reply is lost: when these rules leave nothing but the body has text of the sender's
//!    (a reply written below an unmarked quote, below a separator), that text is the reply,
//!    without what can be told apart as quoted.
//!
//! Every rule is linear in the size of the body (a line is looked at a bounded number of times,
//! attributions over at most three lines, header blocks over at most ten).

mod attribution;
mod headers;
mod lines;
mod markers;
#[cfg(test)]
mod tests;

use lines::Kind;

/// The reply text of a plain-text body: what is above the quoted notification and the signature,
/// with inline quotes that sit above new text kept. Empty when the sender wrote nothing.
pub fn reply_text(body: &str) -> String {
    let body = clean(body);
    let lines: Vec<&str> = body.split('\n').collect();
    let kinds = lines::classify(&lines);
    let text = rules(&lines, &kinds);
    if !text.is_empty() {
        return text;
    }
    fallback(&lines, &kinds)
}

/// Invisible characters clients add, which no reader wants in a comment.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}' | '\u{1427}'
    )
}

/// CRLF and CR to LF; invisible marks out; whitespace at line ends (no-break spaces too) out,
/// but the space of a `-- ` delimiter kept.
fn clean(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        for part in line.split('\r') {
            let kept: String = part.chars().filter(|&c| !is_invisible(c)).collect();
            if kept == "-- " {
                out.push_str("-- ");
            } else {
                out.push_str(kept.trim_end());
            }
            out.push('\n');
        }
    }
    out.pop();
    out
}

fn is_boundary(k: Kind) -> bool {
    matches!(k, Kind::Headers | Kind::Separator | Kind::Signature)
}

/// A line of only rule characters (`-`, `_`, `=`, `*`), four or more.
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 4 && t.chars().all(|c| matches!(c, '-' | '_' | '=' | '*'))
}

/// The last paragraph being just `-Name` (a dash, then a word: not a `- ` bullet).
fn is_dash_signoff(line: &str) -> bool {
    let t = line.trim();
    let mut chars = t.chars();
    chars.next() == Some('-')
        && chars.next().is_some_and(char::is_alphabetic)
        && t.split_whitespace().count() <= 3
}

/// Rules 1 to 4.
fn rules(lines: &[&str], kinds: &[Kind]) -> String {
    let mut keep = vec![true; lines.len()];
    // The text of a line an attribution is glued to: up to the attribution.
    let mut cut_at: Vec<Option<usize>> = vec![None; lines.len()];

    // 1. Hard boundaries; a client line standing alone ends the sender's text too (what
    // follows it is the quoted message, marked or not).
    let alone = |i: usize| i == 0 || kinds[i - 1] == Kind::Blank;
    let mut end = (0..lines.len())
        .find(|&i| is_boundary(kinds[i]) || (kinds[i] == Kind::Client && alone(i)))
        .unwrap_or(lines.len());
    if end < lines.len() {
        // The rule or blank lines a header block or separator sits under go with it.
        while end > 0 && (kinds[end - 1] == Kind::Blank || is_rule(lines[end - 1])) {
            end -= 1;
        }
    }

    // 2. Attributions, and herald's unmarked notification.
    let mut i = 0;
    while i < end {
        if kinds[i] == Kind::Notification {
            keep[i] = false;
            i += 1;
            continue;
        }
        let n = match kinds[i] {
            Kind::Attribution(n) => n,
            Kind::Glued(at) => {
                cut_at[i] = Some(at);
                1
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let glued = matches!(kinds[i], Kind::Glued(_));
        let after = i + n;
        let first = (after..end).find(|&j| !matches!(kinds[j], Kind::Blank | Kind::Notification));
        match first {
            Some(j) if kinds[j] == Kind::Quote => {
                let mut m = j;
                while m < end && matches!(kinds[m], Kind::Quote | Kind::Blank | Kind::Client) {
                    m += 1;
                }
                if m < end {
                    // Something follows the quote: an inline reply, or one below the quote.
                    // Only the attribution goes (with the blank lines below it).
                    let from = if glued { i + 1 } else { i };
                    keep[from..j].iter_mut().for_each(|k| *k = false);
                    i = m;
                } else {
                    end = if glued { i + 1 } else { i };
                    break;
                }
            }
            // Herald's own notification without marks: the text below it is the reply.
            Some(j) if kinds[after..j].contains(&Kind::Notification) => {
                let from = if glued { i + 1 } else { i };
                keep[from..j].iter_mut().for_each(|k| *k = false);
                i = j;
            }
            // Nothing after it, or the quoted message without `>` marks.
            _ => {
                end = if glued { i + 1 } else { i };
                break;
            }
        }
    }

    // A quote that only a sign-off follows, below text of the sender's, is not answered: it
    // goes, the sign-off stays ("Test reply / > Test / Regards, Roman").
    if let Some(q) = (0..end).rev().find(|&j| keep[j] && kinds[j] == Kind::Quote) {
        let after = &lines[q + 1..end];
        let mut top = q;
        while top > 0 && keep[top - 1] && matches!(kinds[top - 1], Kind::Quote | Kind::Blank) {
            top -= 1;
        }
        let text_above = (0..top).any(|j| keep[j] && kinds[j] == Kind::Text);
        if text_above && markers::is_signoff(after) {
            keep[top..=q].iter_mut().for_each(|k| *k = false);
        }
    }

    // 3. Client lines that stand alone or end the text.
    let last_text = (0..end).rev().find(|&j| keep[j] && kinds[j] == Kind::Text);
    for i in 0..end {
        if kinds[i] == Kind::Client {
            let above = i == 0 || kinds[i - 1] == Kind::Blank || !keep[i - 1];
            let below = i + 1 >= end || kinds[i + 1] == Kind::Blank;
            let last = last_text.is_none_or(|t| t < i);
            if (above && below) || last {
                keep[i] = false;
            }
        }
    }

    // 4. Trailing quotes and blanks, and a closing `-Name` sign-off.
    loop {
        while end > 0
            && cut_at[end - 1].is_none()
            && (!keep[end - 1] || matches!(kinds[end - 1], Kind::Blank | Kind::Quote))
        {
            end -= 1;
        }
        let start = (0..end)
            .rev()
            .find(|&j| kinds[j] == Kind::Blank)
            .map_or(0, |j| j + 1);
        if start < end && start > 0 && end - start == 1 && is_dash_signoff(lines[start]) {
            end = start;
            continue;
        }
        break;
    }

    let mut out = String::new();
    // Where lines were taken out, the blank lines on either side read as one.
    let mut dropped = false;
    for j in 0..end {
        if !keep[j] {
            dropped = true;
            continue;
        }
        let line = match cut_at[j] {
            Some(at) => &lines[j][..at],
            None => lines[j],
        };
        if dropped && line.trim().is_empty() && out.ends_with("\n\n") {
            continue;
        }
        if !line.trim().is_empty() {
            dropped = false;
        }
        push_line(&mut out, line);
    }
    finish(out)
}

fn push_line(out: &mut String, line: &str) {
    if out.is_empty() && line.trim().is_empty() {
        return;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Blank lines at the end out.
fn finish(mut out: String) -> String {
    out.truncate(out.trim_end().len());
    out
}

/// Rule 5: the sender's text when the rules left nothing: every line that is not quoted, not an
/// attribution, not herald's notification and not a client line, up to the first signature.
/// What stands below a separator or a header block is the quoted message's (a forward without
/// a word of the sender's stays empty), unless herald's footer ends it.
fn fallback(lines: &[&str], kinds: &[Kind]) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for (j, line) in lines.iter().enumerate() {
        match kinds[j] {
            Kind::Signature => break,
            Kind::Headers | Kind::Separator => quoted = true,
            Kind::Notification => quoted = false,
            Kind::Blank | Kind::Text if !quoted => push_line(&mut out, line),
            Kind::Glued(at) if !quoted => push_line(&mut out, &line[..at]),
            _ => {}
        }
    }
    finish(out)
}
