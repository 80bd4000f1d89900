//! The block bitmap of a `bitmap` cache (uWSGI's `blocks_bitmap`): one bit per block of the value area, set
//! while a value occupies it. A value takes `ceil(len / blocksize)` consecutive blocks.
//!
//! The search is next-fit, as uWSGI's `uwsgi_cache_find_free_blocks`: it starts at the block after the last
//! allocation and, finding no run up to the end, starts again from the first block; a run never wraps around
//! the end. (uWSGI's second pass stops at the byte of the start position, so it misses a free run that
//! crosses it; this one does not.)
//!
//! Pure functions over the words (bit `i` is bit `i % 64` of word `i / 64`), so the store keeps the words in
//! its shared mapping and the tests here need no cache.

/// Words needed for `blocks` bits.
pub fn words_for(blocks: u64) -> usize {
    blocks.div_ceil(64) as usize
}

/// Blocks of `blocksize` bytes a value of `len` bytes occupies (at least one).
pub fn blocks_for(len: u64, blocksize: u64) -> u64 {
    len.div_ceil(blocksize).max(1)
}

fn is_set(words: &[u64], bit: u64) -> bool {
    words[(bit / 64) as usize] >> (bit % 64) & 1 == 1
}

/// The first block of `need` free consecutive blocks among the first `blocks`, searching from `start` to the
/// end, then from the beginning; `None` when there is no such run.
pub fn find_run(words: &[u64], blocks: u64, start: u64, need: u64) -> Option<u64> {
    if need == 0 || need > blocks {
        return None;
    }
    let start = if start >= blocks { 0 } else { start };
    // The second pass only needs runs that start before `start`.
    first_fit(words, start, blocks, need).or_else(|| first_fit(words, 0, blocks.min(start + need - 1), need))
}

/// The first run of `need` free blocks lying wholly in `from..to`.
fn first_fit(words: &[u64], from: u64, to: u64, need: u64) -> Option<u64> {
    let (mut block, mut run_start, mut run) = (from, from, 0u64);
    while block < to {
        let word = words[(block / 64) as usize];
        if block % 64 == 0 && word == u64::MAX {
            block += 64;
            run = 0;
            continue;
        }
        if block % 64 == 0 && word == 0 && block + 64 <= to {
            if run == 0 {
                run_start = block;
            }
            run += 64;
            if run >= need {
                return Some(run_start);
            }
            block += 64;
            continue;
        }
        if is_set(words, block) {
            run = 0;
        } else {
            if run == 0 {
                run_start = block;
            }
            run += 1;
            if run >= need {
                return Some(run_start);
            }
        }
        block += 1;
    }
    None
}

/// Marks (`used`) or frees `count` blocks from `first`.
pub fn set_run(words: &mut [u64], first: u64, count: u64, used: bool) {
    let mut block = first;
    let end = first + count;
    while block < end {
        let index = (block / 64) as usize;
        let offset = block % 64;
        let width = (64 - offset).min(end - block);
        let mask = if width == 64 { u64::MAX } else { ((1u64 << width) - 1) << offset };
        if used {
            words[index] |= mask;
        } else {
            words[index] &= !mask;
        }
        block += width;
    }
}

/// How many of the first `blocks` blocks are free.
pub fn free_blocks(words: &[u64], blocks: u64) -> u64 {
    let full_words = (blocks / 64) as usize;
    let mut used: u64 = words[..full_words].iter().map(|word| u64::from(word.count_ones())).sum();
    let tail = blocks % 64;
    if tail > 0 {
        used += u64::from((words[full_words] & ((1u64 << tail) - 1)).count_ones());
    }
    blocks - used
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(blocks: u64) -> Vec<u64> {
        vec![0; words_for(blocks)]
    }

    #[test]
    fn sizes() {
        assert_eq!((words_for(1), words_for(64), words_for(65)), (1, 1, 2));
        assert_eq!((blocks_for(1, 10), blocks_for(10, 10), blocks_for(11, 10), blocks_for(0, 10)), (1, 1, 2, 1));
    }

    #[test]
    fn allocation_is_next_fit_and_frees_come_back() {
        let blocks = 200;
        let mut words = map(blocks);
        let a = find_run(&words, blocks, 0, 10).unwrap();
        set_run(&mut words, a, 10, true);
        let b = find_run(&words, blocks, a + 10, 70).unwrap();
        set_run(&mut words, b, 70, true);
        assert_eq!((a, b), (0, 10));
        assert_eq!(free_blocks(&words, blocks), 120);
        // Freed blocks are found again, but only after the search wrapped (next fit).
        set_run(&mut words, a, 10, false);
        assert_eq!(find_run(&words, blocks, 80, 5), Some(80));
        assert_eq!(find_run(&words, blocks, 80, 121), None);
        let c = find_run(&words, blocks, 80, 120).unwrap();
        assert_eq!(c, 80);
        set_run(&mut words, c, 120, true);
        assert_eq!(find_run(&words, blocks, 0, 10), Some(0));
        assert_eq!(find_run(&words, blocks, 0, 11), None);
        set_run(&mut words, 0, blocks, false);
        assert_eq!(free_blocks(&words, blocks), blocks);
    }

    #[test]
    fn fragmentation_needs_a_consecutive_run() {
        let blocks = 128;
        let mut words = map(blocks);
        // Every other pair of blocks used: 64 blocks free, but no run longer than 2.
        for first in (0..blocks).step_by(4) {
            set_run(&mut words, first, 2, true);
        }
        assert_eq!(free_blocks(&words, blocks), 64);
        assert_eq!(find_run(&words, blocks, 0, 2), Some(2));
        assert_eq!(find_run(&words, blocks, 0, 3), None);
        // Freeing a neighbour joins two holes into one run of 6.
        set_run(&mut words, 40, 2, false);
        assert_eq!(find_run(&words, blocks, 0, 6), Some(38));
        assert_eq!(find_run(&words, blocks, 100, 6), Some(38), "found on the wrapped pass");
    }

    #[test]
    fn runs_cross_word_boundaries_and_the_start_position() {
        let blocks = 300;
        let mut words = map(blocks);
        set_run(&mut words, 0, 60, true);
        set_run(&mut words, 200, 100, true);
        // 60..200 free: a run of 140 starting before the start position 100 is still found.
        assert_eq!(find_run(&words, blocks, 100, 140), Some(60));
        assert_eq!(find_run(&words, blocks, 100, 141), None);
        assert_eq!(find_run(&words, blocks, 150, 50), Some(150));
        // A run never wraps around the end, and the bits past `blocks` in the last word are never used.
        set_run(&mut words, 0, 300, false);
        set_run(&mut words, 10, 280, true);
        assert_eq!(find_run(&words, blocks, 295, 20), None);
        assert_eq!(find_run(&words, blocks, 290, 10), Some(290));
        assert_eq!(
            find_run(&words, blocks, 295, 10),
            Some(0),
            "290..300 starts before 295: the wrapped pass finds 0 first"
        );
        assert_eq!(find_run(&words, blocks, 0, 11), None);
        assert_eq!(find_run(&words, blocks, 0, 301), None);
        // Whole words at once.
        set_run(&mut words, 0, 300, false);
        assert_eq!(find_run(&words, blocks, 3, 256), Some(3));
        set_run(&mut words, 64, 64, true);
        assert_eq!(words[1], u64::MAX);
        assert_eq!(find_run(&words, blocks, 0, 100), Some(128));
        assert_eq!(free_blocks(&words, blocks), 236);
    }
}
