//! HTML to plain text, for replies that come without a text/plain part.
//!
//! Small and forgiving, not a browser: a single pass over the tags. `script`, `style`, `head`,
//! Gmail's and Thunderbird's signature blocks and Exchange's `messageReplySection` are dropped;
//! Outlook's `<div id="appendonsend">` / `divRplyFwdMsg`, Yahoo's `yahoo_quoted` and what follows
//! them are cut; `<blockquote>` (Gmail's `gmail_quote`, Apple Mail's and Thunderbird's
//! `type="cite"`) becomes `> ` lines, so the text rules in [`super::quotes`] treat an HTML quote
//! like a plain-text one: dropped when nothing new follows it, kept above an inline answer.
//! `br`, `p`, `div` and the other blocks become line breaks; entities are decoded.

/// Elements whose content is never text.
const RAW: &[&str] = &["script", "style", "title", "textarea"];
/// Elements without an end tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements that end a line.
const BLOCK: &[&str] = &[
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

/// The text of an HTML body.
pub fn html_to_text(html: &str) -> String {
    let mut out = Renderer::default();
    // (element, nesting) of a subtree being skipped.
    let mut skip: Option<(String, usize)> = None;
    // The open `<a href>`: its target and the text shown for it.
    let mut link: Option<(String, String)> = None;
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if !rest.starts_with('<') {
            let next = rest.find('<').map_or(html.len(), |p| i + p);
            if skip.is_none() {
                let text = decode_entities(&html[i..next]);
                if let Some((_, shown)) = link.as_mut() {
                    shown.push_str(&text);
                }
                out.text(&text);
            }
            i = next;
            continue;
        }
        if let Some(comment) = rest.strip_prefix("<!--") {
            i = comment.find("-->").map_or(html.len(), |p| i + 4 + p + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = rest.find('>').map_or(html.len(), |p| i + p + 1);
            continue;
        }
        let Some((tag, len)) = Tag::parse(rest) else {
            if skip.is_none() {
                out.text("<");
            }
            i += 1;
            continue;
        };
        i += len;
        if !tag.end && RAW.contains(&tag.name.as_str()) {
            // Skip to the end tag, whatever is in between.
            let close = format!("</{}", tag.name);
            i = find_ignore_case(&html[i..], &close).map_or(html.len(), |p| {
                i + p + html[i + p..].find('>').map_or(close.len(), |q| q + 1)
            });
            continue;
        }
        if let Some((name, depth)) = skip.as_mut() {
            if tag.name == "body" && name == "head" {
                skip = None;
            } else if tag.name == *name && !tag.self_closing {
                if tag.end {
                    *depth -= 1;
                    if *depth == 0 {
                        skip = None;
                    }
                } else {
                    *depth += 1;
                }
            }
            continue;
        }
        if !tag.end {
            if is_cut(&tag) {
                break;
            }
            if is_dropped(&tag) {
                if !tag.self_closing && !VOID.contains(&tag.name.as_str()) {
                    skip = Some((tag.name.clone(), 1));
                }
                continue;
            }
        }
        out.tag(&tag);
        match (tag.name.as_str(), tag.end) {
            ("a", false) => link = tag.attr("href").map(|h| (h.to_string(), String::new())),
            ("a", true) => {
                if let Some((href, shown)) = link.take()
                    && shows_target(&href, &shown)
                {
                    out.text(&format!(" <{href}>"));
                }
            }
            ("img", false) => {
                if let Some(alt) = tag.attr("alt").filter(|a| !a.trim().is_empty()) {
                    out.text(alt);
                }
            }
            _ => {}
        }
    }
    out.finish()
}

/// Whether a link's target should be written after its text: a web link whose text is not the
/// link itself.
fn shows_target(href: &str, shown: &str) -> bool {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    (href.starts_with("http://") || href.starts_with("https://"))
        && !shown.trim().is_empty()
        && bare(href) != bare(shown)
}

/// Markup after which everything is the quoted message.
fn is_cut(tag: &Tag) -> bool {
    let id = tag.attr("id").unwrap_or("").to_ascii_lowercase();
    let id = id.strip_prefix("x_").unwrap_or(&id);
    matches!(
        id,
        "appendonsend"
            | "divrplyfwdmsg"
            | "stopspelling"
            | "mail-editor-reference-message-container"
    ) || tag.has_class("yahoo_quoted")
        || tag.has_class("OutlookMessageHeader")
}

/// Markup whose content is not part of the reply.
fn is_dropped(tag: &Tag) -> bool {
    matches!(tag.name.as_str(), "head" | "template")
        || tag.has_class("gmail_signature")
        || tag.attr("data-smartmail") == Some("gmail_signature")
        || tag.has_class("moz-signature")
        || tag.attr("name") == Some("messageReplySection")
}

struct Tag {
    name: String,
    end: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    /// The tag at the start of `s` (which starts with `<`) and its length in bytes.
    fn parse(s: &str) -> Option<(Tag, usize)> {
        let b = s.as_bytes();
        let mut i = 1;
        let end = b.get(i) == Some(&b'/');
        if end {
            i += 1;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b':' | b'-' | b'_')) {
            i += 1;
        }
        if i == start || !b[start].is_ascii_alphabetic() {
            return None;
        }
        let name = s[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut self_closing = false;
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                None => return None,
                Some(b'>') => {
                    return Some((
                        Tag {
                            name,
                            end,
                            self_closing,
                            attrs,
                        },
                        i + 1,
                    ));
                }
                Some(b'/') => {
                    self_closing = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let a = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let key = s[a..i].to_ascii_lowercase();
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let close = s[i + 1..].find(q as char)? + i + 1;
                        value = decode_entities(&s[i + 1..close]);
                        i = close + 1;
                    }
                    _ => {
                        let v = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                        value = decode_entities(&s[v..i]);
                    }
                }
            }
            // An empty name is a stray `=` (the only byte that stops the name at once): it and
            // its value were stepped over above, so there is nothing more to skip. Stepping one
            // more byte here walked into the middle of a multi-byte character after `="v"`.
            if !key.is_empty() {
                attrs.push((key, value));
            }
        }
    }

    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c.eq_ignore_ascii_case(class)))
    }
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (0..h.len().saturating_sub(n.len() - 1)).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Builds the text line by line; each line remembers how deep in `<blockquote>` it started.
#[derive(Default)]
struct Renderer {
    lines: Vec<(usize, String)>,
    line: String,
    line_depth: usize,
    depth: usize,
    pre: usize,
    /// A space is owed before the next word.
    space: bool,
    /// Before the next text: 1 a line break, 2 a blank line.
    pending: u8,
}

impl Renderer {
    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if name == "br" {
            self.start_line();
            self.end_line();
        } else if PARAGRAPH.contains(&name) {
            self.block(2);
            match (name, tag.end) {
                ("blockquote", false) => self.depth += 1,
                ("blockquote", true) => self.depth = self.depth.saturating_sub(1),
                ("pre", false) => self.pre += 1,
                ("pre", true) => self.pre = self.pre.saturating_sub(1),
                _ => {}
            }
        } else if BLOCK.contains(&name) {
            self.block(1);
            if name == "li" && !tag.end {
                self.text("- ");
            }
        } else if matches!(name, "td" | "th") && tag.end {
            self.space = true;
        }
    }

    fn text(&mut self, s: &str) {
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

    fn finish(mut self) -> String {
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

/// `&amp;`, `&#233;`, `&#xE9;` and the named entities mail uses.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let decoded = rest[1..].find(';').filter(|&e| e <= 32).and_then(|e| {
            let name = &rest[1..1 + e];
            let c = if let Some(num) = name.strip_prefix('#') {
                let n = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                n.and_then(char::from_u32)
            } else {
                named_entity(name)
            };
            c.map(|c| (c, e + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "zwnj" | "zwj" => '\u{200c}',
        "shy" => '\u{ad}',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "iexcl" => '¡',
        "iquest" => '¿',
        "szlig" => 'ß',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "aacute" => 'á',
        "eacute" => 'é',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "Eacute" => 'É',
        "agrave" => 'à',
        "egrave" => 'è',
        "ugrave" => 'ù',
        "acirc" => 'â',
        "ecirc" => 'ê',
        "icirc" => 'î',
        "ocirc" => 'ô',
        "ucirc" => 'û',
        "ccedil" => 'ç',
        "Ccedil" => 'Ç',
        "ntilde" => 'ñ',
        "Ntilde" => 'Ñ',
        "euml" => 'ë',
        "iuml" => 'ï',
        "oslash" => 'ø',
        "aring" => 'å',
        "aelig" => 'æ',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `<p ="v"é>` stepped a byte index into the `é` and panicked, which with
    /// `panic = "abort"` took the whole service down, again at every boot.
    #[test]
    fn an_empty_attribute_name_before_a_multibyte_character_does_not_panic() {
        assert_eq!(html_to_text("<p =\"v\"é>text</p>"), "text");
        // The class: every tag shape with a multi-byte character put at every place in it.
        let shapes = [
            "<p =\"v\"#>x",
            "<p =#>x",
            "<p a=#>x",
            "<p a='#'#>x",
            "<p #=v>x",
            "<p = =#>x",
            "<p/#>x",
            "<#p>x",
            "</p#>x",
            "<a href=#>x</a>",
            "<p a= #",
            "<p \"#\">x",
            "<!#>x",
            "<p ='#",
        ];
        for shape in shapes {
            for c in ["é", "日", "\u{1F600}", "\u{80}"] {
                let html = shape.replace('#', c);
                for cut in (0..=html.len()).filter(|&i| html.is_char_boundary(i)) {
                    let _ = html_to_text(&html[..cut]);
                }
            }
        }
    }

    #[test]
    fn blocks_breaks_and_entities() {
        let html = "<html><head><title>x</title><style>p{}</style></head><body>\
                    <div dir=\"ltr\">Caf&eacute; &amp; <b>bar</b>&#33;<div><br></div><div>next&nbsp;line</div>\
                    <p>para</p><p>two</p><script>alert(1)</script></div></body></html>";
        assert_eq!(
            html_to_text(html),
            "Café & bar!\n\nnext line\n\npara\n\ntwo"
        );
    }

    #[test]
    fn blockquotes_become_quote_lines() {
        let html = "<div>Reply</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, A &lt;a@b.c&gt; wrote:<br></div>\
                    <blockquote class=\"gmail_quote\"><div>Old</div><blockquote>older</blockquote></blockquote></div>";
        assert_eq!(
            html_to_text(html),
            "Reply\nOn Mon, A <a@b.c> wrote:\n\n> Old\n>\n>> older"
        );
    }

    #[test]
    fn outlook_markers_cut_and_signatures_drop() {
        let html = "<div>Yes.</div><div class=\"gmail_signature\"><div>-- <br>Me</div></div>\
                    <div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\"><b>From:</b> x</div><div>old</div>";
        assert_eq!(html_to_text(html), "Yes.");
    }

    #[test]
    fn links_show_their_target_when_it_differs() {
        assert_eq!(
            html_to_text(
                "see <a href=\"https://example.com/x\">this</a> and <a href=\"http://example.com\">http://example.com</a>"
            ),
            "see this <https://example.com/x> and http://example.com"
        );
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for s in [
            "<",
            "<a",
            "<a href=\"x",
            "a < b",
            "<div",
            "&",
            "&#xZZ;",
            "&#99999999;",
            "<pre>\n</pre",
            "<blockquote>",
        ] {
            let _ = html_to_text(s);
        }
        assert_eq!(html_to_text("a < b"), "a < b");
    }
}
