//! `JobControl`: the flags every worker of a running job watches (cancel, fail), the
//! first failure, the current run's checkpoint coordinator, the current run's
//! connections to other processes, and Ctrl-C handling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use superflow_core::OperatorFailure;

use crate::checkpoint::CheckpointCoordinator;

/// Shared by the workers of one job on one process, and by the job's client handle.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<OperatorFailure>>,
    checkpoints: Mutex<Option<Arc<CheckpointCoordinator>>>,
    links: Mutex<Option<Arc<crate::cluster::ClusterLinks>>>,
}

impl JobControl {
    /// A control for a new job, registered for Ctrl-C.
    pub fn new() -> Arc<JobControl> {
        let control = Arc::new(JobControl::default());
        register_for_ctrl_c(&control);
        control
    }

    /// A control for a job whose host program handles Ctrl-C itself (and cancels the
    /// job through its client): no signal handler is installed.
    pub fn without_ctrl_c() -> Arc<JobControl> {
        Arc::new(JobControl::default())
    }

    /// A control registered for Ctrl-C when `ctrl_c` says so.
    pub fn for_settings(ctrl_c: bool) -> Arc<JobControl> {
        if ctrl_c {
            JobControl::new()
        } else {
            JobControl::without_ctrl_c()
        }
    }

    /// Asks sources to stop; the job drains what is in flight and ends.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// The connections of the current run to the other processes (`None` after it).
    pub(crate) fn set_links(&self, links: Option<Arc<crate::cluster::ClusterLinks>>) {
        if let Ok(mut slot) = self.links.lock() {
            *slot = links;
        }
    }

    /// Whether the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Records a failure; the first one wins, and every worker stops. On several
    /// processes, the connections to the others are severed at once: if this process's
    /// workers ended first, timely would close them with a clean goodbye, and the others
    /// would wait for records that never come instead of failing too.
    pub fn fail(&self, failure: OperatorFailure) {
        if let Ok(mut slot) = self.failure.lock() {
            if slot.is_none() {
                *slot = Some(failure);
            }
        }
        self.failed.store(true, Ordering::SeqCst);
        if let Some(links) = self.links.lock().ok().and_then(|l| l.clone()) {
            links.sever();
        }
    }

    /// Whether some worker failed.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether sources should stop producing.
    pub fn should_stop(&self) -> bool {
        self.is_cancelled() || self.has_failed()
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<OperatorFailure> {
        self.failure.lock().ok().and_then(|slot| slot.clone())
    }

    /// Clears the failure before the job restarts.
    pub(crate) fn clear_failure(&self) {
        if let Ok(mut slot) = self.failure.lock() {
            *slot = None;
        }
        self.failed.store(false, Ordering::SeqCst);
    }

    /// The checkpoint coordinator of the current run.
    pub fn checkpoints(&self) -> Option<Arc<CheckpointCoordinator>> {
        self.checkpoints.lock().ok().and_then(|c| c.clone())
    }

    pub(crate) fn set_checkpoints(&self, coordinator: Option<Arc<CheckpointCoordinator>>) {
        if let Ok(mut slot) = self.checkpoints.lock() {
            *slot = coordinator;
        }
    }
}

static CTRL_C: Once = Once::new();
static RUNNING: Mutex<Vec<Weak<JobControl>>> = Mutex::new(Vec::new());

fn register_for_ctrl_c(control: &Arc<JobControl>) {
    CTRL_C.call_once(|| {
        // A program that installed its own handler keeps it; Ctrl-C then is its business.
        let installed = ctrlc::set_handler(|| {
            let jobs = RUNNING.lock().map(|j| j.clone()).unwrap_or_default();
            let mut any = false;
            for job in jobs.iter().filter_map(Weak::upgrade) {
                tracing::info!("Ctrl-C: cancelling the running job");
                job.cancel();
                any = true;
            }
            if !any {
                std::process::exit(130);
            }
        });
        if let Err(e) = installed {
            tracing::debug!("Ctrl-C handler not installed: {e}");
        }
    });
    if let Ok(mut jobs) = RUNNING.lock() {
        jobs.retain(|j| j.strong_count() > 0);
        jobs.push(Arc::downgrade(control));
    }
}
