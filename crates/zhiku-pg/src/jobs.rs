//! The job queue: at-least-once delivery to any number of workers.
//!
//! A worker claims the oldest open job with `FOR UPDATE SKIP LOCKED` (workers never wait on
//! each other's claims) and holds it under a lease it renews by heartbeat. A job whose lease
//! ran out — its worker was killed, its machine lost — is claimed again by another worker, up
//! to `max_attempts` claims. Every state change checks that the job is still the caller's, so
//! a worker that lost its lease cannot overwrite the outcome of the one that took over. Jobs
//! must therefore be idempotent (document writes are: see [`crate::PgStore::upsert_document`]).

use serde::Serialize;

use crate::{PgStore, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A job as listed (`zhiku jobs --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Decimal row id, as a string: clients treat it as opaque.
    pub id: String,
    pub status: JobStatus,
    pub kind: String,
    pub kb: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

pub struct NewJob<'a> {
    pub kind: &'a str,
    pub kb: &'a str,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
}

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub kb: String,
    pub payload: serde_json::Value,
    /// This claim's number, from 1.
    pub attempt: i32,
}

const UTC: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

impl PgStore {
    /// Adds jobs in one transaction: all are queued or none. Returns their ids.
    pub fn enqueue(&mut self, jobs: &[NewJob<'_>]) -> Result<Vec<i64>> {
        let mut tx = self.client.transaction()?;
        let insert = tx.prepare("INSERT INTO job (kind, kb, payload, max_attempts) VALUES ($1, $2, $3, $4) RETURNING id")?;
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            ids.push(tx.query_one(&insert, &[&job.kind, &job.kb, &job.payload, &job.max_attempts.max(1)])?.get(0));
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Claims the oldest open job for `worker` with a lease of `lease_seconds`; `None` when
    /// there is nothing to claim now. A running job whose lease has expired is open again,
    /// unless it has used all its attempts: then it fails.
    pub fn claim(&mut self, worker: &str, lease_seconds: f64) -> Result<Option<Claimed>> {
        self.client.execute(
            "UPDATE job SET status = 'failed', finished_at = now(), lease_until = NULL,
                 error = 'its worker stopped before finishing, on each of ' || attempts || ' attempts'
             WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts",
            &[],
        )?;
        let row = self.client.query_opt(
            "WITH next AS (
                 SELECT id FROM job
                 WHERE status = 'pending' OR (status = 'running' AND lease_until < now())
                 ORDER BY id LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             UPDATE job j SET status = 'running', worker = $1, attempts = j.attempts + 1,
                 lease_until = now() + make_interval(secs => $2), started_at = now()
             FROM next WHERE j.id = next.id
             RETURNING j.id, j.kind, j.kb, j.payload, j.attempts",
            &[&worker, &lease_seconds],
        )?;
        Ok(row.map(|r| Claimed { id: r.get(0), kind: r.get(1), kb: r.get(2), payload: r.get(3), attempt: r.get(4) }))
    }

    /// Extends the lease; false when the job is no longer this worker's (its lease ran out and
    /// another worker took it over), so the caller should stop working on it.
    pub fn heartbeat(&mut self, job: i64, worker: &str, lease_seconds: f64) -> Result<bool> {
        let n = self.client.execute(
            "UPDATE job SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND worker = $2 AND status = 'running'",
            &[&job, &worker, &lease_seconds],
        )?;
        Ok(n == 1)
    }

    /// Records success; false when the job was no longer this worker's.
    pub fn complete(&mut self, job: i64, worker: &str, result: &serde_json::Value) -> Result<bool> {
        let n = self.client.execute(
            "UPDATE job SET status = 'done', result = $3, error = NULL, finished_at = now(), lease_until = NULL
             WHERE id = $1 AND worker = $2 AND status = 'running'",
            &[&job, &worker, result],
        )?;
        Ok(n == 1)
    }

    /// Records a failure. `retry`: the cause may pass (a database or model server away), so
    /// the job goes back to the queue while it has attempts left; otherwise (bad input) it
    /// fails now.
    pub fn fail(&mut self, job: i64, worker: &str, error: &str, retry: bool) -> Result<bool> {
        let n = self.client.execute(
            "UPDATE job SET error = $3, lease_until = NULL,
                 status = CASE WHEN $4 AND attempts < max_attempts THEN 'pending' ELSE 'failed' END,
                 finished_at = CASE WHEN $4 AND attempts < max_attempts THEN NULL ELSE now() END
             WHERE id = $1 AND worker = $2 AND status = 'running'",
            &[&job, &worker, &error, &retry],
        )?;
        Ok(n == 1)
    }

    /// Jobs not finished yet (pending, or running under a lease that may still run out).
    pub fn open_jobs(&mut self) -> Result<i64> {
        Ok(self.client.query_one("SELECT count(*) FROM job WHERE status IN ('pending', 'running')", &[])?.get(0))
    }

    /// The most recent jobs first, optionally of one status only.
    pub fn jobs(&mut self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        let status = status.map(JobStatus::as_str);
        let rows = self.client.query(
            &format!(
                "SELECT id, status, kind, kb, payload, attempts, max_attempts, worker, error, result,
                        to_char(created_at AT TIME ZONE 'UTC', {UTC}),
                        to_char(started_at AT TIME ZONE 'UTC', {UTC}),
                        to_char(finished_at AT TIME ZONE 'UTC', {UTC})
                 FROM job WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"
            ),
            &[&status, &(limit as i64)],
        )?;
        rows.iter()
            .map(|r| {
                let status: String = r.get(1);
                Ok(Job {
                    id: r.get::<_, i64>(0).to_string(),
                    status: JobStatus::parse(&status).ok_or_else(|| crate::Error::Corrupt(format!("job status '{status}'")))?,
                    kind: r.get(2),
                    kb: r.get(3),
                    payload: r.get(4),
                    attempts: r.get(5),
                    max_attempts: r.get(6),
                    worker: r.get(7),
                    error: r.get(8),
                    result: r.get(9),
                    created_at: r.get(10),
                    started_at: r.get(11),
                    finished_at: r.get(12),
                })
            })
            .collect()
    }
}
