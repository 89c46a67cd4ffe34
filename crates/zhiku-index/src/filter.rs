//! The set of vectors a search may return, as a bitmap over the index's dense internal ids: a
//! caller's readable chunks, or any metadata condition resolved to ids beforehand.

/// Allowed internal ids, one bit each. Membership is one load and a mask inside the graph
/// walk; the count tells the search whether scanning the allowed ids beats walking the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFilter {
    words: Vec<u64>,
    count: usize,
}

impl IdFilter {
    /// Nothing allowed, over ids `0..len`.
    pub fn empty(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], count: 0 }
    }

    pub fn from_fn(len: usize, allowed: impl Fn(u32) -> bool) -> Self {
        let mut filter = Self::empty(len);
        for id in 0..len as u32 {
            if allowed(id) {
                filter.insert(id);
            }
        }
        filter
    }

    /// Every id in `0..len`.
    pub fn full(len: usize) -> Self {
        let mut words = vec![u64::MAX; len / 64];
        if len % 64 != 0 {
            words.push((1u64 << (len % 64)) - 1);
        }
        Self { words, count: len }
    }

    pub fn remove(&mut self, id: u32) {
        let (word, bit) = (id as usize / 64, id % 64);
        if let Some(w) = self.words.get_mut(word) {
            if *w & (1 << bit) != 0 {
                *w &= !(1 << bit);
                self.count -= 1;
            }
        }
    }

    /// Adds every id of `other`.
    pub fn union_with(&mut self, other: &IdFilter) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
        self.recount();
    }

    /// Keeps only the ids also in `other`.
    pub fn intersect_with(&mut self, other: &IdFilter) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
        self.recount();
    }

    fn recount(&mut self) {
        self.count = self.words.iter().map(|w| w.count_ones() as usize).sum();
    }

    pub fn insert(&mut self, id: u32) {
        let (word, bit) = (id as usize / 64, id % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & (1 << bit) == 0 {
            self.words[word] |= 1 << bit;
            self.count += 1;
        }
    }

    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.words.get(id as usize / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    w as u32 * 64 + bit
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_count_and_iteration_agree() {
        let filter = IdFilter::from_fn(200, |id| id % 7 == 0 || id == 199);
        let ids: Vec<u32> = filter.iter().collect();
        let want: Vec<u32> = (0..200).filter(|id| id % 7 == 0 || *id == 199).collect();
        assert_eq!(ids, want);
        assert_eq!(filter.count(), want.len());
        assert!(filter.contains(63) && !filter.contains(64) && !filter.contains(10_000));
    }

    #[test]
    fn set_operations() {
        let mut a = IdFilter::full(130);
        assert_eq!(a.count(), 130);
        assert!(a.contains(129) && !a.contains(130));
        a.remove(5);
        a.remove(5);
        assert_eq!(a.count(), 129);
        let evens = IdFilter::from_fn(200, |id| id % 2 == 0);
        a.intersect_with(&evens);
        assert_eq!(a.count(), 65, "the evens below 130");
        let mut b = IdFilter::empty(10);
        b.union_with(&evens);
        assert_eq!(b.count(), 100);
    }
}
