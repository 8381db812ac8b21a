//! Messages waiting for their re-send time, earliest first.
//!
//! A min-heap of due times, so a message due in 1 s is sent after 1 s even when one due in 30 s
//! arrived before it on the same partition: no head-of-line blocking. Entries remember their
//! partition so a rebalance can drop the ones of revoked partitions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use reliable_messaging::kafka::group::TopicPartition;
use tokio::time::Instant;

pub struct Schedule<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, (TopicPartition, T)>,
    next_id: u64,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Self { heap: BinaryHeap::new(), entries: HashMap::new(), next_id: 0 }
    }
}

impl<T> Schedule<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, due: Instant, partition: TopicPartition, item: T) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(id, (partition, item));
        self.heap.push(Reverse((due, id)));
    }

    /// When the earliest entry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Removes and returns up to `max` entries due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant, max: usize) -> Vec<(TopicPartition, T)> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.heap.peek() {
                Some(Reverse((at, _))) if *at <= now => {
                    let Reverse((_, id)) = self.heap.pop().expect("peeked");
                    if let Some(entry) = self.entries.remove(&id) {
                        due.push(entry);
                    }
                }
                _ => break,
            }
        }
        due
    }

    /// Drops every entry of `partition`; returns how many.
    pub fn drop_partition(&mut self, partition: &TopicPartition) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (p, _)| p != partition);
        let dropped = before - self.entries.len();
        if dropped > 0 {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, id))| entries.contains_key(id));
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("orders-dlq", p)
    }

    #[test]
    fn a_later_arrival_due_sooner_comes_out_first() {
        let now = Instant::now();
        let mut s = Schedule::new();
        s.push(now + Duration::from_secs(30), tp(0), "first, due in 30 s");
        s.push(now + Duration::from_secs(1), tp(0), "second, due in 1 s");
        assert_eq!(s.next_due(), Some(now + Duration::from_secs(1)));
        assert!(s.pop_due(now, 10).is_empty(), "nothing is due yet");
        let due = s.pop_due(now + Duration::from_secs(2), 10);
        assert_eq!(due.iter().map(|(_, m)| *m).collect::<Vec<_>>(), vec!["second, due in 1 s"]);
        assert_eq!(s.len(), 1, "the first still waits");
    }

    #[test]
    fn pop_due_respects_the_limit_and_order() {
        let now = Instant::now();
        let mut s = Schedule::new();
        for i in (0..5u64).rev() {
            s.push(now + Duration::from_millis(i), tp(0), i);
        }
        let first = s.pop_due(now + Duration::from_secs(1), 3);
        assert_eq!(first.iter().map(|(_, i)| *i).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn dropping_a_partition_removes_only_its_entries() {
        let now = Instant::now();
        let mut s = Schedule::new();
        s.push(now, tp(0), "a");
        s.push(now, tp(1), "b");
        s.push(now + Duration::from_secs(5), tp(0), "c");
        assert_eq!(s.drop_partition(&tp(0)), 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(now));
        let due = s.pop_due(now + Duration::from_secs(10), 10);
        assert_eq!(due, vec![(tp(1), "b")]);
        assert!(s.is_empty() && s.next_due().is_none());
    }
}
