use zhiku_core::{Error, Result};

const SNIFF_LEN: usize = 8192;

/// Bytes to text. Accepts UTF-8 (with or without BOM) and UTF-16 LE/BE with BOM; refuses files
/// that look binary or are in another encoding, saying what to do.
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
    if head.contains(&0) {
        return Err(Error::Binary { reason: "it contains NUL bytes".into() });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(Error::Parse {
            format: "text",
            reason: format!(
                "not valid UTF-8 at byte {}; convert it first, e.g. `iconv -f GB18030 -t UTF-8`",
                e.valid_up_to()
            ),
        }),
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
        (b"%PDF-", "PDF (not supported by this version)"),
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
    fn refuses_binary_empty_and_other_encodings() {
        assert!(matches!(decode(b""), Err(Error::Empty)));
        assert!(matches!(decode(b"  \n"), Err(Error::Empty)));
        assert!(matches!(decode(b"abc\0def"), Err(Error::Binary { .. })));
        assert!(matches!(decode(b"%PDF-1.7 ..."), Err(Error::Binary { .. })));
        // "中文" in GBK is not UTF-8.
        let err = decode(&[0xD6, 0xD0, 0xCE, 0xC4]).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
    }
}
