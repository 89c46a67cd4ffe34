use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use zhiku_core::{Error, Result};

const SNIFF_LEN: usize = 8192;

/// Bytes to text. UTF-8 (with or without BOM) and UTF-16 with a BOM are taken as they are;
/// UTF-16 without a BOM is recognised by its pattern of zero bytes; anything else that is not
/// UTF-8 goes through encoding detection (GB18030/GBK, Big5, Shift-JIS, EUC-KR, the Windows and
/// ISO-8859 code pages...). A few stray NULs in UTF-8 text are dropped. Files that look binary,
/// or that do not decode cleanly in the detected encoding, are refused with a reason.
pub fn decode(bytes: &[u8]) -> Result<String> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Empty);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if let Some(kind) = known_binary_format(bytes) {
        return Err(Error::Binary { reason: format!("it is a {kind} file") });
    }
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    if let Some(to_u16) = utf16_without_bom(head) {
        return decode_utf16(bytes, to_u16);
    }
    if head.contains(&0) {
        // A few stray NULs in otherwise valid UTF-8 (a log written by a crashing program) are
        // dropped; many of them, or NULs in undecodable bytes, mean a binary file.
        let nuls = bytes.iter().filter(|b| **b == 0).count();
        let text: Vec<u8> = bytes.iter().copied().filter(|b| *b != 0).collect();
        return match String::from_utf8(text) {
            Ok(s) if nuls * 20 < bytes.len() && !s.trim().is_empty() => Ok(s),
            _ => Err(Error::Binary { reason: "it contains NUL bytes".into() }),
        };
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_string());
    }
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Allow);
    detector.feed(bytes, true);
    let encoding = detector.guess(None, Utf8Detection::Deny);
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(Error::Parse {
            format: "text",
            reason: format!(
                "not valid UTF-8, and not valid {} either (the closest guess); convert it to UTF-8 first, e.g. `iconv -f ENCODING -t UTF-8`",
                encoding.name()
            ),
        });
    }
    tracing::debug!(encoding = encoding.name(), "decoded non-UTF-8 text");
    Ok(text.into_owned())
}

/// Text in UTF-16 has a zero byte in most code units of Latin text: in the odd positions for
/// little-endian, the even ones for big-endian. Binary files have zeros scattered on both.
fn utf16_without_bom(head: &[u8]) -> Option<fn([u8; 2]) -> u16> {
    if head.len() < 16 {
        return None;
    }
    let pairs = head.len() / 2;
    let zeros_even = head.iter().step_by(2).take(pairs).filter(|b| **b == 0).count();
    let zeros_odd = head.iter().skip(1).step_by(2).take(pairs).filter(|b| **b == 0).count();
    let mostly = |n: usize| n * 10 >= pairs * 6;
    let rarely = |n: usize| n * 20 <= pairs;
    if mostly(zeros_odd) && rarely(zeros_even) {
        Some(u16::from_le_bytes)
    } else if mostly(zeros_even) && rarely(zeros_odd) {
        Some(u16::from_be_bytes)
    } else {
        None
    }
}

fn decode_utf16(bytes: &[u8], to_u16: fn([u8; 2]) -> u16) -> Result<String> {
    if bytes.len() % 2 != 0 {
        return Err(Error::Parse { format: "text", reason: "UTF-16 text with an odd number of bytes (truncated?)".into() });
    }
    let units = bytes.chunks_exact(2).map(|p| to_u16([p[0], p[1]]));
    char::decode_utf16(units)
        .collect::<std::result::Result<String, _>>()
        .map_err(|e| Error::Parse { format: "text", reason: format!("invalid UTF-16: {e}") })
}

fn known_binary_format(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", "PDF"),
        (b"PK\x03\x04", "ZIP/Office"),
        (b"\x7fELF", "ELF executable"),
        (b"\x89PNG", "PNG image"),
        (b"\xFF\xD8\xFF", "JPEG image"),
        (b"GIF8", "GIF image"),
        (b"\x1F\x8B", "gzip"),
        (b"\xD0\xCF\x11\xE0", "legacy Office (OLE)"),
    ];
    MAGIC.iter().find(|(m, _)| bytes.starts_with(m)).map(|(_, k)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_bom_and_utf16() {
        assert_eq!(decode(b"\xEF\xBB\xBFhello").unwrap(), "hello");
        let utf16le: Vec<u8> = [0xFF, 0xFE].into_iter().chain("知库".encode_utf16().flat_map(|u| u.to_le_bytes())).collect();
        assert_eq!(decode(&utf16le).unwrap(), "知库");
        let utf16be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("ok".encode_utf16().flat_map(|u| u.to_be_bytes())).collect();
        assert_eq!(decode(&utf16be).unwrap(), "ok");
    }

    #[test]
    fn refuses_binary_and_empty() {
        assert!(matches!(decode(b""), Err(Error::Empty)));
        assert!(matches!(decode(b"  \n"), Err(Error::Empty)));
        assert!(matches!(decode(b"abc\0def"), Err(Error::Binary { .. })));
        assert!(matches!(decode(b"%PDF-1.7 ..."), Err(Error::Binary { .. })));
        let scattered: Vec<u8> = (0..64u8).map(|i| if i % 7 == 0 { 0 } else { i.wrapping_mul(37) | 0x80 }).collect();
        assert!(matches!(decode(&scattered), Err(Error::Binary { .. })));
    }

    #[test]
    fn legacy_chinese_japanese_and_korean_encodings_are_detected() {
        let zh_cn = "知库是一个在公司内部运行的知识库系统。员工每年享有二十七天带薪年假，报销申请须在三十天内提交。";
        let zh_tw = "知識庫系統在公司內部運行。員工每年享有二十七天帶薪年假，報銷申請須在三十天內提交。";
        let ja = "社員は毎年二十七日の有給休暇を取得できます。経費の申請は三十日以内に提出してください。";
        let ko = "직원은 매년 이십칠 일의 유급 휴가를 받습니다. 경비 청구는 삼십 일 이내에 제출해야 합니다.";
        for (text, encoding) in [
            (zh_cn, encoding_rs::GB18030),
            (zh_cn, encoding_rs::GBK),
            (zh_tw, encoding_rs::BIG5),
            (ja, encoding_rs::SHIFT_JIS),
            (ko, encoding_rs::EUC_KR),
        ] {
            let (bytes, _, unmappable) = encoding.encode(text);
            assert!(!unmappable);
            assert!(std::str::from_utf8(&bytes).is_err());
            assert_eq!(decode(&bytes).unwrap(), text, "{}", encoding.name());
        }
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode("Café crème brûlée, naïve façade.");
        assert_eq!(decode(&latin1).unwrap(), "Café crème brûlée, naïve façade.");
    }

    #[test]
    fn utf16_without_bom_is_recognised() {
        let text = "Leave policy: 27 days per year.";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(decode(&le).unwrap(), text);
        assert_eq!(decode(&be).unwrap(), text);
    }
}
