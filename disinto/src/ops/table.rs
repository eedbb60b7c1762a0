//! One renderer for the tables the commands print (`status`, `swarm status`): a header, the
//! columns aligned two spaces apart, no trailing blanks.

/// The table of `header` and `rows`, each a line.
pub(crate) fn render<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(str::to_string);
    let all: Vec<&[String; N]> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..N)
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    all.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// What a table shows for a value the image does not carry (Docker's `<no value>` included).
pub(crate) fn or_dash(value: &str) -> String {
    match value.trim() {
        "" | "<no value>" => "-".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_end_clean() {
        let rows = [["agents".into(), "r/agents:v0.2.0".into(), "".into()]];
        assert_eq!(
            render(["SERVICE", "IMAGE", "HEALTH"], &rows),
            "SERVICE  IMAGE            HEALTH\nagents   r/agents:v0.2.0\n"
        );
        assert_eq!(or_dash("<no value>"), "-");
        assert_eq!(or_dash("v1"), "v1");
    }
}
