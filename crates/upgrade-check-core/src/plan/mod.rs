//! Turns the matrix into a plan: the baseline cell plus the cells a strategy picks.
//!
//! Planning is pure: it reads the config's matrix and the baseline pins and
//! never touches the network or the disk.

pub(crate) mod pr;
pub(crate) mod shared_start;
pub mod variants;

use crate::input::config::{Matrix, Strategy};
use crate::model::cell::{Cell, Pin, Plan};
use crate::model::package::{PackageName, Version};

/// Picks cells from the matrix; `baseline_version` answers which version the
/// service declares today for a package, if it pins one. A plan larger than
/// `matrix.max_cells` is refused with what to do instead.
pub fn plan(
    matrix: &Matrix,
    baseline_profile: &str,
    baseline_version: impl Fn(&PackageName) -> Option<Version>,
) -> Result<Plan, String> {
    let sizes: Vec<usize> = matrix
        .packages
        .iter()
        .map(|(_, candidates)| candidates.versions().len())
        .collect();
    let full_size = full_size(matrix);
    let mut plan = match matrix.strategy {
        Strategy::OneAtATime => one_at_a_time(matrix, baseline_profile, &baseline_version),
        Strategy::Pairwise => combinations(
            matrix,
            baseline_profile,
            &baseline_version,
            &covering_array(&sizes),
        ),
        Strategy::Full if full_size > matrix.max_cells => {
            return Err(format!(
                "the full product is {full_size} cells, more than matrix.max-cells = {}; strategy = \"pairwise\" tries every pair of versions in {} cells",
                matrix.max_cells,
                covering_array(&sizes).len()
            ));
        }
        Strategy::Full => combinations(
            matrix,
            baseline_profile,
            &baseline_version,
            &cartesian(&sizes),
        ),
        Strategy::Latest => {
            let newest: Vec<usize> = matrix
                .packages
                .iter()
                .map(|(_, candidates)| {
                    let versions = candidates.versions();
                    (0..versions.len())
                        .max_by_key(|&index| &versions[index])
                        .unwrap_or(0)
                })
                .collect();
            combinations(matrix, baseline_profile, &baseline_version, &[newest])
        }
    };
    for profile in &matrix.profiles {
        if profile != baseline_profile {
            plan.cells.push(Cell::with_profile(profile));
        }
    }
    if plan.cells.len() > matrix.max_cells {
        return Err(format!(
            "the plan has {} cells, more than matrix.max-cells = {}; raise the limit or narrow the matrix",
            plan.cells.len(),
            matrix.max_cells
        ));
    }
    Ok(plan)
}

/// How many cells the full product of the matrix has (saturating: a big
/// matrix is big, not an overflow).
pub(crate) fn full_size(matrix: &Matrix) -> usize {
    matrix
        .packages
        .iter()
        .map(|(_, candidates)| candidates.versions().len())
        .fold(1usize, usize::saturating_mul)
}

/// The baseline, plus each candidate alone with everything else at baseline.
fn one_at_a_time(
    matrix: &Matrix,
    baseline_profile: &str,
    baseline_version: &impl Fn(&PackageName) -> Option<Version>,
) -> Plan {
    let mut cells = vec![Cell::baseline(baseline_profile)];
    let mut skipped = Vec::new();
    for (package, candidates) in &matrix.packages {
        let current = baseline_version(package);
        for version in candidates.versions() {
            let pin = Pin {
                package: package.clone(),
                version: version.clone(),
            };
            if current.as_ref() == Some(version) {
                skipped.push(format!("{pin} is the baseline version"));
            } else {
                cells.push(Cell::with_pins(vec![pin], baseline_profile));
            }
        }
    }
    Plan { cells, skipped }
}

/// The baseline, plus one cell per row: row `r` takes version `r[i]` of
/// package `i`. Pins equal to the baseline's are left out; a row that is
/// all baseline, or repeats another, adds no cell.
fn combinations(
    matrix: &Matrix,
    baseline_profile: &str,
    baseline_version: &impl Fn(&PackageName) -> Option<Version>,
    rows: &[Vec<usize>],
) -> Plan {
    let mut cells = vec![Cell::baseline(baseline_profile)];
    let mut seen = std::collections::BTreeSet::new();
    for row in rows {
        let pins: Vec<Pin> = matrix
            .packages
            .iter()
            .zip(row)
            .map(|((package, candidates), &index)| Pin {
                package: package.clone(),
                version: candidates.versions()[index].clone(),
            })
            .filter(|pin| baseline_version(&pin.package).as_ref() != Some(&pin.version))
            .collect();
        if !pins.is_empty() {
            let cell = Cell::with_pins(pins, baseline_profile);
            if seen.insert(cell.id.clone()) {
                cells.push(cell);
            }
        }
    }
    Plan {
        cells,
        skipped: Vec::new(),
    }
}

/// Every combination of values, `sizes[i]` values for parameter `i`.
fn cartesian(sizes: &[usize]) -> Vec<Vec<usize>> {
    sizes.iter().fold(vec![Vec::new()], |rows, &size| {
        rows.iter()
            .flat_map(|row| {
                (0..size).map(move |value| {
                    let mut longer = row.clone();
                    longer.push(value);
                    longer
                })
            })
            .collect()
    })
}

/// Rows in which every pair of values of two different parameters appears at
/// least once (a strength-2 covering array): the smaller of a greedy
/// construction and, when one fits, an orthogonal array over a prime field.
pub(crate) fn covering_array(sizes: &[usize]) -> Vec<Vec<usize>> {
    // The greedy search grows with the square of the pairs: only for small matrices.
    const GREEDY_PAIRS: usize = 20_000;
    let pairs: usize = (0..sizes.len())
        .flat_map(|i| (i + 1..sizes.len()).map(move |j| (i, j)))
        .map(|(i, j)| sizes[i].saturating_mul(sizes[j]))
        .fold(0, usize::saturating_add);
    let orthogonal = orthogonal_array(sizes);
    if pairs > GREEDY_PAIRS
        && let Some(orthogonal) = orthogonal
    {
        return orthogonal;
    }
    let greedy = greedy_covering_array(sizes);
    match orthogonal {
        Some(orthogonal) if orthogonal.len() < greedy.len() => orthogonal,
        _ => greedy,
    }
}

/// The rows `(y, x, x + y, x + 2y, …) mod p` for every `x, y` below a prime
/// `p` at least as large as every size: any two columns take every pair of
/// values exactly once, so `p²` rows cover up to `p + 1` parameters. Values
/// past a parameter's size fold onto its own (every needed pair is still
/// there); repeated rows are dropped. `None` when `p` would be large.
fn orthogonal_array(sizes: &[usize]) -> Option<Vec<Vec<usize>>> {
    let is_prime = |n: usize| {
        n >= 2
            && (2..n)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    };
    let largest = *sizes.iter().max()?;
    let p = (largest.max(sizes.len().saturating_sub(1)).max(2)..=1024).find(|&n| is_prime(n))?;
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for x in 0..p {
        for y in 0..p {
            let row: Vec<usize> = sizes
                .iter()
                .enumerate()
                .map(|(column, &size)| {
                    let value = match column {
                        0 => y,
                        c => (x + (c - 1) * y) % p,
                    };
                    value % size
                })
                .collect();
            if seen.insert(row.clone()) {
                rows.push(row);
            }
        }
    }
    Some(rows)
}

/// Each new row starts from an uncovered pair and fills the other parameters
/// with the value that covers most uncovered pairs; of the rows so started,
/// the one covering most is kept. Deterministic: ties go to the lowest value.
fn greedy_covering_array(sizes: &[usize]) -> Vec<Vec<usize>> {
    if sizes.contains(&0) {
        return Vec::new();
    }
    if sizes.len() < 2 {
        return sizes.first().map_or(vec![Vec::new()], |&size| {
            (0..size).map(|value| vec![value]).collect()
        });
    }
    let mut uncovered = std::collections::BTreeSet::new();
    for i in 0..sizes.len() {
        for j in i + 1..sizes.len() {
            for a in 0..sizes[i] {
                for b in 0..sizes[j] {
                    uncovered.insert((i, a, j, b));
                }
            }
        }
    }
    let covered_by = |row: &[Option<usize>], uncovered: &std::collections::BTreeSet<_>| {
        let mut count = 0;
        for i in 0..row.len() {
            for j in i + 1..row.len() {
                if let (Some(a), Some(b)) = (row[i], row[j])
                    && uncovered.contains(&(i, a, j, b))
                {
                    count += 1;
                }
            }
        }
        count
    };
    let mut rows = Vec::new();
    while !uncovered.is_empty() {
        let mut best: Option<(usize, Vec<usize>)> = None;
        for &(i, a, j, b) in uncovered.iter().take(64) {
            let mut row: Vec<Option<usize>> = vec![None; sizes.len()];
            row[i] = Some(a);
            row[j] = Some(b);
            for k in 0..sizes.len() {
                if row[k].is_some() {
                    continue;
                }
                let value = (0..sizes[k])
                    .max_by_key(|&value| {
                        row[k] = Some(value);
                        let gain = covered_by(&row, &uncovered);
                        // Prefer the lowest value on a tie.
                        (gain, std::cmp::Reverse(value))
                    })
                    .unwrap_or(0);
                row[k] = Some(value);
            }
            let gain = covered_by(&row, &uncovered);
            if best.as_ref().is_none_or(|(best_gain, _)| gain > *best_gain) {
                best = Some((gain, row.into_iter().map(|v| v.unwrap_or(0)).collect()));
            }
        }
        let Some((_, row)) = best else { break };
        for i in 0..row.len() {
            for j in i + 1..row.len() {
                uncovered.remove(&(i, row[i], j, row[j]));
            }
        }
        rows.push(row);
    }
    rows
}

/// Which shard of `count` (0-based) the `position`th upgrade cell of a plan
/// (the baseline not counted) belongs to: the cells are dealt round, so no
/// shard is empty while there are cells for it and sizes differ by one at
/// most. Every shard and the merge of their parts deal the same plan.
pub(crate) fn shard_of(position: usize, count: usize) -> usize {
    position % count.max(1)
}

/// The cells of shard `index` (0-based) of `count`, with the baseline, which
/// every shard runs to judge its cells against.
pub fn shard(plan: &Plan, index: usize, count: usize) -> Plan {
    let mut position = 0;
    Plan {
        cells: plan
            .cells
            .iter()
            .filter(|cell| {
                if cell.is_baseline() {
                    return true;
                }
                position += 1;
                shard_of(position - 1, count) == index
            })
            .cloned()
            .collect(),
        skipped: plan.skipped.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::config::Candidates;

    fn name(text: &str) -> PackageName {
        PackageName::python(text).unwrap()
    }

    fn version(text: &str) -> Version {
        Version::python(text).unwrap()
    }

    #[test]
    fn one_at_a_time_skips_the_baseline_version_and_keeps_order() {
        let matrix = Matrix {
            strategy: Strategy::OneAtATime,
            strategy_line: 1,
            max_cells: 256,
            packages: vec![
                (
                    name("bcrypt"),
                    Candidates::Versions(vec![
                        version("3.2.0"),
                        version("4.1.2"),
                        version("5.0.0"),
                    ]),
                ),
                (name("PyJWT"), Candidates::Versions(vec![version("2.8.0")])),
            ],
            profiles: vec!["dev".to_owned(), "staging".to_owned()],
            listed: Vec::new(),
        };
        let plan = plan(&matrix, "dev", |package| {
            (package == &name("bcrypt")).then(|| version("3.2"))
        })
        .unwrap();
        let ids: Vec<_> = plan.cells.iter().map(|cell| cell.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "baseline",
                "bcrypt-4.1.2",
                "bcrypt-5.0.0",
                "pyjwt-2.8.0",
                "profile-staging"
            ]
        );
        assert_eq!(plan.cells[2].name, "bcrypt 5.0.0");
        assert_eq!(plan.cells[2].profile, "dev");
        let staging = &plan.cells[4];
        assert!(staging.pins.is_empty() && !staging.is_baseline());
        assert_eq!(staging.profile, "staging");

        // 3.2 == 3.2.0 under PEP 440, so no cell repeats the baseline.
        assert_eq!(plan.skipped.len(), 1);
    }

    #[test]
    fn pairwise_on_five_by_five_covers_every_pair_in_at_most_forty_cells() {
        let sizes = [5; 5];
        let rows = covering_array(&sizes);
        assert!(rows.len() <= 40, "{} rows", rows.len());
        for i in 0..5 {
            for j in i + 1..5 {
                for a in 0..5 {
                    for b in 0..5 {
                        assert!(
                            rows.iter().any(|row| row[i] == a && row[j] == b),
                            "pair ({i}={a}, {j}={b}) is not covered"
                        );
                    }
                }
            }
        }
        eprintln!("5 × 5 pairwise: {} cells (full product: 3125)", rows.len());
    }

    #[test]
    fn mixed_sizes_are_covered_too() {
        for sizes in [
            vec![3, 3, 2],
            vec![2, 7, 3, 4],
            vec![6; 8],
            vec![2; 12],
            vec![4],
        ] {
            let rows = covering_array(&sizes);
            for i in 0..sizes.len() {
                for j in i + 1..sizes.len() {
                    for a in 0..sizes[i] {
                        for b in 0..sizes[j] {
                            assert!(
                                rows.iter().any(|row| row[i] == a && row[j] == b),
                                "{sizes:?}: ({i}={a}, {j}={b})"
                            );
                        }
                    }
                }
            }
            let full: usize = sizes.iter().product();
            assert!(rows.len() <= full, "{sizes:?}: {} rows", rows.len());
        }
    }

    fn matrix_of(strategy: Strategy, packages: &[(&str, &[&str])]) -> Matrix {
        Matrix {
            strategy,
            strategy_line: 3,
            max_cells: 256,
            packages: packages
                .iter()
                .map(|(package, versions)| {
                    (
                        name(package),
                        Candidates::Versions(versions.iter().map(|v| version(v)).collect()),
                    )
                })
                .collect(),
            profiles: Vec::new(),
            listed: Vec::new(),
        }
    }

    #[test]
    fn pairwise_plans_cover_pairs_and_leave_baseline_pins_out() {
        let matrix = matrix_of(
            Strategy::Pairwise,
            &[
                ("flask", &["2.2.5", "2.3.3"]),
                ("pyjwt", &["1.7.1", "2.8.0"]),
            ],
        );
        let baseline = |package: &PackageName| match package.as_ref() {
            "flask" => Some(version("2.2.5")),
            "pyjwt" => Some(version("1.7.1")),
            _ => None,
        };
        let ids: Vec<String> = plan(&matrix, "dev", baseline)
            .unwrap()
            .cells
            .iter()
            .map(|cell| cell.id.clone())
            .collect();
        assert_eq!(
            ids,
            [
                "baseline",
                "pyjwt-2.8.0",
                "flask-2.3.3",
                "flask-2.3.3+pyjwt-2.8.0"
            ]
        );
    }

    #[test]
    fn shards_split_the_cells_and_each_keeps_the_baseline() {
        let five: &[&str] = &["1.0", "2.0", "3.0", "4.0", "5.0"];
        let matrix = matrix_of(Strategy::OneAtATime, &[("a", five), ("b", five)]);
        let whole = plan(&matrix, "dev", |_| None).unwrap();
        let shards: Vec<Plan> = (0..3).map(|index| shard(&whole, index, 3)).collect();
        let mut ids: Vec<&str> = shards
            .iter()
            .flat_map(|shard| shard.cells.iter().skip(1).map(|cell| cell.id.as_str()))
            .collect();
        ids.sort();
        let mut expected: Vec<&str> = whole
            .cells
            .iter()
            .skip(1)
            .map(|cell| cell.id.as_str())
            .collect();
        expected.sort();
        assert_eq!(ids, expected, "every cell in exactly one shard");
        assert!(shards.iter().all(|shard| shard.cells[0].is_baseline()));
        let sizes: Vec<usize> = shards.iter().map(|shard| shard.cells.len() - 1).collect();
        assert_eq!(sizes, [4, 3, 3], "dealt round");
        // Five cells in three shards: none is empty.
        let smaller = plan(
            &matrix_of(Strategy::OneAtATime, &[("a", five)]),
            "dev",
            |_| None,
        )
        .unwrap();
        let sizes: Vec<usize> = (0..3)
            .map(|index| shard(&smaller, index, 3).cells.len() - 1)
            .collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn a_huge_matrix_is_counted_and_refused_not_overflowed() {
        let hundred: Vec<String> = (0..100).map(|minor| format!("1.{minor}.0")).collect();
        let hundred: Vec<&str> = hundred.iter().map(String::as_str).collect();
        let packages: Vec<(String, &[&str])> =
            (0..10).map(|i| (format!("p{i}"), &hundred[..])).collect();
        let packages: Vec<(&str, &[&str])> = packages
            .iter()
            .map(|(name, versions)| (name.as_str(), *versions))
            .collect();
        let full = matrix_of(Strategy::Full, &packages);
        assert_eq!(full_size(&full), usize::MAX);
        assert!(
            plan(&full, "dev", |_| None)
                .unwrap_err()
                .contains("pairwise")
        );
        let one_at_a_time = matrix_of(Strategy::OneAtATime, &packages);
        let err = plan(&one_at_a_time, "dev", |_| None).unwrap_err();
        assert!(err.contains("1001 cells"), "{err}");
    }

    #[test]
    fn latest_is_one_cell_with_every_newest_version() {
        let matrix = matrix_of(
            Strategy::Latest,
            &[
                ("bcrypt", &["5.0.0", "4.1.2"]),
                ("flask", &["2.3.3", "3.0.3"]),
            ],
        );
        let plan = plan(&matrix, "dev", |_| None).unwrap();
        let names: Vec<&str> = plan.cells.iter().map(|cell| cell.name.as_str()).collect();
        assert_eq!(names, ["baseline", "bcrypt 5.0.0, flask 3.0.3"]);
    }

    #[test]
    fn a_full_product_above_the_limit_is_refused_with_the_pairwise_count() {
        let five: &[&str] = &["1.0", "2.0", "3.0", "4.0", "5.0"];
        let matrix = matrix_of(
            Strategy::Full,
            &[
                ("a", five),
                ("b", five),
                ("c", five),
                ("d", five),
                ("e", five),
            ],
        );
        let err = plan(&matrix, "dev", |_| None).unwrap_err();
        assert!(
            err.contains("3125 cells") && err.contains("pairwise"),
            "{err}"
        );
        let small = matrix_of(Strategy::Full, &[("a", &five[..2]), ("b", &five[..3])]);
        assert_eq!(plan(&small, "dev", |_| None).unwrap().cells.len(), 1 + 6);
    }
}
