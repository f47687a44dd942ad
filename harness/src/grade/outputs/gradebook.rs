//! `gradebook.csv`: the scores of every student, as a spreadsheet opens
//! them, with no cell a spreadsheet would run as a formula.

use crate::grade::model::Gradebook;
use crate::text;

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
    let cells: Vec<String> = cells.map(|cell| text::csv_cell(&cell)).collect();
    format!("{}\r\n", cells.join(","))
}

#[cfg(test)]
mod tests {
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
}
