//! Near-duplicate detection: MinHash signatures over character shingles, banded for LSH lookup.
//!
//! Shingles are 5-character windows of the text with whitespace and case removed, which works
//! the same for Chinese (no spaces) and English. Two documents' Jaccard similarity is estimated
//! by the share of equal signature slots; LSH splits the signature into [`BANDS`] bands of
//! [`ROWS`] rows so that similar documents share at least one band bucket with high probability
//! (at Jaccard 0.8 the chance of a missed pair is below 10⁻⁴).

pub const SIGNATURE_LEN: usize = 128;
pub const BANDS: usize = 32;
pub const ROWS: usize = SIGNATURE_LEN / BANDS;
const SHINGLE: usize = 5;

pub type Signature = [u32; SIGNATURE_LEN];

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Characters of a text that take part in its signature. Beyond this (a 16 MB text) memory would
/// grow by 12 bytes a character for little gain: texts that share their first eight million
/// characters are near copies for any practical purpose.
pub const MAX_SIGNATURE_CHARS: usize = 8_000_000;

/// The MinHash signature of a text; `None` when the text is shorter than one shingle.
pub fn signature(text: &str) -> Option<Signature> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).take(MAX_SIGNATURE_CHARS).collect();
    if chars.len() < SHINGLE {
        return None;
    }
    // One 64-bit hash per distinct shingle (FNV-1a, then mixed); repeated shingles do not change
    // a minimum, so they are hashed into the slots once.
    let mut shingles: Vec<u64> = chars
        .windows(SHINGLE)
        .map(|w| splitmix(w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, c| (h ^ *c as u64).wrapping_mul(0x0100_0000_01b3))))
        .collect();
    shingles.sort_unstable();
    shingles.dedup();
    // 128 permutations simulated by multiply-add hashing with per-slot odd multipliers: three
    // instructions a slot, which the compiler vectorises.
    let mut mul = [0u64; SIGNATURE_LEN];
    let mut add = [0u64; SIGNATURE_LEN];
    for i in 0..SIGNATURE_LEN {
        mul[i] = splitmix(i as u64) | 1;
        add[i] = splitmix(i as u64 ^ 0x5851_F42D_4C95_7F2D);
    }
    let mut sig = [u32::MAX; SIGNATURE_LEN];
    for base in shingles {
        for i in 0..SIGNATURE_LEN {
            let h = (base.wrapping_mul(mul[i]).wrapping_add(add[i]) >> 32) as u32;
            sig[i] = sig[i].min(h);
        }
    }
    Some(sig)
}

/// Estimated Jaccard similarity of the shingle sets behind two signatures.
pub fn similarity(a: &Signature, b: &Signature) -> f32 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f32 / SIGNATURE_LEN as f32
}

/// One bucket key per band: documents sharing a key are near-duplicate candidates.
pub fn band_keys(sig: &Signature) -> [u64; BANDS] {
    let mut keys = [0u64; BANDS];
    for (band, key) in keys.iter_mut().enumerate() {
        let rows = &sig[band * ROWS..(band + 1) * ROWS];
        *key = rows.iter().fold(band as u64, |h, r| splitmix(h ^ *r as u64)) >> 1;
    }
    keys
}

pub fn to_bytes(sig: &Signature) -> Vec<u8> {
    sig.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(bytes: &[u8]) -> Option<Signature> {
    if bytes.len() != SIGNATURE_LEN * 4 {
        return None;
    }
    let mut sig = [0u32; SIGNATURE_LEN];
    for (slot, chunk) in sig.iter_mut().zip(bytes.chunks_exact(4)) {
        *slot = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "Full-time employees receive 27 days of paid annual leave per calendar year, plus public \
        holidays. Part-time employees receive leave in proportion to their contracted hours. Leave requests are made \
        in the HR portal at least two weeks in advance for absences longer than three days. Up to 5 unused days may \
        be carried over into the next year.";

    #[test]
    fn near_copies_score_high_and_different_texts_low() {
        let a = signature(POLICY).unwrap();
        let edited = POLICY.replace("27 days", "28 days").replace("two weeks", "three weeks");
        let b = signature(&edited).unwrap();
        let reformatted = signature(&POLICY.to_uppercase().replace(". ", ".\n\n")).unwrap();
        let other =
            signature("Travel must be booked through the company travel desk. Train travel is preferred for journeys under four hours.")
                .unwrap();
        assert!(similarity(&a, &b) > 0.75, "{}", similarity(&a, &b));
        assert_eq!(similarity(&a, &reformatted), 1.0, "case and whitespace do not matter");
        assert!(similarity(&a, &other) < 0.2, "{}", similarity(&a, &other));
        let shared_bands = band_keys(&a).iter().zip(band_keys(&b)).filter(|(x, y)| **x == *y).count();
        assert!(shared_bands > 0, "near copies must meet in some LSH bucket");
        let shared_other = band_keys(&a).iter().zip(band_keys(&other)).filter(|(x, y)| **x == *y).count();
        assert_eq!(shared_other, 0);
    }

    #[test]
    fn chinese_near_copies() {
        let a =
            signature("全职员工每个日历年享有二十七天带薪年假，另加法定节假日。超过三天的休假须至少提前两周在人事系统中申请。").unwrap();
        let b =
            signature("全职员工每个日历年享有二十八天带薪年假，另加法定节假日。超过三天的休假须至少提前两周在人事系统中申请。").unwrap();
        assert!(similarity(&a, &b) > 0.75, "{}", similarity(&a, &b));
    }

    #[test]
    fn bytes_roundtrip_and_short_texts() {
        let s = signature(POLICY).unwrap();
        assert_eq!(from_bytes(&to_bytes(&s)).unwrap(), s);
        assert!(from_bytes(&[1, 2, 3]).is_none());
        assert!(signature("abc").is_none());
    }
}
