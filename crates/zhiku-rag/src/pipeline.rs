//! The parse stage of ingestion, on a thread of its own: it reads each input, opens containers,
//! skips files the store already has unchanged, and parses the rest, handing [`Work`] in
//! order through a bounded channel to the stage that embeds and stores. Parsing the next files
//! thus overlaps embedding the current one, and at most [`IN_FLIGHT`] parsed documents wait in
//! memory whatever the size of the batch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::SyncSender;

use zhiku_core::{Chunk, Principal, TokenCounter};
use zhiku_ingest::container::{self, ArchiveLimits, Unpacked};
use zhiku_ingest::{ChunkConfig, PreparedDocument};
use zhiku_store::Store;

use crate::inputs::{Input, Origin};

/// Parsed documents queued between the stages.
pub(crate) const IN_FLIGHT: usize = 4;
/// Containers inside containers (an archive in an archive, a forwarded message's attachment) are
/// opened down to this depth.
pub const MAX_NESTING: usize = 5;
/// Bytes unpacked in memory from the containers inside one input file, all levels together.
const MAX_EXPANDED_BYTES: u64 = 1 << 30;

pub(crate) enum Work {
    /// A container was opened: this many more files to go.
    Discovered(usize),
    Unchanged {
        source: String,
    },
    Parsed {
        source: String,
        prepared: Box<PreparedDocument>,
        /// A huge file prepared in sections: [`Work::Continued`] brings the rest of its chunks
        /// and [`Work::Completed`] ends it (or [`Work::Failed`] if a later section fails).
        sectioned: bool,
    },
    Continued {
        chunks: Vec<Chunk>,
    },
    Completed,
    Failed {
        source: String,
        reason: String,
    },
    /// Every file of the container `parent` has been sent; stored files under it that are not
    /// in `produced` are gone from it.
    ContainerDone {
        parent: String,
        produced: Vec<String>,
    },
    /// The store could not be read: the batch stops.
    Abort(zhiku_store::Error),
}

pub(crate) struct Parser<'a> {
    pub store: &'a Store,
    pub kb: &'a str,
    pub acl: &'a [Principal],
    /// `acl` was given for these files rather than inherited from the knowledge base.
    pub own_acl: bool,
    pub chunk: &'a ChunkConfig,
    pub counter: &'a dyn TokenCounter,
    /// Text files bigger than this are prepared this many bytes at a time.
    pub section_bytes: usize,
    pub tx: SyncSender<Work>,
    expanded: u64,
}

impl<'a> Parser<'a> {
    pub fn new(
        store: &'a Store,
        kb: &'a str,
        (acl, own_acl): (&'a [Principal], bool),
        chunk: &'a ChunkConfig,
        counter: &'a dyn TokenCounter,
        section_bytes: usize,
        tx: SyncSender<Work>,
    ) -> Self {
        Self { store, kb, acl, own_acl, chunk, counter, section_bytes, tx, expanded: 0 }
    }

    /// Parses every input in order. Stops early when the storing stage has gone.
    pub fn run(mut self, inputs: Vec<Input>) {
        for input in inputs {
            self.expanded = 0;
            let depth = usize::from(matches!(input.origin, Origin::ZipEntry { .. }));
            let going = match input.read() {
                Ok(bytes) => self.file(&input.source, input.file_name(), bytes, depth),
                Err(reason) => self.send(Work::Failed { source: input.source.clone(), reason }),
            };
            if !going {
                return;
            }
        }
    }

    fn send(&self, work: Work) -> bool {
        self.tx.send(work).is_ok()
    }

    /// One file's bytes: a container is opened and its files parsed one by one; anything else
    /// is a document.
    fn file(&mut self, source: &str, name: &str, bytes: Vec<u8>, depth: usize) -> bool {
        let unpacked = catch_unwind(AssertUnwindSafe(|| container::unpack(name, &bytes, &ArchiveLimits::default())))
            .unwrap_or_else(|_| Unpacked::Failed("the archive reader crashed on this file; please report it".into()));
        match unpacked {
            Unpacked::Document => self.document(source, name, &bytes, depth),
            Unpacked::Failed(reason) => self.send(Work::Failed { source: source.to_string(), reason }),
            Unpacked::Entries(entries) => {
                drop(bytes);
                self.children(source, entries.into_iter().map(|e| (e.name, e.content)).collect(), depth)
            }
        }
    }

    /// The files inside a container (archive entries, attachments), each stored under
    /// `container!/name`, followed by the container's [`Work::ContainerDone`].
    fn children(&mut self, parent: &str, children: Vec<(String, Result<Vec<u8>, String>)>, depth: usize) -> bool {
        if depth >= MAX_NESTING {
            let reason = format!("containers nested deeper than {MAX_NESTING} levels: extract this one first");
            return self.send(Work::Failed { source: parent.to_string(), reason });
        }
        if !self.send(Work::Discovered(children.len())) {
            return false;
        }
        let mut produced = Vec::with_capacity(children.len());
        for (name, content) in children {
            let source = format!("{parent}!/{name}");
            produced.push(source.clone());
            let going = match content {
                Err(reason) => self.send(Work::Failed { source, reason }),
                Ok(bytes) => {
                    self.expanded += bytes.len() as u64;
                    if self.expanded > MAX_EXPANDED_BYTES {
                        let reason = format!("the files inside expand past {} MiB in all", MAX_EXPANDED_BYTES >> 20);
                        self.send(Work::Failed { source, reason })
                    } else {
                        let file_name = name.rsplit('/').next().unwrap_or(&name).to_string();
                        self.file(&source, &file_name, bytes, depth + 1)
                    }
                }
            };
            if !going {
                return false;
            }
        }
        self.send(Work::ContainerDone { parent: parent.to_string(), produced })
    }

    fn document(&mut self, source: &str, name: &str, bytes: &[u8], depth: usize) -> bool {
        let hash = zhiku_ingest::content_hash(bytes);
        match self.store.is_unchanged(self.kb, source, &hash, self.acl, self.own_acl) {
            Ok(true) => return self.send(Work::Unchanged { source: source.to_string() }),
            Ok(false) => {}
            Err(e) => return self.send(Work::Abort(e)),
        }
        // Parsers run on untrusted input: a panic in one becomes this file's error, not the batch's.
        let crashed = || "the parser crashed on this file; please report it".to_string();
        let sectioned =
            catch_unwind(AssertUnwindSafe(|| zhiku_ingest::prepare_in_sections(name, bytes, self.section_bytes, self.chunk, self.counter)));
        match sectioned {
            Ok(None) => {}
            Ok(Some(Ok(sectioned))) => return self.sections(source, sectioned),
            Ok(Some(Err(e))) => return self.send(Work::Failed { source: source.to_string(), reason: e.to_string() }),
            Err(_) => return self.send(Work::Failed { source: source.to_string(), reason: crashed() }),
        }
        let prepared = catch_unwind(AssertUnwindSafe(|| crate::ocr::prepare_file(name, bytes, self.chunk, self.counter)));
        let mut prepared = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(reason)) => return self.send(Work::Failed { source: source.to_string(), reason }),
            Err(_) => return self.send(Work::Failed { source: source.to_string(), reason: crashed() }),
        };
        // Attachments first: the document itself is stored last, so that a run interrupted in
        // between finds it missing and comes back for the attachments.
        let embedded = std::mem::take(&mut prepared.embedded);
        if !embedded.is_empty() && !self.children(source, embedded.into_iter().map(|e| (e.name, Ok(e.bytes))).collect(), depth) {
            return false;
        }
        self.send(Work::Parsed { source: source.to_string(), prepared: Box::new(prepared), sectioned: false })
    }

    /// A huge text file, one section's chunks at a time: memory follows the section size.
    fn sections(&mut self, source: &str, sectioned: zhiku_ingest::Sectioned<'_>) -> bool {
        let zhiku_ingest::Sectioned { first, mut rest } = sectioned;
        if !self.send(Work::Parsed { source: source.to_string(), prepared: Box::new(first), sectioned: true }) {
            return false;
        }
        loop {
            let work = match catch_unwind(AssertUnwindSafe(|| rest.next())) {
                Ok(None) => return self.send(Work::Completed),
                Ok(Some(Ok(chunks))) => Work::Continued { chunks },
                Ok(Some(Err(e))) => return self.send(Work::Failed { source: source.to_string(), reason: e.to_string() }),
                Err(_) => {
                    let reason = "the parser crashed on this file; please report it".to_string();
                    return self.send(Work::Failed { source: source.to_string(), reason });
                }
            };
            if !self.send(work) {
                return false;
            }
        }
    }
}
