//! Stored question-and-answer exchanges (a chat completion made with `store: true`), grouped
//! into conversations, each with its asker's feedback: thumbs up or down and an optional
//! correction. Only the asker reads or rates their own exchanges. The fine-tuning datasets are
//! built from these records.

use crate::CachedRow;
use rusqlite::{params, OptionalExtension};

use crate::{now, Result, Store};

pub use zhiku_core::history::{ConversationSummary, Exchange, NewExchange};

const EXCHANGE_COLUMNS: &str = "completion_id, conversation_id, kb, model, question, answer, citations, created_at, rating, correction";

fn exchange(r: &rusqlite::Row<'_>) -> rusqlite::Result<Exchange> {
    let citations: String = r.get(6)?;
    Ok(Exchange {
        completion_id: r.get(0)?,
        conversation_id: r.get(1)?,
        kb: r.get(2)?,
        model: r.get(3)?,
        question: r.get(4)?,
        answer: r.get(5)?,
        citations: serde_json::from_str(&citations).unwrap_or(serde_json::Value::Null),
        created_at: r.get(7)?,
        rating: r.get(8)?,
        correction: r.get(9)?,
    })
}

impl Store {
    pub fn record_exchange(&self, e: &NewExchange<'_>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO exchange (completion_id, conversation_id, user_name, kb, model, question, answer, citations, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![e.completion_id, e.conversation_id, e.user, e.kb, e.model, e.question, e.answer, e.citations, now()],
        )?;
        Ok(())
    }

    /// The user's conversations, most recent first.
    pub fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT conversation_id, kb, question, count(*), max(created_at) FROM exchange WHERE user_name = ?1
             GROUP BY conversation_id ORDER BY max(created_at) DESC, conversation_id",
        )?;
        let rows = stmt
            .query_map(params![user], |r| {
                Ok(ConversationSummary {
                    id: r.get(0)?,
                    kb: r.get(1)?,
                    title: r.get(2)?,
                    exchanges: r.get::<_, i64>(3)? as usize,
                    updated_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // SQLite's bare column in an aggregate is from an arbitrary row: take the first question.
        let mut first = conn.prepare_cached(
            "SELECT question FROM exchange WHERE user_name = ?1 AND conversation_id = ?2 ORDER BY created_at, rowid LIMIT 1",
        )?;
        rows.into_iter()
            .map(|mut c| {
                c.title = first.query_row(params![user, c.id], |r| r.get(0))?;
                Ok(c)
            })
            .collect()
    }

    /// One of the user's conversations, oldest exchange first (empty when it is not theirs).
    pub fn conversation(&self, user: &str, id: &str) -> Result<Vec<Exchange>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchange WHERE user_name = ?1 AND conversation_id = ?2 ORDER BY created_at, rowid"
        ))?;
        let rows = stmt.query_map(params![user, id], exchange)?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Rates one of the user's exchanges (a later rating replaces the earlier one); false when
    /// there is no such exchange of theirs.
    pub fn rate_exchange(&self, user: &str, completion_id: &str, rating: i64, correction: Option<&str>) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE exchange SET rating = ?3, correction = ?4, rated_at = ?5 WHERE completion_id = ?2 AND user_name = ?1",
            params![user, completion_id, rating.signum(), correction, now()],
        )?;
        Ok(n == 1)
    }

    /// Every rated exchange, oldest first: the feedback a fine-tuning dataset is made from.
    pub fn rated_exchanges(&self) -> Result<Vec<Exchange>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {EXCHANGE_COLUMNS} FROM exchange WHERE rating IS NOT NULL ORDER BY rated_at, rowid"))?;
        let rows = stmt.query_map([], exchange)?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every exchange with its user, oldest first, to move the history to another backend.
    pub fn exchanges_with_users(&self) -> Result<Vec<(String, Exchange)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {EXCHANGE_COLUMNS}, user_name FROM exchange ORDER BY created_at, rowid"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(10)?, exchange(r)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn exchange_exists(&self, completion_id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .cached_row("SELECT 1 FROM exchange WHERE completion_id = ?1", params![completion_id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
