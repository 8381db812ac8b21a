//! After the commit stage, when the settle stage's flood guard tripped: [`Halt`] stops
//! consuming, reports why, and keeps the group membership until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::consumer::standstill::Standstill;
use crate::consumer::ConsumerStats;
use crate::dead_letter::HaltReason;

pub(crate) struct Halt {
    pub(crate) standstill: Arc<Standstill>,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl Halt {
    /// Pauses everything, reports not-ready with the reason, and polls until shutdown. The
    /// offsets from the tripping message on stay uncommitted, so a restart after the fix
    /// resumes there.
    pub(crate) async fn until_shutdown(&self, reason: HaltReason, shutdown: &CancellationToken) {
        tracing::error!(
            reason = %reason.summary,
            first_failures = ?reason.first_failures,
            "dead-letter flood limit reached: consumption halted, the rest stays on the topic uncommitted; fix the cause (or raise the limit) and restart"
        );
        *self.stats.halted.lock().expect("halt lock") = Some(reason);
        self.standstill.begin();
        while self.standstill.wait(Duration::from_secs(1), shutdown).await {}
    }
}
