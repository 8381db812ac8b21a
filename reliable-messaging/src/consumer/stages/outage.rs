//! Part of the handle stage, [`RideOut`]: riding out a dependency outage (pause, probe,
//! resume) without leaving the group and without dead-lettering anything.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::consumer::standstill::Standstill;
use crate::consumer::{ConsumerError, ConsumerStats, Outage};
use crate::dead_letter::Backoff;
use crate::message::{Delivery, Outcome};

pub(crate) struct RideOut {
    pub(crate) standstill: Arc<Standstill>,
    /// Delays between probes of the dependency that is down.
    pub(crate) probe_backoff: Backoff,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl RideOut {
    /// Pauses consumption while the dependency named by a `DependencyDown` outcome is down:
    /// every partition is paused (and any assigned meanwhile), the consumer keeps polling so it
    /// stays in its group, and the messages that met the outage are handled again with
    /// backoff, as the probe. Returns `false` if shutdown came first; the messages are then
    /// left uncommitted. Nothing is dead-lettered for an outage, however long it lasts.
    /// `probe` handles the messages given again (with in-place retries) and returns their
    /// outcomes in order.
    pub(crate) async fn ride_out<P, F>(
        &self,
        batch: &[Delivery],
        outcomes: &mut [Outcome],
        shutdown: &CancellationToken,
        mut probe: P,
    ) -> Result<bool, ConsumerError>
    where
        P: FnMut(Vec<Delivery>) -> F,
        F: Future<Output = Result<Vec<Outcome>, ConsumerError>>,
    {
        let Some(Outcome::DependencyDown { dependency, message }) =
            outcomes.iter().find(|o| o.is_dependency_down()).cloned()
        else {
            return Ok(true);
        };
        let started = std::time::Instant::now();
        *self.stats.outage.lock().expect("outage lock") =
            Some(Outage { dependency: dependency.clone(), since: started });
        self.stats.outages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%dependency, error = %message, "dependency down: consumption paused; nothing is dead-lettered until it answers");
        self.standstill.begin();
        let mut attempt = 0;
        let result = loop {
            let pending: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i].is_dependency_down()).collect();
            if pending.is_empty() {
                break Ok(true);
            }
            if !self.standstill.wait(self.probe_backoff.delay(attempt), shutdown).await {
                break Ok(false);
            }
            let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
            let results = match probe(subset).await {
                Ok(results) => results,
                Err(e) => break Err(e),
            };
            for (&i, outcome) in pending.iter().zip(results) {
                outcomes[i] = outcome;
            }
            attempt += 1;
        };
        self.standstill.end();
        *self.stats.outage.lock().expect("outage lock") = None;
        if matches!(result, Ok(true)) {
            tracing::info!(%dependency, outage_secs = started.elapsed().as_secs_f64(), "dependency back: consumption resumed");
        }
        result
    }
}
