//! What help suggests instead of a mistake: the name a typo most likely
//! meant ("did you mean `vm1`?"), a valid name for an invalid one, and the
//! lists of what a key accepts. Pure text functions, so that every rule of
//! the validator words its help the same way.

/// "did you mean `near`?" for the candidate nearest to `wanted`, if any is
/// near enough.
pub(in crate::scenario) fn did_you_mean<'c>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'c (impl AsRef<str> + 'c + ?Sized)>,
) -> Option<String> {
    nearest(wanted, candidates).map(you_mean)
}

/// "did you mean `name`?" with the valid name nearest to `text`, if it has
/// a letter or digit to make one of.
pub(super) fn did_you_mean_name(text: &str) -> Option<String> {
    let name = to_name(text);
    (!name.is_empty()).then(|| you_mean(&name))
}

fn you_mean(near: &str) -> String {
    format!("did you mean `{near}`?")
}

/// The candidate a typo most likely meant: within about a third of its
/// length in edits.
fn nearest<'c>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'c (impl AsRef<str> + 'c + ?Sized)>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(AsRef::as_ref)
        .map(|candidate| (edit_distance(wanted, candidate), candidate))
        .filter(|(distance, candidate)| distance * 3 <= candidate.chars().count().max(3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance in characters, counting a swap of neighbours as one edit
/// (optimal string alignment): `vm1` for `mv1` is a typo of one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between the first i characters of a and first j of b.
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = rows[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The nearest valid name: lowercase, runs of other characters as one `-`.
fn to_name(text: &str) -> String {
    let lowered = text.to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|word| !word.is_empty())
        .collect();
    words.join("-")
}

/// Help for a word that is none of a keyword enum's `values`: the nearest
/// keyword, or else all of them, with what each means.
pub(super) fn keyword_help<T: Copy>(
    wanted: &str,
    values: &[T],
    keyword: fn(T) -> &'static str,
    gloss: fn(T) -> Option<&'static str>,
) -> String {
    let keywords: Vec<&str> = values.iter().map(|value| keyword(*value)).collect();
    did_you_mean(wanted, keywords).unwrap_or_else(|| use_one_of(values, keyword, gloss))
}

/// Alternatives as a sentence writes them: "a, b or c" (`conjunction`
/// "or"), "a, b and c" ("and").
pub(super) fn listing(items: impl IntoIterator<Item = String>, conjunction: &str) -> String {
    let mut items: Vec<String> = items.into_iter().collect();
    let Some(last) = items.pop() else {
        return String::new();
    };
    if items.is_empty() {
        return last;
    }
    format!("{} {conjunction} {last}", items.join(", "))
}

/// "use `a` (what it means), `b` or `c`": the values of one of the model's
/// keyword enums, for help after a word that is none of them. `gloss` says
/// what a value means when its keyword does not say it all.
pub(super) fn use_one_of<T: Copy>(
    values: &[T],
    keyword: fn(T) -> &'static str,
    gloss: fn(T) -> Option<&'static str>,
) -> String {
    let described = values.iter().map(|value| match gloss(*value) {
        Some(gloss) => format!("`{}` ({gloss})", keyword(*value)),
        None => format!("`{}`", keyword(*value)),
    });
    format!("use {}", listing(described, "or"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("vm1", "vm1", 0)]
    #[case("mv1", "vm1", 1)]
    #[case("vm", "vm1", 1)]
    #[case("nmae", "name", 1)]
    #[case("kitten", "sitting", 3)]
    #[case("", "abc", 3)]
    fn edit_distances(#[case] a: &str, #[case] b: &str, #[case] distance: usize) {
        assert_eq!(edit_distance(a, b), distance);
        assert_eq!(edit_distance(b, a), distance);
    }

    #[test]
    fn nearest_takes_only_close_candidates() {
        assert_eq!(nearest("vm3", ["vm1", "router"]), Some("vm1"));
        assert_eq!(nearest("web", ["vm1", "vm2"]), None);
        assert_eq!(
            nearest("server-2", ["server-1", "sever-2"]),
            Some("server-1")
        );
    }

    #[rstest]
    #[case("Clone COW!", "clone-cow")]
    #[case("VM_1", "vm-1")]
    #[case("!!", "")]
    fn names_suggested_for_invalid_ones(#[case] text: &str, #[case] suggestion: &str) {
        assert_eq!(to_name(text), suggestion);
    }

    #[rstest]
    #[case(&[], "")]
    #[case(&["a"], "a")]
    #[case(&["a", "b"], "a or b")]
    #[case(&["a", "b", "c"], "a, b or c")]
    fn listings_join_the_last_item_with_the_conjunction(
        #[case] items: &[&str],
        #[case] expected: &str,
    ) {
        let items = items.iter().map(|item| (*item).to_owned());
        assert_eq!(listing(items, "or"), expected);
    }
}
