//! Deterministic train/test splits and nested training subsets.

use crate::DataError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded permutation of 0..n (Fisher-Yates on ChaCha8, stable across platforms).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.random_range(0..=i));
    }
    p
}

/// Split 0..n into (training pool, test set) with `n_test` test indices chosen from the seed.
/// Both lists are returned sorted so that files and reports list samples in file order.
pub fn train_test(
    n: usize,
    n_test: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if n_test >= n {
        return Err(DataError::Split(format!("{n_test} test samples requested but only {n} available (need at least one left for training)")));
    }
    let p = permutation(n, seed);
    let mut test = p[..n_test].to_vec();
    let mut pool = p[n_test..].to_vec();
    test.sort_unstable();
    pool.sort_unstable();
    Ok((pool, test))
}

/// Split from an explicit role array (0 = available for training, 1 = held-out test).
pub fn from_roles(roles: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let pool = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == 0)
        .map(|(i, _)| i)
        .collect();
    let test = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == 1)
        .map(|(i, _)| i)
        .collect();
    (pool, test)
}

/// The first `k` of a seeded shuffle of `pool`. For a fixed seed the subsets are nested
/// (the 4-sample set is inside the 8-sample set), so learning curves compare like with like.
pub fn choose(pool: &[usize], k: usize, seed: u64) -> Result<Vec<usize>, DataError> {
    if k > pool.len() {
        return Err(DataError::Split(format!(
            "{k} training samples requested but the pool has {}",
            pool.len()
        )));
    }
    let p = permutation(pool.len(), seed);
    Ok(p[..k].iter().map(|&i| pool[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_partition() {
        let (pool, test) = train_test(50, 12, 7).unwrap();
        assert_eq!(test.len(), 12);
        let mut all: Vec<usize> = pool.iter().chain(test.iter()).copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn subsets_are_nested_for_one_seed() {
        let pool: Vec<usize> = (10..42).collect();
        let a = choose(&pool, 4, 3).unwrap();
        let b = choose(&pool, 8, 3).unwrap();
        assert_eq!(&b[..4], &a[..]);
        assert!(choose(&pool, 33, 3).is_err());
    }
}
