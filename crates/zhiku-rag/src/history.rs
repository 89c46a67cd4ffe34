//! Conversation history over either backend: the embedded store, or the shared database every
//! replica reads (so that an exchange stored through one replica is listed and rated through
//! any other).

use zhiku_core::history::{ConversationSummary, Exchange, NewExchange};
use zhiku_store::Store;

use crate::cluster::ClusterEngine;
use crate::Result;

pub trait History: Send + Sync {
    fn record_exchange(&self, exchange: &NewExchange<'_>) -> Result<()>;
    /// The user's conversations, most recent first.
    fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>>;
    /// One of the user's conversations, oldest first; empty when it is not theirs.
    fn conversation(&self, user: &str, id: &str) -> Result<Vec<Exchange>>;
    /// Rates one of the user's exchanges; false when there is no such exchange of theirs.
    fn rate_exchange(&self, user: &str, completion_id: &str, rating: i64, correction: Option<&str>) -> Result<bool>;
}

impl History for Store {
    fn record_exchange(&self, exchange: &NewExchange<'_>) -> Result<()> {
        Ok(Store::record_exchange(self, exchange)?)
    }
    fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        Ok(Store::conversations(self, user)?)
    }
    fn conversation(&self, user: &str, id: &str) -> Result<Vec<Exchange>> {
        Ok(Store::conversation(self, user, id)?)
    }
    fn rate_exchange(&self, user: &str, completion_id: &str, rating: i64, correction: Option<&str>) -> Result<bool> {
        Ok(Store::rate_exchange(self, user, completion_id, rating, correction)?)
    }
}

impl History for ClusterEngine {
    fn record_exchange(&self, exchange: &NewExchange<'_>) -> Result<()> {
        Ok(self.db()?.record_exchange(exchange)?)
    }
    fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        Ok(self.db()?.conversations(user)?)
    }
    fn conversation(&self, user: &str, id: &str) -> Result<Vec<Exchange>> {
        Ok(self.db()?.conversation(user, id)?)
    }
    fn rate_exchange(&self, user: &str, completion_id: &str, rating: i64, correction: Option<&str>) -> Result<bool> {
        Ok(self.db()?.rate_exchange(user, completion_id, rating, correction)?)
    }
}
