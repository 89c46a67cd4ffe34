use scraper::{ElementRef, Html, Node};
use zhiku_core::{Block, Error, ParsedDocument, Parser, Result};

/// HTML: the visible text only. Scripts, styles, forms and navigation (`<nav>`, `<header>`,
/// `<footer>`, `<aside>`, ARIA navigation roles, hidden elements and the usual navigation class
/// names) are dropped; `h1`–`h6` become headings; `pre` stays preformatted and tables become
/// table blocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct HtmlParser;

impl Parser for HtmlParser {
    fn format(&self) -> &'static str {
        "html"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse { format: "html", reason: e.to_string() })?;
        let html = Html::parse_document(text);
        let title = html
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
            .find(|e| e.value().name() == "title")
            .map(|e| collapse_ws(&e.text().collect::<String>()))
            .filter(|t| !t.is_empty());
        let mut walker = Walker::default();
        let body = html.root_element().children().filter_map(ElementRef::wrap).find(|e| e.value().name() == "body");
        walker.visit(body.unwrap_or_else(|| html.root_element()));
        walker.flush();
        Ok(ParsedDocument { title, blocks: walker.blocks, ..Default::default() })
    }
}

const SKIPPED_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "head", "nav", "header", "footer", "aside", "form", "button", "select", "svg", "iframe",
    "object", "canvas", "dialog", "menu",
];

/// Class or id tokens that mark navigation and page furniture in common generators (DocBook's
/// navheader/navfooter and toc, CMS breadcrumbs and sidebars). A table of contents repeats every
/// heading of the page: left in, it matches every query and outranks the sections themselves.
const BOILERPLATE_MARKERS: &[&str] = &[
    "nav",
    "navbar",
    "navheader",
    "navfooter",
    "navigation",
    "menu",
    "breadcrumb",
    "breadcrumbs",
    "sidebar",
    "footer",
    "header",
    "site-header",
    "site-footer",
    "skip-link",
    "cookie-banner",
    "toc",
    "table-of-contents",
];

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "br",
    "hr",
    "caption",
    "details",
    "summary",
];

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    buf: String,
}

impl Walker {
    fn visit(&mut self, element: ElementRef<'_>) {
        for child in element.children() {
            match child.value() {
                Node::Text(t) => self.buf.push_str(t),
                Node::Element(_) => {
                    if let Some(el) = ElementRef::wrap(child) {
                        self.visit_element(el);
                    }
                }
                _ => {}
            }
        }
    }

    fn visit_element(&mut self, el: ElementRef<'_>) {
        let name = el.value().name();
        if SKIPPED_TAGS.contains(&name) || is_hidden_or_boilerplate(el) {
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = name.as_bytes()[1] - b'0';
                let text = collapse_ws(&el.text().collect::<String>());
                if !text.is_empty() {
                    self.blocks.push(Block::heading(level, text));
                }
            }
            "pre" => {
                self.flush();
                let text: String = el.text().collect();
                if !text.trim().is_empty() {
                    self.blocks.push(Block::preformatted(text));
                }
            }
            "table" => {
                self.flush();
                let rows = table_rows(el);
                if !rows.is_empty() {
                    self.blocks.push(Block::table(&rows));
                }
            }
            "img" => {
                if let Some(alt) = el.value().attr("alt").filter(|a| !a.trim().is_empty()) {
                    self.buf.push(' ');
                    self.buf.push_str(alt.trim());
                    self.buf.push(' ');
                }
            }
            _ if BLOCK_TAGS.contains(&name) => {
                self.flush();
                self.visit(el);
                self.flush();
            }
            _ => self.visit(el),
        }
    }

    fn flush(&mut self) {
        let text = collapse_ws(&std::mem::take(&mut self.buf));
        if !text.is_empty() {
            self.blocks.push(Block::text(text));
        }
    }
}

fn is_hidden_or_boilerplate(el: ElementRef<'_>) -> bool {
    let v = el.value();
    if v.attr("hidden").is_some() || v.attr("aria-hidden") == Some("true") {
        return true;
    }
    if matches!(v.attr("role"), Some("navigation" | "banner" | "contentinfo" | "search")) {
        return true;
    }
    if let Some(style) = v.attr("style") {
        let compact: String = style.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        if compact.contains("display:none") || compact.contains("visibility:hidden") {
            return true;
        }
    }
    let marked = |attr: Option<&str>| {
        attr.is_some_and(|a| a.split_whitespace().any(|t| BOILERPLATE_MARKERS.contains(&t.to_ascii_lowercase().as_str())))
    };
    marked(v.attr("class")) || marked(v.attr("id"))
}

fn table_rows(table: ElementRef<'_>) -> Vec<Vec<String>> {
    table
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| e.value().name() == "tr")
        .filter_map(|tr| {
            let cells: Vec<String> = tr
                .children()
                .filter_map(ElementRef::wrap)
                .filter(|c| matches!(c.value().name(), "td" | "th"))
                .map(|c| collapse_ws(&c.text().collect::<String>()))
                .collect();
            (!cells.iter().all(String::is_empty)).then_some(cells)
        })
        .collect()
}

/// HTML whitespace rules: runs of whitespace become one space. Between two CJK characters a
/// line break in the source is not a space in the rendered text.
fn collapse_ws(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending = false;
    let mut pending_had_newline = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            pending = true;
            pending_had_newline |= ch == '\n';
            continue;
        }
        if pending && !out.is_empty() {
            let cjk_pair = out.chars().last().is_some_and(zhiku_core::is_cjk) && zhiku_core::is_cjk(ch);
            if !(cjk_pair && pending_had_newline) {
                out.push(' ');
            }
        }
        pending = false;
        pending_had_newline = false;
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::BlockKind;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><title>Leave  policy</title>
        <style>body { color: red }</style><script>var secret = "do not index";</script></head>
        <body>
          <div class="navheader"><a href="prev.html">Prev</a> Next</div>
          <div class="toc"><p><b>Table of Contents</b></p><dl><dt>1. Leave policy</dt></dl></div>
          <nav><a href="/">Home</a></nav>
          <header>Company intranet</header>
          <h1>Leave policy</h1>
          <p>Staff get <b>25 days</b>
             of paid leave.</p>
          <div style="display: none">hidden text</div>
          <h2>Carry over</h2>
          <ul><li>Up to 5 days.</li><li>Ask HR.</li></ul>
          <table><tr><th>Year</th><th>Days</th></tr><tr><td>2025</td><td>25</td></tr></table>
          <pre>code  line 1
code  line 2</pre>
          <p>中文段落
          继续。</p>
          <footer>© Company</footer>
        </body></html>"#;

    #[test]
    fn visible_text_only_with_headings() {
        let doc = HtmlParser.parse(PAGE.as_bytes()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Leave policy"));
        let all = doc.full_text();
        for hidden in ["secret", "color: red", "Prev", "Home", "intranet", "hidden text", "©", "Table of Contents"] {
            assert!(!all.contains(hidden), "boilerplate {hidden:?} leaked into {all:?}");
        }
        assert_eq!(doc.blocks[0], Block::heading(1, "Leave policy"));
        assert_eq!(doc.blocks[1], Block::text("Staff get 25 days of paid leave."));
        assert_eq!(doc.blocks[2], Block::heading(2, "Carry over"));
        assert_eq!(doc.blocks[3], Block::text("Up to 5 days."));
        assert_eq!(doc.blocks[4], Block::text("Ask HR."));
        assert_eq!(doc.blocks[5], Block::table(&[vec!["Year".into(), "Days".into()], vec!["2025".into(), "25".into()]]));
        assert_eq!(doc.blocks[5].text, "| Year | Days |\n| --- | --- |\n| 2025 | 25 |");
        assert_eq!(doc.blocks[6].kind, BlockKind::Preformatted);
        assert!(doc.blocks[6].text.contains("code  line 2"));
        assert_eq!(doc.blocks[7], Block::text("中文段落继续。"));
    }

    #[test]
    fn fragment_without_body_still_parses() {
        let doc = HtmlParser.parse(b"<p>Just a fragment.</p>").unwrap();
        assert_eq!(doc.blocks, vec![Block::text("Just a fragment.")]);
    }
}
