//! `--events FILE`: every run event as one JSON object per line, with the
//! milliseconds since the start, for whatever follows a run (a CI
//! annotation, a dashboard). Scrubbed of secrets like everything printed.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use upgrade_check_core::model::event::RunEvent;
use upgrade_check_core::model::report::ExitStatus;
use upgrade_check_core::redact;

pub struct EventLog {
    file: Mutex<BufWriter<File>>,
    started: Instant,
}

impl EventLog {
    /// Starts the log at `path`, replacing what was there.
    pub fn create(path: &Path) -> anyhow::Result<EventLog> {
        let file = File::create(path)
            .with_context(|| format!("--events {}: cannot write it", path.display()))?;
        Ok(EventLog {
            file: Mutex::new(BufWriter::new(file)),
            started: Instant::now(),
        })
    }

    /// The last line: how the run ended, with the exit status the process
    /// returns (`{"event":"finished","verdict":"regression","exit_code":1}`),
    /// and the error when the harness failed.
    pub fn finish(&self, answered: &anyhow::Result<ExitStatus>) {
        let (status, error) = match answered {
            Ok(status) => (*status, None),
            Err(err) => (ExitStatus::HarnessFailed, Some(format!("{err:#}"))),
        };
        let verdict = match status {
            ExitStatus::Pass => "pass",
            ExitStatus::Regression => "regression",
            ExitStatus::HarnessFailed => "harness-failed",
            ExitStatus::Interrupted => "interrupted",
        };
        let mut line = serde_json::json!({
            "elapsed_ms": self.started.elapsed().as_millis() as u64,
            "event": "finished",
            "verdict": verdict,
            "exit_code": status.code(),
        });
        if let Some(error) = error {
            line["error"] = error.into();
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{}", redact::scrub(&line.to_string()));
        let _ = file.flush();
    }

    /// Appends `event` as one line; a line that cannot be written is lost,
    /// never the run.
    pub fn write(&self, event: &RunEvent) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) else {
            return;
        };
        let mut line = serde_json::Map::new();
        line.insert(
            "elapsed_ms".to_owned(),
            (self.started.elapsed().as_millis() as u64).into(),
        );
        line.extend(fields);
        let text = serde_json::Value::Object(line).to_string();
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{}", redact::scrub(&text));
        let _ = file.flush();
    }
}
