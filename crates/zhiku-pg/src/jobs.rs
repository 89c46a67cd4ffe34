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

    /// Adds a job whose file is `bytes` (uploaded through a server replica): the file and the
    /// job in one transaction, the job's payload naming the file as `upload`. The file is held
    /// until the job is done or has failed for good.
    pub fn enqueue_upload(&mut self, job: &NewJob<'_>, source: &str, bytes: &[u8]) -> Result<i64> {
        let mut tx = self.client.transaction()?;
        let upload: i64 =
            tx.query_one("INSERT INTO upload (kb, source, bytes) VALUES ($1, $2, $3) RETURNING id", &[&job.kb, &source, &bytes])?.get(0);
        let mut payload = job.payload.clone();
        payload["upload"] = serde_json::json!(upload);
        let id: i64 = tx
            .query_one(
                "INSERT INTO job (kind, kb, payload, max_attempts) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&job.kind, &job.kb, &payload, &job.max_attempts.max(1)],
            )?
            .get(0);
        tx.commit()?;
        Ok(id)
    }

    /// The bytes of an uploaded file, while its job needs them.
    pub fn upload(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(self.client.query_opt("SELECT bytes FROM upload WHERE id = $1", &[&id])?.map(|r| r.get(0)))
    }

    /// Claims the oldest open job for `worker` with a lease of `lease_seconds`; `None` when
    /// there is nothing to claim now. A running job whose lease has expired is open again,
    /// unless it has used all its attempts: then it fails.
    pub fn claim(&mut self, worker: &str, lease_seconds: f64) -> Result<Option<Claimed>> {
        let mut tx = self.client.transaction()?;
        let given_up = tx.query(
            "UPDATE job SET status = 'failed', finished_at = now(), lease_until = NULL,
                 error = 'its worker stopped before finishing, on each of ' || attempts || ' attempts'
             WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts
             RETURNING (payload->>'upload')::bigint",
            &[],
        )?;
        let uploads: Vec<i64> = given_up.iter().filter_map(|r| r.get::<_, Option<i64>>(0)).collect();
        if !uploads.is_empty() {
            tx.execute("DELETE FROM upload WHERE id = ANY($1)", &[&uploads])?;
        }
        tx.commit()?;
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

    /// Records success (and lets go of the job's uploaded file, in the same transaction);
    /// false when the job was no longer this worker's.
    pub fn complete(&mut self, job: i64, worker: &str, result: &serde_json::Value) -> Result<bool> {
        let mut tx = self.client.transaction()?;
        let row = tx.query_opt(
            "UPDATE job SET status = 'done', result = $3, error = NULL, finished_at = now(), lease_until = NULL
             WHERE id = $1 AND worker = $2 AND status = 'running'
             RETURNING (payload->>'upload')::bigint",
            &[&job, &worker, result],
        )?;
        if let Some(upload) = row.as_ref().and_then(|r| r.get::<_, Option<i64>>(0)) {
            tx.execute("DELETE FROM upload WHERE id = $1", &[&upload])?;
        }
        tx.commit()?;
        Ok(row.is_some())
    }

    /// Records a failure. `retry`: the cause may pass (a database or model server away), so
    /// the job goes back to the queue while it has attempts left; otherwise (bad input) it
    /// fails now, and its uploaded file goes.
    pub fn fail(&mut self, job: i64, worker: &str, error: &str, retry: bool) -> Result<bool> {
        let mut tx = self.client.transaction()?;
        let row = tx.query_opt(
            "UPDATE job SET error = $3, lease_until = NULL,
                 status = CASE WHEN $4 AND attempts < max_attempts THEN 'pending' ELSE 'failed' END,
                 finished_at = CASE WHEN $4 AND attempts < max_attempts THEN NULL ELSE now() END
             WHERE id = $1 AND worker = $2 AND status = 'running'
             RETURNING status, (payload->>'upload')::bigint",
            &[&job, &worker, &error, &retry],
        )?;
        if let Some(r) = &row {
            if let (Some(upload), "failed") = (r.get::<_, Option<i64>>(1), r.get::<_, String>(0).as_str()) {
                tx.execute("DELETE FROM upload WHERE id = $1", &[&upload])?;
            }
        }
        tx.commit()?;
        Ok(row.is_some())
    }

    /// Jobs not finished yet (pending, or running under a lease that may still run out).
    pub fn open_jobs(&mut self) -> Result<i64> {
        Ok(self.client.query_one("SELECT count(*) FROM job WHERE status IN ('pending', 'running')", &[])?.get(0))
    }

    /// The most recent jobs first, optionally of one status only.
    pub fn jobs(&mut self, status: Option<JobStatus>, limit: usize) -> Result<Vec<Job>> {
        let status = status.map(JobStatus::as_str);
        let rows = self.client.query(
            &format!("SELECT {JOB_COLUMNS} FROM job WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"),
            &[&status, &(limit as i64)],
        )?;
        rows.iter().map(job).collect()
    }

    /// The jobs with these ids, in id order (those that exist).
    pub fn jobs_by_ids(&mut self, ids: &[i64]) -> Result<Vec<Job>> {
        let rows = self.client.query(&format!("SELECT {JOB_COLUMNS} FROM job WHERE id = ANY($1) ORDER BY id"), &[&ids])?;
        rows.iter().map(job).collect()
    }

    /// One job by id.
    pub fn job(&mut self, id: i64) -> Result<Option<Job>> {
        self.client.query_opt(&format!("SELECT {JOB_COLUMNS} FROM job WHERE id = $1"), &[&id])?.as_ref().map(job).transpose()
    }
}

const JOB_COLUMNS: &str = "id, status, kind, kb, payload, attempts, max_attempts, worker, error, result,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

fn job(r: &postgres::Row) -> Result<Job> {
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
}
