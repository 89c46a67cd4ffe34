//! E-mail: RFC 5322 messages (`.eml`) and mailboxes (`mbox`). A message becomes a document
//! whose first chunk is its header record (From, To, Cc, Date, Subject), followed by its text
//! body (or its HTML body, reduced to text, when it has no text one); its attachments, including
//! forwarded messages, come out as embedded files to be ingested as documents of their own.
//! Pictures, audio and video attachments are left out: there is no text in them to index.

use mail_parser::{Address, MessageParser, MimeHeaders};
use zhiku_core::{Block, EmbeddedFile, Error, ParsedDocument, Parser, Result};

use crate::{HtmlParser, TextParser};

/// At most this many attachments are taken from one message.
pub const MAX_ATTACHMENTS: usize = 1000;

#[derive(Debug, Default, Clone, Copy)]
pub struct EmailParser;

impl Parser for EmailParser {
    fn format(&self) -> &'static str {
        "email"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let bytes = strip_mbox_separator(bytes);
        let message = MessageParser::default()
            .parse(bytes)
            .filter(|m| !m.headers().is_empty())
            .ok_or_else(|| Error::Parse { format: "email", reason: "no message headers found".into() })?;
        let subject = message.subject().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let mut header = Vec::new();
        for (name, value) in [("From", message.from()), ("To", message.to()), ("Cc", message.cc())] {
            if let Some(list) = value.map(addresses).filter(|l| !l.is_empty()) {
                header.push(format!("{name}: {list}"));
            }
        }
        if let Some(date) = message.date() {
            header.push(format!("Date: {}", date.to_rfc3339()));
        }
        if let Some(subject) = &subject {
            header.push(format!("Subject: {subject}"));
        }
        let mut blocks = Vec::new();
        if !header.is_empty() {
            blocks.push(Block::record(header.join("\n")));
        }
        let body = match message.body_text(0) {
            Some(text) if !text.trim().is_empty() => TextParser.parse(text.as_bytes())?.blocks,
            _ => match message.body_html(0) {
                Some(html) => HtmlParser.parse(html.as_bytes())?.blocks,
                None => Vec::new(),
            },
        };
        blocks.extend(body);

        let mut embedded = Vec::new();
        for (i, part) in message.attachments().enumerate().take(MAX_ATTACHMENTS) {
            let content_type = part.content_type().map(|ct| ct.c_type.to_ascii_lowercase()).unwrap_or_default();
            if matches!(content_type.as_str(), "image" | "audio" | "video") {
                continue;
            }
            let name = match (part.attachment_name(), part.message()) {
                (Some(name), _) => safe_name(name),
                (None, Some(inner)) => format!("{}.eml", safe_name(inner.subject().unwrap_or("message"))),
                (None, None) => format!("attachment-{}{}", i + 1, extension_for(part.content_type())),
            };
            embedded.push(EmbeddedFile { name: unique(&embedded, name), bytes: part.contents().to_vec() });
        }
        Ok(ParsedDocument { title: subject, blocks, embedded })
    }
}

/// The messages of an mbox mailbox, each as the bytes of one RFC 5322 message.
pub fn mbox_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    mail_parser::mailbox::mbox::MessageIterator::new(bytes).flatten().map(|m| m.unwrap_contents()).collect()
}

/// True if the text looks like an mbox (starts with a `From ` separator line followed by
/// headers) or a bare message (starts with header fields a mail client writes).
pub fn looks_like_mbox(bytes: &[u8]) -> bool {
    bytes.starts_with(b"From ") && header_lines(strip_mbox_separator(bytes)) >= 2
}

pub fn looks_like_email(bytes: &[u8]) -> bool {
    header_lines(bytes) >= 2
}

/// How many of the well-known message header fields open the text, before its first blank line.
fn header_lines(bytes: &[u8]) -> usize {
    const KNOWN: &[&str] =
        &["from:", "to:", "subject:", "date:", "message-id:", "received:", "return-path:", "mime-version:", "delivered-to:", "cc:"];
    let head = &bytes[..bytes.len().min(16 << 10)];
    let text = String::from_utf8_lossy(head);
    let mut known = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a folded continuation
        }
        let Some((name, _)) = line.split_once(':') else { return 0 };
        if name.is_empty() || name.contains(' ') {
            return 0;
        }
        let lower = line.to_ascii_lowercase();
        if KNOWN.iter().any(|k| lower.starts_with(k)) {
            known += 1;
        }
    }
    known
}

fn strip_mbox_separator(bytes: &[u8]) -> &[u8] {
    if bytes.starts_with(b"From ") {
        match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => &bytes[end + 1..],
            None => &[],
        }
    } else {
        bytes
    }
}

fn addresses(address: &Address<'_>) -> String {
    address
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(addr)) => format!("{name} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An attachment's name as a path segment: no directories, no separators the source syntax
/// uses (`/`, `!`), nothing hidden.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().map(|c| if c == '!' || c.is_control() { '_' } else { c }).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned.chars().take(200).collect()
    }
}

fn unique(existing: &[EmbeddedFile], name: String) -> String {
    if !existing.iter().any(|e| e.name == name) {
        return name;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) => (s.to_string(), format!(".{e}")),
        None => (name.clone(), String::new()),
    };
    (2..).map(|n| format!("{stem}-{n}{ext}")).find(|n| !existing.iter().any(|e| &e.name == n)).unwrap_or(name)
}

fn extension_for(content_type: Option<&mail_parser::ContentType<'_>>) -> &'static str {
    let Some(ct) = content_type else { return "" };
    let sub = ct.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase();
    match (ct.c_type.to_ascii_lowercase().as_str(), sub.as_str()) {
        ("text", "html") => ".html",
        ("text", "csv") => ".csv",
        ("text", "markdown") => ".md",
        ("text", _) => ".txt",
        (_, "pdf") => ".pdf",
        (_, "zip") => ".zip",
        (_, "json") => ".json",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "From: Alice Liu <alice@example.com>\r\nTo: team@example.com\r\nSubject: =?UTF-8?B?5bm05YGH5pS/562W?=\r\nDate: Tue, 3 Feb 2026 09:30:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=gbk\r\nContent-Transfer-Encoding: base64\r\n\r\n1LG5pMO/xOrT0DI1zOzE6rzZoaM=\r\n--b1\r\nContent-Type: text/csv; name=\"days.csv\"\r\nContent-Disposition: attachment; filename=\"../days.csv\"\r\n\r\nyear,days\r\n2026,25\r\n--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"logo.png\"\r\n\r\nPNG\r\n--b1--\r\n";

    #[test]
    fn message_headers_body_and_attachments() {
        let doc = EmailParser.parse(MESSAGE.as_bytes()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("年假政策"));
        assert_eq!(doc.blocks[0].kind, zhiku_core::BlockKind::Record);
        assert!(doc.blocks[0].text.contains("From: Alice Liu <alice@example.com>"), "{}", doc.blocks[0].text);
        assert!(doc.blocks[0].text.contains("Date: 2026-02-03T09:30:00+08:00"), "{}", doc.blocks[0].text);
        // The GBK body is decoded.
        assert!(doc.blocks.iter().any(|b| b.text.contains("员工每年有25天年假")), "{:?}", doc.blocks);
        // The CSV is passed on under a safe name; the picture is not.
        assert_eq!(doc.embedded.len(), 1);
        assert_eq!(doc.embedded[0].name, "days.csv");
        assert!(String::from_utf8_lossy(&doc.embedded[0].bytes).contains("2026,25"));
    }

    #[test]
    fn mailboxes_split_into_messages_and_are_recognised() {
        let mbox = format!("From alice@example.com Tue Feb  3 09:30:00 2026\n{}\nFrom bob@example.com Wed Feb  4 10:00:00 2026\nFrom: bob@example.com\nSubject: hi\n\n>From the start.\n", MESSAGE.replace("\r\n", "\n"));
        assert!(looks_like_mbox(mbox.as_bytes()));
        assert!(looks_like_email(MESSAGE.as_bytes()));
        assert!(!looks_like_email(b"Title: my notes\n\nSome text."));
        let messages = mbox_messages(mbox.as_bytes());
        assert_eq!(messages.len(), 2);
        assert!(String::from_utf8_lossy(&messages[1]).contains("\nFrom the start."), "un-escaped body line");
    }

    #[test]
    fn not_a_message() {
        assert!(EmailParser.parse(b"").is_err());
    }
}
