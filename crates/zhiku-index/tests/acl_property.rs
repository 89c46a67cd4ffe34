//! Randomised access-control check over both indexes: many users, groups, documents and ACLs;
//! no caller may ever receive a chunk it cannot read, and filtering must not cost a caller the
//! readable chunks it should get (the top k of what it may read, not of everything).

use std::collections::BTreeSet;

use zhiku_core::{Caller, Principal};
use zhiku_index::{Bm25Index, FlatIndex, VectorIndexRead, VectorIndexWrite};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 - 0.5
    }
}

const WORDS: [&str; 12] =
    ["budget", "salary", "roadmap", "incident", "server", "contract", "hiring", "audit", "vendor", "launch", "merger", "payroll"];

#[test]
fn no_caller_ever_sees_an_unreadable_chunk() {
    let mut rng = Lcg(20261128);
    let dim = 8;
    let users: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
    let groups: Vec<String> = (0..8).map(|i| format!("g{i}")).collect();
    let memberships: Vec<Vec<String>> = users.iter().map(|_| groups.iter().filter(|_| rng.below(4) == 0).cloned().collect()).collect();

    let mut flat = FlatIndex::new(dim);
    let mut bm25 = Bm25Index::in_memory().unwrap();
    let mut acls = Vec::new();
    for chunk_id in 0..600u64 {
        let mut acl = BTreeSet::new();
        for _ in 0..rng.below(4) {
            let p = if rng.below(2) == 0 {
                Principal::user(&users[rng.below(users.len() as u64) as usize]).unwrap()
            } else {
                Principal::group(&groups[rng.below(groups.len() as u64) as usize]).unwrap()
            };
            acl.insert(p);
        }
        let acl: Vec<Principal> = acl.into_iter().collect();
        let v: Vec<f32> = (0..dim).map(|_| rng.unit()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        let text: Vec<&str> = (0..6).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
        flat.insert(chunk_id, chunk_id as i64 / 3, &v, &acl).unwrap();
        bm25.add(chunk_id, chunk_id as i64 / 3, &text.join(" "), &acl).unwrap();
        acls.push((acl, v));
    }
    bm25.commit(1).unwrap();

    let mut checked = 0;
    for (user, groups) in users.iter().zip(&memberships) {
        let caller = Caller::user(user, groups).unwrap();
        let readable: Vec<u64> = (0..acls.len() as u64).filter(|&id| caller.can_read(&acls[id as usize].0)).collect();
        for _ in 0..10 {
            let q: Vec<f32> = (0..dim).map(|_| rng.unit()).collect();
            let k = 1 + rng.below(20) as usize;
            let hits = flat.search(&q, &caller, k);
            for (id, _) in &hits {
                assert!(caller.can_read(&acls[*id as usize].0), "{user} got unreadable chunk {id}");
            }
            // Filtering inside the scan: the caller gets min(k, readable) results, and they are
            // the best readable ones.
            assert_eq!(hits.len(), k.min(readable.len()));
            let mut best: Vec<(u64, f32)> =
                readable.iter().map(|&id| (id, acls[id as usize].1.iter().zip(&q).map(|(a, b)| a * b).sum())).collect();
            best.sort_by(|a, b| b.1.total_cmp(&a.1));
            let expected: BTreeSet<u64> = best.iter().take(k).map(|h| h.0).collect();
            let got: BTreeSet<u64> = hits.iter().map(|h| h.0).collect();
            assert_eq!(got, expected, "{user}: wrong top-{k}");

            let query = format!("{} {}", WORDS[rng.below(12) as usize], WORDS[rng.below(12) as usize]);
            for (id, _) in bm25.search(&query, &caller, 50).unwrap() {
                assert!(caller.can_read(&acls[id as usize].0), "{user} got unreadable chunk {id} from BM25");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 300);
}
