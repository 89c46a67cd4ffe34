//! Text from scanned PDFs: pages rendered by poppler's `pdftoppm` and recognised by Tesseract,
//! both run as separate processes (Debian packages `poppler-utils`, `tesseract-ocr`, and
//! `tesseract-ocr-chi-sim` for Simplified Chinese). Without them a scanned PDF fails with a
//! message saying what to install.

use std::path::Path;
use std::process::Command;

use zhiku_core::TokenCounter;
use zhiku_ingest::{ChunkConfig, PreparedDocument};

/// Scanned documents longer than this are refused rather than keeping a batch busy for hours.
pub const MAX_OCR_PAGES: u32 = 500;
/// Languages recognised when their Tesseract data is installed, in this order of preference.
const LANGUAGES: &[&str] = &["eng", "chi_sim", "chi_tra"];

/// Parses a file as ingestion does, recognising the text of PDFs that have none.
pub fn prepare_file(name: &str, bytes: &[u8], chunk: &ChunkConfig, counter: &dyn TokenCounter) -> Result<PreparedDocument, String> {
    match zhiku_ingest::prepare(name, bytes, chunk, counter) {
        Ok(doc) => Ok(doc),
        Err(zhiku_core::Error::NoTextLayer) => {
            let pages = recognise_pdf(bytes)?;
            zhiku_ingest::prepare_recognised_pages(&pages, bytes, chunk, counter).map_err(|e| format!("after OCR: {e}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The recognised text of every page, in page order.
pub fn recognise_pdf(bytes: &[u8]) -> Result<Vec<(u32, String)>, String> {
    let missing = || {
        "the PDF has no text layer (a scanned document?) and OCR needs poppler and Tesseract: install Debian's \
         poppler-utils and tesseract-ocr (add tesseract-ocr-chi-sim for Chinese), then ingest it again"
            .to_string()
    };
    let languages = installed_languages().ok_or_else(missing)?;
    if Command::new("pdftoppm").arg("-v").output().is_err() {
        return Err(missing());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("OCR: cannot create a temporary directory: {e}"))?;
    let pdf = dir.path().join("in.pdf");
    std::fs::write(&pdf, bytes).map_err(|e| format!("OCR: cannot write a temporary file: {e}"))?;
    // 300 dpi grey: Tesseract's recommended resolution; colour adds nothing to recognition.
    let rendered = Command::new("pdftoppm")
        .args(["-r", "300", "-gray", "-png", "-l", &MAX_OCR_PAGES.to_string()])
        .arg(&pdf)
        .arg(dir.path().join("page"))
        .output()
        .map_err(|e| format!("OCR: cannot run pdftoppm: {e}"))?;
    if !rendered.status.success() {
        return Err(format!("OCR: pdftoppm could not render the PDF: {}", String::from_utf8_lossy(&rendered.stderr).trim()));
    }
    let mut images: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir.path())
        .map_err(|e| format!("OCR: {e}"))?
        .flatten()
        .filter_map(|e| page_number(&e.path()).map(|n| (n, e.path())))
        .collect();
    images.sort();
    let mut pages = Vec::with_capacity(images.len());
    for (number, image) in images {
        let out = Command::new("tesseract")
            .arg(&image)
            .arg("stdout")
            .args(["-l", &languages])
            .output()
            .map_err(|e| format!("OCR: cannot run tesseract: {e}"))?;
        if !out.status.success() {
            return Err(format!("OCR: tesseract failed on page {number}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        pages.push((number, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    tracing::debug!(pages = pages.len(), languages, "recognised a scanned PDF");
    Ok(pages)
}

/// `eng+chi_sim` for the languages installed, or `None` without Tesseract.
fn installed_languages() -> Option<String> {
    let out = Command::new("tesseract").arg("--list-langs").output().ok()?;
    let listed = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let installed: Vec<&str> = LANGUAGES.iter().copied().filter(|l| listed.lines().any(|line| line.trim() == *l)).collect();
    (!installed.is_empty()).then(|| installed.join("+"))
}

/// `page-07.png` → 7.
fn page_number(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("page-")?.strip_suffix(".png")?.parse().ok()
}
