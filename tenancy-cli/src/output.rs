//! What a command prints on standard output: an aligned table for people, or JSON with
//! `--json` for scripts. Progress and prompts go to standard error, so output stays parseable.

use serde_json::Value;
use tenancy::Tenant;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The output mode chosen on the command line.
pub struct Out {
    json: bool,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON, or `headers` and `rows` as a table.
    pub fn table(&self, headers: &[&str], rows: &[Vec<String>], value: &Value) {
        if self.json {
            self.value(value);
        } else {
            print!("{}", render(headers, rows));
        }
    }

    /// Prints `value` as JSON, or `text` as a line.
    pub fn line(&self, text: &str, value: &Value) {
        if self.json {
            self.value(value);
        } else {
            println!("{text}");
        }
    }

    fn value(&self, value: &Value) {
        // A Value always serializes.
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

pub fn time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

pub const TENANT_HEADERS: &[&str] = &["ID", "SLUG", "NAME", "PLACEMENT", "STATUS", "HOSTS"];

pub fn tenant_row(t: &Tenant) -> Vec<String> {
    vec![
        t.id.to_string(),
        t.slug.clone(),
        t.name.clone(),
        t.placement.to_string(),
        t.status.to_string(),
        t.hosts.join(","),
    ]
}

/// A record as JSON: its own serialisation (the library's `serde` feature).
pub fn json_of<T: serde::Serialize>(record: &T) -> Value {
    serde_json::to_value(record).expect("tenancy's records serialise to JSON")
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["acme".to_owned(), "active".to_owned()],
            vec!["b".to_owned(), "suspended".to_owned()],
        ];
        assert_eq!(
            super::render(&["SLUG", "STATUS"], &rows),
            "SLUG  STATUS\nacme  active\nb     suspended\n"
        );
    }
}
