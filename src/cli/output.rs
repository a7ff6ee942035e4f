//! Printing answers: JSON as the server gave it, or an aligned table.

use serde::Serialize;
use serde_json::Value;

use super::args::OutputFormat;
use super::client::Answer;

/// An API type shown as one line of a table; see [`table_row`].
pub trait Row {
    const COLUMNS: &'static [&'static str];
    /// One cell per column, each made with [`cell`].
    fn cells(&self) -> Vec<String>;
}

/// `impl Row` for an API type: the fields to show, each headed by its JSON name (written
/// `field as "name"` where the two differ), so a column cannot name a field that is not
/// there.
macro_rules! table_row {
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $column:literal) => { $column };
    ($type:ty { $($field:ident $(as $column:literal)?),+ $(,)? }) => {
        impl $crate::cli::output::Row for $type {
            const COLUMNS: &'static [&'static str] =
                &[$($crate::cli::output::table_row!(@column $field $($column)?)),+];

            fn cells(&self) -> Vec<String> {
                vec![$($crate::cli::output::cell(&self.$field)),+]
            }
        }
    };
}
pub(crate) use table_row;

/// A list answer: the server's JSON, or a table.
pub fn list<R: Row>(out: OutputFormat, answer: &Answer<Vec<R>>) {
    match out {
        OutputFormat::Json => json(&answer.json),
        OutputFormat::Table => table(&answer.body),
    }
}

/// A single object: the server's JSON, or a line per field.
pub fn object<T>(out: OutputFormat, answer: &Answer<T>) {
    match out {
        OutputFormat::Json => json(&answer.json),
        OutputFormat::Table => key_values(&answer.json),
    }
}

/// A command that answers nothing (a delete, a revoke): `deleted ID`, or under `-o json`
/// `{"deleted": "ID"}`.
pub fn done(out: OutputFormat, what: &str, id: &str) {
    match out {
        OutputFormat::Json => json(&serde_json::json!({ what: id })),
        OutputFormat::Table => println!("{what} {id}"),
    }
}

/// Pretty-printed JSON.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Rows with a header, columns padded to the widest cell.
pub fn table<R: Row>(rows: &[R]) {
    let mut widths: Vec<usize> = R::COLUMNS.iter().map(|h| h.len()).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(R::COLUMNS.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// A field as a table cell, spelled as in the JSON: strings bare, null as `-`, arrays
/// comma-joined.
pub fn cell<T: Serialize + ?Sized>(field: &T) -> String {
    json_cell(&serde_json::to_value(field).expect("API types are plain data"))
}

fn json_cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(json_cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A number of bytes as a table shows it: decimal units like the API's memory strings
/// ("39 GB"), one decimal at most; `-` for none.
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    if bytes == 0 {
        return "-".into();
    }
    for (unit, name) in UNITS {
        if bytes >= unit {
            let tenths = (bytes as f64 / unit as f64 * 10.0).round() / 10.0;
            return format!("{tenths} {name}");
        }
    }
    format!("{bytes} B")
}

/// Key/value lines for a single object.
fn key_values(value: &Value) {
    if let Value::Object(map) = value {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            let shown = match (k.as_str(), v.as_u64()) {
                ("memory", Some(bytes)) => size(bytes),
                _ => json_cell(v),
            };
            println!("{k:<width$}  {shown}");
        }
    } else {
        println!("{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::{cell, size};
    use crate::state::{SlotState, TokenSource};

    #[test]
    fn sizes_read_like_the_api_s_memory_strings() {
        assert_eq!(size(39_000_000_000), "39 GB");
        assert_eq!(size(36 << 30), "38.7 GB");
        assert_eq!(size(80_000_000_000_000), "80 TB");
        assert_eq!(size(1_500_000), "1.5 MB");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(0), "-");
    }

    #[test]
    fn cells_are_spelled_as_in_the_json() {
        assert_eq!(cell("text"), "text");
        assert_eq!(cell(&None::<u64>), "-");
        assert_eq!(cell(&Some(7u64)), "7");
        assert_eq!(cell(&true), "true");
        assert_eq!(cell(&vec![0u32, 1]), "0,1");
        assert_eq!(cell(&Vec::<String>::new()), "");
        assert_eq!(cell(&SlotState::Running), "running");
        assert_eq!(cell(&Some(TokenSource::Organization)), "organization");
    }
}
