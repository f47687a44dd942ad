//! `gradebook.csv`: the scores of every student, as a spreadsheet opens
//! them, with no cell a spreadsheet would run as a formula.

use crate::grade::model::Gradebook;

/// `gradebook.csv`: a row per student with each lab's score (or `not
/// gradable`), the total and the points available. RFC 4180, CRLF lines.
pub fn gradebook_csv(book: &Gradebook) -> String {
    let header = std::iter::once("student".to_string())
        .chain(book.labs.iter().map(|lab| lab.id.clone()))
        .chain(["total".to_string(), "max".to_string()]);
    let mut out = csv_row(header);
    for student in &book.students {
        let scores = book.labs.iter().map(|rubric| {
            student
                .labs
                .iter()
                .find(|lab| lab.lab == rubric.id)
                .map_or_else(|| "missing".to_string(), |lab| score_cell(lab.score()))
        });
        let row = std::iter::once(student.student.clone())
            .chain(scores)
            .chain([
                score_cell(student.total()),
                student.max_points().to_string(),
            ]);
        out.push_str(&csv_row(row));
    }
    out
}

fn score_cell(score: Option<u32>) -> String {
    score.map_or_else(|| NOT_GRADABLE.to_string(), |points| points.to_string())
}

const NOT_GRADABLE: &str = "not gradable";

fn csv_row(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.map(|cell| csv_cell(&cell)).collect();
    format!("{}\r\n", cells.join(","))
}

/// One CSV field. A spreadsheet runs a field that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return as a formula, so such a field gets
/// a leading `'` (OWASP's advice on CSV injection); then a field holding a
/// comma, quote or line break is quoted, its quotes doubled (RFC 4180).
fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::grade::outputs::test_book::book;

    #[test]
    fn gradebook() {
        insta::assert_snapshot!(gradebook_csv(&book()));
    }

    #[test]
    fn a_lab_missing_from_a_result_reads_missing() {
        let mut book = book();
        book.students[0].labs.pop();
        let csv = gradebook_csv(&book);
        assert!(csv.contains("\r\nalice,3,missing,3,12\r\n"), "{csv}");
    }

    #[rstest]
    #[case("alice", "alice")]
    #[case("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\"")]
    #[case("-1+1", "'-1+1")]
    #[case("+1", "'+1")]
    #[case("@SUM(A1:A2)", "'@SUM(A1:A2)")]
    #[case("\tx", "'\tx")]
    #[case("\rx", "\"'\rx\"")]
    #[case("smith, jo", "\"smith, jo\"")]
    #[case("say \"hi\"", "\"say \"\"hi\"\"\"")]
    #[case("two\nlines", "\"two\nlines\"")]
    #[case("a=b-c", "a=b-c")]
    #[case("", "")]
    fn csv_cells_are_quoted_and_defused(#[case] text: &str, #[case] cell: &str) {
        assert_eq!(csv_cell(text), cell);
    }
}
