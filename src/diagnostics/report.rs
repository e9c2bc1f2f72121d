//! The report's shape — sections of checks, each with its state, what was found, what was
//! expected and what to do — and its plain-text form, which pastes into a support ticket.

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Warn,
    Fail,
    /// A fact, not a judgement (the version, a count).
    Info,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warn => "WARN",
            State::Fail => "FAIL",
            State::Info => "INFO",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub state: State,
    pub found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What to do, when it is not OK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What it was in the previous report, when that differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
}

impl Check {
    fn new(name: &str, state: State, found: &str) -> Check {
        Check {
            name: name.into(),
            state,
            found: found.into(),
            expected: None,
            fix: None,
            was: None,
        }
    }

    pub fn info(name: &str, found: &str) -> Check {
        Check::new(name, State::Info, found)
    }

    pub fn ok(name: &str, found: &str) -> Check {
        Check::new(name, State::Ok, found)
    }

    pub fn warn(name: &str, found: &str, expected: &str, fix: &str) -> Check {
        Check {
            expected: Some(expected.into()),
            fix: Some(fix.into()),
            ..Check::new(name, State::Warn, found)
        }
    }

    pub fn fail(name: &str, found: &str, expected: &str, fix: &str) -> Check {
        Check {
            expected: Some(expected.into()),
            fix: Some(fix.into()),
            ..Check::new(name, State::Fail, found)
        }
    }
}

/// A group of checks under a title.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Check>,
}

impl Section {
    pub fn new(title: &str) -> Section {
        Section {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, check: Check) {
        self.rows.push(check);
    }
}

/// Findings whose value changes by itself: compared by their state only.
const VOLATILE: &[&str] = &["uptime", "disk free", "reply bodies"];

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub sections: Vec<Section>,
    /// Whether an earlier report was there to compare with.
    pub compared: bool,
}

impl Report {
    pub fn new(generated_at: String) -> Report {
        Report {
            generated_at,
            sections: Vec::new(),
            compared: false,
        }
    }

    pub fn push(&mut self, section: Section) {
        self.sections.push(section);
    }

    /// How many checks are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.rows)
            .filter(|c| c.state == state)
            .count()
    }

    /// Every check as `(section/name, finding)`, for the next report to compare with.
    pub fn findings(&self) -> Vec<(String, String)> {
        self.sections
            .iter()
            .flat_map(|s| s.rows.iter().map(move |c| (s, c)))
            .map(|(s, c)| {
                let finding = if VOLATILE.contains(&c.name.as_str()) {
                    c.state.label().to_string()
                } else {
                    format!("{} {}", c.state.label(), c.found)
                };
                (format!("{}/{}", s.title, c.name), finding)
            })
            .collect()
    }

    /// Notes on each check what it was in `before`, where that differs.
    pub fn mark_changes(&mut self, before: &[(String, String)]) {
        self.compared = true;
        for s in &mut self.sections {
            for c in &mut s.rows {
                let key = format!("{}/{}", s.title, c.name);
                let now = if VOLATILE.contains(&c.name.as_str()) {
                    c.state.label().to_string()
                } else {
                    format!("{} {}", c.state.label(), c.found)
                };
                match before.iter().find(|(k, _)| *k == key) {
                    Some((_, was)) if *was != now => c.was = Some(was.clone()),
                    None => c.was = Some("(not in the last report)".into()),
                    _ => {}
                }
            }
        }
    }

    /// The changed checks, as `section / name`.
    pub fn changes(&self) -> Vec<(&Section, &Check)> {
        self.sections
            .iter()
            .flat_map(|s| s.rows.iter().map(move |c| (s, c)))
            .filter(|(_, c)| c.was.is_some())
            .collect()
    }

    /// The plain text for a support ticket.
    pub fn to_text(&self) -> String {
        let mut out = format!("herald diagnostics, {}\n", self.generated_at);
        let (fail, warn) = (self.count(State::Fail), self.count(State::Warn));
        out.push_str(&match (fail, warn) {
            (0, 0) => "Summary: every check passed.\n".to_string(),
            _ => format!("Summary: {fail} failed, {warn} to look at (what to do is under each).\n"),
        });
        let width = self
            .sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        for s in &self.sections {
            out.push_str(&format!("\n== {}\n", s.title));
            for c in &s.rows {
                out.push_str(&format!(
                    "  {:<5} {:<width$}  {}\n",
                    c.state.label(),
                    c.name,
                    c.found
                ));
                // Under the finding: two, the state's five, one, the name, two.
                let pad = " ".repeat(10 + width);
                if let Some(e) = &c.expected {
                    out.push_str(&format!("{pad}expected: {e}\n"));
                }
                if let Some(f) = &c.fix {
                    out.push_str(&format!("{pad}to do: {f}\n"));
                }
            }
        }
        out.push_str("\n== Changed since the last report\n");
        let changes = self.changes();
        if !self.compared {
            out.push_str("  (this is the first report)\n");
        } else if changes.is_empty() {
            out.push_str("  nothing\n");
        }
        for (s, c) in changes {
            out.push_str(&format!(
                "  {} / {}: was {}\n",
                s.title,
                c.name,
                c.was.as_deref().unwrap_or("")
            ));
        }
        out
    }
}
