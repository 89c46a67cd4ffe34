//! Office documents and e-mail through the real binary: real files (Debian Reference as pandoc and
//! LibreOffice write it; SpamAssassin corpus messages), attachments and mailbox messages stored
//! and searchable as documents of their own.

mod common;

use std::path::{Path, PathBuf};

use common::{debian_reference, Zhiku};
use serde_json::Value;

fn fixtures(dir: &str) -> PathBuf {
    common::manifest_dir().join(dir)
}

fn status_of<'a>(report: &'a Value, source_suffix: &str) -> &'a Value {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"].as_str().unwrap().ends_with(source_suffix))
        .unwrap_or_else(|| panic!("no report for {source_suffix}: {report}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn office_documents_are_searchable_with_their_structure() {
    let z = Zhiku::new();
    let office = fixtures("../zhiku-ingest/tests/fixtures/office");
    let report = z.ingest("docs", &[&office], &[]);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["ingested"], 4, "{report}");
    // The same deck, chapter and workbook written by another program are near copies, not new
    // documents (the workbook's values, dates and percentages come out the same from both).
    assert_eq!(status_of(&report, "authentication.pptx")["status"], "near_duplicate", "{report}");
    assert_eq!(status_of(&report, "debian-reference-ch04.en.odt")["status"], "near_duplicate", "{report}");
    assert_eq!(status_of(&report, "packages.xlsx")["status"], "near_duplicate", "{report}");

    let hits = z.search("docs", "which file holds the secure user account information", None, 5);
    let top = &hits[0];
    assert!(top["text"].as_str().unwrap().contains("/etc/shadow"), "{hits:#?}");
    let source = top["source"].as_str().unwrap();
    assert!(source.ends_with(".docx") || source.ends_with(".odt") || source.ends_with(".pptx") || source.ends_with(".odp"), "{source}");

    let sheet = z.search("docs", "installed size of aptitude package", None, 3);
    assert!(
        sheet.iter().any(|h| h["text"].as_str().unwrap().contains("| aptitude | 4194 |")),
        "spreadsheet rows are found with their header: {sheet:#?}"
    );

    // A knowledge base that keeps duplicates indexes every copy and still says which is which.
    assert!(z.run(&["kb", "create", "all-copies", "--duplicates", "keep"]).status.success());
    let kept = z.ingest("all-copies", &[&office], &[]);
    assert_eq!(kept["ingested"], 7, "{kept}");
    assert!(status_of(&kept, "authentication.pptx")["duplicate_of"].as_str().unwrap().ends_with("authentication.odp"), "{kept}");
    assert!(z.run(&["kb", "create", "x", "--duplicates", "merge"]).status.code() != Some(0));

    let notes = z.search("docs", "who may read the shadow file", None, 5);
    let from_slides = notes.iter().find(|h| h["source"].as_str().unwrap().ends_with("authentication.odp")).expect("slides found");
    assert!(from_slides["page"].as_u64().is_some(), "slide number kept as the page: {from_slides}");
}

#[test]
fn e_mail_messages_attachments_and_mailboxes() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    copy_dir(&fixtures("tests/fixtures/mail"), &mail);
    let report = z.ingest("mail", &[&mail], &["group:staff"]);
    assert_eq!(report["failed"], 0, "{report}");
    // Three mailbox messages, two messages with their attachments: two files and a forwarded
    // message.
    for suffix in [
        "exmh-workers.mbox!/0001.eml",
        "exmh-workers.mbox!/0002.eml",
        "exmh-workers.mbox!/0003.eml",
        "pam-ssh-patch.eml!/Makefile.am",
        "pam-ssh-patch.eml!/pam_ssh.spec",
        "pam-ssh-patch.eml",
        "forwarded.eml!/5637",
        "forwarded.eml",
    ] {
        assert_eq!(status_of(&report, suffix)["status"], "ingested", "{suffix}: {report}");
    }

    // The header is a searchable record of its own.
    let header = z.search("mail", "when building a rpm i386-redhat-linux- is appended to man page", Some("carol"), 5);
    assert!(header.is_empty(), "deny by default: carol is not staff");
    assert!(z.run(&["group", "add-member", "staff", "carol"]).status.success());
    let header = z.search("mail", "when building a rpm i386-redhat-linux- is appended to man page", Some("carol"), 5);
    let record = header
        .iter()
        .find(|h| h["source"].as_str().unwrap().ends_with("pam-ssh-patch.eml") && h["text"].as_str().unwrap().contains("Subject: "))
        .unwrap_or_else(|| panic!("the header record: {header:#?}"));
    let record = record["text"].as_str().unwrap();
    assert!(record.contains("Subject: when building a rpm i386-redhat-linux- is appended to man page"), "{record}");
    assert!(record.contains("From: ") && record.contains("Date: 2002-08-"), "{record}");

    // An attachment is found as itself, under its message.
    let spec = z.search("mail", "pam_ssh spec file BuildRequires", Some("carol"), 3);
    assert!(Zhiku::sources(&spec).iter().any(|s| s.ends_with("pam-ssh-patch.eml!/pam_ssh.spec")), "{spec:#?}");

    // Unchanged on a rerun, attachments included.
    let again = z.ingest("mail", &[&mail], &["group:staff"]);
    assert_eq!(again["ingested"], 0, "{again}");
    assert_eq!(again["failed"], 0, "{again}");

    // A message that loses an attachment loses its document; the others are untouched.
    let path = mail.join("pam-ssh-patch.eml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("Content-Disposition: attachment; filename=\"pam_ssh.spec\"").unwrap();
    let boundary_start = text[..cut].rfind("--Fig2xvG2VGoz8o/s").unwrap();
    let end = text[cut..].find("--Fig2xvG2VGoz8o/s").map(|i| cut + i).unwrap();
    std::fs::write(&path, format!("{}{}", &text[..boundary_start], &text[end..])).unwrap();
    let changed = z.ingest("mail", &[&mail], &["group:staff"]);
    assert_eq!(status_of(&changed, "pam-ssh-patch.eml!/pam_ssh.spec")["status"], "removed", "{changed}");
    assert_eq!(status_of(&changed, "pam-ssh-patch.eml")["status"], "replaced", "{changed}");
    assert_eq!(changed["removed"], 1, "{changed}");
    let spec = z.search("mail", "pam_ssh spec file BuildRequires", None, 5);
    assert!(!Zhiku::sources(&spec).iter().any(|s| s.ends_with("pam_ssh.spec")), "{spec:#?}");
}

#[test]
fn scanned_pdfs_are_read_by_ocr_or_fail_saying_what_to_install() {
    let z = Zhiku::new();
    let scan = fixtures("tests/fixtures/scanned-badge-policy.pdf");
    // Without the OCR tools on PATH: a clear per-file error.
    let out = z.command().arg("ingest").arg(&scan).args(["--kb", "scans", "--json"]).env("PATH", "/nonexistent").output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = status_of(&report, "scanned-badge-policy.pdf")["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("no text layer") && reason.contains("tesseract-ocr"), "{reason}");
    // With them (scripts/test.sh installs poppler-utils and tesseract-ocr): recognised text with
    // its page.
    let report = z.ingest("scans", &[&scan], &[]);
    assert_eq!(status_of(&report, "scanned-badge-policy.pdf")["status"], "ingested", "{report}");
    let hits = z.search("scans", "where do visitors collect a badge", None, 1);
    let text = hits[0]["text"].as_str().unwrap();
    assert!(text.contains("paper badge at the front desk"), "{text}");
    assert_eq!(hits[0]["page"], 1);
}

/// Pages `keep` of a Debian Reference PDF as a PDF of their own (lopdf), so a test parses a few
/// pages and not the whole book.
fn debian_reference_pages(name: &str, keep: std::ops::RangeInclusive<u32>, dir: &Path) -> PathBuf {
    let mut pdf = lopdf::Document::load(debian_reference().join(name)).unwrap();
    let total = pdf.get_pages().len() as u32;
    let drop: Vec<u32> = (1..=total).filter(|p| !keep.contains(p)).collect();
    pdf.delete_pages(&drop);
    let path = dir.join(name);
    pdf.save(&path).unwrap();
    path
}

#[test]
fn pdf_tables_headings_and_paragraphs_come_from_the_page_layout() {
    let dir = tempfile::tempdir().unwrap();
    let en = debian_reference_pages("debian-reference.en.pdf", 118..=122, dir.path());
    let zh = debian_reference_pages("debian-reference.zh-cn.pdf", 113..=117, dir.path());
    let z = Zhiku::new();
    let parsed = z.json(&["parse", "--json", en.to_str().unwrap(), zh.to_str().unwrap()]);
    let chunks = |file: usize| parsed["files"][file]["chunks"].as_array().unwrap().clone();

    // Table 4.7 of the book, drawn with spaces between columns, comes out as a Markdown table
    // under its section heading.
    let (en_chunks, zh_chunks) = (chunks(0), chunks(1));
    let table = en_chunks.iter().find(|c| c["text"].as_str().unwrap().contains("| smtp (mail) | 25 | ssmtp (smtps) | 465 |"));
    let table = table.unwrap_or_else(|| panic!("no ports table in {en_chunks:#?}"));
    assert!(table["text"].as_str().unwrap().starts_with("| insecure service name | port | secure service name | port |\n| --- |"));
    assert_eq!(table["heading_path"].as_array().unwrap().last().unwrap(), "4.6.1 Secure password on the Internet", "{table}");
    assert_eq!(table["page"], 3, "{table}");
    let zh_table = zh_chunks.iter().find(|c| c["text"].as_str().unwrap().contains("| www (http) | 80 | https | 443 |"));
    let zh_table = zh_table.unwrap_or_else(|| panic!("no ports table in {zh_chunks:#?}"));
    assert!(zh_table["text"].as_str().unwrap().starts_with("| 不安全的服务名 | 端口 | 安全的服务名 | 端口 |"), "{zh_table}");

    // Words hyphenated at a line end are whole again, and the running header is gone.
    let text: String = en_chunks.iter().map(|c| c["text"].as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("over an insecure network with the secure authentication"), "{text}");
    assert!(!text.contains("/ 233"), "{text}");
    let headings: Vec<String> =
        en_chunks.iter().flat_map(|c| c["heading_path"].as_array().unwrap().clone()).map(|h| h.as_str().unwrap().to_string()).collect();
    assert!(headings.iter().any(|h| h == "4.6.2 Secure Shell"), "{headings:?}");
}

#[test]
fn output_cut_short_by_the_reader_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // Far more output than a pipe holds, read one line of, as `zhiku parse --chunks … | head -1`.
    let z = Zhiku::new();
    let book = debian_reference().join("debian-reference.en.pdf");
    let mut child = z.command().args(["parse", "--chunks"]).arg(&book).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("pdf"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
