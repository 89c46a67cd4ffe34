/// The main language of a text, as a BCP 47 primary tag: `zh`, `ja`, `ko`, `en`, or `und`
/// (undetermined: another language, or too little text to tell).
///
/// Scripts decide first (kana means Japanese, hangul Korean, Han characters Chinese) — a Han
/// character is weighed against a Latin word, since both carry about one word of meaning. Latin
/// text is English when the commonest English function words make up a good share of it.
pub fn detect_language(text: &str) -> &'static str {
    // The first megabyte says which language a document is in as well as the whole would.
    let mut end = text.len().min(1 << 20);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let (mut han, mut kana, mut hangul) = (0usize, 0usize, 0usize);
    for ch in text.chars() {
        match ch as u32 {
            0x3040..=0x30FF => kana += 1,
            0xAC00..=0xD7AF | 0x1100..=0x11FF => hangul += 1,
            _ if zhiku_core::is_cjk(ch) => han += 1,
            _ => {}
        }
    }
    let latin_words: Vec<String> = text
        .split(|c: char| !c.is_alphabetic() || zhiku_core::is_cjk(c))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic() || ('\u{C0}'..='\u{24F}').contains(&c)))
        .map(|w| w.to_lowercase())
        .collect();
    let cjk = han + kana + hangul;
    if cjk > 0 && cjk >= latin_words.len() {
        if kana * 10 >= cjk {
            return "ja";
        }
        if hangul * 2 >= cjk {
            return "ko";
        }
        return "zh";
    }
    if latin_words.len() < 3 {
        return "und";
    }
    const ENGLISH: [&str; 20] = [
        "the", "and", "of", "to", "in", "is", "for", "that", "with", "on", "are", "as", "be", "this", "it", "by", "or", "you", "from",
        "not",
    ];
    let function_words = latin_words.iter().filter(|w| ENGLISH.contains(&w.as_str())).count();
    if function_words * 100 >= latin_words.len() * 12 {
        "en"
    } else {
        "und"
    }
}

#[cfg(test)]
mod tests {
    use super::detect_language;

    #[test]
    fn scripts_and_english() {
        assert_eq!(detect_language("知库在本地运行大语言模型，数据不会离开公司。"), "zh");
        assert_eq!(detect_language("在 Debian 上使用 apt 安装软件包的方法和注意事项"), "zh");
        assert_eq!(detect_language("社員は毎年二十七日の有給休暇を取得できます。"), "ja");
        assert_eq!(detect_language("직원은 매년 이십칠 일의 유급 휴가를 받습니다."), "ko");
        assert_eq!(detect_language("The employees of the company receive 27 days of leave in a year."), "en");
        assert_eq!(detect_language("Les employés de l'entreprise reçoivent vingt-sept jours de congé par an."), "und");
        assert_eq!(detect_language("Die Mitarbeiter erhalten jedes Jahr siebenundzwanzig Urlaubstage."), "und");
        assert_eq!(detect_language("42 17"), "und");
    }
}
