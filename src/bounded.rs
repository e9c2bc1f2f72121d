//! Bounded copies of what peers send. Anything herald copies out of a message or a server's
//! answer into a record, a log line or an error (a subject, an auto-reply's header, a panic's
//! text, a webhook's answer) is cut to a named size here, so one message cannot make a record
//! or a listing of them large.

/// A header field's value as herald keeps it: a header line's length (RFC 5322 §2.1.1).
pub const FIELD_MAX: usize = 998;
/// An error or reason kept on a record (`last_error`).
pub const ERROR_MAX: usize = 512;

/// `s` cut to at most `max` bytes at a character boundary, with `…` where it was cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_character_boundary_and_marks_the_cut() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("abcdefghij", 8), "abcde…");
        assert!(bounded("abcdefghij", 8).len() <= 8);
        let jp = "日本語のテキスト";
        let cut = bounded(jp, 10);
        assert!(cut.len() <= 10 && cut.ends_with('…'), "{cut}");
        assert_eq!(bounded(&"x".repeat(3_000_000), ERROR_MAX).len(), ERROR_MAX);
    }
}
