//! PDF as another writer makes it: Debian Reference chapter 4 (zh-cn) exported by LibreOffice
//! (scripts/make-office-fixtures.sh, tests/fixtures/pdf). Its Chinese glyphs carry placeholder codes and the
//! characters only in /ActualText; its tables are drawn cell by cell. The Debian Reference PDF
//! itself (dblatex) is covered through the binary in zhiku-cli's tests.

use zhiku_core::ApproxTokenCounter;
use zhiku_ingest::{prepare, ChunkConfig};

#[test]
fn libreoffice_pdf_keeps_chinese_text_tables_and_lists() {
    let path = manifest_dir().join("tests/fixtures/pdf/debian-reference-ch04.zh-cn.pdf");
    let bytes = std::fs::read(&path).unwrap();
    let doc = prepare("ch04.pdf", &bytes, &ChunkConfig::default(), &ApproxTokenCounter).unwrap();
    assert_eq!(doc.language, "zh");
    let text: String = doc.chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("第 4 章认证和访问控制"), "{text}");
    assert!(text.contains("PAM 的配置错误可能会锁住你的系统"), "{text}");

    let table = doc.chunks.iter().find(|c| c.text.contains("| /etc/shadow |")).unwrap_or_else(|| panic!("no table in {text}"));
    assert!(table.text.starts_with("| 文件 | 权限 | 用户 | 组 | 说明 |\n| --- |"), "{}", table.text);
    assert!(table.text.contains("| /etc/shadow | -rw-r----- | root | shadow | 安全加密的用户账号信息 |"), "{}", table.text);
    assert_eq!(table.heading_path.last().map(String::as_str), Some("4.1. 一般的 Unix 认证"), "{:?}", table.heading_path);

    // A bulleted list is a list (one item per paragraph), not a table with a column of bullets.
    assert!(text.contains("\n\n• 数字形式的用户 ID\n\n"), "{text}");
    // Code keeps its line breaks.
    assert!(text.contains("user1:x:1000:1000:User1 Name,,,:/home/user1:/bin/bash\nuser2:x:1001"), "{text}");
    assert!(doc.chunks.iter().all(|c| c.page.is_some()));
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("tests/fixtures/pdf").join(name)).unwrap()
}

#[test]
fn encrypted_and_damaged_pdfs_fail_saying_why_unless_anyone_may_read_them() {
    let config = ChunkConfig::default();
    let err = prepare("a.pdf", &fixture("packages-password.pdf"), &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("encrypted") && err.contains("qpdf --decrypt"), "{err}");
    // An owner password alone restricts editing, not reading: viewers open it, and so do we.
    let open = prepare("b.pdf", &fixture("packages-owner-only.pdf"), &config, &ApproxTokenCounter).unwrap();
    let plain = prepare("c.pdf", &fixture("packages.pdf"), &config, &ApproxTokenCounter).unwrap();
    assert_eq!(open.chunks, plain.chunks);
    assert!(plain.chunks.iter().any(|c| c.text.contains("aptitude")), "{:?}", plain.chunks);
    // Cut short anywhere: an error naming the problem, never a panic.
    let whole = fixture("packages.pdf");
    for len in [0, 10, whole.len() / 3, whole.len() / 2, whole.len() - 10] {
        let err = prepare("d.pdf", &whole[..len], &config, &ApproxTokenCounter).map(|d| d.chunks.len());
        if let Err(e) = err {
            assert!(e.to_string().contains("pdf") || e.to_string().contains("empty"), "{e}");
        }
    }
}

/// The crate's directory, as `cargo test` gives it to the running test: a test binary built from
/// another checkout sharing the target directory (CI caches it) has that checkout's path compiled
/// in, and it may be gone.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
