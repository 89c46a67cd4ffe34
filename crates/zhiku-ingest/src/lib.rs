//! zhiku-ingest: from a file's bytes to clean, bounded chunks with provenance. No I/O here:
//! callers read the file and hand over its name and bytes.
//!
//! The stages, in order:
//! 1. [`decode`] — bytes to text (UTF-8 or UTF-16 with BOM), refusing binary files with a reason.
//! 2. A [`zhiku_core::Parser`] picked from the content (PDF, and the ZIP packages of
//!    [`DocxParser`], [`XlsxParser`], [`PptxParser`], [`OdfParser`]) or by [`parser_for`] from the
//!    file name: [`TextParser`], [`MarkdownParser`], [`HtmlParser`], [`EmailParser`], and for structured files
//!    [`CsvParser`], [`JsonParser`], [`JsonlParser`] (one record per row or object). Each yields
//!    headings, text blocks, tables and records in reading order.
//! 3. [`normalize`] — NFKC, control characters and whitespace, per block.
//! 4. [`chunk::chunk_document`] — section-, sentence- and token-aware chunks with overlap.
//!
//! [`prepare`] runs all four. Containers (ZIP archives, mailboxes) are not documents: the
//! [`container`] module opens them so that each file inside is prepared on its own.
//!
//! ```
//! use zhiku_core::ApproxTokenCounter;
//! use zhiku_ingest::{prepare, ChunkConfig};
//!
//! let html = b"<html><body><nav>Home | About</nav><h1>Leave</h1><p>Staff get 25 days of leave.</p></body></html>";
//! let doc = prepare("policy.html", html, &ChunkConfig::default(), &ApproxTokenCounter).unwrap();
//! assert_eq!(doc.chunks.len(), 1);
//! assert_eq!(doc.chunks[0].heading_path, vec!["Leave".to_string()]);
//! assert!(!doc.chunks[0].text.contains("About"));
//! ```

pub mod chunk;
pub mod container;
mod decode;
mod html;
pub mod injection;
mod language;
mod mail;
mod markdown;
pub mod minhash;
mod normalize;
mod office;
mod pdf;
pub mod pii;
mod records;
mod sections;
mod sentence;
mod text;

pub use chunk::{chunk_document, ChunkConfig};
pub use decode::decode;
pub use html::HtmlParser;
pub use language::detect_language;
pub use mail::EmailParser;
pub use markdown::MarkdownParser;
pub use normalize::{normalize, normalize_document};
pub use office::{DocxParser, OdfParser, PptxParser, XlsxParser};
pub use pdf::PdfParser;
pub use records::{CsvParser, JsonParser, JsonlParser};
pub use sections::{prepare_in_sections, Sectioned, Sections};
pub use sentence::split_sentences;
pub use text::TextParser;

use sha2::{Digest, Sha256};
use zhiku_core::{Chunk, EmbeddedFile, Error, ParsedDocument, Parser, Result, TokenCounter};

/// A file made ready for indexing.
#[derive(Debug, Clone)]
pub struct PreparedDocument {
    pub format: &'static str,
    /// BCP 47 primary language tag of the text (`zh`, `en`, ... or `und`).
    pub language: &'static str,
    pub title: Option<String>,
    pub content_hash: String,
    /// MinHash signature of the whole text, for near-duplicate detection.
    pub minhash: Option<minhash::Signature>,
    pub chunks: Vec<Chunk>,
    /// Files the document carries (an e-mail's attachments), to be ingested on their own.
    pub embedded: Vec<EmbeddedFile>,
}

/// Hex sha256 of the raw bytes: the identity of a file's content for change detection.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Picks a parser by extension; for unknown extensions, sniffs the decoded text.
pub fn parser_for(file_name: &str, text: &str) -> &'static dyn Parser {
    let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" | "xhtml" => &HtmlParser,
        "md" | "markdown" | "mdown" | "mkd" => &MarkdownParser,
        "txt" | "text" => &TextParser,
        "csv" => &CsvParser { delimiter: b',' },
        "tsv" | "tab" => &CsvParser { delimiter: b'\t' },
        "json" => &JsonParser,
        "jsonl" | "ndjson" => &JsonlParser,
        "eml" | "mbox" | "mbx" => &EmailParser,
        _ => {
            let head: String = text.trim_start().chars().take(256).collect::<String>().to_ascii_lowercase();
            if head.starts_with("<!doctype html") || head.starts_with("<html") {
                &HtmlParser
            } else {
                &TextParser
            }
        }
    }
}

/// Decode, parse, normalise and chunk one file.
pub fn prepare(file_name: &str, bytes: &[u8], config: &ChunkConfig, counter: &dyn TokenCounter) -> Result<PreparedDocument> {
    let is_pdf = bytes.starts_with(b"%PDF-") || file_name.to_ascii_lowercase().ends_with(".pdf");
    let (parser, doc): (&dyn Parser, ParsedDocument) = if is_pdf {
        (&PdfParser, PdfParser.parse(bytes)?)
    } else if let Some(parser) = office::sniff(bytes) {
        (parser, parser.parse(bytes)?)
    } else if let Some(parser) = office::parser_for_extension(file_name).filter(|_| !office::is_ole_compound(bytes)) {
        (parser, parser.parse(bytes)?)
    } else if matches!(parser_for(file_name, "").format(), "email" | "text")
        && (mail::looks_like_email(bytes) || mail::looks_like_mbox(bytes))
    {
        (&EmailParser, EmailParser.parse(bytes)?)
    } else if office::is_ole_compound(bytes) {
        return Err(Error::Parse {
            format: "office",
            reason: "a password-protected Office file or a legacy .doc/.xls/.ppt: save it as .docx/.xlsx/.pptx \
                     without a password to ingest it"
                .into(),
        });
    } else {
        let text = decode(bytes)?;
        let parser = parser_for(file_name, &text);
        (parser, parser.parse(text.as_bytes())?)
    };
    finish(parser.format(), doc, bytes, config, counter)
}

/// A document from text recognised on page images (OCR of a scanned PDF): each page's
/// paragraphs (separated by blank lines) as text blocks on that page. `bytes` are the original
/// file's, for its content hash.
pub fn prepare_recognised_pages(
    pages: &[(u32, String)],
    bytes: &[u8],
    config: &ChunkConfig,
    counter: &dyn TokenCounter,
) -> Result<PreparedDocument> {
    let mut doc = ParsedDocument::default();
    for (page, text) in pages {
        for paragraph in text.split("\n\n") {
            let lines: Vec<&str> = paragraph.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            if !lines.is_empty() {
                doc.blocks.push(zhiku_core::Block::text(pdf::reflow(&lines)).on_page(*page));
            }
        }
    }
    finish("pdf-ocr", doc, bytes, config, counter)
}

/// Normalise, chunk, and describe a parsed document.
fn finish(
    format: &'static str,
    mut doc: ParsedDocument,
    bytes: &[u8],
    config: &ChunkConfig,
    counter: &dyn TokenCounter,
) -> Result<PreparedDocument> {
    normalize_document(&mut doc);
    if doc.is_blank() {
        return Err(Error::Empty);
    }
    // Peak memory on a huge file is a few copies of its text: build the full text once, and let
    // the blocks go as soon as the chunks are cut.
    let full_text = doc.full_text();
    let chunks = chunk::chunk_with_text(&doc, &full_text, config, counter);
    doc.blocks = Vec::new();
    let embedded = std::mem::take(&mut doc.embedded);
    let language = detect_language(&full_text);
    let minhash = minhash::signature(&full_text);
    Ok(PreparedDocument { format, language, title: doc.title.clone(), content_hash: content_hash(bytes), minhash, chunks, embedded })
}
