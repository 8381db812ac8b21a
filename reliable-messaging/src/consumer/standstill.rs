//! Stopping consumption without leaving the group, for the two stages that must: riding out a
//! dependency outage ([`RideOut`](super::stages::RideOut)) and halting after the flood limit
//! ([`Halt`](super::stages::Halt)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::member::Member;
use crate::kafka::group::{keep_membership_for, set_assignment_paused, wake_fetchers};

pub(crate) struct Standstill {
    pub(crate) member: Arc<Member>,
    /// Shared with the rebalance callbacks ([`OwnedPartitions`](super::member::OwnedPartitions)).
    pub(crate) hold: Arc<AtomicBool>,
}

impl Standstill {
    /// Pauses every assigned partition, and any assigned from now on.
    pub(crate) fn begin(&self) {
        self.hold.store(true, Ordering::SeqCst);
        set_assignment_paused(&self.member, true);
    }

    /// Resumes every assigned partition and wakes the fetchers at once.
    pub(crate) fn end(&self) {
        self.hold.store(false, Ordering::SeqCst);
        set_assignment_paused(&self.member, false);
        wake_fetchers(&self.member);
    }

    /// Polls for `period` while paused; `false` once shutdown is requested.
    pub(crate) async fn wait(&self, period: Duration, shutdown: &CancellationToken) -> bool {
        keep_membership_for(&self.member, period, shutdown).await
    }
}
