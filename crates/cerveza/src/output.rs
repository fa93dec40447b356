//! Printing results: aligned tables for people, JSON for programs. Text that comes from
//! the cloud (tags, names) is untrusted: control characters are escaped before they
//! reach a terminal.

use std::fmt::Write as _;

use serde::Serialize;

/// Escapes control characters (terminal escape sequences, newlines) in untrusted text.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A path for people: `~/…` when it is under the home directory.
pub fn tilde(path: &std::path::Path) -> String {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match home.and_then(|h| path.strip_prefix(h).ok().map(std::path::Path::to_owned)) {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

/// `-` for missing values.
pub fn or_dash(s: Option<&str>) -> String {
    s.map(clean).unwrap_or_else(|| "-".into())
}

/// A human age: `45s`, `12m`, `3h5m`, `4d2h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A table with a header row; the last column is not padded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells beyond the header count are ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders header and rows.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                if i + 1 == n {
                    l.push_str(c);
                } else {
                    let _ = write!(l, "{c:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.headers.clone());
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect());
        }
        out
    }
}

/// Writes to stdout. A closed pipe (`cerveza list | head`) ends the program quietly
/// with success, as it does for other Unix tools, instead of a panic.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("{} writing to stdout: {e}", crate::colour::error_label());
        std::process::exit(1);
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_control_characters_are_escaped() {
        let mut t = Table::new(&["HOST", "STATE", "NOTE"]);
        t.row(vec![
            "demo01".into(),
            "running".into(),
            clean("a\x1b[31mred"),
        ]);
        t.row(vec!["web1".into(), "-".into(), "x".into()]);
        insta::assert_snapshot!(t.render(), @r"
        HOST    STATE    NOTE
        demo01  running  a\u{1b}[31mred
        web1    -        x
        ");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600 + 300), "3h5m");
        assert_eq!(age(4 * 86_400 + 7200), "4d2h");
    }
}
