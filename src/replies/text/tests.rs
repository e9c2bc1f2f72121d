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

#[test]
fn an_underscore_rule_separates_only_what_is_quoted_or_a_list_footer() {
    let own = "This is the first part.\n\n______________________________\n\nThis is the second part.\n\nBest regards,\nJane";
    assert_eq!(reply_text(own), own);
    let outlook = "Fixed.\n\n________________________________\nFrom: Herald <noreply@herald.example>\nSent: Tuesday, March 12, 2024 10:15\nTo: Jane\nSubject: Crash\n\nAlice commented";
    assert_eq!(reply_text(outlook), "Fixed.");
    let list = "How do I clear a bucket?\n\n-Jane\n\n__\nriak-users mailing list\nriak-users@lists.example.com\n";
    assert_eq!(reply_text(list), "How do I clear a bucket?");
}

#[test]
fn a_client_line_ends_the_text_above_an_unmarked_quote() {
    let body = "Works now.\n\nSent from my Wiko RIDGE FAB 4G\n\nAlice commented on issue #42: Crash on start\n";
    assert_eq!(reply_text(body), "Works now.");
    assert_eq!(
        reply_text("Ok\n\nSent from TypeApp<http://www.typeapp.com/r?b=2621>\n"),
        "Ok"
    );
    assert_eq!(
        reply_text("Ja\n\nVerzonden vanuit Outlook voor iOS\n"),
        "Ja"
    );
}

#[test]
fn em_dashes_alone_open_a_signature() {
    let body = "Cheers\nSarah\n\n\u{2014}\u{2014}\u{2014}\u{2014}\u{2014}\nSarah Johnson\nProduct Manager\n";
    assert_eq!(reply_text(body), "Cheers\nSarah");
}

#[test]
fn header_blocks_with_blank_lines_or_opening_with_the_date() {
    let spaced = "Done.\n\nFrom: Herald <noreply@herald.example>\n\nSent: Tuesday, March 12, 2024 10:15\n\nTo: Jane\n\nSubject: Crash\n\nAlice commented";
    assert_eq!(reply_text(spaced), "Done.");
    let dated =
        "Done.\n\nDate: Wed, 16 May 2012 00:15:02 -0600\nTo: jane@example.com\n\nAlice commented";
    assert_eq!(reply_text(dated), "Done.");
    let french = "Fait.\n\n====\n\nMessage du : 12/12/2016 13:20\nDe : \"Herald\" <noreply@herald.example>\nA : jane@example.fr\nSujet : Crash\n\nAlice";
    assert_eq!(reply_text(french), "Fait.");
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

#[test]
fn a_quote_only_a_sign_off_follows_is_not_answered() {
    let body = "Test reply\n\nOn 04/19/2011 07:10 AM, Roman Tkachenko wrote:\n\n>\n> Test\n\nRegards, Roman\n";
    assert_eq!(reply_text(body), "Test reply\n\nRegards, Roman");
    // An answer below the quote keeps it.
    let inline = "Hi\n\n> Which version?\n\n1.4.2\n\nRegards, Roman\n";
    assert_eq!(reply_text(inline), inline.trim_end());
}

#[test]
fn a_link_wrapped_out_of_a_quote_stays_in_it() {
    let body = "Blah\n\nOn Thu, Apr 4, 2013 at 7:00 PM, Herald <noreply@herald.example> wrote:\n\n>\n> Post a response by replying to this email\n>\n (http://example.com/c/YzOTYzMmE) >\n> If you would like to unsubscribe\n";
    assert_eq!(reply_text(body), "Blah");
}
