//! Reading a file into sections of text: plain text, Markdown, JSON, HTML (`html2text`),
//! PDF (`pdf-extract`, page by page) and DOCX (`zip` + `quick-xml`, headings from the
//! paragraph styles). Each failure is a reason a person can act on; nothing here panics
//! on a hostile file (a PDF parser panic is caught, a DOCX is read with a size cap so a
//! zip bomb stops at the cap).

use std::io::Read;

/// Largest text a DOCX may unpack to: a zip bomb stops here.
const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

/// The kinds of file memos reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Plain UTF-8 text.
    Text,
    /// Markdown: `#` headings.
    Markdown,
    /// A JSON document, read as `path: value` lines.
    Json,
    /// HTML, read as text with its headings.
    Html,
    /// PDF, page by page.
    Pdf,
    /// Word (Office Open XML).
    Docx,
}

impl FileKind {
    /// The kind of a file, from its name and, where the name says nothing, its bytes.
    pub fn detect(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = match ext.as_str() {
            "txt" | "text" | "log" | "csv" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "json" => Self::Json,
            "html" | "htm" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "doc" => {
                return Err("legacy .doc files are not read; save it as .docx".into());
            }
            "" if bytes.starts_with(b"%PDF") => Self::Pdf,
            "" if bytes.starts_with(b"PK\x03\x04") => Self::Docx,
            "" => Self::Text,
            other => {
                return Err(format!(
                    "`.{other}` files are not read; send txt, md, json, html, pdf or docx"
                ));
            }
        };
        Ok(kind)
    }

    /// The kind's name in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "txt",
            Self::Markdown => "md",
            Self::Json => "json",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }
}

/// A run of text under one heading (and on one page, for a PDF).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The nearest heading above it.
    pub heading: Option<String>,
    /// The page, 1-based, when the format has pages.
    pub page: Option<usize>,
    /// The text.
    pub text: String,
}

/// The file's text in sections.
pub fn extract(kind: FileKind, bytes: &[u8]) -> Result<Vec<Section>, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let sections = match kind {
        FileKind::Text => vec![Section {
            heading: None,
            page: None,
            text: utf8(bytes)?.to_string(),
        }],
        FileKind::Markdown => markdown(utf8(bytes)?),
        FileKind::Json => json(bytes)?,
        FileKind::Html => {
            let text = html2text::from_read(bytes, 100_000)
                .map_err(|e| format!("the HTML cannot be read: {e}"))?;
            markdown(&text)
        }
        FileKind::Pdf => pdf(bytes)?,
        FileKind::Docx => docx(bytes)?,
    };
    let sections: Vec<Section> = sections
        .into_iter()
        .filter(|s| !s.text.trim().is_empty())
        .collect();
    if sections.is_empty() {
        return Err("the file holds no text".into());
    }
    Ok(sections)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("the file is not UTF-8 text: {e}"))
}

/// Sections under `#` headings.
fn markdown(text: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut heading: Option<String> = None;
    let mut body = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        let hashes = t.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
            out.push(Section {
                heading: heading.take(),
                page: None,
                text: std::mem::take(&mut body),
            });
            heading = Some(t[hashes..].trim().to_string());
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.push(Section {
        heading,
        page: None,
        text: body,
    });
    out
}

/// `path: value` lines, one section per top-level key.
fn json(bytes: &[u8]) -> Result<Vec<Section>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the JSON cannot be read: {e}"))?;
    fn walk(path: &str, v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), x, out);
                }
            }
            serde_json::Value::String(s) => out.push_str(&format!("{path}: {s}\n")),
            other @ (serde_json::Value::Null
            | serde_json::Value::Bool(_)
            | serde_json::Value::Number(_)) => out.push_str(&format!("{path}: {other}\n")),
        }
    }
    Ok(match &v {
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, x)| {
                let mut text = String::new();
                walk(k, x, &mut text);
                Section {
                    heading: Some(k.clone()),
                    page: None,
                    text,
                }
            })
            .collect(),
        other @ (serde_json::Value::Null
        | serde_json::Value::Bool(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::String(_)
        | serde_json::Value::Array(_)) => {
            let mut text = String::new();
            walk("", other, &mut text);
            vec![Section {
                heading: None,
                page: None,
                text,
            }]
        }
    })
}

/// One section per page. pdf-extract panics on some malformed files: caught, and the
/// file is refused like any unreadable one.
fn pdf(bytes: &[u8]) -> Result<Vec<Section>, String> {
    let owned = bytes.to_vec();
    let pages =
        std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem_by_pages(&owned))
            .map_err(|_| "the PDF cannot be read (malformed)".to_string())?
            .map_err(|e| {
                let e = e.to_string();
                if e.to_lowercase().contains("encrypt") || e.to_lowercase().contains("password") {
                    "the PDF is password-protected".to_string()
                } else {
                    format!("the PDF cannot be read: {e}")
                }
            })?;
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, text)| Section {
            heading: None,
            page: Some(i + 1),
            text,
        })
        .collect())
}

/// Paragraphs of `word/document.xml`; a paragraph styled as a heading (or a title)
/// starts a section.
fn docx(bytes: &[u8]) -> Result<Vec<Section>, String> {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the DOCX is not a valid archive: {e}"))?;
    let mut xml = Vec::new();
    {
        let entry = zip
            .by_name("word/document.xml")
            .map_err(|_| "the DOCX has no word/document.xml".to_string())?;
        entry
            .take(MAX_UNPACKED + 1)
            .read_to_end(&mut xml)
            .map_err(|e| format!("the DOCX cannot be unpacked: {e}"))?;
    }
    if xml.len() as u64 > MAX_UNPACKED {
        return Err(format!(
            "the DOCX unpacks to more than {} MB of text",
            MAX_UNPACKED / 1024 / 1024
        ));
    }
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut out = Vec::new();
    let mut heading: Option<String> = None;
    let mut body = String::new();
    let mut para = String::new();
    let mut para_is_heading = false;
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                b"t" => in_text = true,
                b"tab" => para.push('\t'),
                b"br" => para.push('\n'),
                b"pStyle" => {
                    for a in e.attributes().flatten() {
                        if a.key.local_name().as_ref() == b"val" {
                            let v = String::from_utf8_lossy(&a.value).to_lowercase();
                            para_is_heading = v.starts_with("heading") || v == "title";
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => {
                para.push_str(&String::from_utf8_lossy(t.as_ref()));
            }
            Ok(Event::GeneralRef(r)) if in_text => {
                let name = String::from_utf8_lossy(r.as_ref()).to_string();
                para.push_str(match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => {
                    let p = std::mem::take(&mut para);
                    if para_is_heading && !p.trim().is_empty() {
                        out.push(Section {
                            heading: heading.take(),
                            page: None,
                            text: std::mem::take(&mut body),
                        });
                        heading = Some(p.trim().to_string());
                    } else {
                        body.push_str(&p);
                        body.push('\n');
                    }
                    para_is_heading = false;
                }
                _ => {}
            },
            Ok(Event::Eof) => break,
            Err(e) => return Err(format!("the DOCX's XML cannot be read: {e}")),
            Ok(_) => {}
        }
        buf.clear();
    }
    out.push(Section {
        heading,
        page: None,
        text: body,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_names_and_magic_bytes() {
        assert_eq!(FileKind::detect("a.PDF", b""), Ok(FileKind::Pdf));
        assert_eq!(FileKind::detect("noext", b"%PDF-1.4"), Ok(FileKind::Pdf));
        assert!(
            FileKind::detect("a.doc", b"")
                .unwrap_err()
                .contains(".docx")
        );
        assert!(FileKind::detect("a.exe", b"").unwrap_err().contains(".exe"));
    }

    #[test]
    fn markdown_and_json_keep_their_headings() {
        let s = extract(
            FileKind::Markdown,
            b"intro\n# Travel\nTrains are cheap.\n## Food\nEat.",
        )
        .unwrap();
        assert_eq!(s[1].heading.as_deref(), Some("Travel"));
        assert_eq!(s[2].text.trim(), "Eat.");
        let j = extract(
            FileKind::Json,
            br#"{"policy": {"limit": 1000, "tools": ["a", "b"]}}"#,
        )
        .unwrap();
        assert_eq!(j[0].heading.as_deref(), Some("policy"));
        assert!(
            j[0].text.contains("policy.limit: 1000") && j[0].text.contains("policy.tools[1]: b")
        );
    }

    #[test]
    fn pdf_pages_and_docx_headings_are_read() {
        use crate::knowledge::fixtures;
        let pdf = fixtures::pdf(&[
            &["The design software limit is 1000 yuan."],
            &["Office software (like WPS) is 800 yuan."],
        ]);
        let s = extract(FileKind::Pdf, &pdf).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].text.contains("design software limit is 1000"), "{s:?}");
        assert_eq!(s[1].page, Some(2));
        assert!(s[1].text.contains("(like WPS)"), "{s:?}");
        let docx = fixtures::docx(&[
            (Some("Title"), "Travel policy"),
            (None, "Intro & scope."),
            (Some("Heading1"), "Trains"),
            (None, "Second class for trips under 4 hours."),
        ]);
        let s = extract(FileKind::Docx, &docx).unwrap();
        assert_eq!(s[0].heading.as_deref(), Some("Travel policy"));
        assert_eq!(s[0].text.trim(), "Intro & scope.");
        assert_eq!(s[1].heading.as_deref(), Some("Trains"));
        assert!(s[1].text.contains("Second class"));
    }

    #[test]
    fn a_zip_bomb_posing_as_docx_stops_at_the_cap() {
        use crate::knowledge::fixtures;
        let huge = " ".repeat((MAX_UNPACKED + 10) as usize);
        let bomb = fixtures::zipped(&[("word/document.xml", &huge)]);
        assert!(bomb.len() < 1024 * 1024, "deflated to {}", bomb.len());
        let e = extract(FileKind::Docx, &bomb).unwrap_err();
        assert!(e.contains("unpacks to more than"), "{e}");
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert_eq!(
            extract(FileKind::Text, b"").unwrap_err(),
            "the file is empty"
        );
        assert!(
            extract(FileKind::Text, &[0xff, 0xfe, 0x00])
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(
            extract(FileKind::Json, b"{nope")
                .unwrap_err()
                .contains("JSON")
        );
        assert!(extract(FileKind::Pdf, b"%PDF-1.4 garbage").is_err());
        assert!(extract(FileKind::Docx, b"PK\x03\x04 not a zip").is_err());
        assert_eq!(
            extract(FileKind::Text, b"  \n ").unwrap_err(),
            "the file holds no text"
        );
    }
}
