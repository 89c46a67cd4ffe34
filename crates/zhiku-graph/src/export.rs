//! Writing a graph out for Neo4j and other tools: a Cypher script, the CSV files
//! `neo4j-admin database import` reads, and GraphML (Gephi, yEd, NetworkX).

use std::fmt::Write as _;

use crate::ValueKind;

/// An entity as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub attributes: Vec<(String, String, ValueKind)>,
}

/// A relation as exported, with the sources that support it.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub source: i64,
    pub target: i64,
    pub relation: String,
    pub weight: f32,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A Cypher string literal.
fn cypher_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A Cypher identifier (label, relationship type, property name), always quoted: relation names
/// come from documents' columns and can be anything.
fn cypher_name(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn relationship_type(relation: &str) -> String {
    relation.to_uppercase()
}

fn label(kind: &str) -> String {
    let mut chars = kind.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn cypher_value(value: &str, kind: ValueKind) -> String {
    match kind {
        ValueKind::Integer if value.parse::<i64>().is_ok() => value.to_string(),
        ValueKind::Number if value.parse::<f64>().is_ok_and(f64::is_finite) => value.to_string(),
        ValueKind::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "yes").to_string(),
        ValueKind::Date if value.len() >= 10 => format!("date({})", cypher_string(&value[..10])),
        _ => cypher_string(value),
    }
}

/// A Cypher script that creates the graph in an empty Neo4j database (`cypher-shell -f`).
/// Nodes are `:Entity` with their kind as a second label, keyed by `id`.
pub fn cypher(graph: &Graph) -> String {
    let mut out = String::from(
        "// zhiku knowledge graph export\nCREATE CONSTRAINT zhiku_entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE;\n",
    );
    for n in &graph.nodes {
        let mut props = format!("id: {}, name: {}, kind: {}", n.id, cypher_string(&n.name), cypher_string(&n.kind));
        for (name, value, kind) in &n.attributes {
            if !matches!(name.as_str(), "id" | "name" | "kind") {
                let _ = write!(props, ", {}: {}", cypher_name(name), cypher_value(value, *kind));
            }
        }
        let _ = writeln!(out, "CREATE (:Entity:{} {{{props}}});", cypher_name(&label(&n.kind)));
    }
    for e in &graph.edges {
        let sources = e.sources.iter().map(|s| cypher_string(s)).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "MATCH (a:Entity {{id: {}}}), (b:Entity {{id: {}}}) CREATE (a)-[:{} {{weight: {}, sources: [{sources}]}}]->(b);",
            e.source,
            e.target,
            cypher_name(&relationship_type(&e.relation)),
            e.weight
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r', ';']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `nodes.csv` and `relationships.csv` for `neo4j-admin database import full --nodes=nodes.csv
/// --relationships=relationships.csv` (arrays split on `;`, the tool's default).
pub fn neo4j_csv(graph: &Graph) -> (String, String) {
    let mut nodes = String::from("id:ID,name,kind,:LABEL\n");
    for n in &graph.nodes {
        let _ =
            writeln!(nodes, "{},{},{},{}", n.id, csv_field(&n.name), csv_field(&n.kind), csv_field(&format!("Entity;{}", label(&n.kind))));
    }
    let mut edges = String::from(":START_ID,:END_ID,:TYPE,weight:float,sources:string[]\n");
    for e in &graph.edges {
        let sources: Vec<String> = e.sources.iter().map(|s| s.replace(';', "%3B")).collect();
        let _ = writeln!(
            edges,
            "{},{},{},{},{}",
            e.source,
            e.target,
            csv_field(&relationship_type(&e.relation)),
            e.weight,
            csv_field(&sources.join(";"))
        );
    }
    (nodes, edges)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// GraphML: a directed graph with `name`/`kind` on nodes and `relation`/`weight`/`sources`
/// (one per line) on edges.
pub fn graphml(graph: &Graph) -> String {
    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <key id=\"name\" for=\"node\" attr.name=\"name\" attr.type=\"string\"/>\n",
        "  <key id=\"kind\" for=\"node\" attr.name=\"kind\" attr.type=\"string\"/>\n",
        "  <key id=\"relation\" for=\"edge\" attr.name=\"relation\" attr.type=\"string\"/>\n",
        "  <key id=\"weight\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\"/>\n",
        "  <key id=\"sources\" for=\"edge\" attr.name=\"sources\" attr.type=\"string\"/>\n",
        "  <graph id=\"zhiku\" edgedefault=\"directed\">\n"
    ));
    for n in &graph.nodes {
        let _ = writeln!(
            out,
            "    <node id=\"n{}\"><data key=\"name\">{}</data><data key=\"kind\">{}</data></node>",
            n.id,
            xml_escape(&n.name),
            xml_escape(&n.kind)
        );
    }
    for (i, e) in graph.edges.iter().enumerate() {
        let _ = writeln!(
            out,
            "    <edge id=\"e{i}\" source=\"n{}\" target=\"n{}\"><data key=\"relation\">{}</data><data key=\"weight\">{}</data><data key=\"sources\">{}</data></edge>",
            e.source,
            e.target,
            xml_escape(&e.relation),
            e.weight,
            xml_escape(&e.sources.join("\n"))
        );
    }
    out.push_str("  </graph>\n</graphml>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Graph {
        Graph {
            nodes: vec![
                Node {
                    id: 1,
                    name: "Atlas \"core\"".into(),
                    kind: "name".into(),
                    attributes: vec![("port".into(), "8080".into(), ValueKind::Integer)],
                },
                Node { id: 2, name: "Bo'realis".into(), kind: "record".into(), attributes: vec![] },
            ],
            edges: vec![Edge {
                source: 1,
                target: 2,
                relation: "depends_on".into(),
                weight: 2.0,
                sources: vec!["a.txt".into(), "b;c.md".into()],
            }],
        }
    }

    #[test]
    fn cypher_quotes_every_string_and_name() {
        let script = cypher(&sample());
        assert!(script.contains("CREATE (:Entity:`Name` {id: 1, name: 'Atlas \"core\"', kind: 'name', `port`: 8080});"), "{script}");
        assert!(script.contains("name: 'Bo\\'realis'"));
        assert!(script.contains("CREATE (a)-[:`DEPENDS_ON` {weight: 2, sources: ['a.txt', 'b;c.md']}]->(b);"));
    }

    #[test]
    fn csv_has_neo4j_admin_headers_and_quotes_fields() {
        let (nodes, edges) = neo4j_csv(&sample());
        assert_eq!(nodes.lines().next(), Some("id:ID,name,kind,:LABEL"));
        assert!(nodes.contains("1,\"Atlas \"\"core\"\"\",name,\"Entity;Name\""), "{nodes}");
        assert_eq!(edges.lines().nth(1), Some("1,2,DEPENDS_ON,2,\"a.txt;b%3Bc.md\""));
    }

    #[test]
    fn graphml_escapes_markup() {
        let xml = graphml(&sample());
        assert!(xml.contains("<data key=\"name\">Atlas &quot;core&quot;</data>"));
        assert!(xml.contains("source=\"n1\" target=\"n2\""));
    }
}
