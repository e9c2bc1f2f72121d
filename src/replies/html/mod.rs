//! HTML to plain text, for replies that come without a text/plain part.
//!
//! Small and forgiving, not a browser: a single pass over the tags. `script`, `style`, `head`,
//! Gmail's and Thunderbird's signature blocks and Exchange's `messageReplySection` are dropped;
//! Outlook's `<div id="appendonsend">` / `divRplyFwdMsg`, Yahoo's `yahoo_quoted` and what follows
//! them are cut; `<blockquote>` (Gmail's `gmail_quote`, Apple Mail's and Thunderbird's
//! `type="cite"`) becomes `> ` lines, so the text rules in [`super::text`] treat an HTML quote
//! like a plain-text one: dropped when nothing new follows it, kept above an inline answer.
//! `br`, `p`, `div` and the other blocks become line breaks; entities are decoded.

mod markup;
mod render;

use markup::{Tag, find_ignore_case};
use render::Renderer;

pub use markup::decode_entities;

/// Elements whose content is never text.
const RAW: &[&str] = &["script", "style", "title", "textarea"];
/// Elements without an end tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
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
