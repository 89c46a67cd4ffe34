//! Personal data and secrets in text: detection, and the per-knowledge-base policy that decides
//! what happens to a chunk that contains some (`keep`, `mask`, `drop-chunk`).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
pub use zhiku_core::PiiPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Secret,
    Email,
    CnResidentId,
    BankCard,
    Phone,
    Ipv4,
    Ipv6,
}

impl PiiKind {
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Secret => "SECRET",
            PiiKind::Email => "EMAIL",
            PiiKind::CnResidentId => "ID_NUMBER",
            PiiKind::BankCard => "BANK_CARD",
            PiiKind::Phone => "PHONE",
            PiiKind::Ipv4 | PiiKind::Ipv6 => "IP_ADDRESS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: PiiKind,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in PII pattern compiles")
}

static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        r"|\bAKIA[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b",
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
        r"|\bsk-[A-Za-z0-9_-]{20,}",
        r"|(?i:\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*)[^\s]{8,}",
    ))
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"));
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| re(r"\+?[0-9][0-9 ()\-]{6,24}[0-9Xx]"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"));

/// Every finding in `text`, in order, without overlaps (secrets and e-mails win over the
/// numbers inside them).
pub fn detect(text: &str) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    let add = |kind: PiiKind, range: Range<usize>, found: &mut Vec<Finding>| {
        if !found.iter().any(|f| f.range.start < range.end && range.start < f.range.end) {
            found.push(Finding { kind, range });
        }
    };
    for m in SECRET.find_iter(text) {
        add(PiiKind::Secret, m.range(), &mut found);
    }
    for m in EMAIL.find_iter(text) {
        add(PiiKind::Email, m.range(), &mut found);
    }
    for m in IPV4.find_iter(text) {
        if standalone(text, m.range(), |c| c.is_ascii_digit() || c == '.') && m.as_str().split('.').all(|o| o.parse::<u8>().is_ok()) {
            add(PiiKind::Ipv4, m.range(), &mut found);
        }
    }
    for m in IPV6.find_iter(text) {
        if m.as_str().matches(':').count() >= 2
            && standalone(text, m.range(), |c| c.is_ascii_hexdigit() || c == ':')
            && m.as_str().parse::<std::net::Ipv6Addr>().is_ok()
            && m.as_str().chars().any(|c| c.is_ascii_hexdigit())
        {
            add(PiiKind::Ipv6, m.range(), &mut found);
        }
    }
    for m in DIGIT_RUN.find_iter(text) {
        let range = m.range();
        if !standalone(text, range.clone(), |c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let raw = m.as_str();
        let digits: String = raw.chars().filter(|c| c.is_ascii_digit() || *c == 'X' || *c == 'x').collect();
        let kind = if is_cn_resident_id(&digits) {
            Some(PiiKind::CnResidentId)
        } else if digits.chars().all(|c| c.is_ascii_digit()) && (13..=19).contains(&digits.len()) && luhn(&digits) && !raw.starts_with('+')
        {
            Some(PiiKind::BankCard)
        } else if is_phone(raw, &digits) {
            Some(PiiKind::Phone)
        } else {
            None
        };
        if let Some(kind) = kind {
            add(kind, range, &mut found);
        }
    }
    found.sort_by_key(|f| f.range.start);
    found
}

/// No character of `part_of_token` touches the match on either side.
fn standalone(text: &str, range: Range<usize>, part_of_token: impl Fn(char) -> bool) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    !before.is_some_and(&part_of_token) && !after.is_some_and(&part_of_token)
}

/// GB 11643: 17 digits with a valid birth date and an ISO 7064 MOD 11-2 check character.
fn is_cn_resident_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let month: u32 = id[10..12].parse().unwrap_or(0);
    let day: u32 = id[12..14].parse().unwrap_or(0);
    let year: u32 = id[6..10].parse().unwrap_or(0);
    if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(d, w)| (d - b'0') as u32 * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    bytes[17].to_ascii_uppercase() == check
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, d) in digits.bytes().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Chinese mobile numbers (11 digits starting 13–19, optionally +86) and international numbers
/// written with a leading `+` and 8–15 digits.
fn is_phone(raw: &str, digits: &str) -> bool {
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let national = digits.strip_prefix("86").filter(|_| raw.starts_with('+')).unwrap_or(digits);
    let cn_mobile = national.len() == 11 && national.starts_with('1') && matches!(national.as_bytes()[1], b'3'..=b'9');
    cn_mobile || (raw.starts_with('+') && (8..=15).contains(&digits.len()))
}

/// Replaces each finding with its placeholder (`[EMAIL]`, `[PHONE]`...).
pub fn mask(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        out.push_str(&text[last..f.range.start]);
        out.push('[');
        out.push_str(f.kind.label());
        out.push(']');
        last = f.range.end;
    }
    out.push_str(&text[last..]);
    out
}

/// Masks a text that arrives in pieces (a streamed answer) without ever letting an unmasked
/// finding through: the last [`StreamMasker::HOLD`] bytes wait for what follows, so any finding
/// up to that long is seen whole before any of it is released.
#[derive(Debug, Default)]
pub struct StreamMasker {
    pending: String,
}

impl StreamMasker {
    pub const HOLD: usize = 128;

    /// Takes the next piece; returns the masked text that can be released now (maybe empty).
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let findings = detect(&self.pending);
        let mut cut = self.pending.len().saturating_sub(Self::HOLD);
        // A private key block is longer than the hold: keep it all until it ends.
        if let Some(begin) = self.pending.find("-----BEGIN") {
            cut = cut.min(begin);
        }
        if let Some(straddling) = findings.iter().find(|f| f.range.start < cut && cut < f.range.end) {
            cut = straddling.range.start;
        }
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let before: Vec<Finding> = findings.into_iter().filter(|f| f.range.end <= cut).collect();
        let released = mask(&self.pending[..cut], &before);
        self.pending.drain(..cut);
        released
    }

    /// The rest, masked, once the text is complete.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        mask(&rest, &detect(&rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_text_is_masked_as_the_whole_would_be_however_it_is_cut() {
        let text = "Call Li Wei on +86 138 0013 8000 or mail li.wei@example.com; the server is 10.0.12.7. \
                    Card 4111 1111 1111 1111. Key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWep4PAtGoSo\n\
                    -----END RSA PRIVATE KEY----- and that is all, thank you.";
        let whole = mask(text, &detect(text));
        assert!(!whole.contains("138 0013") && whole.contains("[EMAIL]"), "{whole}");
        for size in [1, 2, 3, 5, 7, 16, 64, 200] {
            let mut masker = StreamMasker::default();
            let mut out = String::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(size) {
                let released = masker.push(&piece.iter().collect::<String>());
                assert!(!released.contains("example.com") && !released.contains("0013"), "{size}: {released}");
                out.push_str(&released);
            }
            out.push_str(&masker.finish());
            assert_eq!(out, whole, "pieces of {size}");
        }
    }

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        detect(text).into_iter().map(|f| (f.kind, &text[f.range])).collect()
    }

    #[test]
    fn emails_phones_and_addresses() {
        assert_eq!(
            kinds("Mail ops@example.com or call +86 138 0013 8000, 13912345678 or +44 20 7946 0958; host 10.0.12.7, fe80::1ff:fe23:4567:890a."),
            vec![
                (PiiKind::Email, "ops@example.com"),
                (PiiKind::Phone, "+86 138 0013 8000"),
                (PiiKind::Phone, "13912345678"),
                (PiiKind::Phone, "+44 20 7946 0958"),
                (PiiKind::Ipv4, "10.0.12.7"),
                (PiiKind::Ipv6, "fe80::1ff:fe23:4567:890a"),
            ]
        );
    }

    #[test]
    fn resident_ids_need_a_valid_checksum_and_cards_a_valid_luhn() {
        // 11010519491231002X is the standard's worked example.
        assert_eq!(kinds("身份证号11010519491231002X。"), vec![(PiiKind::CnResidentId, "11010519491231002X")]);
        assert!(kinds("110105194912310021").is_empty(), "wrong check digit");
        assert_eq!(kinds("card 4111 1111 1111 1111 ok"), vec![(PiiKind::BankCard, "4111 1111 1111 1111")]);
        assert!(kinds("order 4111 1111 1111 1112").is_empty(), "fails Luhn");
    }

    #[test]
    fn secrets() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(kinds(key), vec![(PiiKind::Secret, key)]);
        assert_eq!(kinds("aws AKIAIOSFODNN7EXAMPLE"), vec![(PiiKind::Secret, "AKIAIOSFODNN7EXAMPLE")]);
        assert_eq!(kinds("password: hunter2hunter2"), vec![(PiiKind::Secret, "password: hunter2hunter2")]);
    }

    #[test]
    fn ordinary_numbers_are_not_pii() {
        assert!(kinds("Version 2.6.32 released in 2024, 1,000,000 users, ISBN 978-3-16-148410-0, pi 3.14159265358979").is_empty());
        assert!(kinds("Debian 12.2.0 and 999.1.1.1").is_empty());
    }

    #[test]
    fn masking_and_policy_parsing() {
        let text = "Write to hr@example.com or call 13912345678.";
        assert_eq!(mask(text, &detect(text)), "Write to [EMAIL] or call [PHONE].");
        assert_eq!("drop-chunk".parse::<PiiPolicy>().unwrap(), PiiPolicy::DropChunk);
        assert!("redact".parse::<PiiPolicy>().is_err());
    }
}
