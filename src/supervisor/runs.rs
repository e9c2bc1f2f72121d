//! Configuration runs as records in sled (tree `runs`, key: the run's number): when it started
//! and ended, who asked, which keys it changed, each step with its outcome, and an event per
//! step start and end in the shape GHES's `config/apply/events` lists. Numbered from 1, never
//! reused; at most one is running. A run left `running` by a crash is marked `failed` at the
//! next start (nothing of it was applied: the applied settings are written last).

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

const TREE: &str = "runs";
/// Runs kept; older ones go as new ones start.
pub const KEPT: usize = 200;

/// `running`, then `success` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Success,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
        }
    }
}

/// One step's outcome. `skipped`: nothing it looks after changed; `warning`: done, with
/// something worth knowing that does not stop the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Success,
    Skipped,
    Warning,
    Failed,
    /// Done, then put back as it was because a later step failed.
    #[serde(alias = "rolledback")]
    RolledBack,
    /// Not reached: an earlier step failed.
    NotRun,
}

impl StepStatus {
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Skipped => "skipped",
            StepStatus::Warning => "warning",
            StepStatus::Failed => "failed",
            StepStatus::RolledBack => "rolled_back",
            StepStatus::NotRun => "not_run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// A stable name (`validate`, `inbound`, ...): the pages translate it.
    pub name: String,
    pub status: StepStatus,
    /// What happened, in plain words (empty while running).
    pub message: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Milliseconds it took.
    pub took_ms: Option<u64>,
}

/// One event of a run, as GHES's event list has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub timestamp: String,
    /// `INFO`, `WARN` or `ERROR`.
    pub severity_text: String,
    pub body: String,
    pub event_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub status: Status,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Milliseconds from start to end.
    pub took_ms: Option<u64>,
    /// How it was asked for: `console`, `api`, `cli`, `boot`.
    pub trigger: String,
    /// The client's address for the console and the API over the network.
    pub client: Option<String>,
    /// The settings versions: what was in force, and what the run applies.
    pub from_version: u64,
    pub to_version: u64,
    /// The keys whose values change (secrets named, never shown).
    pub changed: Vec<String>,
    pub steps: Vec<Step>,
    pub events: Vec<Event>,
    /// Why it failed, naming the step.
    pub error: Option<String>,
}

impl Run {
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }
}

/// The runs tree, and which run is going on.
pub struct Runs {
    tree: sled::Tree,
    running: Mutex<Option<u64>>,
}

/// Another run is going on: its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy(pub u64);

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

impl Runs {
    /// Opens the runs; one left running by a crash is marked failed.
    pub fn open(db: &sled::Db) -> Result<Runs, String> {
        let runs = Runs {
            tree: db.open_tree(TREE).map_err(|e| e.to_string())?,
            running: Mutex::new(None),
        };
        if let Some(mut last) = runs.latest()?
            && last.is_running()
        {
            let now = crate::clock::rfc3339(std::time::SystemTime::now());
            last.status = Status::Failed;
            last.finished_at = Some(now.clone());
            last.error = Some(
                "herald stopped while this run was going on; nothing of it was applied".into(),
            );
            for s in last
                .steps
                .iter_mut()
                .filter(|s| s.status == StepStatus::Running)
            {
                s.status = StepStatus::Failed;
                s.message = "herald stopped during this step".into();
                s.finished_at = Some(now.clone());
            }
            runs.save(&last)?;
        }
        Ok(runs)
    }

    /// Starts a run record (`running`, no steps yet), unless one is going on.
    pub fn begin(
        &self,
        trigger: &str,
        client: Option<String>,
        from_version: u64,
        to_version: u64,
        changed: Vec<String>,
    ) -> Result<Result<Run, Busy>, String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = *running {
            return Ok(Err(Busy(id)));
        }
        let id = self.latest()?.map_or(1, |r| r.id + 1);
        let run = Run {
            id,
            status: Status::Running,
            started_at: crate::clock::rfc3339(std::time::SystemTime::now()),
            finished_at: None,
            took_ms: None,
            trigger: trigger.to_string(),
            client,
            from_version,
            to_version,
            changed,
            steps: Vec::new(),
            events: Vec::new(),
            error: None,
        };
        self.save(&run)?;
        *running = Some(id);
        drop(running);
        self.prune()?;
        Ok(Ok(run))
    }

    /// Saves a run's state (pages and clients read it at once); its start and its end are
    /// flushed, so a crash cannot lose how a run ended or that it began. When it has ended,
    /// another may start.
    pub fn save(&self, run: &Run) -> Result<(), String> {
        let bytes = serde_json::to_vec(run).expect("serializes");
        self.tree
            .insert(key(run.id), bytes)
            .map_err(|e| e.to_string())?;
        if !run.is_running() || run.steps.is_empty() {
            self.tree.flush().map_err(|e| e.to_string())?;
        }
        if !run.is_running() {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if *running == Some(run.id) {
                *running = None;
            }
        }
        Ok(())
    }

    pub fn get(&self, id: u64) -> Result<Option<Run>, String> {
        match self.tree.get(key(id)).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| format!("unreadable run record: {e}")),
        }
    }

    pub fn latest(&self) -> Result<Option<Run>, String> {
        match self.tree.last().map_err(|e| e.to_string())? {
            None => Ok(None),
            Some((_, v)) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| format!("unreadable run record: {e}")),
        }
    }

    /// The run going on, if any.
    pub fn running(&self) -> Option<u64> {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs, newest first, at most `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<Run>, String> {
        self.tree
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|v| {
                let v = v.map_err(|e| e.to_string())?;
                serde_json::from_slice(&v).map_err(|e| format!("unreadable run record: {e}"))
            })
            .collect()
    }

    fn prune(&self) -> Result<(), String> {
        let n = self.tree.len();
        if n <= KEPT {
            return Ok(());
        }
        for k in self.tree.iter().keys().take(n - KEPT) {
            let k = k.map_err(|e| e.to_string())?;
            self.tree.remove(k).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_at_a_time_numbered_and_listed_newest_first() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db).unwrap();
        let mut a = runs
            .begin("api", None, 1, 2, vec!["smtp.port".into()])
            .unwrap()
            .unwrap();
        assert_eq!(a.id, 1);
        assert_eq!(runs.begin("cli", None, 1, 2, vec![]).unwrap(), Err(Busy(1)));
        assert_eq!(runs.running(), Some(1));
        a.status = Status::Success;
        runs.save(&a).unwrap();
        assert_eq!(runs.running(), None);
        let b = runs
            .begin("console", Some("192.0.2.1".into()), 2, 3, vec![])
            .unwrap()
            .unwrap();
        assert_eq!(b.id, 2);
        let ids: Vec<u64> = runs.list(10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 1]);
        assert_eq!(runs.get(1).unwrap().unwrap().status, Status::Success);
    }

    #[test]
    fn a_run_left_running_by_a_crash_is_failed_at_the_next_start() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db).unwrap();
        let mut r = runs.begin("api", None, 1, 2, vec![]).unwrap().unwrap();
        r.steps.push(Step {
            name: "inbound".into(),
            status: StepStatus::Running,
            message: String::new(),
            started_at: r.started_at.clone(),
            finished_at: None,
            took_ms: None,
        });
        runs.save(&r).unwrap();
        drop(runs);
        let again = Runs::open(&db).unwrap();
        let r = again.get(1).unwrap().unwrap();
        assert_eq!(r.status, Status::Failed);
        assert!(r.error.unwrap().contains("nothing of it was applied"));
        assert_eq!(r.steps[0].status, StepStatus::Failed);
        assert_eq!(again.running(), None);
        assert_eq!(
            again.begin("api", None, 1, 2, vec![]).unwrap().unwrap().id,
            2
        );
    }

    #[test]
    fn old_runs_are_pruned() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db).unwrap();
        for _ in 0..KEPT + 5 {
            let mut r = runs.begin("api", None, 1, 2, vec![]).unwrap().unwrap();
            r.status = Status::Success;
            runs.save(&r).unwrap();
        }
        let all = runs.list(usize::MAX).unwrap();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].id, KEPT as u64 + 5);
    }
}
