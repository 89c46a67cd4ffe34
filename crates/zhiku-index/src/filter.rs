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
}
