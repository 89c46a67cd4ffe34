//! Every parser on arbitrary bytes: `prepare` (sniffing, decoding, parsing, cleaning, chunking)
//! under each file name that picks a different parser, and the container unpacker. Nothing may
//! panic, hang or allocate without bound; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zhiku_core::ApproxTokenCounter;
use zhiku_ingest::container::{unpack, ArchiveLimits};
use zhiku_ingest::{prepare, ChunkConfig};

const NAMES: &[&str] = &[
    "a.txt", "a.md", "a.html", "a.csv", "a.tsv", "a.json", "a.jsonl", "a.pdf", "a.docx", "a.xlsx", "a.pptx", "a.odt",
    "a.ods", "a.odp", "a.eml", "a.mbox", "a.zip", "noextension",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let name = NAMES[selector as usize % NAMES.len()];
    let config = ChunkConfig { max_tokens: 64, overlap_tokens: 8 };
    if let Ok(doc) = prepare(name, bytes, &config, &ApproxTokenCounter) {
        for chunk in &doc.chunks {
            assert!(chunk.char_start <= chunk.char_end);
        }
    }
    let limits = ArchiveLimits { max_entries: 64, max_entry_bytes: 1 << 20, max_total_bytes: 4 << 20, max_ratio: 200 };
    let _ = unpack(name, bytes, &limits);
});
