/// Errors of the core types and of the trait implementations that report through them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid principal '{value}': expected 'user:<name>' or 'group:<name>' (names: letters, digits, '.', '_', '-', '@')")]
    InvalidPrincipal { value: String },
    #[error("invalid role '{value}': expected viewer, editor or admin")]
    InvalidRole { value: String },
    #[error("cannot parse as {format}: {reason}")]
    Parse { format: &'static str, reason: String },
    #[error("the file is empty or contains no text")]
    Empty,
    /// A PDF whose pages are images only: its text has to be recognised (OCR).
    #[error("the PDF has no text layer (a scanned document?)")]
    NoTextLayer,
    #[error("the file looks binary ({reason}); zhiku reads PDF, Word, Excel, PowerPoint, OpenDocument, HTML, Markdown, text, CSV/TSV, JSON/JSONL, e-mail and ZIP")]
    Binary { reason: String },
    #[error("embedding failed: {0}")]
    Embedding(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
