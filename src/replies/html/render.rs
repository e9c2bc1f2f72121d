//! The text an HTML body reads as, built line by line from the walk's tags and text: blocks and
//! breaks as line breaks, paragraphs set off by a blank line, list items as `- ` or `1. `, and
//! `<blockquote>` depth as `> ` marks, so the text rules see an HTML quote as a plain-text one.

use super::markup::Tag;

/// Elements that end a line.
pub const BLOCK: &[&str] = &[
    "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset", "figure",
    "footer", "form", "header", "hr", "li", "main", "nav", "section", "table", "tbody", "thead",
    "tfoot", "tr",
];
/// Elements set off by a blank line.
const PARAGRAPH: &[&str] = &[
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ol",
    "p",
    "pre",
    "ul",
];

/// Builds the text line by line; each line remembers how deep in `<blockquote>` it started.
#[derive(Default)]
pub struct Renderer {
    lines: Vec<(usize, String)>,
    line: String,
    line_depth: usize,
    depth: usize,
    pre: usize,
    /// A space is owed before the next word.
    space: bool,
    /// Before the next text: 1 a line break, 2 a blank line.
    pending: u8,
    /// The lists open: `None` for `<ul>`, the next item's number for `<ol>`.
    lists: Vec<Option<u64>>,
    /// Characters written so far, and how many there were when the innermost `<div>` or `<p>`
    /// opened: a block with only whitespace in it (Yandex's `<div> </div>`, `<p>&nbsp;</p>`) is
    /// an empty line, as the sender saw it.
    written: usize,
    block_start: Option<usize>,
}

/// The most list items numbered (the number after it is the list's again).
const LIST_ITEMS_MAX: u64 = 1 << 20;

impl Renderer {
    pub fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if name == "br" {
            self.start_line();
            self.end_line();
        } else if PARAGRAPH.contains(&name) {
            self.empty_block(tag);
            self.block(2);
            match (name, tag.end) {
                ("ul", false) => self.lists.push(None),
                ("ol", false) => {
                    let start = tag.attr("start").and_then(|s| s.trim().parse().ok());
                    self.lists
                        .push(Some(start.unwrap_or(1).min(LIST_ITEMS_MAX)));
                }
                ("ul" | "ol", true) => {
                    self.lists.pop();
                }
                ("blockquote", false) => self.depth += 1,
                ("blockquote", true) => self.depth = self.depth.saturating_sub(1),
                ("pre", false) => self.pre += 1,
                ("pre", true) => self.pre = self.pre.saturating_sub(1),
                _ => {}
            }
        } else if BLOCK.contains(&name) {
            self.empty_block(tag);
            self.block(1);
            if name == "li" && !tag.end {
                match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let item = format!("{n}. ");
                        *n = (*n + 1).min(LIST_ITEMS_MAX);
                        self.text(&item);
                    }
                    _ => self.text("- "),
                }
            }
        } else if matches!(name, "td" | "th") && tag.end {
            self.space = true;
        }
    }

    /// At a `<div>` or `<p>`: where it opened; at its end, an empty line if only whitespace
    /// was in it.
    fn empty_block(&mut self, tag: &Tag) {
        if !matches!(tag.name.as_str(), "div" | "p") {
            self.block_start = None;
            return;
        }
        if !tag.end {
            self.block_start = Some(self.written);
            self.space = false;
        } else if self.block_start == Some(self.written) && self.space {
            self.block_start = None;
            self.start_line();
            self.end_line();
        }
    }

    pub fn text(&mut self, s: &str) {
        self.written += s.chars().filter(|c| !c.is_whitespace()).count();
        if self.pre > 0 {
            for (n, part) in s.split('\n').enumerate() {
                if n > 0 {
                    self.start_line();
                    self.end_line();
                }
                if !part.is_empty() {
                    self.start_line();
                    self.line.push_str(part.trim_end_matches('\r'));
                }
            }
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.space = true;
                continue;
            }
            self.start_line();
            if self.space && !self.line.is_empty() && !self.line.ends_with(' ') {
                self.line.push(' ');
            }
            self.space = false;
            self.line.push(c);
        }
    }

    /// Before the first character of a line: owed line breaks, and the line's quote depth.
    fn start_line(&mut self) {
        if !self.line.is_empty() {
            return;
        }
        if self.pending == 2 && self.lines.last().is_some_and(|(_, l)| !l.is_empty()) {
            let depth = self.lines.last().map_or(0, |(d, _)| *d).min(self.depth);
            self.lines.push((depth, String::new()));
        }
        self.pending = 0;
        self.line_depth = self.depth;
    }

    fn end_line(&mut self) {
        self.lines
            .push((self.line_depth, std::mem::take(&mut self.line)));
        self.space = false;
    }

    fn block(&mut self, pending: u8) {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.space = false;
        self.pending = self.pending.max(pending);
    }

    pub fn finish(mut self) -> String {
        if !self.line.is_empty() {
            self.end_line();
        }
        let mut out = String::new();
        let mut blank = true;
        for (depth, line) in &self.lines {
            let line = line.trim_end();
            if line.is_empty() && blank {
                continue;
            }
            blank = line.is_empty();
            for _ in 0..*depth {
                out.push('>');
            }
            if *depth > 0 && !line.is_empty() {
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }
}
