//! The checkpoint settings of a job (Flink's `CheckpointConfig`) and its restart
//! strategy.

use std::path::PathBuf;
use std::time::Duration;

/// What a checkpoint guarantees (Flink's `CheckpointingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointingMode {
    /// Operators align on the checkpoint's epoch: records of later epochs wait until the
    /// snapshot is taken, so state holds each record exactly once.
    #[default]
    ExactlyOnce,
    /// No alignment: records of later epochs are processed at once, so after a restore
    /// some may count twice.
    AtLeastOnce,
}

/// What happens to checkpoints when the job is cancelled (Flink's
/// `ExternalizedCheckpointRetention`). A job that finishes deletes them either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExternalizedCheckpointRetention {
    /// Keep them, to restore from later.
    #[default]
    RetainOnCancellation,
    /// Delete them.
    DeleteOnCancellation,
}

/// How snapshot parts are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotCompression {
    /// Stored as encoded.
    #[default]
    None,
    /// LZ4: fast, about half the size on typical state.
    Lz4,
    /// Zstandard (level 1, pure Rust): smaller than LZ4, slower to write.
    Zstd,
}

/// Where keyed state lives (Flink's state backends).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateBackendConfig {
    /// Hash maps in memory: the fastest; state must fit in memory.
    #[default]
    HashMap,
    /// Up to `cache_entries` entries per state and subtask in memory, the rest in an
    /// embedded LSM store (fjall) in `dir` (a temporary directory by default): for state
    /// larger than memory. Keyed function state, rolling aggregations, window contents
    /// and per-window state, interval-join buffers and (with `TimerStorage::InStore`)
    /// timers use it.
    EmbeddedLsm {
        /// The store's working directory: each run of the job (each restart) keeps its
        /// store in a `run-<id>` subdirectory, removed when the run ends; on several
        /// processes, under each one's `process-<i>` subdirectory.
        dir: Option<PathBuf>,
        /// Entries per state and subtask kept in memory.
        cache_entries: usize,
        /// Where timers live.
        timers: TimerStorage,
        /// The store's cache of blocks read from disk, in bytes, per process (Flink's
        /// `state.backend.rocksdb.block.cache-size`):
        /// [`StateBackendConfig::DEFAULT_BLOCK_CACHE_BYTES`] by default.
        block_cache_bytes: u64,
    },
}

/// Where the embedded backend keeps timers (Flink's
/// `state.backend.rocksdb.timer-service.factory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerStorage {
    /// All in memory (Flink's `HEAP`), the default: in a window count over 4M keys
    /// (about a million timers per subtask), timers in the store ran at 60% of the
    /// speed and took more memory (the store's buffers for them) than these.
    #[default]
    InMemory,
    /// The earliest in memory (four per cache entry, per domain), the rest in the store
    /// (Flink's `ROCKSDB`): memory stays bounded however many timers there are.
    InStore,
}

impl StateBackendConfig {
    /// The embedded store's block cache unless told otherwise (32 MiB).
    pub const DEFAULT_BLOCK_CACHE_BYTES: u64 =
        superflow_state::DiskStateStore::DEFAULT_BLOCK_CACHE_BYTES;

    /// The embedded LSM backend in a temporary directory, with 100,000 entries per
    /// state and subtask in memory, timers in memory and the default block cache.
    pub fn embedded_lsm() -> StateBackendConfig {
        StateBackendConfig::EmbeddedLsm {
            dir: None,
            cache_entries: 100_000,
            timers: TimerStorage::InMemory,
            block_cache_bytes: Self::DEFAULT_BLOCK_CACHE_BYTES,
        }
    }

    /// Opens the backend for run `run_id` of a job (on process `process` of several).
    ///
    /// Each run opens a store of its own: the last run's store may still be alive for
    /// a moment (a checkpoint writer finishing holds it), and its background threads,
    /// and its removal of its directory when it closes, must not reach this run's
    /// files. Processes of one job on one machine must not share a store either. A
    /// run's directory is named after its process, so that the next process removes
    /// what a killed one left.
    pub(crate) fn open_for_run(
        &self,
        run_id: u64,
        process: Option<usize>,
    ) -> Result<std::sync::Arc<dyn superflow_state::StateBackend>, superflow_state::StoreError>
    {
        let StateBackendConfig::EmbeddedLsm {
            dir,
            cache_entries,
            timers,
            block_cache_bytes,
        } = self
        else {
            return Ok(std::sync::Arc::new(superflow_state::MemoryStateBackend));
        };
        let run = format!("{run_id:016x}");
        let (parent, prefix) = match (dir, process) {
            (Some(dir), Some(process)) => (dir.join(format!("process-{process}")), "run-"),
            (Some(dir), None) => (dir.clone(), "run-"),
            (None, _) => (std::env::temp_dir(), "superflow-state-"),
        };
        crate::leftovers::remove_those_of_ended_processes(&parent, prefix);
        let dir = parent.join(crate::leftovers::own_name(prefix, &run));
        let store =
            superflow_state::DiskStateStore::open_with_block_cache(&dir, *block_cache_bytes)?;
        Ok(std::sync::Arc::new(
            superflow_state::EmbeddedStateBackend::new(
                store,
                *cache_entries,
                *timers == TimerStorage::InStore,
            ),
        ))
    }
}

/// A job's checkpoint settings.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Time between the start of two checkpoints.
    pub interval: Duration,
    /// Exactly-once (aligned) or at-least-once.
    pub mode: CheckpointingMode,
    /// A checkpoint not complete after this long is declared failed.
    pub timeout: Duration,
    /// The least time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// How many checkpoints may be in progress at once.
    pub max_concurrent: usize,
    /// How many failed checkpoints in a row the job tolerates before it fails.
    pub tolerable_failures: u32,
    /// Whether checkpoints outlive a cancelled job.
    pub retention: ExternalizedCheckpointRetention,
    /// How many complete checkpoints are kept (the older ones are deleted).
    pub retained: usize,
    /// Where checkpoints are written: a directory, or an object store URL (`file://`,
    /// `memory://`; `s3://`, `gs://`, `az://` with the `cloud-storage` feature), for
    /// which a local staging directory stands in (`checkpoint::remote`).
    pub storage: PathBuf,
    /// Compression of the parts.
    pub compression: SnapshotCompression,
}

impl CheckpointConfig {
    /// Checkpoints every `interval`, with Flink's defaults otherwise (10 minute timeout,
    /// no pause, one at a time, no failure tolerated), keeping the last 2 complete
    /// checkpoints under `superflow-checkpoints` in the working directory.
    pub fn new(interval: Duration) -> CheckpointConfig {
        CheckpointConfig {
            interval,
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failures: 0,
            retention: ExternalizedCheckpointRetention::RetainOnCancellation,
            retained: 2,
            storage: PathBuf::from("superflow-checkpoints"),
            compression: SnapshotCompression::None,
        }
    }
}

/// What the job does when a task fails (Flink's restart strategies).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RestartStrategy {
    /// Fail the job. The default without checkpoints.
    #[default]
    None,
    /// Restart up to `attempts` times, waiting `delay` before each.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart with a delay that grows by `multiplier` after each failure, up to
    /// `max_delay`, at most `attempts` times; the delay resets after a run longer than
    /// `reset_after` without failure.
    ExponentialDelay {
        /// The first delay.
        initial_delay: Duration,
        /// The longest delay.
        max_delay: Duration,
        /// Growth per failure.
        multiplier: f64,
        /// A run this long without failure resets the delay.
        reset_after: Duration,
        /// Restarts allowed.
        attempts: u32,
    },
    /// Restart unless more than `max_failures` failures happened within `interval`.
    FailureRate {
        /// Failures allowed within the interval.
        max_failures: u32,
        /// The measuring window.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

impl RestartStrategy {
    /// Fixed delay.
    pub fn fixed_delay(attempts: u32, delay: Duration) -> RestartStrategy {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Exponential delay with Flink's defaults (1 s doubling to 5 minutes, reset after
    /// an hour) and at most `attempts` restarts.
    pub fn exponential_delay(attempts: u32) -> RestartStrategy {
        RestartStrategy::ExponentialDelay {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            multiplier: 2.0,
            reset_after: Duration::from_secs(3600),
            attempts,
        }
    }

    /// Failure rate.
    pub fn failure_rate(max_failures: u32, interval: Duration, delay: Duration) -> RestartStrategy {
        RestartStrategy::FailureRate {
            max_failures,
            interval,
            delay,
        }
    }
}

/// Decides, failure by failure, whether and when a job restarts.
#[derive(Debug)]
pub(crate) struct RestartBackoff {
    strategy: RestartStrategy,
    restarts: u32,
    next_delay: Option<Duration>,
    failures: Vec<std::time::Instant>,
}

impl RestartBackoff {
    pub(crate) fn new(strategy: RestartStrategy) -> RestartBackoff {
        RestartBackoff {
            strategy,
            restarts: 0,
            next_delay: None,
            failures: Vec::new(),
        }
    }

    /// After a failure of a run that lasted `ran_for`: the delay before the restart, or
    /// `None` if the job must fail.
    pub(crate) fn on_failure(&mut self, ran_for: Duration) -> Option<Duration> {
        let now = std::time::Instant::now();
        let delay = match &self.strategy {
            RestartStrategy::None => return None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts >= *attempts {
                    return None;
                }
                *delay
            }
            RestartStrategy::ExponentialDelay {
                initial_delay,
                max_delay,
                multiplier,
                reset_after,
                attempts,
            } => {
                if self.restarts >= *attempts {
                    return None;
                }
                let delay = match self.next_delay {
                    Some(d) if ran_for < *reset_after => d,
                    _ => *initial_delay,
                };
                self.next_delay = Some(delay.mul_f64(multiplier.max(1.0)).min(*max_delay));
                delay
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push(now);
                self.failures
                    .retain(|t| now.duration_since(*t) <= *interval);
                if self.failures.len() as u32 > *max_failures {
                    return None;
                }
                *delay
            }
        };
        self.restarts += 1;
        Some(delay)
    }

    /// Restarts so far.
    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_allows_its_attempts() {
        let mut backoff = RestartBackoff::new(RestartStrategy::fixed_delay(2, Duration::ZERO));
        assert!(backoff.on_failure(Duration::ZERO).is_some());
        assert!(backoff.on_failure(Duration::ZERO).is_some());
        assert!(backoff.on_failure(Duration::ZERO).is_none());
        assert_eq!(backoff.restarts(), 2);
    }

    #[test]
    fn exponential_delay_grows_and_resets() {
        let mut backoff = RestartBackoff::new(RestartStrategy::ExponentialDelay {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(35),
            multiplier: 2.0,
            reset_after: Duration::from_secs(1),
            attempts: 10,
        });
        let short = Duration::from_millis(1);
        assert_eq!(backoff.on_failure(short), Some(Duration::from_millis(10)));
        assert_eq!(backoff.on_failure(short), Some(Duration::from_millis(20)));
        assert_eq!(backoff.on_failure(short), Some(Duration::from_millis(35)));
        assert_eq!(
            backoff.on_failure(Duration::from_secs(2)),
            Some(Duration::from_millis(10))
        );
    }

    #[test]
    fn failure_rate_fails_past_the_rate() {
        let mut backoff = RestartBackoff::new(RestartStrategy::failure_rate(
            1,
            Duration::from_secs(60),
            Duration::ZERO,
        ));
        assert!(backoff.on_failure(Duration::ZERO).is_some());
        assert!(backoff.on_failure(Duration::ZERO).is_none());
    }

    #[test]
    fn none_never_restarts() {
        assert!(RestartBackoff::new(RestartStrategy::None)
            .on_failure(Duration::ZERO)
            .is_none());
    }
}
