//! A small pull walker over quick-xml for the office parsers: elements by local name (Office
//! files use fixed prefixes, so `w:p` and `a:p` are told apart by the part they are in), text
//! with entity and character references resolved, empty elements reported as open + close.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub(crate) enum Node<'a> {
    Open(Element<'a>),
    Close(&'a str),
    Text(&'a str),
}

pub(crate) struct Element<'a> {
    start: &'a BytesStart<'a>,
}

impl Element<'_> {
    pub fn name(&self) -> &str {
        local(self.start.name().0)
    }

    /// An attribute's unescaped value, by local name (`table:name` is `name`).
    pub fn attr(&self, name: &str) -> Option<String> {
        self.find_attr(|key| local(key) == name)
    }

    /// A relationship reference (`r:id`), told apart from a plain `id` on the same element.
    pub fn relationship_id(&self) -> Option<String> {
        self.find_attr(|key| key.contains(':') && local(key) == "id")
    }

    fn find_attr(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        self.start
            .attributes()
            .with_checks(false)
            .flatten()
            .find(|a| matches(a.key.0))
            .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
    }
}

fn local(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, l)| l)
}

/// Calls `visit` for every element start, end and text run of `xml`, in document order.
pub(crate) fn walk(xml: &str, mut visit: impl FnMut(Node<'_>)) -> Result<(), String> {
    let mut reader = Reader::from_str(xml);
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                depth += 1;
                visit(Node::Open(Element { start: &start }))
            }
            Event::Empty(start) => {
                visit(Node::Open(Element { start: &start }));
                visit(Node::Close(local(start.name().0)));
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                visit(Node::Close(local(end.name().0)))
            }
            Event::Text(text) => visit(Node::Text(&text.xml10_content())),
            Event::CData(data) => visit(Node::Text(&data.xml10_content())),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch),
                    _ => match &*r.xml10_content() {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "apos" => Some('\''),
                        "quot" => Some('"'),
                        _ => None,
                    },
                };
                if let Some(ch) = resolved {
                    visit(Node::Text(ch.encode_utf8(&mut [0; 4])));
                }
            }
            // quick-xml accepts a document that stops mid-way; a truncated part is an error here.
            Event::Eof if depth > 0 => return Err(format!("truncated XML: {depth} elements left open")),
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_elements_text_and_references() {
        let mut out = Vec::new();
        walk(r#"<w:p a:x="1 &amp; 2"><w:t>Fish &amp; chips &#x4E2D;</w:t><w:br/></w:p>"#, |n| {
            out.push(match n {
                Node::Open(e) => format!("<{} {:?}>", e.name(), e.attr("x")),
                Node::Close(n) => format!("</{n}>"),
                Node::Text(t) => t.to_string(),
            })
        })
        .unwrap();
        assert_eq!(out.concat(), r#"<p Some("1 & 2")><t None>Fish & chips 中</t><br None></br></p>"#);
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(walk("<a><b></a>", |_| {}).is_err());
        assert!(walk("<a><b></b>", |_| {}).unwrap_err().contains("truncated"));
    }
}
