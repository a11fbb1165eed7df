//! A plain-text table for terminal output: columns padded to their widest cell, the last column
//! wrapped so that long reasons stay readable in an 100-column terminal.

/// Widest the last column grows before it wraps onto continuation lines.
const LAST_COLUMN_WIDTH: usize = 64;
/// Words longer than this (hex digests in error messages) are shortened in the last column.
const LONG_WORD: usize = 36;

/// Rows of cells under a header.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        // Each row becomes one or more physical lines: the last cell wrapped, the others blank
        // on continuation lines.
        let mut physical: Vec<Vec<String>> = Vec::new();
        for row in &self.rows {
            let mut cells: Vec<String> = row.iter().take(columns).cloned().collect();
            let last = cells.pop().unwrap_or_default();
            let mut wrapped = wrap(&last, LAST_COLUMN_WIDTH).into_iter();
            cells.push(wrapped.next().unwrap_or_default());
            let blanks = cells.len() - 1;
            physical.push(cells);
            for more in wrapped {
                let mut cont = vec![String::new(); blanks];
                cont.push(more);
                physical.push(cont);
            }
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &physical {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                .collect();
            format!("  {}", padded.join("  ")).trim_end().to_owned()
        };
        let mut out = vec![line(&self.header)];
        out.push(line(
            &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        out.extend(physical.iter().map(|r| line(r)));
        out.join("\n")
    }
}

/// The first `n` characters of a hex string followed by `…`.
pub(crate) fn short(hex: &str, n: usize) -> String {
    if hex.len() <= n {
        hex.to_owned()
    } else {
        format!("{}…", &hex[..n])
    }
}

/// Splits `text` into lines of at most `width` characters at spaces, shortening very long words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let word = if word.chars().count() > LONG_WORD {
            let keep: String = word.chars().take(LONG_WORD - 6).collect();
            format!("{keep}…")
        } else {
            word.to_owned()
        };
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_column_wraps_and_long_words_shrink() {
        let mut t = Table::new(&["a", "why"]);
        let long = format!(
            "mismatch: got {} expected {}",
            "ab".repeat(48),
            "cd".repeat(48)
        );
        t.row(vec!["x".into(), long]);
        t.row(vec!["y".into(), "short".into()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(
            lines[2].contains("ababababababababababababababab…"),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= 2 + 1 + 2 + LAST_COLUMN_WIDTH)
        );
        let words = (0..30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let wrapped = wrap(&words, 20);
        assert!(wrapped.len() > 1 && wrapped.iter().all(|l| l.len() <= 20));
        assert_eq!(wrapped.join(" "), words);
    }
}
