//! How management commands print their results: JSON for scripts, or aligned columns (and short sentences) for people.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::{Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns with a header.
    Table,
    /// Pretty-printed JSON.
    Json,
}

/// Writes `value` as JSON, or in table mode whatever `human` renders from it, to stdout.
pub fn emit<T: Serialize>(format: OutputFormat, value: &T, human: impl FnOnce(&T) -> String) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)?,
        OutputFormat::Table => human(value),
    };
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// A time as RFC 3339 UTC with milliseconds. Times after the year 9999 cannot be written so; the client refuses them
/// when it reads them.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Serializes a time as [`rfc3339`] text, for `#[serde(serialize_with)]`.
pub fn serialize_rfc3339<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// Rows under a header, each column as wide as its widest cell, columns two spaces apart.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

const GAP: &str = "  ";

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Self { header, rows: Vec::new() }
    }

    /// Adds a row; it must have one cell per header column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// The header, a rule of dashes under each column title, then the rows, without trailing spaces or newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|title| title.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        let header: Vec<String> = self.header.iter().map(|title| title.to_string()).collect();
        std::iter::once(&header)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
            .map(|cells| line(cells, &widths))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn line(cells: &[String], widths: &[usize]) -> String {
    let padded: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
    padded.join(GAP).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn aligns_columns_to_the_widest_cell() {
        let mut table = Table::new(vec!["NAME", "SIZE", "TAGS"]);
        table.row(cells(&["library/ubuntu", "7", "latest, 24.04"]));
        table.row(cells(&["a", "123456", ""]));
        let expected = "\
NAME            SIZE    TAGS
--------------  ------  -------------
library/ubuntu  7       latest, 24.04
a               123456";
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Table::new(vec!["REPOSITORY"]).render(), "REPOSITORY\n----------");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(vec!["A", "B"]);
        table.row(cells(&["é", "x"]));
        table.row(cells(&["ab", "y"]));
        assert_eq!(table.render(), "A   B\n--  -\né   x\nab  y");
    }
}
