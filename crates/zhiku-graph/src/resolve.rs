//! Entity resolution: when two names are one entity.
//!
//! From strict to loose: the *key* ([`entity_key`]: case, articles, possessives, spacing and,
//! for common nouns, plurals do not matter), an *alias* another chunk declared (stored with the
//! chunk that said so), the *fold* ([`fold_key`]: letters and digits only, so `PostgreSQL`,
//! `Postgre-SQL` and `postgre sql` meet), a one-edit spelling of a long name
//! ([`near_identical`]), and names two edits apart ([`spelling_candidates`]) whose embeddings then
//! decide.

use crate::EntityKind;

const ARTICLES: &[&str] = &["the ", "a ", "an "];

/// The name an entity is stored and looked up under.
pub fn entity_key(name: &str, kind: EntityKind) -> String {
    let mut key = name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    loop {
        let trimmed = key.trim_matches(|c: char| {
            matches!(
                c,
                '"' | '\''
                    | '`'
                    | '“'
                    | '”'
                    | '‘'
                    | '’'
                    | ','
                    | ';'
                    | ':'
                    | '.'
                    | '!'
                    | '?'
                    | '('
                    | ')'
                    | '['
                    | ']'
                    | '「'
                    | '」'
                    | '《'
                    | '》'
                    | '，'
                    | '。'
            )
        });
        let mut next = trimmed.to_string();
        for article in ARTICLES {
            if let Some(rest) = next.strip_prefix(article) {
                next = rest.to_string();
            }
        }
        for possessive in ["'s", "’s"] {
            if let Some(rest) = next.strip_suffix(possessive) {
                next = rest.to_string();
            }
        }
        if next == key {
            break;
        }
        key = next;
    }
    if kind == EntityKind::Concept {
        if let Some((head, last)) = key.rsplit_once(' ') {
            return format!("{head} {}", singular(last));
        }
        return singular(&key);
    }
    key
}

/// The loosest form of a key: letters and digits only.
pub fn fold_key(key: &str) -> String {
    key.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// An English plural's singular, by the regular rules only (irregular plurals stay apart).
fn singular(word: &str) -> String {
    let is_word = word.chars().all(|c| c.is_ascii_lowercase());
    if !is_word || word.len() < 4 {
        return word.to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for ending in ["sses", "ches", "shes", "xes", "zzes"] {
        if word.ends_with(ending) {
            return word[..word.len() - 2].to_string();
        }
    }
    if word.ends_with('s') && !["ss", "us", "is", "os", "as"].iter().any(|e| word.ends_with(e)) {
        return word[..word.len() - 1].to_string();
    }
    word.to_string()
}

/// Levenshtein distance over characters, stopping early above `limit`.
fn edit_distance(a: &str, b: &str, limit: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(ca != cb)).min(previous[j + 1] + 1).min(current[j] + 1);
        }
        if current.iter().min().is_some_and(|&m| m > limit) {
            return limit + 1;
        }
        previous = current;
    }
    previous[b.len()]
}

/// Whether two folded names are near-identical: one typo or spelling variant in a long name
/// (`kubernetes`/`kubernets`), never in a short one (`db1`/`db2` are different machines), and
/// never when they differ in digits (versions, hosts).
pub fn near_identical(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if a.chars().count().min(b.chars().count()) < 8 || digits(a) != digits(b) {
        return false;
    }
    edit_distance(a, b, 1) <= 1
}

/// Pairs of names (folded keys, by id) close enough in spelling that their embeddings should
/// decide whether they are one entity: at most two edits apart (`postgressql`/`postgresql`,
/// `elasticsearch`/`elastisearch`), at least six characters, the same digits. Returns index pairs.
pub fn spelling_candidates(folds: &[String]) -> Vec<(usize, usize)> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let mut by_first: std::collections::BTreeMap<char, Vec<usize>> = Default::default();
    for (i, f) in folds.iter().enumerate() {
        if f.chars().count() >= 6 {
            if let Some(c) = f.chars().next() {
                by_first.entry(c).or_default().push(i);
            }
        }
    }
    let mut out = Vec::new();
    for members in by_first.values() {
        for (x, &i) in members.iter().enumerate() {
            for &j in &members[x + 1..] {
                let (a, b) = (&folds[i], &folds[j]);
                if a != b && a.chars().count().abs_diff(b.chars().count()) <= 2 && digits(a) == digits(b) && edit_distance(a, b, 2) <= 2 {
                    out.push((i, j));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_articles_possessives_and_plural_common_nouns() {
        assert_eq!(entity_key("The  Atlas Service", EntityKind::Name), "atlas service");
        assert_eq!(entity_key("Borealis's", EntityKind::Name), "borealis");
        assert_eq!(entity_key("relational databases", EntityKind::Concept), "relational database");
        assert_eq!(entity_key("libraries", EntityKind::Concept), "library");
        assert_eq!(entity_key("process", EntityKind::Concept), "process");
        // Names keep their plural: Windows is not a window.
        assert_eq!(entity_key("Windows", EntityKind::Name), "windows");
        assert_eq!(entity_key("「数据库」", EntityKind::Concept), "数据库");
    }

    #[test]
    fn near_identical_names_are_long_and_differ_by_one_edit_and_no_digit() {
        assert!(near_identical("kubernetes", "kubernets"));
        assert!(near_identical("postgresql", "postgressql"));
        assert!(!near_identical("db1", "db2"));
        assert!(!near_identical("server01a", "server02a"));
        assert!(!near_identical("elasticsearch", "elastic"));
    }

    #[test]
    fn spelling_candidates_are_two_edits_apart_at_most() {
        let folds: Vec<String> = ["elasticsearch", "elastisearch", "postgres", "postgresql", "server01", "server02", "mysql"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(spelling_candidates(&folds), vec![(0, 1), (2, 3)]);
    }
}
