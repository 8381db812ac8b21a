//! Splits a batch into contiguous chunks that may be handled at the same time.
//!
//! Kafka orders messages only within a partition, so the messages of different partitions may
//! be written concurrently, each chunk on its own database connection, without changing what
//! any key sees: a partition's messages always stay together, in their order, in one chunk.
//! The consumer sorts each batch by partition (stably) before it is split, so a chunk is a
//! plain slice of the batch and nothing is copied.

use std::ops::Range;

/// At most `max_chunks` contiguous ranges covering `partitions` (the batch's partition of each
/// message, already grouped), never splitting a run of one partition. With more partitions
/// than chunks, adjacent runs are merged into chunks of about equal size.
pub(crate) fn partition_chunks<P: PartialEq>(partitions: &[P], max_chunks: usize) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, p) in partitions.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if partitions[run.start] == *p => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    let max_chunks = max_chunks.max(1);
    if runs.len() <= max_chunks {
        return runs;
    }
    // Greedy: close a chunk once it holds its share of what is left, keeping enough runs for
    // the chunks still to come.
    let mut chunks: Vec<Range<usize>> = Vec::with_capacity(max_chunks);
    let mut start = 0;
    for (k, run) in runs.iter().enumerate() {
        let chunks_left = max_chunks - chunks.len();
        let runs_left = runs.len() - k - 1;
        let share = (partitions.len() - start).div_ceil(chunks_left);
        if chunks_left > 1 && (run.end - start >= share || runs_left < chunks_left) {
            chunks.push(start..run.end);
            start = run.end;
        }
    }
    if start < partitions.len() {
        chunks.push(start..partitions.len());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers_in_order(chunks: &[Range<usize>], len: usize) -> bool {
        chunks.first().is_none_or(|c| c.start == 0)
            && chunks.windows(2).all(|w| w[0].end == w[1].start)
            && chunks.last().map_or(len == 0, |c| c.end == len)
    }

    #[test]
    fn one_chunk_per_partition_when_there_are_few() {
        assert_eq!(partition_chunks(&[0, 0, 1, 1, 1, 2], 4), vec![0..2, 2..5, 5..6]);
        assert_eq!(partition_chunks::<i32>(&[], 4), Vec::<Range<usize>>::new());
        assert_eq!(partition_chunks(&[5, 5, 5], 4), vec![0..3]);
    }

    #[test]
    fn one_chunk_means_the_whole_batch() {
        assert_eq!(partition_chunks(&[0, 1, 2, 3], 1), vec![0..4]);
        assert_eq!(partition_chunks(&[0, 1, 2, 3], 0), vec![0..4]);
    }

    #[test]
    fn many_partitions_are_merged_without_splitting_any() {
        let parts: Vec<i32> = [0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 5, 6, 7].to_vec();
        for max in 1..=8 {
            let chunks = partition_chunks(&parts, max);
            assert!(chunks.len() <= max, "{max}: {chunks:?}");
            assert!(covers_in_order(&chunks, parts.len()), "{max}: {chunks:?}");
            for c in &chunks {
                // No partition is cut: the message before a chunk belongs to another partition.
                assert!(c.start == 0 || parts[c.start - 1] != parts[c.start], "{max}: {chunks:?}");
            }
        }
        assert_eq!(partition_chunks(&parts, 8).len(), 8);
    }
}
