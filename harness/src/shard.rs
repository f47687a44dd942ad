//! `--shard K/N`: a deterministic share of the labs, so that N machines run
//! all of them between them, each lab exactly once. Pure.

use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The items of this shard: sorted by `key`, the i-th (from 0) goes to
    /// shard `i % count + 1`. Sorting first makes the split independent of
    /// the order the files were named in.
    pub fn select<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
        items.sort_by_key(|item| key(item));
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count + 1 == self.index)
            .map(|(_, item)| item)
            .collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("`{text}` is not a shard: write K/N with 1 <= K <= N, e.g. 1/2");
        let (index, count) = text.split_once('/').ok_or_else(invalid)?;
        let index: usize = index.trim().parse().map_err(|_| invalid())?;
        let count: usize = count.trim().parse().map_err(|_| invalid())?;
        if index == 0 || index > count {
            return Err(invalid());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1/2", 1, 2)]
    #[case("2/2", 2, 2)]
    #[case(" 3 / 5 ", 3, 5)]
    #[case("1/1", 1, 1)]
    fn parses(#[case] text: &str, #[case] index: usize, #[case] count: usize) {
        assert_eq!(text.parse(), Ok(Shard { index, count }));
    }

    #[rstest]
    #[case("0/2")]
    #[case("3/2")]
    #[case("1/0")]
    #[case("1")]
    #[case("a/b")]
    #[case("")]
    fn rejects(#[case] text: &str) {
        let error = text.parse::<Shard>().expect_err("not a shard");
        assert!(error.contains("K/N"), "{error}");
    }

    #[rstest]
    #[case(1)]
    #[case(2)]
    #[case(3)]
    #[case(7)]
    fn every_item_lands_in_exactly_one_shard(#[case] count: usize) {
        let items: Vec<String> = ["tap", "clone-cow", "socket", "clone-full", "network-types"]
            .map(String::from)
            .to_vec();
        let mut seen: Vec<String> = (1..=count)
            .flat_map(|index| Shard { index, count }.select(items.clone(), String::clone))
            .collect();
        seen.sort();
        let mut all = items;
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn the_split_ignores_the_order_given() {
        let shard = Shard { index: 1, count: 2 };
        let forward = shard.select(vec!["a", "b", "c"], |s| s.to_string());
        let backward = shard.select(vec!["c", "b", "a"], |s| s.to_string());
        assert_eq!(forward, ["a", "c"]);
        assert_eq!(backward, forward);
    }
}
