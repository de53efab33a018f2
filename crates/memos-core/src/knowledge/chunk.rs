//! Splitting sections into chunks a search can return: at most `max_chars` each, cut at
//! paragraph ends, then sentence ends, then words, never inside a word unless a single
//! word is longer than a chunk. Each chunk keeps its section's heading and page and its
//! place in the file.

use super::parse::Section;

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// 0-based place in the file.
    pub index: usize,
    /// The heading it sits under.
    pub heading: Option<String>,
    /// Its page, for formats with pages.
    pub page: Option<usize>,
    /// The text.
    pub text: String,
}

/// The chunks of a file's sections, in order.
pub fn chunks(sections: &[Section], max_chars: usize) -> Vec<Chunk> {
    let max = max_chars.max(50);
    let mut out = Vec::new();
    for s in sections {
        let mut current = String::new();
        let flush = |current: &mut String, out: &mut Vec<Chunk>| {
            let text = current.trim().to_string();
            current.clear();
            if !text.is_empty() {
                out.push(Chunk {
                    index: out.len(),
                    heading: s.heading.clone(),
                    page: s.page,
                    text,
                });
            }
        };
        for piece in pieces(&s.text, max) {
            let sep = if current.is_empty() { 0 } else { 1 };
            if current.chars().count() + sep + piece.chars().count() > max {
                flush(&mut current, &mut out);
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&piece);
        }
        flush(&mut current, &mut out);
    }
    out
}

/// The text as pieces of at most `max` characters: paragraphs, or their sentences, or
/// their words, or, for a word longer than `max`, slices of it.
fn pieces(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
    {
        if para.is_empty() {
            continue;
        }
        if para.chars().count() <= max {
            out.push(para);
            continue;
        }
        for sentence in sentences(&para) {
            if sentence.chars().count() <= max {
                out.push(sentence);
                continue;
            }
            let mut cur = String::new();
            for word in sentence.split(' ') {
                let word: Vec<char> = word.chars().collect();
                for part in word.chunks(max) {
                    let part: String = part.iter().collect();
                    if cur.chars().count() + 1 + part.chars().count() > max && !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    if !cur.is_empty() {
                        cur.push(' ');
                    }
                    cur.push_str(&part);
                }
            }
            if !cur.is_empty() {
                out.push(cur);
            }
        }
    }
    out
}

/// Sentences, cut after `.`, `!`, `?` and their CJK forms.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '；') {
            let s = cur.trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Section {
        Section {
            heading: Some("H".into()),
            page: Some(3),
            text: text.into(),
        }
    }

    #[test]
    fn chunks_fit_keep_their_place_and_lose_no_word() {
        let text =
            "First paragraph is short.\n\nSecond one has two sentences. Here is the other one!\n\n"
                .repeat(20)
                + &"x".repeat(300)
                + " 这是中文句子。又一句。";
        let cs = chunks(&[section(&text)], 120);
        assert!(cs.iter().all(|c| c.text.chars().count() <= 120), "{cs:#?}");
        assert!(
            cs.iter()
                .enumerate()
                .all(|(i, c)| c.index == i && c.page == Some(3))
        );
        let words = |s: &str| s.split_whitespace().collect::<String>();
        let joined: String = cs.iter().map(|c| words(&c.text)).collect();
        assert_eq!(joined, words(&text));
    }

    #[test]
    fn small_sections_stay_whole() {
        let cs = chunks(&[section("One line.")], 800);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].heading.as_deref(), Some("H"));
    }
}
