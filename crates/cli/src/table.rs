//! Drycc's table layout: no borders, upper-case headers, columns padded to
//! their widest cell and separated by 4 spaces, no trailing blanks.

const GAP: &str = "    ";

/// Renders `headers` and `rows` as lines ending in `\n`.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    push_row(&mut out, &header, &widths);
    for row in rows {
        push_row(&mut out, row, &widths);
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, width) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        if i > 0 {
            line.push_str(GAP);
        }
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count());
        line.push_str(&" ".repeat(pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `key:   value` lines with the values aligned, for `info` commands.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        let label = format!("{key}:");
        let line = format!("{label:<width$}{GAP}{value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn ps_table_matches_the_spec() {
        let out = render(
            &["NAME", "RELEASE", "STATE", "TYPE", "STARTED"],
            &[
                row(&[
                    "steely-mainsail-sleeper-76c45b967c-4qm6w",
                    "v3",
                    "up",
                    "sleeper",
                    "2023-12-08T02:25:00UTC",
                ]),
                row(&[
                    "steely-mainsail-web-c4f44c4b4-7p7dh",
                    "v3",
                    "up",
                    "web",
                    "2023-12-08T02:25:00UTC",
                ]),
            ],
        );
        assert_eq!(
            out,
            "NAME                                        RELEASE    STATE    TYPE       STARTED\n\
             steely-mainsail-sleeper-76c45b967c-4qm6w    v3         up       sleeper    2023-12-08T02:25:00UTC\n\
             steely-mainsail-web-c4f44c4b4-7p7dh         v3         up       web        2023-12-08T02:25:00UTC\n"
        );
    }

    #[test]
    fn autoscale_table_matches_the_spec() {
        let out = render(
            &["UUID", "TYPE", "PERCENT", "MIN", "MAX"],
            &[row(&[
                "e916b333-53c1-4d4c-ac5a-23e6961fb544",
                "web",
                "75",
                "3",
                "8",
            ])],
        );
        assert_eq!(
            out,
            "UUID                                    TYPE    PERCENT    MIN    MAX\n\
             e916b333-53c1-4d4c-ac5a-23e6961fb544    web     75         3      8\n"
        );
    }

    #[test]
    fn headers_are_upper_cased_and_trailing_blanks_trimmed() {
        let out = render(&["key", "value"], &[row(&["A", ""]), row(&["LONGER", "x"])]);
        assert_eq!(out, "KEY       VALUE\nA\nLONGER    x\n");
    }

    #[test]
    fn fields_align() {
        let out = render_fields(&[("id", "foo".into()), ("owner", "alice".into())]);
        assert_eq!(out, "id:       foo\nowner:    alice\n");
    }
}
