//! Read-only inspection of tables by path: a text table, JSON, and directory listings.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};

use crate::error::{Result, ShmError};
use crate::schema::{ColumnKind, Row, Value};
use crate::table::Table;

/// A summary of one table file, for `table list`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// File name (the table's name).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Rows now.
    pub len: usize,
    /// Most rows.
    pub capacity: usize,
    /// Bytes mapped.
    pub memory_size: usize,
    /// The creating process.
    pub owner_pid: u32,
    /// Whether it still runs.
    pub owner_alive: bool,
}

/// Lists the tables in `dir` (files that open as tables; others are skipped), by name.
pub fn list_tables(dir: &Path) -> Result<Vec<TableInfo>> {
    let entries = std::fs::read_dir(dir).map_err(|source| ShmError::Io {
        op: "list table directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(t) = Table::open_readonly(&path) else {
            continue;
        };
        out.push(TableInfo {
            name: entry.file_name().to_string_lossy().into_owned(),
            path,
            len: t.len(),
            capacity: t.capacity(),
            memory_size: t.memory_size(),
            owner_pid: t.owner_pid(),
            owner_alive: t.owner_alive(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn rows_of(table: &Table) -> Result<Vec<Row>> {
    let mut rows = table.iter().collect::<Result<Vec<_>>>()?;
    rows.sort_by(|a, b| a.key().cmp(b.key()));
    Ok(rows)
}

/// Renders the table at `path` as an aligned text table with a summary line, opening
/// it read-only.
pub fn render_text(path: &Path) -> Result<String> {
    let table = Table::open_readonly(path)?;
    let rows = rows_of(&table)?;
    let mut header = vec!["key".to_owned()];
    header.extend(table.schema().columns().iter().map(|c| c.name().to_owned()));
    let mut lines: Vec<Vec<String>> = vec![header];
    for row in &rows {
        let mut line = vec![String::from_utf8_lossy(row.key()).into_owned()];
        line.extend(row.values().iter().map(cell_text));
        lines.push(line);
    }
    let ncol = lines[0].len();
    let widths: Vec<usize> = (0..ncol)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "table {} rows={} capacity={} memory={} owner={} ({})\n",
        path.display(),
        table.len(),
        table.capacity(),
        table.memory_size(),
        table.owner_pid(),
        if table.owner_alive() { "alive" } else { "gone" }
    );
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Renders the table at `path` as JSON: `{"path","capacity","len","memory_size",
/// "owner_pid","owner_alive","columns":[{"name","type","max_len"?}],"rows":[{"key",...}]}`.
pub fn render_json(path: &Path) -> Result<String> {
    let table = Table::open_readonly(path)?;
    let rows = rows_of(&table)?;
    let columns: Vec<Json> = table
        .schema()
        .columns()
        .iter()
        .map(|c| match c.kind() {
            ColumnKind::Str { max_len } => {
                json!({"name": c.name(), "type": "string", "max_len": max_len})
            }
            k => json!({"name": c.name(), "type": k.name()}),
        })
        .collect();
    let rows: Vec<Json> = rows
        .iter()
        .map(|row| {
            let mut m = Map::new();
            m.insert(
                "key".into(),
                Json::String(String::from_utf8_lossy(row.key()).into_owned()),
            );
            for (c, v) in table.schema().columns().iter().zip(row.values()) {
                let j = match v {
                    Value::Int(i) => json!(i),
                    // NaN and infinities have no JSON number; show them as strings.
                    Value::Float(f) if f.is_finite() => json!(f),
                    Value::Float(f) => json!(f.to_string()),
                    Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
                };
                m.insert(c.name().to_owned(), j);
            }
            Json::Object(m)
        })
        .collect();
    let doc = json!({
        "path": path.display().to_string(),
        "capacity": table.capacity(),
        "len": table.len(),
        "memory_size": table.memory_size(),
        "owner_pid": table.owner_pid(),
        "owner_alive": table.owner_alive(),
        "columns": columns,
        "rows": rows,
    });
    Ok(doc.to_string())
}
