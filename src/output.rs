//! The only module that writes stdout: a command's reply, as text or as exactly one JSON
//! document.
#![allow(clippy::print_stdout)]

use std::io::Write;

use serde_json::Value;

use crate::cli::OutputFormat;

/// What a command answers: the same content as text for people and as JSON for scripts.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The JSON document.
    pub json: Value,
    /// The text: tables and sentences.
    pub text: String,
}

impl Reply {
    /// A reply whose text is given and whose JSON is `json`.
    pub fn new(json: Value, text: impl Into<String>) -> Self {
        Self { json, text: text.into() }
    }
}

/// Prints `reply` in `format`.
pub fn print(reply: &Reply, format: OutputFormat) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &reply.json)?;
            writeln!(stdout)
        }
        OutputFormat::Text if reply.text.is_empty() => Ok(()),
        OutputFormat::Text if reply.text.ends_with('\n') => write!(stdout, "{}", reply.text),
        OutputFormat::Text => writeln!(stdout, "{}", reply.text),
    }
}

/// A plain text table: a header row, then rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let text =
            table(&["stage", "version"], &[vec!["dev".into(), "12".into()], vec!["production".into(), "3".into()]]);
        assert_eq!(text, "stage       version\ndev         12\nproduction  3\n");
    }
}
