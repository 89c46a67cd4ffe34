//! Office formats on real files: Debian Reference chapter 4 as pandoc and LibreOffice write it,
//! and a workbook and slides saved by LibreOffice and pandoc (scripts/make-office-fixtures.sh),
//! plus damaged and hostile packages made here.

use std::io::Write;

use zhiku_core::{ApproxTokenCounter, Chunk};
use zhiku_ingest::{prepare, ChunkConfig, PreparedDocument};

fn fixture(name: &str) -> Vec<u8> {
    let path = manifest_dir().join("tests/fixtures/office").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn prepared(name: &str) -> PreparedDocument {
    prepare(name, &fixture(name), &ChunkConfig::default(), &ApproxTokenCounter).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn chunk_with<'a>(doc: &'a PreparedDocument, needle: &str) -> &'a Chunk {
    doc.chunks.iter().find(|c| c.text.contains(needle)).unwrap_or_else(|| panic!("no chunk contains {needle:?}"))
}

#[test]
fn word_and_writer_documents_keep_headings_tables_and_code() {
    for name in ["debian-reference-ch04.en.docx", "debian-reference-ch04.en.odt"] {
        let doc = prepared(name);
        assert_eq!(doc.language, "en", "{name}");
        assert_eq!(doc.title.as_deref(), Some("Chapter 4. Authentication and access controls"), "{name}");
        // The section structure survives: a level-3 heading sits under its level-2 parent.
        let su = chunk_with(&doc, "pam_wheel.so");
        assert!(su.heading_path.iter().any(|h| h == "4.5. PAM and NSS") && su.heading_path.len() >= 2, "{name}: {:?}", su.heading_path);
        // The table of files keeps its columns and rows, header first.
        let table = chunk_with(&doc, "| /etc/shadow |");
        assert!(table.text.starts_with("| "), "{name}: {}", table.text);
        assert!(table.text.lines().nth(1).is_some_and(|l| l.starts_with("| --- |")), "{name}: {}", table.text);
        assert!(table.text.contains("secure user account information"), "{name}");
        assert_eq!(table.heading_path.last().map(String::as_str), Some("4.1. Normal Unix authentication"), "{name}");
        // Code keeps its line breaks.
        assert!(chunk_with(&doc, "user1:x:1000:1000").text.contains("\nuser2:x:1001"), "{name}");
    }
}

#[test]
fn chinese_word_document_written_by_libreoffice() {
    let doc = prepared("debian-reference-ch04.zh-cn.docx");
    assert_eq!(doc.format, "docx");
    assert_eq!(doc.language, "zh");
    let chunk = chunk_with(&doc, "/etc/shadow");
    assert!(chunk.heading_path.iter().any(|h| h.contains("一般的 Unix 认证")), "{:?}", chunk.heading_path);
}

#[test]
fn spreadsheets_give_computed_values_dates_and_a_table_per_sheet() {
    for name in ["packages.xlsx", "packages.ods"] {
        let doc = prepared(name);
        let all: String = doc.chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n");
        assert!(!all.contains("SUM") && !all.contains("[.B"), "{name}: formulas leaked: {all}");
        let packages = chunk_with(&doc, "aptitude");
        assert_eq!(packages.heading_path, vec!["Packages".to_string()], "{name}");
        let lines: Vec<&str> = packages.text.lines().collect();
        assert_eq!(lines[0], "| Package | Installed size (KiB) | Last upgrade | Share |", "{name}");
        assert!(lines.contains(&"| Total | 8000 | | |"), "{name}: the SUM's value: {lines:?}");
        let aptitude = lines.iter().find(|l| l.contains("aptitude")).unwrap();
        assert!(aptitude.contains("| 2023-02-04 |"), "{name}: date as a date: {aptitude}");
        assert!(aptitude.ends_with("| 52% |"), "{name}: the ratio as its format shows it: {aptitude}");
        let zh = chunk_with(&doc, "青木修");
        assert_eq!(zh.heading_path, vec!["维护者".to_string()], "{name}");
        assert!(zh.text.starts_with("| 软件包 | 维护者 |"), "{name}");
    }
}

#[test]
fn big_sheets_repeat_the_header_row_in_every_chunk() {
    let mut rows = String::new();
    for i in 0..300 {
        rows.push_str(&format!(
            r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>host-{i}</t></is></c><c r="B{r}"><v>{i}</v></c></row>"#,
            r = i + 2
        ));
    }
    let sheet = format!(
        r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Host</t></is></c><c r="B1" t="inlineStr"><is><t>Rack</t></is></c></row>{rows}</sheetData></worksheet>"#
    );
    let bytes = xlsx_package(&sheet);
    let doc = prepare("hosts.xlsx", &bytes, &ChunkConfig::default(), &ApproxTokenCounter).unwrap();
    assert!(doc.chunks.len() > 3, "{}", doc.chunks.len());
    let mut seen = 0;
    for c in &doc.chunks {
        assert!(c.text.starts_with("| Host | Rack |\n| --- | --- |\n"), "{}", c.text);
        seen += c.text.lines().filter(|l| l.starts_with("| host-")).count();
    }
    assert_eq!(seen, 300);
}

#[test]
fn slides_are_sections_with_their_notes_and_slide_numbers() {
    for name in ["authentication.pptx", "authentication.odp"] {
        let doc = prepared(name);
        assert_eq!(doc.title.as_deref(), Some("Authentication in Debian"), "{name}");
        let body = chunk_with(&doc, "PAM decides how a user proves");
        assert_eq!(body.heading_path, vec!["PAM and NSS".to_string()], "{name}");
        let notes = chunk_with(&doc, "/etc/pam.d holds one file per service");
        assert_eq!(notes.heading_path, vec!["PAM and NSS".to_string(), "Speaker notes".to_string()], "{name}");
        assert_eq!(notes.page, body.page, "{name}");
        let table = chunk_with(&doc, "| /etc/shadow | secure user account information |");
        assert_eq!(table.heading_path, vec!["Password files".to_string()], "{name}");
        assert_eq!(table.page.map(|p| p > body.page.unwrap_or(0)), Some(true), "{name}");
        assert!(!doc.chunks.iter().any(|c| c.text.contains("<number>")), "{name}: slide furniture leaked");
    }
}

#[test]
fn damaged_and_hostile_packages_fail_with_a_reason() {
    let config = ChunkConfig::default();
    let docx = fixture("debian-reference-ch04.en.docx");
    // Truncated: the central directory is gone.
    let err = prepare("cut.docx", &docx[..docx.len() / 2], &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("docx") && err.contains("truncated"), "{err}");
    // A part cut off mid-way.
    let err =
        prepare("cut.xlsx", &zip_of(&[("xl/workbook.xml", b"<workbook><sheets>")]), &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("xlsx") && err.contains("xl/workbook.xml") && err.contains("truncated"), "{err}");
    // A package without its main part.
    let err =
        prepare("hollow.pptx", &zip_of(&[("[Content_Types].xml", b"<Types/>")]), &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("pptx") && err.contains("ppt/presentation.xml"), "{err}");
    // Encrypted Office files are OLE containers whatever they are called.
    let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    ole.resize(4096, 0);
    let err = prepare("secret.docx", &ole, &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
    // A bomb: a 64 MiB part that compresses a thousandfold.
    let body = vec![b' '; 64 << 20];
    let err = prepare("bomb.docx", &zip_of(&[("word/document.xml", &body)]), &config, &ApproxTokenCounter).unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
}

fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in parts {
        out.start_file(*name, options).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn xlsx_package(sheet: &str) -> Vec<u8> {
    zip_of(&[
        (
            "xl/workbook.xml",
            br#"<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Hosts" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ])
}

/// The crate's directory, as `cargo test` gives it to the running test: a test binary built from
/// another checkout sharing the target directory (CI caches it) has that checkout's path compiled
/// in, and it may be gone.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
