//! The local extractor: no model, a few thousand chunks a second.
//!
//! Entities are capitalised phrases, code identifiers and versioned products in English, and the
//! names, places and organisations `jieba`'s part-of-speech tags find in Chinese. Relations come
//! from verb patterns ("X depends on Y", "X is owned by Y", "X is a Y", "X 是 Y"), definitions
//! (`term: a …`), appositions ("Borealis, a message broker,"), tables (a row's first cell to its
//! other cells, by column) and, weakest, two names in one sentence (`related_to`).

use std::sync::OnceLock;

use crate::words::{has_cjk, sentences, words, Word};
use crate::{structured, DocumentText, EntityKind, EntityRef, Extraction, Extractor, ValueKind, RELATED_TO};

#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExtractor;

impl Extractor for LocalExtractor {
    fn name(&self) -> &str {
        "local-1"
    }

    fn extract(&self, doc: &DocumentText<'_>) -> Vec<Extraction> {
        if doc.is_structured() {
            return structured::extract(doc, &structured::Keys::default());
        }
        doc.chunks.iter().map(|c| extract_text(c.text)).collect()
    }
}

/// Co-occurrence edges are only drawn between this many names of one sentence: a longer list
/// (an index, a table of contents) relates nothing in particular.
const MAX_COOCCURRING: usize = 8;

pub(crate) fn extract_text(text: &str) -> Extraction {
    let mut out = Extraction::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if is_table_line(lines[i]) {
            let start = i;
            while i < lines.len() && is_table_line(lines[i]) {
                i += 1;
            }
            table(&lines[start..i], &mut out);
            continue;
        }
        let line = lines[i];
        i += 1;
        definition(line, &mut out);
        for sentence in sentences(line) {
            if has_cjk(sentence) {
                chinese(sentence, &mut out);
            } else {
                english(sentence, &mut out);
            }
        }
    }
    out
}

// ---- English ------------------------------------------------------------------------------

/// Words that start sentences without naming anything.
const SENTENCE_STARTERS: &[&str] = &[
    "the",
    "this",
    "that",
    "these",
    "those",
    "it",
    "its",
    "in",
    "on",
    "at",
    "for",
    "if",
    "when",
    "while",
    "a",
    "an",
    "as",
    "after",
    "before",
    "each",
    "every",
    "all",
    "some",
    "many",
    "most",
    "there",
    "here",
    "we",
    "you",
    "they",
    "he",
    "she",
    "i",
    "our",
    "your",
    "their",
    "to",
    "by",
    "with",
    "from",
    "use",
    "run",
    "see",
    "note",
    "also",
    "however",
    "then",
    "so",
    "but",
    "and",
    "or",
    "because",
    "since",
    "although",
    "unless",
    "once",
    "what",
    "which",
    "who",
    "how",
    "why",
    "where",
    "yes",
    "no",
    "not",
    "do",
    "does",
    "make",
    "set",
    "add",
    "install",
    "create",
    "both",
    "other",
    "such",
    "only",
    "one",
    "two",
    "new",
    "first",
    "next",
    "finally",
    "please",
    "any",
    "my",
    "his",
    "her",
    "during",
    "until",
    "about",
    "under",
    "over",
    "between",
    "into",
    "through",
    "without",
    "within",
    "instead",
    "otherwise",
    "again",
    "today",
    "now",
    "example",
    "chapter",
    "section",
    "table",
    "figure",
    "step",
];

/// Joins capitalised words into one name: "Bank of America", "Ministry for the Interior".
const NAME_CONNECTORS: &[&str] = &["of", "for", "de", "du", "la", "van", "von", "der", "den", "y", "the"];

/// Nouns that stand after a name and belong to it in speech, not in the graph: "the Atlas
/// service depends on …" relates Atlas.
pub(crate) const GENERIC_HEADS: &[&str] = &[
    "service",
    "services",
    "team",
    "system",
    "server",
    "library",
    "package",
    "project",
    "application",
    "app",
    "tool",
    "database",
    "module",
    "component",
    "department",
    "group",
    "company",
    "cluster",
    "platform",
    "api",
    "program",
    "daemon",
    "protocol",
    "site",
];

const DETERMINERS: &[&str] =
    &["a", "an", "the", "this", "that", "its", "their", "his", "her", "our", "some", "any", "each", "every", "one"];

const ADVERBS: &[&str] = &[
    "also",
    "usually",
    "typically",
    "still",
    "directly",
    "only",
    "now",
    "always",
    "often",
    "mainly",
    "mostly",
    "currently",
    "indirectly",
    "heavily",
    "strongly",
    "generally",
    "actually",
    "really",
    "already",
    "originally",
    "primarily",
    "internally",
    "then",
];

/// Words that end a noun phrase.
const PHRASE_STOPS: &[&str] = &[
    "that",
    "which",
    "who",
    "whom",
    "whose",
    "where",
    "when",
    "while",
    "and",
    "or",
    "but",
    "with",
    "without",
    "in",
    "on",
    "at",
    "by",
    "for",
    "from",
    "to",
    "into",
    "onto",
    "as",
    "than",
    "like",
    "via",
    "under",
    "over",
    "through",
    "between",
    "after",
    "before",
    "because",
    "since",
    "if",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "has",
    "have",
    "had",
    "can",
    "could",
    "will",
    "would",
    "should",
    "may",
    "might",
    "must",
    "not",
    "do",
    "does",
    "did",
    "used",
    "so",
    "such",
    "especially",
    "including",
    "having",
    "usually",
    "often",
    "of",
    "about",
    "against",
    "among",
    "within",
    "it",
    "they",
    "them",
];

/// "a member of the genus Canis", "a kind of tree": the relation is with what follows "of".
/// The ones that name a relation of their own say which.
const OF_HEADS: &[(&str, Option<&str>)] = &[
    ("member", Some("member_of")),
    ("part", Some("part_of")),
    ("component", Some("part_of")),
    ("piece", Some("part_of")),
    ("kind", None),
    ("type", None),
    ("sort", None),
    ("form", None),
    ("variety", None),
    ("species", None),
    ("any", None),
    ("one", None),
    ("class", None),
    ("family", None),
    ("version", Some("version_of")),
    ("fork", Some("based_on")),
    ("subset", Some("part_of")),
    ("act", None),
    ("process", None),
    ("state", None),
    ("quality", None),
    ("condition", None),
    ("practice", None),
    ("branch", None),
    ("unit", None),
    ("amount", None),
    ("group", None),
    ("collection", None),
    ("instance", None),
    ("example", None),
    ("genus", None),
];

/// Adjectives that are not worth keeping in a concept's name ("a large stream" is a stream).
const PLAIN_ADJECTIVES: &[&str] = &[
    "large",
    "small",
    "big",
    "little",
    "long",
    "short",
    "new",
    "old",
    "high",
    "low",
    "good",
    "great",
    "common",
    "various",
    "different",
    "certain",
    "other",
    "main",
    "general",
    "special",
    "particular",
    "usual",
    "simple",
    "popular",
    "widely",
    "very",
    "several",
    "many",
    "few",
    "whole",
    "entire",
    "single",
    "same",
    "own",
    "important",
    "major",
    "minor",
    "free",
    "full",
    "real",
    "true",
    "standard",
    "basic",
    "modern",
    "famous",
    "well-known",
    "typical",
    "usually",
    "fast",
    "slow",
    "light",
    "heavy",
];

/// Verb patterns: the words (after adverbs are skipped), the relation, and whether the object
/// is the relation's subject ("X is owned by Y" is "Y owns X").
const PATTERNS: &[(&[&str], &str, bool)] = &[
    (&["depends", "on"], "depends_on", false),
    (&["depend", "on"], "depends_on", false),
    (&["relies", "on"], "depends_on", false),
    (&["rely", "on"], "depends_on", false),
    (&["requires"], "depends_on", false),
    (&["require"], "depends_on", false),
    (&["needs"], "depends_on", false),
    (&["is", "required", "by"], "depends_on", true),
    (&["uses"], "uses", false),
    (&["is", "used", "by"], "uses", true),
    (&["are", "used", "by"], "uses", true),
    (&["is", "owned", "by"], "owns", true),
    (&["are", "owned", "by"], "owns", true),
    (&["owns"], "owns", false),
    (&["is", "maintained", "by"], "maintains", true),
    (&["are", "maintained", "by"], "maintains", true),
    (&["maintains"], "maintains", false),
    (&["is", "managed", "by"], "manages", true),
    (&["are", "managed", "by"], "manages", true),
    (&["manages"], "manages", false),
    (&["leads"], "manages", false),
    (&["is", "led", "by"], "manages", true),
    (&["is", "run", "by"], "manages", true),
    (&["is", "developed", "by"], "develops", true),
    (&["was", "developed", "by"], "develops", true),
    (&["is", "written", "by"], "develops", true),
    (&["was", "written", "by"], "develops", true),
    (&["was", "created", "by"], "develops", true),
    (&["is", "created", "by"], "develops", true),
    (&["develops"], "develops", false),
    (&["created"], "develops", false),
    (&["wrote"], "develops", false),
    (&["runs", "on"], "runs_on", false),
    (&["run", "on"], "runs_on", false),
    (&["is", "hosted", "on"], "runs_on", false),
    (&["is", "deployed", "on"], "runs_on", false),
    (&["is", "installed", "on"], "runs_on", false),
    (&["is", "located", "in"], "located_in", false),
    (&["is", "based", "in"], "located_in", false),
    (&["is", "headquartered", "in"], "located_in", false),
    (&["is", "based", "on"], "based_on", false),
    (&["are", "based", "on"], "based_on", false),
    (&["is", "derived", "from"], "based_on", false),
    (&["is", "a", "fork", "of"], "based_on", false),
    (&["is", "part", "of"], "part_of", false),
    (&["are", "part", "of"], "part_of", false),
    (&["belongs", "to"], "part_of", false),
    (&["belong", "to"], "part_of", false),
    (&["contains"], "part_of", true),
    (&["includes"], "part_of", true),
    (&["consists", "of"], "part_of", true),
    (&["is", "composed", "of"], "part_of", true),
    (&["replaces"], "replaces", false),
    (&["replaced"], "replaces", false),
    (&["is", "replaced", "by"], "replaces", true),
    (&["supersedes"], "replaces", false),
    (&["connects", "to"], "connects_to", false),
    (&["talks", "to"], "connects_to", false),
    (&["sends", "data", "to"], "connects_to", false),
    (&["calls"], "calls", false),
    (&["reports", "to"], "reports_to", false),
    (&["works", "for"], "member_of", false),
    (&["works", "at"], "member_of", false),
    (&["is", "a", "member", "of"], "member_of", false),
    (&["is", "the"], "is_a", false),
    (&["is", "a"], "is_a", false),
    (&["is", "an"], "is_a", false),
    (&["was", "a"], "is_a", false),
    (&["was", "an"], "is_a", false),
    (&["are", "a"], "is_a", false),
    (&["is", "one", "of", "the"], "is_a", false),
    (&["is", "one", "of"], "is_a", false),
    (&["is", "any", "of"], "is_a", false),
    (&["are", "any", "of"], "is_a", false),
    (&["refers", "to"], "is_a", false),
];

/// Role nouns in "X is the N of Y": the relation they make.
const ROLES: &[(&str, &str)] = &[
    ("owner", "owns"),
    ("maintainer", "maintains"),
    ("manager", "manages"),
    ("head", "manages"),
    ("lead", "manages"),
    ("leader", "manages"),
    ("director", "manages"),
    ("author", "develops"),
    ("creator", "develops"),
    ("developer", "develops"),
    ("successor", "replaces"),
    ("part", "part_of"),
    ("member", "member_of"),
];

fn is_capitalised(word: &Word<'_>) -> bool {
    let mut chars = word.text.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_uppercase()
        || (first.is_lowercase() && chars.clone().any(char::is_uppercase) && word.text.len() > 2 && !word.text.contains('.')))
        && word.text.chars().any(char::is_alphabetic)
}

fn is_version(text: &str) -> bool {
    let t = text.strip_prefix(['v', 'V']).unwrap_or(text);
    !t.is_empty()
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.split('.').all(|p| !p.is_empty() && p.trim_end_matches(|c: char| c.is_ascii_lowercase()).chars().all(|c| c.is_ascii_digit()))
        && t.len() <= 12
}

/// Code: `snake_case`, `a::path`, `/etc/paths`, `file.ext`, backticked words.
fn is_code(word: &Word<'_>) -> bool {
    let t = word.text;
    if word.backticked {
        return t.chars().any(char::is_alphanumeric);
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let snake = t.contains('_') && t.split('_').filter(|p| !p.is_empty()).count() >= 2 && t.chars().all(|c| alnum(c) || c == '_');
    let path = (t.starts_with('/') || t.starts_with("~/")) && t.len() > 2 && t[1..].chars().any(char::is_alphabetic);
    let scoped = t.contains("::") && t.split("::").all(|p| !p.is_empty());
    let dotted = t.contains('.')
        && !t.ends_with('.')
        && t.split('.').all(|p| !p.is_empty() && p.chars().all(|c| alnum(c) || c == '-' || c == '_'))
        && t.split('.').any(|p| p.chars().any(|c| c.is_ascii_alphabetic()))
        && t.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    snake || path || scoped || dotted
}

/// A named entity found in a sentence: words `start..end`.
#[derive(Debug, Clone)]
struct Span {
    start: usize,
    end: usize,
    entity: EntityRef,
}

fn join(words: &[Word<'_>]) -> String {
    words.iter().map(|w| w.text).collect::<Vec<_>>().join(" ")
}

fn named_spans(ws: &[Word<'_>]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        if is_code(&ws[i]) {
            spans.push(Span { start: i, end: i + 1, entity: EntityRef::new(ws[i].text, EntityKind::Code) });
            i += 1;
            continue;
        }
        if !is_capitalised(&ws[i]) {
            i += 1;
            continue;
        }
        let mut start = i;
        let mut end = i + 1;
        while end < ws.len() && !ws[end - 1].closes && !ws[end].opens {
            if is_capitalised(&ws[end]) && !is_code(&ws[end]) {
                end += 1;
            } else if NAME_CONNECTORS.contains(&ws[end].lower().as_str())
                && end + 1 < ws.len()
                && !ws[end].closes
                && !ws[end + 1].opens
                && is_capitalised(&ws[end + 1])
            {
                end += 2;
            } else {
                break;
            }
        }
        // Sentence-initial function words are capitalised for grammar's sake only.
        while start < end && start == 0 && SENTENCE_STARTERS.contains(&ws[start].lower().as_str()) {
            start += 1;
        }
        while start < end && NAME_CONNECTORS.contains(&ws[start].lower().as_str()) {
            start += 1;
        }
        let next = end;
        if start < end && end - start <= 6 {
            let mut kind = EntityKind::Name;
            if end < ws.len() && !ws[end - 1].closes && is_version(ws[end].text) {
                end += 1;
                kind = EntityKind::Product;
            }
            spans.push(Span { start, end, entity: EntityRef::new(join(&ws[start..end]), kind) });
            i = end.max(next);
        } else {
            i = next;
        }
    }
    spans
}

fn is_plain_word(w: &Word<'_>) -> bool {
    w.text.chars().all(|c| c.is_alphabetic() || c == '-') && w.text.chars().next().is_some_and(char::is_lowercase)
}

/// A common noun phrase starting at `at` (determiners already skipped): its words up to the
/// first word that ends a phrase, kept to the head and at most one modifier worth keeping.
fn concept_at(ws: &[Word<'_>], at: usize) -> Option<(EntityRef, usize)> {
    let mut end = at;
    while end < ws.len()
        && end - at < 5
        && is_plain_word(&ws[end])
        && !PHRASE_STOPS.contains(&ws[end].lower().as_str())
        && !DETERMINERS.contains(&ws[end].lower().as_str())
    {
        end += 1;
        if ws[end - 1].closes {
            break;
        }
    }
    if end == at {
        return None;
    }
    let phrase: Vec<String> = ws[at..end].iter().map(Word::lower).collect();
    let head = phrase.last()?.clone();
    // One modifier is kept ("message broker", "martial art"), unless it only grades or
    // describes ("large", "open-source", "widely").
    let modifier = phrase.len().checked_sub(2).map(|i| phrase[i].clone()).filter(|m| {
        let descriptive = ["ous", "ful", "able", "ible", "less", "ly", "ish", "-source", "-known", "-based"].iter().any(|s| m.ends_with(s));
        !descriptive && !PLAIN_ADJECTIVES.contains(&m.as_str()) && !DETERMINERS.contains(&m.as_str())
    });
    let name = match modifier {
        Some(m) => format!("{m} {head}"),
        None => head,
    };
    Some((EntityRef::new(name, EntityKind::Concept), end))
}

fn skip(ws: &[Word<'_>], mut at: usize, words: &[&str]) -> usize {
    while at < ws.len() && words.contains(&ws[at].lower().as_str()) && !ws[at].opens {
        at += 1;
    }
    at
}

/// The object(s) at `at`: names (a list of them: "A, B and C") or one concept. Returns them, the
/// relation to use (an "of"-head may change it) and where the phrase ends.
fn objects_at(ws: &[Word<'_>], spans: &[Span], at: usize, relation: &str) -> (Vec<EntityRef>, String, usize) {
    // "any of the …", "one of the …": what follows "of".
    if at + 1 < ws.len() && matches!(ws[at].lower().as_str(), "any" | "one" | "each") && ws[at + 1].lower() == "of" {
        return objects_at(ws, spans, at + 2, relation);
    }
    let at = skip(ws, at, DETERMINERS);
    // "a Japanese martial art", "Debian packages": a name used as a modifier.
    if let Some(span) = spans.iter().find(|s| s.start == at && s.end == s.start + 1 && s.entity.kind == EntityKind::Name) {
        let next = ws.get(span.end);
        let modifies = next.is_some_and(|n| {
            let w = n.lower();
            !ws[span.start].closes
                && is_plain_word(n)
                && !PHRASE_STOPS.contains(&w.as_str())
                && !ADVERBS.contains(&w.as_str())
                && !w.ends_with("ly")
        });
        if modifies {
            return objects_at(ws, spans, span.end, relation);
        }
    }
    if let Some(first) = spans.iter().position(|s| s.start == at) {
        let mut found = vec![spans[first].entity.clone()];
        let mut end = spans[first].end;
        let mut next = first + 1;
        // "A, B and C": a list continues after a comma or a conjunction.
        while let Some(span) = spans.get(next) {
            // "A, B", "A and B", "A, and on B": a comma or a conjunction, and at most the
            // pattern's preposition again.
            let between: Vec<String> = ws[end..span.start].iter().map(Word::lower).collect();
            let conjunction = between.first().is_some_and(|w| w == "and" || w == "or");
            let rest_ok =
                between.iter().skip(usize::from(conjunction)).all(|w| ["on", "to", "by", "in", "the", "also"].contains(&w.as_str()));
            let comma = ws[end - 1].after == Some(',');
            if between.len() > 3 || !(conjunction || comma) || !rest_ok {
                break;
            }
            found.push(span.entity.clone());
            end = span.end;
            next += 1;
        }
        return (found, relation.to_string(), end);
    }
    let Some((concept, end)) = concept_at(ws, at) else { return (Vec::new(), relation.to_string(), at) };
    // "the genus Canis", "the language Rust": the name, not its class.
    if end < ws.len() && !ws[end - 1].closes && spans.iter().any(|s| s.start == end) {
        return objects_at(ws, spans, end, relation);
    }
    let written_head = concept.name.rsplit(' ').next().unwrap_or("").to_string();
    let head = crate::resolve::entity_key(&written_head, EntityKind::Concept);
    if end < ws.len() && ws[end].lower() == "of" && !ws[end - 1].closes {
        if let Some((_, of_relation)) = OF_HEADS.iter().find(|(h, _)| *h == head) {
            let relation = of_relation.map(str::to_string).unwrap_or_else(|| relation.to_string());
            let (objects, _, end) = objects_at(ws, spans, end + 1, &relation);
            return (objects, relation, end);
        }
        // A plural is a class ("the members of"), not a role.
        if relation == "is_a" && ws[at.saturating_sub(1)].lower() == "the" && written_head == head {
            // "X is the owner of Y": the role is the relation.
            let role = ROLES.iter().find(|(r, _)| *r == head).map(|(_, rel)| rel.to_string()).unwrap_or_else(|| format!("{head}_of"));
            let (objects, _, end) = objects_at(ws, spans, end + 1, &role);
            if !objects.is_empty() {
                return (objects, role, end);
            }
        }
    }
    (vec![concept], relation.to_string(), end)
}

/// The subject ending right before word `at`: a name (skipping a generic head: "the Atlas
/// service") or a common noun phrase at the start of the clause.
fn subject_before(ws: &[Word<'_>], spans: &[Span], at: usize) -> Option<EntityRef> {
    if at == 0 {
        return None;
    }
    let mut end = at;
    while end > 0 && ADVERBS.contains(&ws[end - 1].lower().as_str()) {
        end -= 1;
    }
    if let Some(span) = spans.iter().find(|s| s.end == end) {
        return Some(span.entity.clone());
    }
    if end >= 2 && GENERIC_HEADS.contains(&ws[end - 1].lower().as_str()) {
        if let Some(span) = spans.iter().find(|s| s.end == end - 1) {
            return Some(span.entity.clone());
        }
    }
    // A common noun phrase: back to the start of the clause, a determiner or a stop word.
    let mut start = end;
    while start > 0 && is_plain_word(&ws[start - 1]) && !ws[start - 1].closes {
        let w = ws[start - 1].lower();
        if DETERMINERS.contains(&w.as_str()) || PHRASE_STOPS.contains(&w.as_str()) || SENTENCE_STARTERS.contains(&w.as_str()) {
            break;
        }
        start -= 1;
    }
    if start == end || end - start > 3 {
        return None;
    }
    let preceding = start.checked_sub(1).map(|i| ws[i].lower());
    let clause_start = start == 0 || ws[start - 1].closes || preceding.as_deref().is_some_and(|p| DETERMINERS.contains(&p));
    if !clause_start {
        return None;
    }
    let name: Vec<String> = ws[start..end].iter().map(Word::lower).collect();
    Some(EntityRef::new(name.join(" "), EntityKind::Concept))
}

fn english(sentence: &str, out: &mut Extraction) {
    let ws = words(sentence);
    if ws.is_empty() {
        return;
    }
    let spans = named_spans(&ws);
    for span in &spans {
        out.mention(&span.entity);
    }
    let lower: Vec<String> = ws.iter().map(Word::lower).collect();
    let stated_before = out.relations.len();
    // Verb patterns.
    let mut i = 0;
    while i < ws.len() {
        let matched = PATTERNS.iter().find(|(pattern, _, _)| {
            let mut j = i;
            pattern.iter().all(|p| {
                j = skip(&ws, j, ADVERBS);
                let ok = j < ws.len() && lower[j] == *p && (j == i || !ws[j].opens);
                j += 1;
                ok
            })
        });
        let Some((pattern, relation, reversed)) = matched else {
            i += 1;
            continue;
        };
        let mut after = i;
        for p in pattern.iter() {
            after = skip(&ws, after, ADVERBS);
            debug_assert_eq!(&lower[after], p);
            after += 1;
        }
        // "is the" and "is a" leave the article for the object's phrase.
        if matches!(*pattern.last().unwrap_or(&""), "a" | "an" | "the") {
            after -= 1;
        }
        let subject = subject_before(&ws, &spans, i);
        let (objects, relation, end) = objects_at(&ws, &spans, after, relation);
        if let Some(subject) = subject {
            for object in objects {
                if *reversed {
                    out.relate(object, &relation, subject.clone(), 1.0);
                } else {
                    out.relate(subject.clone(), &relation, object, 1.0);
                }
            }
        }
        i = end.max(i + 1);
    }
    // Apposition: "Borealis, a message broker, …".
    for span in &spans {
        if span.end < ws.len() && ws[span.end - 1].closes && ws[span.end - 1].text.len() < sentence.len() {
            let a = lower[span.end].as_str();
            if a == "a" || a == "an" {
                if let Some((concept, end)) = concept_at(&ws, span.end + 1) {
                    if end == ws.len() || ws[end - 1].closes || PHRASE_STOPS.contains(&lower[end].as_str()) {
                        out.relate(span.entity.clone(), "is_a", concept, 1.0);
                    }
                }
            }
        }
    }
    // Aliases: "PostgreSQL (Postgres)", "Kubernetes, also known as K8s".
    for span in &spans {
        if let Some(w) = ws.get(span.end) {
            if w.parenthesised && (is_capitalised(w) || w.text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())) {
                out.aliases.push((w.text.to_string(), span.entity.clone()));
            }
        }
        let rest: Vec<&str> = lower.iter().skip(span.end).take(3).map(String::as_str).collect();
        let alias_at = match rest.as_slice() {
            ["also", "known", "as", ..] => Some(span.end + 3),
            ["aka", ..] | ["a.k.a", ..] => Some(span.end + 1),
            _ => None,
        };
        if let Some(other) = alias_at.and_then(|at| spans.iter().find(|s| s.start == at)) {
            out.aliases.push((other.entity.name.clone(), span.entity.clone()));
        }
    }
    // Two names in one sentence: a weak, generic relation.
    let mut named: Vec<&EntityRef> = Vec::new();
    for span in &spans {
        let key = crate::resolve::entity_key(&span.entity.name, span.entity.kind);
        if !named.iter().any(|n| crate::resolve::entity_key(&n.name, n.kind) == key) {
            named.push(&span.entity);
        }
    }
    if named.len() <= MAX_COOCCURRING {
        let stated = out.relations[stated_before..].to_vec();
        for (a, first) in named.iter().enumerate() {
            for second in &named[a + 1..] {
                if !related(&stated, first, second) {
                    out.relate((*first).clone(), RELATED_TO, (*second).clone(), 1.0);
                }
            }
        }
    }
}

/// Whether the sentence stated a relation between the two already (then co-occurrence adds
/// nothing).
fn related(stated: &[crate::Relation], a: &EntityRef, b: &EntityRef) -> bool {
    let key = |e: &EntityRef| crate::resolve::entity_key(&e.name, e.kind);
    let (a, b) = (key(a), key(b));
    stated.iter().any(|r| {
        let (s, o) = (key(&r.subject), key(&r.object));
        (s == a && o == b) || (s == b && o == a)
    })
}

/// `term: a definition …` (glossaries, man pages, dictionary entries) and `term — a …`.
fn definition(line: &str, out: &mut Extraction) {
    let line = line.trim().trim_start_matches(['-', '*', '•']).trim();
    let Some((term, rest)) = line.split_once(": ").or_else(|| line.split_once(" — ")).or_else(|| line.split_once(" - ")) else {
        return;
    };
    let term = term.trim().trim_matches(['*', '`', '"']);
    let term_words = term.split_whitespace().count();
    if term.is_empty() || term_words > 5 || has_cjk(term) || !term.chars().any(char::is_alphabetic) {
        return;
    }
    // A leading domain label: "(law) immediate and direct physical control …".
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
        Some((label, after)) if label.split_whitespace().count() <= 3 => after.trim_start(),
        _ => rest,
    };
    let ws = words(rest);
    let Some(first) = ws.first() else { return };
    let determined = ["a", "an", "the", "any", "one"].contains(&first.lower().as_str());
    // Without an article only a dictionary's style: a lower-case term defined by a lower-case
    // noun phrase ("sob: convulsive gasp made while weeping"), not "Note: restart the server".
    let dictionary = term.chars().next().is_some_and(char::is_lowercase) && is_plain_word(first) && !term.contains(char::is_uppercase);
    if !determined && !dictionary {
        return;
    }
    let spans = named_spans(&ws);
    let (objects, relation, _) = objects_at(&ws, &spans, 0, "is_a");
    let kind = if term.chars().next().is_some_and(char::is_uppercase) && term_words > 0 { EntityKind::Name } else { EntityKind::Concept };
    let subject = EntityRef::new(term, kind);
    for object in objects {
        out.relate(subject.clone(), &relation, object, 1.0);
    }
}

// ---- questions -----------------------------------------------------------------------------

/// What a question may name entities by: the names the extractor finds in it (`named`), and
/// every phrase of one to four words that neither starts nor ends with a function word
/// (`phrases`; Chinese: jieba's words), for common nouns.
pub fn query_terms(text: &str) -> (Vec<String>, Vec<String>) {
    let found = extract_text(text);
    let named: Vec<String> = found.mentions.iter().filter(|m| m.kind.is_named()).map(|m| m.name.clone()).collect();
    let mut phrases: Vec<String> = Vec::new();
    for sentence in sentences(text) {
        if has_cjk(sentence) {
            for word in jieba().cut(sentence, true) {
                let word = word.word.trim();
                if word.chars().count() >= 2 && word.chars().all(char::is_alphanumeric) && !phrases.iter().any(|p| p == word) {
                    phrases.push(word.to_string());
                }
            }
            continue;
        }
        let ws = words(sentence);
        for n in 1..=4 {
            for window in ws.windows(n) {
                let first = window[0].lower();
                let last = window[n - 1].lower();
                let function = |w: &str| PHRASE_STOPS.contains(&w) || DETERMINERS.contains(&w) || SENTENCE_STARTERS.contains(&w);
                let broken = window[..n - 1].iter().any(|w| w.closes) || window[1..].iter().any(|w| w.opens);
                if broken || function(&first) || function(&last) || last.chars().count() < 3 {
                    continue;
                }
                let phrase = join(window);
                if !phrases.contains(&phrase) {
                    phrases.push(phrase);
                }
            }
        }
    }
    (named, phrases)
}

// ---- tables --------------------------------------------------------------------------------

fn is_table_line(line: &str) -> bool {
    let t = line.trim();
    t.len() > 2 && t.starts_with('|') && t.ends_with('|')
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    // `\|` is a pipe inside a cell.
    inner.replace("\\|", "\u{0}").split('|').map(|c| c.trim().replace('\u{0}', "|")).collect()
}

fn is_separator(line: &str) -> bool {
    cells(line).iter().all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
}

/// A table with a header row: each row's first cell is an entity; every other cell is a typed
/// attribute (numbers, dates) or a relation named by its column (text).
fn table(lines: &[&str], out: &mut Extraction) {
    let Some(sep) = lines.iter().position(|l| is_separator(l)) else { return };
    if sep == 0 {
        return;
    }
    let header = cells(lines[sep - 1]);
    for line in &lines[sep + 1..] {
        let row = cells(line);
        let Some(first) = row.first().filter(|c| !c.is_empty() && value_kind(c) == ValueKind::Text && c.chars().count() <= 80) else {
            continue;
        };
        let entity = EntityRef::new(first.clone(), EntityKind::Name);
        out.mention(&entity);
        for (column, cell) in header.iter().zip(&row).skip(1) {
            if cell.is_empty() || column.is_empty() {
                continue;
            }
            match value_kind(cell) {
                ValueKind::Text if cell.split_whitespace().count() <= 6 => {
                    out.relate(entity.clone(), &relation_name(column), EntityRef::new(cell.clone(), EntityKind::Value), 1.0)
                }
                kind => out.attributes.push(crate::Attribute { entity: entity.clone(), name: column.clone(), value: cell.clone(), kind }),
            }
        }
    }
}

/// A column or role name as a relation: lower snake_case.
pub(crate) fn relation_name(column: &str) -> String {
    let mut out = String::new();
    for c in column.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() {
        "has".to_string()
    } else {
        out
    }
}

/// The type a value reads as.
pub(crate) fn value_kind(value: &str) -> ValueKind {
    let v = value.trim();
    if v.is_empty() {
        return ValueKind::Text;
    }
    if matches!(v.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no") {
        return ValueKind::Boolean;
    }
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && !(digits.len() > 1 && digits.starts_with('0')) {
        return ValueKind::Integer;
    }
    if v.parse::<f64>().is_ok_and(f64::is_finite) && v.chars().any(|c| c.is_ascii_digit()) {
        return ValueKind::Number;
    }
    let b = v.as_bytes();
    let date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || matches!(b[10], b'T' | b' '));
    if date {
        return ValueKind::Date;
    }
    ValueKind::Text
}

// ---- Chinese -------------------------------------------------------------------------------

fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

const CHINESE_PATTERNS: &[(&str, &str, bool)] = &[
    ("是", "is_a", false),
    ("属于", "part_of", false),
    ("隶属于", "part_of", false),
    ("依赖", "depends_on", false),
    ("依赖于", "depends_on", false),
    ("依靠", "depends_on", false),
    ("需要", "depends_on", false),
    ("位于", "located_in", false),
    ("包含", "part_of", true),
    ("包括", "part_of", true),
    ("使用", "uses", false),
    ("采用", "uses", false),
    ("拥有", "owns", false),
    ("负责", "manages", false),
    ("管理", "manages", false),
    ("领导", "manages", false),
    ("开发", "develops", false),
    ("取代", "replaces", false),
    ("替代", "replaces", false),
    ("基于", "based_on", false),
    ("运行于", "runs_on", false),
    ("连接", "connects_to", false),
];

fn chinese_kind(tag: &str) -> Option<EntityKind> {
    Some(match tag {
        "nr" | "nrfg" | "nrt" => EntityKind::Person,
        "ns" => EntityKind::Place,
        "nt" => EntityKind::Organization,
        "nz" => EntityKind::Name,
        "eng" => EntityKind::Name,
        _ => return None,
    })
}

fn is_nounish(tag: &str) -> bool {
    tag.starts_with('n') || tag == "eng" || tag == "vn"
}

/// A noun run's entity: a single tagged name keeps its kind, anything else is a concept.
fn noun_run(tags: &[jieba_rs::Tag<'_>]) -> Option<EntityRef> {
    let text: String = tags.iter().map(|t| t.word).collect::<Vec<_>>().join("");
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let kind = match tags {
        [one] => chinese_kind(one.tag).unwrap_or(EntityKind::Concept),
        _ if tags.iter().all(|t| t.tag == "eng") => EntityKind::Name,
        _ => EntityKind::Concept,
    };
    let name =
        if tags.iter().all(|t| t.tag == "eng") { tags.iter().map(|t| t.word).collect::<Vec<_>>().join(" ") } else { text.to_string() };
    Some(EntityRef::new(name.split_whitespace().collect::<Vec<_>>().join(" "), kind))
}

fn chinese(sentence: &str, out: &mut Extraction) {
    let stated_before = out.relations.len();
    let tags: Vec<jieba_rs::Tag<'_>> = jieba().tag(sentence, true).into_iter().filter(|t| !t.word.trim().is_empty()).collect();
    let mut named: Vec<EntityRef> = Vec::new();
    for t in &tags {
        if let Some(kind) = chinese_kind(t.tag) {
            let entity = EntityRef::new(t.word.trim(), kind);
            if t.tag == "eng" && t.word.chars().count() < 2 {
                continue;
            }
            out.mention(&entity);
            if !named.contains(&entity) {
                named.push(entity);
            }
        }
    }
    for (i, t) in tags.iter().enumerate() {
        let Some((_, relation, reversed)) = CHINESE_PATTERNS.iter().find(|(w, _, _)| *w == t.word) else { continue };
        // Subject: the noun run right before the verb (adverbs such as 也/都 skipped).
        let mut end = i;
        while end > 0 && (tags[end - 1].tag == "d" || tags[end - 1].tag == "p") {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && is_nounish(tags[start - 1].tag) {
            start -= 1;
        }
        let Some(subject) = noun_run(&tags[start..end]) else { continue };
        // Object: the last noun run of the phrase after the verb ("唐代的诗人" → 诗人), up to
        // punctuation or the next verb once a noun was seen.
        let mut j = i + 1;
        let mut last: Option<(usize, usize)> = None;
        while j < tags.len() {
            let tag = tags[j].tag;
            if tag == "x" || tags[j].word.chars().all(|c| !c.is_alphanumeric()) {
                break;
            }
            if is_nounish(tag) {
                let s = j;
                while j < tags.len() && is_nounish(tags[j].tag) {
                    j += 1;
                }
                last = Some((s, j));
                continue;
            }
            if tag.starts_with('v') && last.is_some() {
                break;
            }
            j += 1;
        }
        if let Some(object) = last.and_then(|(s, e)| noun_run(&tags[s..e])) {
            if *reversed {
                out.relate(object, relation, subject, 1.0);
            } else {
                out.relate(subject, relation, object, 1.0);
            }
        }
    }
    if named.len() <= MAX_COOCCURRING {
        let stated = out.relations[stated_before..].to_vec();
        for (a, first) in named.iter().enumerate() {
            for second in &named[a + 1..] {
                if !related(&stated, first, second) {
                    out.relate(first.clone(), RELATED_TO, second.clone(), 1.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(text: &str) -> Vec<(String, String, String)> {
        extract_text(text)
            .relations
            .into_iter()
            .filter(|r| r.relation != RELATED_TO)
            .map(|r| (r.subject.name, r.relation, r.object.name))
            .collect()
    }

    fn t(s: &str, r: &str, o: &str) -> (String, String, String) {
        (s.into(), r.into(), o.into())
    }

    #[test]
    fn verb_patterns_relate_names_both_ways() {
        assert_eq!(
            triples("The Atlas service depends on Borealis and Redis."),
            vec![t("Atlas", "depends_on", "Borealis"), t("Atlas", "depends_on", "Redis")]
        );
        assert_eq!(
            triples("Zeta depends on Borealis, Kafka, and on Quasar Cache."),
            vec![t("Zeta", "depends_on", "Borealis"), t("Zeta", "depends_on", "Kafka"), t("Zeta", "depends_on", "Quasar Cache")]
        );
        assert_eq!(triples("Borealis is owned by the Payments Team."), vec![t("Payments Team", "owns", "Borealis")]);
        assert_eq!(triples("Atlas also uses PostgreSQL 16 heavily."), vec![t("Atlas", "uses", "PostgreSQL 16")]);
        assert_eq!(triples("Alice Smith is the owner of Atlas."), vec![t("Alice Smith", "owns", "Atlas")]);
        assert_eq!(triples("Paris is the capital of France."), vec![t("Paris", "capital_of", "France")]);
    }

    #[test]
    fn definitions_and_is_a_find_the_head_noun() {
        assert_eq!(triples("oak: a large tree of the genus Quercus"), vec![t("oak", "is_a", "tree")]);
        assert_eq!(triples("A dog is a member of the genus Canis."), vec![t("dog", "member_of", "Canis")]);
        assert_eq!(triples("PostgreSQL is an open-source relational database."), vec![t("PostgreSQL", "is_a", "relational database")]);
        assert_eq!(triples("finger: any of the terminal members of the hand"), vec![t("finger", "member_of", "hand")]);
        assert_eq!(triples("wheel: a part of a car"), vec![t("wheel", "part_of", "car")]);
        assert_eq!(triples("Borealis, a message broker, feeds Atlas."), vec![t("Borealis", "is_a", "message broker")]);
    }

    #[test]
    fn names_codes_versions_and_aliases_are_mentioned() {
        let e = extract_text("In Debian 12 the file /etc/apt/sources.list lists mirrors; PostgreSQL (Postgres) reads pg_hba.conf.");
        let names: Vec<&str> = e.mentions.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["Debian 12", "/etc/apt/sources.list", "PostgreSQL", "Postgres", "pg_hba.conf"]);
        assert_eq!(e.mentions[0].kind, EntityKind::Product);
        assert_eq!(e.mentions[1].kind, EntityKind::Code);
        assert_eq!(e.aliases, vec![("Postgres".to_string(), EntityRef::new("PostgreSQL", EntityKind::Name))]);
        // Two names in one sentence relate weakly.
        assert!(e.relations.iter().any(|r| r.relation == RELATED_TO && r.subject.name == "Debian 12"));
    }

    #[test]
    fn sentence_initial_function_words_are_not_names() {
        let e = extract_text("However, the server starts. This is fine. The Payments Team owns it.");
        let names: Vec<&str> = e.mentions.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["Payments Team"]);
    }

    #[test]
    fn table_rows_relate_their_first_cell_to_the_others() {
        let e =
            extract_text("| Service | Owner | Port |\n| --- | --- | --- |\n| Atlas | Payments | 8080 |\n| Borealis | Platform | 9092 |");
        let r: Vec<_> = e.relations.iter().map(|r| (r.subject.name.as_str(), r.relation.as_str(), r.object.name.as_str())).collect();
        assert_eq!(r, vec![("Atlas", "owner", "Payments"), ("Borealis", "owner", "Platform")]);
        assert_eq!(e.attributes.len(), 2);
        assert_eq!(
            (e.attributes[0].name.as_str(), e.attributes[0].value.as_str(), e.attributes[0].kind),
            ("Port", "8080", ValueKind::Integer)
        );
    }

    #[test]
    fn questions_name_entities_by_names_and_phrases() {
        let (named, phrases) = query_terms("Which team owns the service that Atlas depends on?");
        assert_eq!(named, vec!["Atlas"]);
        assert!(phrases.contains(&"team".to_string()) && phrases.contains(&"Atlas".to_string()));
        assert!(!phrases.iter().any(|p| p == "the" || p == "that" || p.starts_with("the ")));
        let (_, zh) = query_terms("李白是哪个朝代的诗人");
        assert!(zh.contains(&"李白".to_string()) && zh.contains(&"诗人".to_string()), "{zh:?}");
    }

    #[test]
    fn chinese_patterns_and_names() {
        assert_eq!(triples("狗是一种哺乳动物。"), vec![t("狗", "is_a", "哺乳动物")]);
        assert_eq!(triples("李白是唐代的诗人。"), vec![t("李白", "is_a", "诗人")]);
        let e = extract_text("北京位于中国北方。");
        assert!(e.relations.iter().any(|r| r.subject.name == "北京" && r.relation == "located_in"), "{:?}", e.relations);
        assert!(e.mentions.iter().any(|m| m.name == "北京" && m.kind == EntityKind::Place));
    }
}
