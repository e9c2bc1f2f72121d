//! The rules on their own; the corpus in `tests/fixtures/replies` checks them on whole messages.

use super::reply_text;

#[test]
fn wrapped_attribution_is_not_glued_to_the_sentence_above() {
    let body = "I will try.\nget back to a computer\nOn Dec 8, 2013 2:10 PM, \"J\" <n@github.com> wrote:\n\n> q\n";
    assert_eq!(reply_text(body), "I will try.\nget back to a computer");
}

#[test]
fn only_a_quote_is_empty() {
    assert_eq!(
        reply_text("On Mon, Jan 1, 2024 at 9:00 AM, A <a@b.c> wrote:\n> hello\n>\n"),
        ""
    );
    assert_eq!(reply_text("\n\n> hello\n"), "");
    assert_eq!(reply_text(""), "");
}

#[test]
fn text_glued_to_an_attribution_stays() {
    let body =
        "ok On Wed, Apr 4, 2012 at 1:00 PM, Herald <noreply@herald.example> wrote:\n> hello\n";
    assert_eq!(reply_text(body), "ok");
}

#[test]
fn a_reply_below_an_unmarked_quote_is_not_lost() {
    let body = "On Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.example> wrote:\nAlice commented on issue #42: Crash on start\n\nI will look at it.\n";
    assert_eq!(
        reply_text(body),
        "Alice commented on issue #42: Crash on start\n\nI will look at it."
    );
    // herald's own footer tells where its notification ends.
    let footer = "On Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.example> wrote:\nAlice commented on issue #42: Crash on start\n\n-- \nReply to this email directly or contact support: https://support.example.com\n\nI will look at it.\n";
    assert_eq!(reply_text(footer), "I will look at it.");
}

#[test]
fn a_wrapped_quote_line_is_not_an_inline_answer() {
    let body = "Thanks!\n\nOn Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.example> wrote:\n> The service crashes when the configuration file is missing and the data\ndirectory is empty.\n> See https://git.example.com/acme/app/issues/42?tab=comments&page=\n2\n";
    assert_eq!(reply_text(body), "Thanks!");
}

#[test]
fn invisible_marks_go() {
    assert_eq!(
        reply_text("Fine\u{200b} by me.\u{a0}\n\u{1427}\n\n> q\n"),
        "Fine by me."
    );
}

// Inputs that would be slow if a rule looked back or ahead without bound: they must finish (the
// fuzz target's timeout and `make bench` watch the time) and give the right text.

#[test]
fn long_lines_give_their_text() {
    let body = format!(
        "hi\n{}\n{}:\n",
        ">".repeat(1_000_000),
        "a".repeat(1_000_000)
    );
    // An empty quote answered by a line: an inline reply, all of it kept.
    assert_eq!(reply_text(&body), body.trim_end());
}

#[test]
fn many_short_lines_give_their_text() {
    let text = "On 1 2:\n".repeat(20_000);
    let body = format!(
        "{text}On Tue, Mar 12, 2024 at 10:15 AM Herald <noreply@herald.example> wrote:\n{}",
        "| x\n".repeat(20_000)
    );
    assert_eq!(reply_text(&body), text.trim_end());
}
