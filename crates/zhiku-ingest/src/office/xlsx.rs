//! Excel (`.xlsx`): each sheet a section holding one table, its first non-empty row the header.
//! Cells are the values Excel last computed and showed — never formulas: shared and inline
//! strings, numbers as Excel would round them, dates and times in ISO 8601 where the cell's
//! number format is a date, percentages, booleans and error codes.

use std::collections::HashMap;

use zhiku_core::{calendar, Block, ParsedDocument, Parser, Result};

use super::xml::Node;
use super::Package;

#[derive(Debug, Default, Clone, Copy)]
pub struct XlsxParser;

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumberStyle {
    General,
    Date,
    Time,
    DateTime,
    /// With this many decimal places, as the format shows them.
    Percent(u8),
}

impl Parser for XlsxParser {
    fn format(&self) -> &'static str {
        "xlsx"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let mut package = Package::open(self.format(), bytes)?;
        let workbook = package.required_part("xl/workbook.xml")?;
        let mut sheets: Vec<(String, String)> = Vec::new();
        let mut date1904 = false;
        package.walk("xl/workbook.xml", &workbook, |node| {
            if let Node::Open(e) = node {
                match e.name() {
                    "sheet" => {
                        if let (Some(name), Some(id)) = (e.attr("name"), e.relationship_id()) {
                            sheets.push((name, id));
                        }
                    }
                    "workbookPr" => date1904 = matches!(e.attr("date1904").as_deref(), Some("1" | "true")),
                    _ => {}
                }
            }
        })?;
        let rels = package.relationships("xl/workbook.xml")?;
        let shared = match package.part("xl/sharedStrings.xml")? {
            Some(xml) => shared_strings(&package, &xml)?,
            None => Vec::new(),
        };
        let styles = match package.part("xl/styles.xml")? {
            Some(xml) => cell_styles(&package, &xml)?,
            None => Vec::new(),
        };
        let title = package.title("docProps/core.xml")?;

        let mut blocks = Vec::new();
        for (name, rel_id) in sheets {
            let Some(rel) = rels.iter().find(|r| r.id == rel_id) else { continue };
            if !rel.kind.ends_with("/worksheet") {
                continue; // chart sheets and dialog sheets hold no cells
            }
            let Some(xml) = package.part(&rel.target)? else {
                return Err(package.error(format!("sheet '{name}' refers to the missing part {}", rel.target)));
            };
            let rows = sheet_rows(&package, &rel.target, &xml, &shared, &styles, date1904)?;
            if rows.is_empty() {
                continue;
            }
            blocks.push(Block::heading(1, name));
            blocks.push(Block::table(&rows));
        }
        Ok(ParsedDocument { title, blocks, ..Default::default() })
    }
}

/// Rows of non-empty cells laid out on the sheet's grid, trimmed to the columns in use.
fn sheet_rows(
    package: &Package<'_>,
    part: &str,
    xml: &str,
    shared: &[String],
    styles: &[NumberStyle],
    date1904: bool,
) -> Result<Vec<Vec<String>>> {
    let mut rows: Vec<Vec<(usize, String)>> = Vec::new();
    let mut row: Vec<(usize, String)> = Vec::new();
    let mut cell_type = String::new();
    let mut cell_style = 0usize;
    let mut column = 0usize;
    let mut value = String::new();
    // Which element's text is the value: `v` (computed value) or `t` of an inline string.
    let mut capture = false;
    let mut in_phonetic = false;
    package.walk(part, xml, |node| match node {
        Node::Open(e) => match e.name() {
            "row" => {
                row.clear();
                column = 0;
            }
            "c" => {
                cell_type = e.attr("t").unwrap_or_default();
                cell_style = e.attr("s").and_then(|s| s.parse().ok()).unwrap_or(0);
                column = e.attr("r").and_then(|r| column_of(&r)).unwrap_or(column);
                value.clear();
            }
            "v" => capture = true,
            "t" if !in_phonetic => capture = true,
            "rPh" => in_phonetic = true,
            _ => {}
        },
        Node::Close(name) => match name {
            "v" | "t" => capture = false,
            "rPh" => in_phonetic = false,
            "c" => {
                let style = styles.get(cell_style).copied().unwrap_or(NumberStyle::General);
                let shown = display_value(&cell_type, &value, shared, style, date1904);
                if !shown.trim().is_empty() {
                    row.push((column, shown));
                }
                column += 1;
            }
            "row" if !row.is_empty() => rows.push(std::mem::take(&mut row)),
            _ => {}
        },
        Node::Text(t) if capture => value.push_str(t),
        Node::Text(_) => {}
    })?;
    let first = rows.iter().flat_map(|r| r.iter().map(|c| c.0)).min().unwrap_or(0);
    let last = rows.iter().flat_map(|r| r.iter().map(|c| c.0)).max().unwrap_or(0);
    // A stray cell far to the right must not make every row thousands of columns wide.
    let width = (last - first + 1).min(1024);
    Ok(rows
        .into_iter()
        .map(|cells| {
            let mut grid = vec![String::new(); width];
            for (col, text) in cells {
                if let Some(slot) = grid.get_mut(col - first) {
                    *slot = text;
                }
            }
            grid
        })
        .collect())
}

fn display_value(cell_type: &str, raw: &str, shared: &[String], style: NumberStyle, date1904: bool) -> String {
    match cell_type {
        "s" => raw.trim().parse::<usize>().ok().and_then(|i| shared.get(i)).cloned().unwrap_or_default(),
        "b" => (if raw.trim() == "1" { "TRUE" } else { "FALSE" }).to_string(),
        "str" | "inlineStr" | "e" | "d" => raw.to_string(),
        _ => match raw.trim().parse::<f64>() {
            Ok(n) => format_number(n, style, date1904),
            Err(_) => raw.to_string(),
        },
    }
}

fn format_number(n: f64, style: NumberStyle, date1904: bool) -> String {
    match style {
        NumberStyle::General => general_number(n),
        NumberStyle::Percent(decimals) => format!("{:.*}%", usize::from(decimals), n * 100.0),
        NumberStyle::Date | NumberStyle::Time | NumberStyle::DateTime => match serial_to_datetime(n, date1904) {
            Some((date, time)) => match style {
                NumberStyle::Date => date,
                NumberStyle::Time => time,
                _ => format!("{date} {time}"),
            },
            None => general_number(n),
        },
    }
}

/// Excel shows at most 15 significant digits: 0.1+0.2 is `0.3`, not `0.30000000000000004`.
fn general_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let precise = format!("{:.14e}", n);
    let rounded: f64 = precise.parse().unwrap_or(n);
    format!("{rounded}")
}

/// Serial day number to (`YYYY-MM-DD`, `HH:MM:SS`). In the 1900 system Excel counts the
/// non-existent 1900-02-29, so serials from 61 on are one day ahead.
fn serial_to_datetime(serial: f64, date1904: bool) -> Option<(String, String)> {
    if !(0.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let mut days = serial.floor() as i64;
    let mut seconds = ((serial - serial.floor()) * 86_400.0).round() as i64;
    if seconds >= 86_400 {
        days += 1;
        seconds = 0;
    }
    let epoch = if date1904 {
        calendar::days_from_civil(1904, 1, 1)
    } else if days >= 61 {
        calendar::days_from_civil(1899, 12, 30)
    } else {
        calendar::days_from_civil(1899, 12, 31)
    };
    let (y, m, d) = calendar::civil_from_days(epoch + days);
    let time = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    Some((format!("{y:04}-{m:02}-{d:02}"), time))
}

/// `BC12` → column 54 (0-based).
fn column_of(reference: &str) -> Option<usize> {
    let letters: String = reference.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let mut col = 0usize;
    for ch in letters.chars() {
        col = col * 26 + (ch.to_ascii_uppercase() as usize - 'A' as usize + 1);
    }
    Some(col - 1)
}

fn shared_strings(package: &Package<'_>, xml: &str) -> Result<Vec<String>> {
    let mut strings = Vec::new();
    let mut current = String::new();
    let (mut in_text, mut in_phonetic) = (false, false);
    package.walk("xl/sharedStrings.xml", xml, |node| match node {
        Node::Open(e) => match e.name() {
            "si" => current.clear(),
            "t" => in_text = !in_phonetic,
            "rPh" => in_phonetic = true,
            _ => {}
        },
        Node::Close(name) => match name {
            "si" => strings.push(std::mem::take(&mut current)),
            "t" => in_text = false,
            "rPh" => in_phonetic = false,
            _ => {}
        },
        Node::Text(t) if in_text => current.push_str(t),
        Node::Text(_) => {}
    })?;
    Ok(strings)
}

/// The number style of each cell format (`cellXfs`), by index, from built-in format ids and
/// custom format codes.
fn cell_styles(package: &Package<'_>, xml: &str) -> Result<Vec<NumberStyle>> {
    let mut custom: HashMap<u32, NumberStyle> = HashMap::new();
    let mut formats = Vec::new();
    let mut in_cell_xfs = false;
    package.walk("xl/styles.xml", xml, |node| match node {
        Node::Open(e) => match e.name() {
            "numFmt" => {
                if let (Some(id), Some(code)) = (e.attr("numFmtId").and_then(|i| i.parse().ok()), e.attr("formatCode")) {
                    custom.insert(id, style_of_code(&code));
                }
            }
            "cellXfs" => in_cell_xfs = true,
            "xf" if in_cell_xfs => formats.push(e.attr("numFmtId").and_then(|i| i.parse::<u32>().ok()).unwrap_or(0)),
            _ => {}
        },
        Node::Close("cellXfs") => in_cell_xfs = false,
        _ => {}
    })?;
    Ok(formats
        .into_iter()
        .map(|id| match id {
            9 => NumberStyle::Percent(0),
            10 => NumberStyle::Percent(2),
            14..=17 => NumberStyle::Date,
            18..=21 | 45..=47 => NumberStyle::Time,
            22 => NumberStyle::DateTime,
            _ => custom.get(&id).copied().unwrap_or(NumberStyle::General),
        })
        .collect())
}

/// Classifies a custom number format code by its date/time tokens, outside quoted literals,
/// escapes and `[colour]` sections.
fn style_of_code(code: &str) -> NumberStyle {
    let section = code.split(';').next().unwrap_or("");
    let mut plain = String::new();
    let mut chars = section.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                }
            }
            '\\' | '_' | '*' => {
                chars.next();
            }
            '[' => {
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                // Elapsed-time brackets ([h], [mm]) are time tokens; colours and locales are not.
                if inner.chars().all(|c| matches!(c.to_ascii_lowercase(), 'h' | 'm' | 's')) {
                    plain.push('h');
                }
            }
            c => plain.push(c.to_ascii_lowercase()),
        }
    }
    let has_date = plain.contains('y') || plain.contains('d');
    let has_time = plain.contains('h') || plain.contains('s');
    match (has_date, has_time) {
        (true, true) => NumberStyle::DateTime,
        (true, false) => NumberStyle::Date,
        (false, true) => NumberStyle::Time,
        _ if plain.contains('%') => {
            let decimals = plain.split_once('.').map_or(0, |(_, frac)| frac.chars().take_while(|c| matches!(c, '0' | '#')).count());
            NumberStyle::Percent(decimals.min(10) as u8)
        }
        _ => NumberStyle::General,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_dates_follow_excel_including_its_1900_leap_bug() {
        let date = |n: f64| serial_to_datetime(n, false).map(|d| d.0);
        assert_eq!(date(1.0).as_deref(), Some("1900-01-01"));
        assert_eq!(date(59.0).as_deref(), Some("1900-02-28"));
        assert_eq!(date(61.0).as_deref(), Some("1900-03-01"));
        assert_eq!(date(45_658.0).as_deref(), Some("2025-01-01"));
        assert_eq!(serial_to_datetime(45_658.75, false).map(|d| d.1).as_deref(), Some("18:00:00"));
        assert_eq!(serial_to_datetime(0.0, true).map(|d| d.0).as_deref(), Some("1904-01-01"));
    }

    #[test]
    fn numbers_show_as_excel_shows_them() {
        assert_eq!(general_number(42.0), "42");
        assert_eq!(general_number(0.1 + 0.2), "0.3");
        assert_eq!(general_number(-1.5), "-1.5");
        assert_eq!(format_number(0.25, NumberStyle::Percent(0), false), "25%");
        assert_eq!(format_number(0.52425, NumberStyle::Percent(1), false), "52.4%");
    }

    #[test]
    fn format_codes_are_classified() {
        assert_eq!(style_of_code("yyyy-mm-dd"), NumberStyle::Date);
        assert_eq!(style_of_code("[$-409]d-mmm-yy;@"), NumberStyle::Date);
        assert_eq!(style_of_code("hh:mm"), NumberStyle::Time);
        assert_eq!(style_of_code("[h]:mm"), NumberStyle::Time);
        assert_eq!(style_of_code("yyyy-mm-dd hh:mm:ss"), NumberStyle::DateTime);
        assert_eq!(style_of_code("#,##0.00\" days\""), NumberStyle::General);
        assert_eq!(style_of_code("[Red]#,##0"), NumberStyle::General);
        assert_eq!(style_of_code("0.0%"), NumberStyle::Percent(1));
        assert_eq!(style_of_code("0%"), NumberStyle::Percent(0));
    }

    #[test]
    fn cell_references_give_columns() {
        assert_eq!(column_of("A1"), Some(0));
        assert_eq!(column_of("Z9"), Some(25));
        assert_eq!(column_of("AA10"), Some(26));
        assert_eq!(column_of("12"), None);
    }
}
