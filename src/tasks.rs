//! The gateway's background work, owned: nothing it starts outlives it.
//!
//! Two kinds of work run beside the requests:
//!
//! - *services*, loops that run for the gateway's whole life (the sweep of
//!   live grants, the listener of membership changes, the Redis bus, the
//!   session store's clean-up, the metrics listener, SIGHUP reloads). They
//!   stop the moment the gateway is cancelled.
//! - *jobs*, pieces of work with an end (a re-read a webhook asked for, the
//!   sweep's look at one person, a call that ends someone's Pusher
//!   connections). A job already started is allowed to finish within
//!   [`JOB_GRACE`] of a shutdown, and is logged if it cannot, so a terminate
//!   call in flight is never dropped without a word.
//!
//! Both are tracked by one `TaskTracker` and stopped by one
//! `CancellationToken` (tokio-util's ready-made forms of mini-redis's
//! `shutdown.rs`). [`Tasks::shutdown`] cancels and waits; dropping the
//! [`crate::app::Gateway`] cancels too, so a test that drops a gateway leaves
//! nothing running.
//!
//! [`Tasks::idle`] is the seam tests wait on: it resolves once no job is in
//! flight, so a test waits for the work it caused rather than sleeping.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a job already started may run on after a shutdown begins.
pub const JOB_GRACE: Duration = Duration::from_secs(5);

/// The background work of one gateway. Cheap to clone; every clone is the
/// same set of tasks.
#[derive(Clone, Debug)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// How many jobs are in flight (services are not counted).
    jobs: watch::Sender<usize>,
    /// How long a job may run on after a shutdown begins.
    grace: Duration,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::with_grace(JOB_GRACE)
    }
}

/// Counts one job in flight until dropped.
struct JobGuard(watch::Sender<usize>);

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Tasks {
    /// Tasks whose jobs get `grace` after a shutdown begins.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            jobs: watch::Sender::new(0),
            grace,
        }
    }

    /// Runs `service` until it ends by itself or the gateway is cancelled.
    pub fn service(&self, name: &'static str, service: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => tracing::debug!(service = name, "stopped"),
                () = service => {}
            }
        });
    }

    /// Runs `job` to its end; after a shutdown begins it has the grace
    /// ([`JOB_GRACE`] unless made [`Tasks::with_grace`]) left, and is
    /// logged as `what` if it needs longer.
    pub fn job(&self, what: impl Into<String>, job: impl Future<Output = ()> + Send + 'static) {
        self.jobs.send_modify(|n| *n += 1);
        let guard = JobGuard(self.jobs.clone());
        let cancel = self.cancel.clone();
        let what = what.into();
        let grace = self.grace;
        self.tracker.spawn(async move {
            let _guard = guard;
            let overdue = async {
                cancel.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                () = job => {}
                () = overdue => tracing::warn!(
                    job = %what,
                    "shutting down: abandoned after {:?}",
                    grace
                ),
            }
        });
    }

    /// Whether the gateway is shutting down.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves once no job is in flight (at once when none is). A job
    /// started by a job counts before its parent ends, so this never sees a
    /// gap between them.
    pub async fn idle(&self) {
        let mut jobs = self.jobs.subscribe();
        let _ = jobs.wait_for(|n| *n == 0).await;
    }

    /// How many jobs are in flight.
    pub fn jobs_in_flight(&self) -> usize {
        *self.jobs.borrow()
    }

    /// How many tasks, services and jobs, are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Stops every service, lets jobs finish within [`JOB_GRACE`], and
    /// waits for all of it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        let in_flight = self.jobs_in_flight();
        if in_flight > 0 {
            tracing::info!(
                jobs = in_flight,
                "shutting down: waiting up to {:?} for background jobs",
                self.grace
            );
        }
        self.tracker.wait().await;
    }

    /// Cancels everything without waiting (a gateway dropped).
    pub fn cancel(&self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_shutdown_stops_services_and_waits_for_jobs() {
        let tasks = Tasks::default();
        tasks.service("forever", std::future::pending());
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        tasks.job("a short job", async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            done.store(true, Ordering::SeqCst);
        });
        assert_eq!(tasks.running(), 2);
        tasks.shutdown().await;
        assert!(finished.load(Ordering::SeqCst), "the job finished first");
        assert_eq!(tasks.running(), 0, "the service stopped");
        assert_eq!(tasks.jobs_in_flight(), 0);
    }

    #[tokio::test]
    async fn a_job_that_outlives_the_grace_is_abandoned_within_the_bound() {
        let grace = Duration::from_millis(50);
        let tasks = Tasks::with_grace(grace);
        tasks.job("a hung call", std::future::pending());
        let started = tokio::time::Instant::now();
        tasks.shutdown().await;
        let took = started.elapsed();
        assert!(took >= grace && took < grace * 20, "{took:?}");
        assert_eq!(tasks.jobs_in_flight(), 0);
    }

    #[tokio::test]
    async fn idle_waits_for_jobs_that_jobs_start() {
        let tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        let (inner, done) = (tasks.clone(), finished.clone());
        tasks.job("parent", async move {
            tokio::task::yield_now().await;
            inner.job("child", async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                done.store(true, Ordering::SeqCst);
            });
        });
        tasks.idle().await;
        assert!(finished.load(Ordering::SeqCst));
    }
}
