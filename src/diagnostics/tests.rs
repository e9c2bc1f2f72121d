//! The report's rules without a service: its text, what changed, certificate names.

use super::*;

fn sample() -> Report {
    let mut r = Report::new("2026-12-03T15:00:00Z".into());
    let mut s = Section::new("Service");
    s.push(Check::info("version", "0.1.0"));
    s.push(Check::info("uptime", "0d 1h 2m"));
    s.push(Check::fail(
        "disk free",
        "12 MiB in the data directory",
        "at least 64 MiB",
        "free space on the data disk",
    ));
    r.push(s);
    r
}

#[test]
fn the_text_says_what_was_found_expected_and_to_do() {
    let text = sample().to_text();
    assert!(
        text.starts_with("herald diagnostics, 2026-12-03T15:00:00Z\n"),
        "{text}"
    );
    assert!(text.contains("Summary: 1 failed, 0 to look at"), "{text}");
    assert!(text.contains("== Service\n"), "{text}");
    assert!(
        text.contains("  FAIL  disk free  12 MiB in the data directory\n"),
        "{text}"
    );
    // Under the finding's column: 2 + 5 (the state) + 1 + 9 ("disk free") + 2.
    assert!(
        text.contains(&format!("\n{}expected: at least 64 MiB\n", " ".repeat(19))),
        "{text}"
    );
    assert!(
        text.contains("to do: free space on the data disk\n"),
        "{text}"
    );
    assert!(text.contains("(this is the first report)"), "{text}");
}

#[test]
fn changes_are_told_apart_from_what_moves_by_itself() {
    let before = sample().findings();
    let mut now = sample();
    now.sections[0].rows[1].found = "0d 5h 0m".into(); // uptime moves by itself
    now.sections[0].rows[2] = Check::ok("disk free", "900 MiB in the data directory");
    now.sections[0].rows[0].found = "0.2.0".into();
    now.mark_changes(&before);
    let changed: Vec<&str> = now.changes().iter().map(|(_, c)| c.name.as_str()).collect();
    assert_eq!(changed, ["version", "disk free"]);
    let text = now.to_text();
    assert!(text.contains("Service / version: was INFO 0.1.0"), "{text}");
    assert!(text.contains("Service / disk free: was FAIL"), "{text}");
    assert!(text.contains("Summary: every check passed."), "{text}");
    let mut same = sample();
    same.mark_changes(&before);
    assert!(
        same.to_text()
            .contains("== Changed since the last report\n  nothing\n")
    );
}

#[test]
fn wildcard_names_cover_one_label() {
    assert!(name_covers("*.example.com", "reply.example.com"));
    assert!(name_covers("Example.com", "example.com"));
    assert!(!name_covers("*.example.com", "a.b.example.com"));
    assert!(!name_covers("*.example.com", "example.com"));
}
