//! `JobControl`: the flags every worker of a running job watches (cancel, fail), the
//! first failure, the current run's checkpoint coordinator, the current run's
//! connections to other processes, and Ctrl-C handling.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use superflow_core::OperatorFailure;

use crate::checkpoint::CheckpointCoordinator;

/// Shared by the workers of one job on one process, and by the job's client handle.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    /// Cancelled by Ctrl-C: `execute` then returns `JobError::Cancelled`.
    interrupted: AtomicBool,
    /// The job's `execute` returned.
    ended: AtomicBool,
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

    /// Whether Ctrl-C cancelled the job.
    pub fn was_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// The job's `execute` returned: Ctrl-C has nothing left to wait for.
    pub(crate) fn mark_ended(&self) {
        self.ended.store(true, Ordering::SeqCst);
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
/// How many times Ctrl-C was pressed.
static PRESSES: AtomicUsize = AtomicUsize::new(0);
/// How long a cancelled job may take to stop before the process ends (ms).
static CANCEL_GRACE_MS: AtomicU64 = AtomicU64::new(DEFAULT_CANCEL_GRACE.as_millis() as u64);

/// How long a job cancelled by Ctrl-C may take to stop by default.
pub const DEFAULT_CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets how long a job cancelled by Ctrl-C may take to stop before the process ends
/// (exit code 130), naming the operators whose user code is still running.
pub fn set_cancel_grace_period(grace: std::time::Duration) {
    CANCEL_GRACE_MS.store(grace.as_millis() as u64, Ordering::Relaxed);
}

/// How long a job cancelled by Ctrl-C may take to stop.
pub fn cancel_grace_period() -> std::time::Duration {
    std::time::Duration::from_millis(CANCEL_GRACE_MS.load(Ordering::Relaxed))
}

/// Ends the process (exit code 130, as after SIGINT) because a cancelled job did not
/// stop, naming the operators whose user code is still running.
pub fn give_up_on_cancelled_job(why: &str) -> ! {
    let running = crate::user_code::running_now();
    if running.is_empty() {
        eprintln!("{why}: the job did not stop; ending the process");
    } else {
        eprintln!(
            "{why}: the job did not stop; user code of {} is still running; ending the process",
            running.join(", ")
        );
    }
    std::process::exit(130)
}

fn running_jobs() -> Vec<Arc<JobControl>> {
    let jobs = RUNNING.lock().map(|j| j.clone()).unwrap_or_default();
    jobs.iter()
        .filter_map(Weak::upgrade)
        .filter(|j| !j.ended.load(Ordering::SeqCst))
        .collect()
}

fn register_for_ctrl_c(control: &Arc<JobControl>) {
    CTRL_C.call_once(|| {
        // A program that installed its own handler keeps it; Ctrl-C then is its business.
        let installed = ctrlc::set_handler(|| {
            let jobs = running_jobs();
            if jobs.is_empty() {
                std::process::exit(130);
            }
            if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
                give_up_on_cancelled_job("Ctrl-C again");
            }
            let grace = cancel_grace_period();
            eprintln!(
                "Ctrl-C: cancelling the job (Ctrl-C again, or {} s without it stopping, ends the process)",
                grace.as_secs_f64()
            );
            for job in &jobs {
                job.interrupted.store(true, Ordering::SeqCst);
                job.cancel();
            }
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                if !running_jobs().is_empty() {
                    give_up_on_cancelled_job(&format!(
                        "{} s after Ctrl-C",
                        grace.as_secs_f64()
                    ));
                }
            });
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
