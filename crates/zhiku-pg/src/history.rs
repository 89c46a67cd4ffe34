//! Conversation history in the shared database: a user asks through one replica and finds the
//! exchange, and rates it, through any other. Only the asker reads or rates their own.

use zhiku_core::history::{ConversationSummary, Exchange, NewExchange};

use crate::{PgStore, Result};

const EXCHANGE_COLUMNS: &str = "completion_id, conversation_id, kb, model, question, answer, citations, created_at, rating, correction";

fn exchange(r: &postgres::Row) -> Exchange {
    let citations: String = r.get(6);
    Exchange {
        completion_id: r.get(0),
        conversation_id: r.get(1),
        kb: r.get(2),
        model: r.get(3),
        question: r.get(4),
        answer: r.get(5),
        citations: serde_json::from_str(&citations).unwrap_or(serde_json::Value::Null),
        created_at: r.get(7),
        rating: r.get(8),
        correction: r.get(9),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl PgStore {
    pub fn record_exchange(&mut self, e: &NewExchange<'_>) -> Result<()> {
        self.client.execute(
            "INSERT INTO exchange (completion_id, conversation_id, user_name, kb, model, question, answer, citations, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&e.completion_id, &e.conversation_id, &e.user, &e.kb, &e.model, &e.question, &e.answer, &e.citations, &now()],
        )?;
        Ok(())
    }

    /// The user's conversations, most recent first, each titled by its first question.
    pub fn conversations(&mut self, user: &str) -> Result<Vec<ConversationSummary>> {
        let rows = self.client.query(
            "SELECT conversation_id, (array_agg(kb ORDER BY created_at, seq))[1], (array_agg(question ORDER BY created_at, seq))[1],
                    count(*), max(created_at)
             FROM exchange WHERE user_name = $1
             GROUP BY conversation_id ORDER BY max(created_at) DESC, conversation_id",
            &[&user],
        )?;
        Ok(rows
            .iter()
            .map(|r| ConversationSummary {
                id: r.get(0),
                kb: r.get(1),
                title: r.get(2),
                exchanges: r.get::<_, i64>(3) as usize,
                updated_at: r.get(4),
            })
            .collect())
    }

    /// One of the user's conversations, oldest exchange first (empty when it is not theirs).
    pub fn conversation(&mut self, user: &str, id: &str) -> Result<Vec<Exchange>> {
        let rows = self.client.query(
            &format!("SELECT {EXCHANGE_COLUMNS} FROM exchange WHERE user_name = $1 AND conversation_id = $2 ORDER BY created_at, seq"),
            &[&user, &id],
        )?;
        Ok(rows.iter().map(exchange).collect())
    }

    /// Copies an exchange from another backend as it is (rating included); false when one with
    /// its completion id is here already.
    pub fn import_exchange(&mut self, user: &str, e: &Exchange) -> Result<bool> {
        let n = self.client.execute(
            "INSERT INTO exchange (completion_id, conversation_id, user_name, kb, model, question, answer, citations, created_at,
                                   rating, correction, rated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (completion_id) DO NOTHING",
            &[
                &e.completion_id,
                &e.conversation_id,
                &user,
                &e.kb,
                &e.model,
                &e.question,
                &e.answer,
                &e.citations.to_string(),
                &e.created_at,
                &e.rating,
                &e.correction,
                // When it was rated is not kept apart from the exchange: its own time stands in.
                &e.rating.map(|_| e.created_at),
            ],
        )?;
        Ok(n == 1)
    }

    /// Rates one of the user's exchanges (a later rating replaces the earlier one); false when
    /// there is no such exchange of theirs.
    pub fn rate_exchange(&mut self, user: &str, completion_id: &str, rating: i64, correction: Option<&str>) -> Result<bool> {
        let n = self.client.execute(
            "UPDATE exchange SET rating = $3, correction = $4, rated_at = $5 WHERE completion_id = $2 AND user_name = $1",
            &[&user, &completion_id, &rating.signum(), &correction, &now()],
        )?;
        Ok(n == 1)
    }
}
