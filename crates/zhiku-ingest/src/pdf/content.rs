//! A page's content stream run far enough to know where each piece of text stands: the
//! text-showing operators with the text and graphics state that place them (PDF 32000-1 §8.4,
//! §9.3, §9.4), Form XObjects included. Glyph outlines, colours and images are ignored.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::Content;
use lopdf::Encoding;
use lopdf::{Dictionary, Document, Object, ObjectId};

/// A run of text shown by one string operand, in page space (points, y growing upwards).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Span {
    pub x0: f32,
    pub x1: f32,
    /// The baseline.
    pub y: f32,
    /// The rendered font size: the text matrix and CTM applied to the Tf size.
    pub size: f32,
    pub text: String,
    /// Set in a fixed-pitch font: code, terminal sessions.
    pub mono: bool,
}

/// Decompressed content (and font program) bytes a single page may expand to.
const CONTENT_LIMIT: usize = 64 << 20;
/// Forms inside forms: real files nest two or three deep; a cycle must not recurse forever.
const MAX_FORM_DEPTH: usize = 8;
/// Text-showing operations per page; beyond this the page is not prose anyone will read.
const MAX_SPANS: usize = 200_000;

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `a` then `b`: PDF matrices multiply row vectors, so a point goes through `a` first.
fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

fn translate(tx: f32, ty: f32) -> Matrix {
    [1.0, 0.0, 0.0, 1.0, tx, ty]
}

struct Font<'a> {
    encoding: Option<Encoding<'a>>,
    /// Type0 (CID) fonts in practice use two-byte codes (Identity-H and the CJK UCS2 CMaps).
    two_byte: bool,
    /// Glyph widths in text space units per code.
    widths: HashMap<u32, f32>,
    default_width: f32,
    mono: bool,
}

impl Font<'_> {
    fn width(&self, code: u32) -> f32 {
        self.widths.get(&code).copied().unwrap_or(self.default_width)
    }
}

fn number(object: &Object) -> Option<f32> {
    object.as_float().ok().filter(|v| v.is_finite())
}

/// Whether a font is fixed-pitch: the descriptor's FixedPitch flag, or a name that says so
/// (many embedded subsets leave the flag unset).
fn is_monospaced(doc: &Document, font: &Dictionary) -> bool {
    let name = font.get(b"BaseFont").and_then(Object::as_name).map(|n| String::from_utf8_lossy(n).to_ascii_lowercase()).unwrap_or_default();
    let named = ["mono", "courier", "consol", "typewriter", "cmtt", "menlo", "fixed"].iter().any(|m| name.contains(m));
    let flagged = font
        .get(b"FontDescriptor")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_dict().ok())
        .and_then(|d| d.get(b"Flags").ok())
        .and_then(|f| f.as_i64().ok())
        .is_some_and(|flags| flags & 1 == 1);
    named || flagged
}

fn load_font<'a>(doc: &'a Document, dict: &'a Dictionary) -> Font<'a> {
    let encoding = dict.get_font_encoding_with_limit(doc, CONTENT_LIMIT).ok();
    let deref = |object: &'a Object| doc.dereference(object).map(|(_, o)| o).ok();
    let subtype = dict.get(b"Subtype").and_then(Object::as_name).unwrap_or(b"");
    let mut mono = is_monospaced(doc, dict);
    let mut widths = HashMap::new();
    if subtype == b"Type0" {
        let descendant = dict
            .get(b"DescendantFonts")
            .ok()
            .and_then(deref)
            .and_then(|o| o.as_array().ok())
            .and_then(|a| a.first())
            .and_then(deref)
            .and_then(|o| o.as_dict().ok());
        mono |= descendant.is_some_and(|d| is_monospaced(doc, d));
        let default_width = descendant.and_then(|d| d.get(b"DW").ok()).and_then(number).unwrap_or(1000.0) / 1000.0;
        if let Some(w) = descendant.and_then(|d| d.get(b"W").ok()).and_then(deref).and_then(|o| o.as_array().ok()) {
            // [first [w w ...]] or [first last w], repeated.
            let mut i = 0;
            while i + 1 < w.len() && widths.len() < 65_536 {
                let Some(first) = number(&w[i]) else { break };
                let first = first as u32;
                match deref(&w[i + 1]) {
                    Some(Object::Array(list)) => {
                        for (k, v) in list.iter().enumerate() {
                            if let Some(v) = number(v) {
                                widths.insert(first.saturating_add(k as u32), v / 1000.0);
                            }
                        }
                        i += 2;
                    }
                    Some(last) if i + 2 < w.len() => {
                        let (Some(last), Some(v)) = (number(last), number(&w[i + 2])) else { break };
                        for code in first..=(last as u32).min(first.saturating_add(65_535)) {
                            widths.insert(code, v / 1000.0);
                        }
                        i += 3;
                    }
                    _ => break,
                }
            }
        }
        return Font { encoding, two_byte: true, widths, default_width, mono };
    }
    // Type3 glyph widths are in glyph space, scaled by the font matrix; others in 1/1000 em.
    let scale = if subtype == b"Type3" {
        dict.get(b"FontMatrix")
            .ok()
            .and_then(deref)
            .and_then(|o| o.as_array().ok())
            .and_then(|m| m.first())
            .and_then(number)
            .unwrap_or(0.001)
    } else {
        0.001
    };
    let first = dict.get(b"FirstChar").ok().and_then(number).unwrap_or(0.0) as u32;
    if let Some(list) = dict.get(b"Widths").ok().and_then(deref).and_then(|o| o.as_array().ok()) {
        for (k, v) in list.iter().take(256).enumerate() {
            if let Some(v) = deref(v).and_then(number) {
                widths.insert(first.saturating_add(k as u32), v * scale);
            }
        }
    }
    // The standard 14 fonts come without widths; half an em is their average glyph.
    let default_width = dict
        .get(b"FontDescriptor")
        .ok()
        .and_then(deref)
        .and_then(|o| o.as_dict().ok())
        .and_then(|d| d.get(b"MissingWidth").ok())
        .and_then(number)
        .filter(|w| *w > 0.0)
        .map_or(0.5, |w| w * scale);
    Font { encoding, two_byte: false, widths, default_width, mono }
}

/// The fonts and forms a content stream can name, nearest resource dictionary first.
struct Resources<'a> {
    fonts: HashMap<Vec<u8>, Rc<Font<'a>>>,
    forms: HashMap<Vec<u8>, ObjectId>,
}

impl<'a> Resources<'a> {
    fn from_dicts(doc: &'a Document, dicts: &[&'a Dictionary], inherited: Option<&Resources<'a>>) -> Self {
        let mut fonts: HashMap<Vec<u8>, Rc<Font<'a>>> = HashMap::new();
        let mut forms = HashMap::new();
        let sub = |dict: &'a Dictionary, key: &[u8]| -> Option<&'a Dictionary> {
            let object = dict.get(key).ok()?;
            doc.dereference(object).ok()?.1.as_dict().ok()
        };
        for dict in dicts {
            if let Some(font_dict) = sub(dict, b"Font") {
                for (name, value) in font_dict.iter() {
                    if fonts.contains_key(name) {
                        continue;
                    }
                    if let Some(font) = doc.dereference(value).ok().and_then(|(_, o)| o.as_dict().ok()) {
                        fonts.insert(name.clone(), Rc::new(load_font(doc, font)));
                    }
                }
            }
            if let Some(xobjects) = sub(dict, b"XObject") {
                for (name, value) in xobjects.iter() {
                    if let Ok(id) = value.as_reference() {
                        forms.entry(name.clone()).or_insert(id);
                    }
                }
            }
        }
        // A form without resources of its own uses its page's (PDF 32000-1 §8.10.1).
        if let Some(parent) = inherited {
            for (name, font) in &parent.fonts {
                fonts.entry(name.clone()).or_insert_with(|| Rc::clone(font));
            }
            for (name, id) in &parent.forms {
                forms.entry(name.clone()).or_insert(*id);
            }
        }
        Self { fonts, forms }
    }
}

#[derive(Clone)]
struct GraphicsState<'a> {
    ctm: Matrix,
    char_spacing: f32,
    word_spacing: f32,
    horizontal_scale: f32,
    leading: f32,
    rise: f32,
    font: Option<Rc<Font<'a>>>,
    font_size: f32,
}

impl Default for GraphicsState<'_> {
    fn default() -> Self {
        Self {
            ctm: IDENTITY,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
            rise: 0.0,
            font: None,
            font_size: 0.0,
        }
    }
}

struct Interpreter<'a> {
    doc: &'a Document,
    spans: Vec<Span>,
    /// Open marked-content sequences; `Some` where one carries /ActualText, the text that
    /// replaces the glyphs shown inside it (and whether it has been placed yet). Some writers
    /// draw CJK text with placeholder codes and give the characters only this way.
    marked: Vec<Option<(String, bool)>>,
}

/// The positioned text of one page, in content-stream order.
pub(super) fn page_spans(doc: &Document, page_id: ObjectId) -> lopdf::Result<Vec<Span>> {
    let content = doc.get_page_content_with_limit(page_id, CONTENT_LIMIT)?;
    let (direct, referenced) = doc.get_page_resources(page_id)?;
    let mut dicts: Vec<&Dictionary> = direct.into_iter().collect();
    dicts.extend(referenced.iter().filter_map(|id| doc.get_dictionary(*id).ok()));
    let resources = Resources::from_dicts(doc, &dicts, None);
    let mut interpreter = Interpreter { doc, spans: Vec::new(), marked: Vec::new() };
    interpreter.run(&content, &resources, GraphicsState::default(), 0)?;
    Ok(interpreter.spans)
}

impl<'a> Interpreter<'a> {
    fn run(&mut self, content: &[u8], resources: &Resources<'a>, initial: GraphicsState<'a>, depth: usize) -> lopdf::Result<()> {
        let content = Content::decode(content)?;
        let mut state = initial;
        let mut saved: Vec<GraphicsState<'a>> = Vec::new();
        let mut text_matrix = IDENTITY;
        let mut line_matrix = IDENTITY;
        for op in &content.operations {
            if self.spans.len() >= MAX_SPANS {
                break;
            }
            let operands = &op.operands;
            let n = |i: usize| operands.get(i).and_then(number).unwrap_or(0.0);
            match op.operator.as_str() {
                "q" if saved.len() < 256 => saved.push(state.clone()),
                "Q" => {
                    if let Some(s) = saved.pop() {
                        state = s;
                    }
                }
                "cm" if operands.len() == 6 => state.ctm = multiply(&[n(0), n(1), n(2), n(3), n(4), n(5)], &state.ctm),
                "BT" => {
                    text_matrix = IDENTITY;
                    line_matrix = IDENTITY;
                }
                "Tc" => state.char_spacing = n(0),
                "Tw" => state.word_spacing = n(0),
                "Tz" => state.horizontal_scale = n(0) / 100.0,
                "TL" => state.leading = n(0),
                "Ts" => state.rise = n(0),
                "Tf" => {
                    state.font = operands.first().and_then(|o| o.as_name().ok()).and_then(|name| resources.fonts.get(name)).cloned();
                    state.font_size = n(1);
                }
                "Td" | "TD" => {
                    if op.operator == "TD" {
                        state.leading = -n(1);
                    }
                    line_matrix = multiply(&translate(n(0), n(1)), &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tm" if operands.len() == 6 => {
                    line_matrix = [n(0), n(1), n(2), n(3), n(4), n(5)];
                    text_matrix = line_matrix;
                }
                "T*" => {
                    line_matrix = multiply(&translate(0.0, -state.leading), &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tj" | "'" | "\"" => {
                    if op.operator != "Tj" {
                        if op.operator == "\"" {
                            state.word_spacing = n(0);
                            state.char_spacing = n(1);
                        }
                        line_matrix = multiply(&translate(0.0, -state.leading), &line_matrix);
                        text_matrix = line_matrix;
                    }
                    if let Some(bytes) = operands.last().and_then(|o| o.as_str().ok()) {
                        self.show(bytes, &state, &mut text_matrix);
                    }
                }
                "TJ" => {
                    for item in operands.first().and_then(|o| o.as_array().ok()).into_iter().flatten() {
                        match item {
                            Object::String(bytes, _) => self.show(bytes, &state, &mut text_matrix),
                            other => {
                                let adjust = number(other).unwrap_or(0.0);
                                let tx = -adjust / 1000.0 * state.font_size * state.horizontal_scale;
                                text_matrix = multiply(&translate(tx, 0.0), &text_matrix);
                            }
                        }
                    }
                }
                "BMC" if self.marked.len() < 256 => self.marked.push(None),
                "BDC" if self.marked.len() < 256 => {
                    let actual = operands
                        .get(1)
                        .and_then(|o| o.as_dict().ok())
                        .and_then(|d| d.get(b"ActualText").ok())
                        .and_then(|t| lopdf::decode_text_string(t).ok());
                    self.marked.push(actual.map(|text| (text, false)));
                }
                "EMC" => {
                    self.marked.pop();
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    let Some(id) = operands.first().and_then(|o| o.as_name().ok()).and_then(|name| resources.forms.get(name)) else {
                        continue;
                    };
                    self.run_form(*id, resources, &state, depth)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn run_form(&mut self, id: ObjectId, resources: &Resources<'a>, state: &GraphicsState<'a>, depth: usize) -> lopdf::Result<()> {
        let doc = self.doc;
        let Ok(stream) = doc.get_object(id).and_then(Object::as_stream) else { return Ok(()) };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return Ok(());
        }
        let matrix = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|o| o.as_array().ok())
            .filter(|m| m.len() == 6)
            .map(|m| {
                let v: Vec<f32> = m.iter().map(|o| number(o).unwrap_or(0.0)).collect();
                [v[0], v[1], v[2], v[3], v[4], v[5]]
            })
            .unwrap_or(IDENTITY);
        let own = stream.dict.get(b"Resources").ok().and_then(|o| doc.dereference(o).ok()).and_then(|(_, o)| o.as_dict().ok());
        let form_resources = Resources::from_dicts(doc, &own.into_iter().collect::<Vec<_>>(), Some(resources));
        let content = match stream.decompressed_content() {
            Ok(data) if data.len() <= CONTENT_LIMIT => data,
            Ok(_) => return Ok(()),
            Err(_) => stream.content.clone(),
        };
        let mut inner = state.clone();
        inner.ctm = multiply(&matrix, &state.ctm);
        self.run(&content, &form_resources, inner, depth + 1)
    }

    /// Records one string as a span and advances the text matrix past it.
    fn show(&mut self, bytes: &[u8], state: &GraphicsState<'a>, text_matrix: &mut Matrix) {
        let Some(font) = state.font.as_deref() else { return };
        let code_len = if font.two_byte { 2 } else { 1 };
        let mut advance = 0.0f32;
        for code in bytes.chunks(code_len) {
            let value = code.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
            let mut tx = font.width(value) * state.font_size + state.char_spacing;
            // Word spacing applies to the single-byte code 32 only (PDF 32000-1 §9.3.3).
            if code_len == 1 && value == 32 {
                tx += state.word_spacing;
            }
            advance += tx * state.horizontal_scale;
        }
        let mut text = String::new();
        if let Some(Some((actual, placed))) = self.marked.iter_mut().rev().find(|m| m.is_some()) {
            if !*placed {
                text = std::mem::take(actual);
                *placed = true;
            }
        } else if let Some(encoding) = &font.encoding {
            if encoding.write_to_string(bytes, &mut text).is_err() {
                text = bytes.iter().filter(|b| b.is_ascii_graphic() || **b == b' ').map(|b| char::from(*b)).collect();
            }
        }
        let render = multiply(text_matrix, &state.ctm);
        let start = multiply(&translate(0.0, state.rise), &render);
        let end = multiply(&translate(advance, state.rise), &render);
        let size = (state.font_size * (render[2] * render[2] + render[3] * render[3]).sqrt()).abs();
        *text_matrix = multiply(&translate(advance, 0.0), text_matrix);
        let text = text.replace('\0', "");
        if !text.trim().is_empty() && size.is_finite() && start.iter().chain(&end).all(|v| v.is_finite()) {
            self.spans.push(Span { x0: start[4].min(end[4]), x1: start[4].max(end[4]), y: start[5], size, text, mono: font.mono });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_compose_in_pdf_order() {
        // Scale by 2, then move by (10, 0): the point (1, 1) lands on (12, 2).
        let m = multiply(&[2.0, 0.0, 0.0, 2.0, 0.0, 0.0], &translate(10.0, 0.0));
        assert_eq!((1.0 * m[0] + 1.0 * m[2] + m[4], 1.0 * m[1] + 1.0 * m[3] + m[5]), (12.0, 2.0));
    }
}
