//! The byte-level receivers of the SMTP server, one per mode (after Stalwart's smtp-proto):
//! command lines into a bounded buffer, the rest of an overlong line drained, and DATA with exact
//! dot-unstuffing where only `CRLF.CRLF` ends the message. Each takes bytes and says how many it
//! used, so the caller can switch modes in the middle of a read.

use super::proto::LINE_BUFFER;

/// What the line receiver found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line ending in CRLF; the CRLF is not included.
    Complete(Vec<u8>),
    /// A line ending in a bare LF: refused (a command must end in CRLF).
    BareLf,
    /// The line outgrew the buffer; the caller must drain the rest with [`drain_line`].
    TooLong,
}

/// Collects one command line; memory is bounded by construction ([`LINE_BUFFER`] octets).
#[derive(Default)]
pub struct LineReceiver {
    buf: heapless::Vec<u8, LINE_BUFFER>,
}

impl LineReceiver {
    /// Feeds bytes; returns how many were consumed and a line if one ended.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                let line = if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                    Line::Complete(self.buf.to_vec())
                } else {
                    Line::BareLf
                };
                self.buf.clear();
                return (i + 1, Some(line));
            }
            if self.buf.push(b).is_err() {
                self.buf.clear();
                return (i, Some(Line::TooLong));
            }
        }
        (input.len(), None)
    }

    /// Forgets a partial line (after STARTTLS: nothing sent before it survives).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Drains the rest of an overlong line: returns how many bytes were used and whether the LF that
/// ends it was seen.
pub fn drain_line(input: &[u8]) -> (usize, bool) {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => (i + 1, true),
        None => (input.len(), false),
    }
}

/// Where the DATA receiver is within a line. It starts at `LineStart`, as if a CRLF had just been
/// seen, so a `.` on the first body line is handled like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// After CRLF (or at the start of DATA).
    LineStart,
    /// Inside a line.
    Middle,
    /// After a CR inside a line: a LF now ends the line.
    Cr,
    /// After a `.` at the start of a line (held back).
    Dot,
    /// After `.` CR at the start of a line (both held back): a LF now ends DATA.
    DotCr,
}

/// The DATA receiver. Stores the unstuffed message up to `limit` octets; past that it keeps
/// reading to the end of DATA but stores nothing more, and says so.
#[derive(Debug)]
pub struct DataReceiver {
    pos: Pos,
    limit: usize,
    body: Vec<u8>,
    /// Octets of message seen (stored or not).
    seen: u64,
}

impl DataReceiver {
    pub fn new(limit: usize) -> DataReceiver {
        DataReceiver {
            pos: Pos::LineStart,
            limit,
            body: Vec::new(),
            seen: 0,
        }
    }

    fn emit(&mut self, b: u8) {
        self.seen += 1;
        if self.body.len() < self.limit {
            self.body.push(b);
        }
    }

    /// [`DataReceiver::emit`] for a run of bytes inside a line.
    fn emit_run(&mut self, run: &[u8]) {
        self.seen += run.len() as u64;
        let room = self.limit.saturating_sub(self.body.len());
        self.body.extend_from_slice(&run[..run.len().min(room)]);
    }

    /// Feeds bytes; returns how many were consumed and whether `CRLF.CRLF` was seen (the bytes
    /// after it belong to the next command).
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.pos == Pos::Middle {
                // Inside a line only a CR can change anything: what comes before it is data as
                // it is, taken in one go (most of a message's bytes).
                let run = memchr::memchr(b'\r', &input[i..]).unwrap_or(input.len() - i);
                self.emit_run(&input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            self.pos = match (self.pos, b) {
                (Pos::LineStart, b'.') => Pos::Dot,
                (Pos::LineStart | Pos::Middle | Pos::Cr, b'\r') => {
                    self.emit(b);
                    Pos::Cr
                }
                (Pos::Cr, b'\n') => {
                    self.emit(b);
                    Pos::LineStart
                }
                (Pos::LineStart | Pos::Middle | Pos::Cr, _) => {
                    self.emit(b);
                    Pos::Middle
                }
                // RFC 5321 §4.5.2: a leading dot followed by more on the line is removed.
                (Pos::Dot, b'\r') => Pos::DotCr,
                (Pos::Dot, _) => {
                    self.emit(b);
                    Pos::Middle
                }
                (Pos::DotCr, b'\n') => return (i, true),
                (Pos::DotCr, _) => {
                    // `.` CR x: the dot goes, the CR is data, and x is read after a CR.
                    self.emit(b'\r');
                    if b == b'\r' {
                        self.emit(b);
                        Pos::Cr
                    } else {
                        self.emit(b);
                        Pos::Middle
                    }
                }
            };
        }
        (input.len(), false)
    }

    /// True once the message outgrew the limit.
    pub fn overflowed(&self) -> bool {
        self.seen > self.limit as u64
    }

    /// Octets stored so far.
    pub fn stored(&self) -> usize {
        self.body.len()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes the body may hold without growing (what its budget reservation must cover).
    pub fn capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Makes room for `to` bytes of body in all, exactly: the caller has reserved them from the
    /// memory budget, and the body never grows past it by itself (a `Vec` doubling on its own
    /// held up to twice what was counted).
    pub fn grow_capacity(&mut self, to: usize) {
        let to = to.min(self.limit);
        if to > self.body.capacity() {
            self.body.reserve_exact(to - self.body.len());
        }
    }

    /// Stores nothing more (the memory budget ran out); the rest is read and dropped.
    pub fn stop_storing(&mut self) {
        self.limit = self.body.len();
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every offset (and byte by byte); all must agree.
    fn data_all_splits(input: &[u8]) -> Vec<(Vec<u8>, Option<usize>)> {
        let mut results = Vec::new();
        let run = |chunks: &[&[u8]]| {
            let mut r = DataReceiver::new(1 << 20);
            let mut used = 0;
            for c in chunks {
                let (n, done) = r.feed(c);
                used += n;
                if done {
                    return (r.into_body(), Some(used));
                }
            }
            (r.into_body(), None)
        };
        for split in 0..=input.len() {
            results.push(run(&[&input[..split], &input[split..]]));
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        results.push(run(&bytes));
        results
    }

    fn data(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let all = data_all_splits(input);
        for r in &all {
            assert_eq!(
                r,
                &all[0],
                "split-dependent result for {:?}",
                String::from_utf8_lossy(input)
            );
        }
        all[0].clone()
    }

    #[test]
    fn ends_only_on_crlf_dot_crlf() {
        assert_eq!(data(b"Hi\r\n.\r\n"), (b"Hi\r\n".to_vec(), Some(7)));
        assert_eq!(data(b".\r\n"), (b"".to_vec(), Some(3)), "empty message");
        assert_eq!(
            data(b"a\r\n.\r\nMAIL FROM:<x>\r\n"),
            (b"a\r\n".to_vec(), Some(6))
        );
        // SMTP smuggling variants: none of these ends the data.
        for evil in [
            &b"a\n.\n"[..],
            b"a\r\n.\n",
            b"a\n.\r\n",
            b"a\r.\r",
            b"a\r.\r\n",
            b"a\r\n.\r",
            b"a\r\n\x00.\r\n",
            b"a\r\n.\x00\r\n",
            b"a\r\n .\r\n",
        ] {
            let (_, end) = data(evil);
            assert_eq!(end, None, "{:?} ended DATA", String::from_utf8_lossy(evil));
        }
    }

    #[test]
    fn dot_unstuffing_is_exact() {
        assert_eq!(data(b"..x\r\n.\r\n").0, b".x\r\n");
        assert_eq!(data(b"a\r\n..\r\n.\r\n").0, b"a\r\n.\r\n");
        assert_eq!(data(b"a\r\n...\r\n.\r\n").0, b"a\r\n..\r\n");
        assert_eq!(
            data(b".x\r\n.\r\n").0,
            b"x\r\n",
            "a lone leading dot is removed"
        );
        assert_eq!(data(b"a\r\n.\rb\r\n.\r\n").0, b"a\r\n\rb\r\n");
        assert_eq!(data(b"a\r\n.\r\rb\r\n.\r\n").0, b"a\r\n\r\rb\r\n");
        assert_eq!(
            data(b"a.b\r\n.\r\n").0,
            b"a.b\r\n",
            "dots inside a line stay"
        );
        assert_eq!(
            data(b"a\n.b\r\n.\r\n").0,
            b"a\n.b\r\n",
            "bare LF does not start a line"
        );
    }

    #[test]
    fn overflow_keeps_reading_to_the_end() {
        let mut r = DataReceiver::new(4);
        let (n, done) = r.feed(b"0123456789\r\n.\r\nQUIT\r\n");
        assert!(done);
        assert_eq!(n, 15);
        assert!(r.overflowed());
        assert_eq!(r.into_body(), b"0123");
        let mut r = DataReceiver::new(4);
        r.feed(b"01\r\n.\r\n");
        assert!(!r.overflowed());
    }

    #[test]
    fn lines() {
        let mut r = LineReceiver::default();
        assert_eq!(
            r.feed(b"EHLO x\r\nMAIL"),
            (8, Some(Line::Complete(b"EHLO x".to_vec())))
        );
        assert_eq!(r.feed(b"MAIL"), (4, None));
        assert_eq!(
            r.feed(b" FROM:<>\r\n"),
            (10, Some(Line::Complete(b"MAIL FROM:<>".to_vec())))
        );
        assert_eq!(r.feed(b"NOOP\n"), (5, Some(Line::BareLf)));
        assert_eq!(r.feed(b"\r\n"), (2, Some(Line::Complete(vec![]))));
        let long = vec![b'A'; LINE_BUFFER + 10];
        assert_eq!(r.feed(&long), (LINE_BUFFER, Some(Line::TooLong)));
        assert!(r.is_empty());
        assert_eq!(drain_line(b"AAAA\r\nNOOP\r\n"), (6, true));
        assert_eq!(drain_line(b"AAAA"), (4, false));
    }
}
