//! Ray's job submission API over HTTP: submit, look, read the log, stop. Every request has a
//! timeout; a request that fails is the caller's to retry on its next poll.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;

use super::config::{parse_info, JobInfo};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a job's log a message quotes.
const LOG_TAIL: usize = 4096;

pub struct Api {
    base: String,
    client: Client,
}

/// What a submission came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    New,
    /// A job with this submission id exists already (this task was submitted before).
    Existing,
}

fn text_of(r: reqwest::blocking::Response) -> (StatusCode, String) {
    let status = r.status();
    (status, r.text().unwrap_or_default())
}

/// The first line of what a server answered, short enough for a message.
fn first_line(body: &str) -> String {
    let line = body
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

impl Api {
    pub fn new(base: String) -> Result<Api, String> {
        let client = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(Api { base, client })
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        format!(
            "cannot reach Ray's job API at {}: {e} (is the dashboard running, and is this its address?)",
            self.base
        )
    }

    /// `POST /api/jobs/`.
    pub fn submit(&self, body: &serde_json::Value) -> Result<Submitted, String> {
        let r = self
            .client
            .post(format!("{}/api/jobs/", self.base))
            .json(body)
            .send()
            .map_err(|e| self.unreachable(e))?;
        let (status, text) = text_of(r);
        if status.is_success() {
            return Ok(Submitted::New);
        }
        if status.is_client_error() && text.contains("already exists") {
            return Ok(Submitted::Existing);
        }
        Err(format!(
            "Ray refused the job ({status}): {}",
            first_line(&text)
        ))
    }

    /// `GET /api/jobs/ID`; None when Ray does not know the job.
    pub fn info(&self, id: &str) -> Result<Option<JobInfo>, String> {
        let r = self
            .client
            .get(format!("{}/api/jobs/{id}", self.base))
            .send()
            .map_err(|e| self.unreachable(e))?;
        let (status, text) = text_of(r);
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!(
                "Ray's job API answered {status} for job {id}: {}",
                first_line(&text)
            ));
        }
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("Ray's job API answered job {id} with no JSON: {e}"))?;
        Ok(Some(parse_info(&v)))
    }

    /// The end of a job's own log (what `dvx exec-task` printed), empty if unavailable.
    pub fn log_tail(&self, id: &str) -> Vec<u8> {
        let text = self
            .client
            .get(format!("{}/api/jobs/{id}/logs", self.base))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v["logs"].as_str().map(str::to_string))
            .unwrap_or_default();
        let b = text.into_bytes();
        b[b.len().saturating_sub(LOG_TAIL)..].to_vec()
    }

    /// `POST /api/jobs/ID/stop`; best effort (a job that ended is not an error).
    pub fn stop(&self, id: &str) -> Result<(), String> {
        let r = self
            .client
            .post(format!("{}/api/jobs/{id}/stop", self.base))
            .send()
            .map_err(|e| self.unreachable(e))?;
        let (status, text) = text_of(r);
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(format!(
                "Ray did not stop job {id} ({status}): {}",
                first_line(&text)
            ))
        }
    }
}
