//! Stored question-and-answer exchanges (a chat completion made with `store: true`), grouped
//! into conversations, with the asker's feedback: the records both backends keep the same way.

/// What a finished exchange records.
pub struct NewExchange<'a> {
    pub completion_id: &'a str,
    pub conversation_id: &'a str,
    pub user: &'a str,
    /// `None` for plain chat with the model.
    pub kb: Option<&'a str>,
    pub model: &'a str,
    pub question: &'a str,
    pub answer: &'a str,
    /// The citations as JSON (`[{"n","source","chunk_id"}]`).
    pub citations: &'a str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Exchange {
    pub completion_id: String,
    pub conversation_id: String,
    pub kb: Option<String>,
    pub model: String,
    pub question: String,
    pub answer: String,
    pub citations: serde_json::Value,
    pub created_at: i64,
    /// +1 (helpful) or -1 (not), when rated.
    pub rating: Option<i64>,
    pub correction: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationSummary {
    pub id: String,
    pub kb: Option<String>,
    /// The first question.
    pub title: String,
    pub exchanges: usize,
    pub updated_at: i64,
}
