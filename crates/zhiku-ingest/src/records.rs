//! Structured files: CSV/TSV rows and JSON/JSONL objects become one record each, written as
//! `field: value` lines so that every chunk carries its column names.

use serde_json::Value;
use zhiku_core::{Block, Error, ParsedDocument, Parser, Result};

/// Comma- or tab-separated values with a header row.
#[derive(Debug, Clone, Copy)]
pub struct CsvParser {
    pub delimiter: u8,
}

impl Parser for CsvParser {
    fn format(&self) -> &'static str {
        if self.delimiter == b'\t' {
            "tsv"
        } else {
            "csv"
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let bad = |reason: String| Error::Parse { format: self.format(), reason };
        let mut reader = csv::ReaderBuilder::new().delimiter(self.delimiter).flexible(true).from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| bad(format!("cannot read the header row: {e}")))?
            .iter()
            .enumerate()
            .map(|(i, h)| if h.trim().is_empty() { format!("column {}", i + 1) } else { h.trim().to_string() })
            .collect();
        let mut blocks = Vec::new();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(format!("row {}: {e}", row + 2)))?;
            let lines: Vec<String> = record
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(i, v)| {
                    let name = header.get(i).cloned().unwrap_or_else(|| format!("column {}", i + 1));
                    format!("{name}: {}", v.trim())
                })
                .collect();
            if !lines.is_empty() {
                blocks.push(Block::record(lines.join("\n")));
            }
        }
        Ok(ParsedDocument { title: None, blocks, ..Default::default() })
    }
}

/// A JSON document: an array's elements are records; any other value is one record.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonParser;

impl Parser for JsonParser {
    fn format(&self) -> &'static str {
        "json"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Parse { format: "json", reason: e.to_string() })?;
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        Ok(ParsedDocument { title: None, blocks: items.iter().filter_map(record_block).collect(), ..Default::default() })
    }
}

/// JSON Lines: one value per line, each a record; blank lines are skipped.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonlParser;

impl Parser for JsonlParser {
    fn format(&self) -> &'static str {
        "jsonl"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse { format: "jsonl", reason: e.to_string() })?;
        let mut blocks = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let value: Value =
                serde_json::from_str(line).map_err(|e| Error::Parse { format: "jsonl", reason: format!("line {}: {e}", i + 1) })?;
            blocks.extend(record_block(&value));
        }
        Ok(ParsedDocument { title: None, blocks, ..Default::default() })
    }
}

fn record_block(value: &Value) -> Option<Block> {
    let mut lines = Vec::new();
    flatten("", value, &mut lines);
    (!lines.is_empty()).then(|| Block::record(lines.join("\n")))
}

/// Nested objects become dotted paths (`address.city: Paris`); arrays of scalars are joined,
/// arrays of objects are indexed (`items[0].name: …`).
fn flatten(path: &str, value: &Value, out: &mut Vec<String>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            let scalars: Vec<String> = items.iter().filter_map(scalar).collect();
            if !scalars.is_empty() {
                out.push(format!("{}: {}", label(path), scalars.join(", ")));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, out);
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                out.push(format!("{}: {s}", label(path)));
            }
        }
    }
}

fn label(path: &str) -> &str {
    if path.is_empty() {
        "value"
    } else {
        path
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::BlockKind;

    #[test]
    fn csv_rows_become_records_with_column_names() {
        let csv = "name,department,,city\nAlice,HR,x,\"Paris, FR\"\n\nBob,,y,Berlin\nCarol,IT,z,Rome,extra\n";
        let doc = CsvParser { delimiter: b',' }.parse(csv.as_bytes()).unwrap();
        let texts: Vec<&str> = doc.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "name: Alice\ndepartment: HR\ncolumn 3: x\ncity: Paris, FR",
                "name: Bob\ncolumn 3: y\ncity: Berlin",
                "name: Carol\ndepartment: IT\ncolumn 3: z\ncity: Rome\ncolumn 5: extra",
            ]
        );
        assert!(doc.blocks.iter().all(|b| b.kind == BlockKind::Record));
    }

    #[test]
    fn tsv_uses_tabs() {
        let doc = CsvParser { delimiter: b'\t' }.parse("姓名\t部门\n张三\t人事部\n".as_bytes()).unwrap();
        assert_eq!(doc.blocks, vec![Block::record("姓名: 张三\n部门: 人事部")]);
    }

    #[test]
    fn json_arrays_objects_and_lines() {
        let json = r#"[{"name": "Alice", "address": {"city": "Paris"}, "tags": ["a", "b"], "skills": [{"n": "rust"}], "boss": null}, 42]"#;
        let doc = JsonParser.parse(json.as_bytes()).unwrap();
        assert_eq!(doc.blocks[0].text, "name: Alice\naddress.city: Paris\ntags: a, b\nskills[0].n: rust");
        assert_eq!(doc.blocks[1].text, "value: 42");
        let doc = JsonlParser.parse(b"{\"id\": 1}\n\n{\"id\": 2}\n").unwrap();
        assert_eq!(doc.blocks.len(), 2);
        let err = JsonlParser.parse(b"{\"id\": 1}\n{broken\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(JsonParser.parse(b"{\"unterminated\": ").is_err());
    }
}
