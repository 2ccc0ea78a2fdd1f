//! The job settings a Python environment passes with its plan: parallelism, the
//! watermark interval, the cluster of processes, checkpoints, the restart strategy, the state backend and the
//! checkpoint to restore, read into the Rust environment's settings.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use superflow_api::StreamExecutionEnvironment;
use superflow_runtime::checkpoint::{
    CheckpointConfig, CheckpointingMode, ExternalizedCheckpointRetention, RestartStrategy,
    SnapshotCompression, StateBackendConfig, TimerStorage,
};
use superflow_runtime::{ClusterConfig, RuntimeExecutionMode};

use crate::plan::item;

/// Job settings from the Python environment.
pub(crate) struct PlanSettings {
    parallelism: usize,
    max_parallelism: Option<usize>,
    auto_watermark_interval: Option<Duration>,
    runtime_mode: RuntimeExecutionMode,
    cluster: Option<ClusterConfig>,
    checkpointing: Option<CheckpointConfig>,
    restart: Option<RestartStrategy>,
    restore_from: Option<PathBuf>,
    allow_non_restored_state: bool,
    state_backend: Option<StateBackendConfig>,
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn checkpoint_config(dict: &Bound<'_, PyDict>) -> PyResult<CheckpointConfig> {
    let interval: u64 = item(dict, "interval_ms")?.unwrap_or(0);
    if interval == 0 {
        return Err(PyValueError::new_err(
            "the checkpoint interval must be at least 1 ms",
        ));
    }
    let mut config = CheckpointConfig::new(ms(interval));
    match item::<String>(dict, "mode")?.as_deref() {
        None | Some("EXACTLY_ONCE") => config.mode = CheckpointingMode::ExactlyOnce,
        Some("AT_LEAST_ONCE") => config.mode = CheckpointingMode::AtLeastOnce,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown checkpointing mode '{other}': EXACTLY_ONCE or AT_LEAST_ONCE"
            )))
        }
    }
    if let Some(t) = item(dict, "timeout_ms")? {
        config.timeout = ms(t);
    }
    if let Some(p) = item(dict, "min_pause_ms")? {
        config.min_pause = ms(p);
    }
    if let Some(n) = item(dict, "max_concurrent")? {
        config.max_concurrent = n;
    }
    if let Some(n) = item(dict, "tolerable")? {
        config.tolerable_failures = n;
    }
    if let Some(n) = item(dict, "retained")? {
        config.retained = n;
    }
    match item::<String>(dict, "retention")?.as_deref() {
        None | Some("RETAIN_ON_CANCELLATION") => {
            config.retention = ExternalizedCheckpointRetention::RetainOnCancellation
        }
        Some("DELETE_ON_CANCELLATION") => {
            config.retention = ExternalizedCheckpointRetention::DeleteOnCancellation
        }
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown checkpoint retention '{other}'"
            )))
        }
    }
    if let Some(dir) = item::<String>(dict, "storage")? {
        config.storage = PathBuf::from(dir);
    }
    config.compression = match item::<String>(dict, "compression")?.as_deref() {
        None | Some("none") => SnapshotCompression::None,
        Some("lz4") => SnapshotCompression::Lz4,
        Some("zstd") => SnapshotCompression::Zstd,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown snapshot compression '{other}': none, lz4 or zstd"
            )))
        }
    };
    Ok(config)
}

fn restart_strategy(spec: &Bound<'_, PyAny>) -> PyResult<RestartStrategy> {
    let kind: String = spec.get_item(0)?.extract()?;
    let arg = |i: usize| -> PyResult<u64> { spec.get_item(i)?.extract() };
    Ok(match kind.as_str() {
        "none" => RestartStrategy::None,
        "fixed_delay" => RestartStrategy::fixed_delay(arg(1)? as u32, ms(arg(2)?)),
        "failure_rate" => RestartStrategy::failure_rate(arg(1)? as u32, ms(arg(2)?), ms(arg(3)?)),
        "exponential_delay" => RestartStrategy::ExponentialDelay {
            attempts: arg(1)? as u32,
            initial_delay: ms(arg(2)?),
            max_delay: ms(arg(3)?),
            multiplier: spec.get_item(4)?.extract()?,
            reset_after: ms(arg(5)?),
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown restart strategy '{other}'"
            )))
        }
    })
}

fn state_backend(spec: &Bound<'_, PyAny>) -> PyResult<StateBackendConfig> {
    let kind: String = spec.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "hashmap" => StateBackendConfig::HashMap,
        "embedded_lsm" => StateBackendConfig::EmbeddedLsm {
            dir: spec
                .get_item(1)?
                .extract::<Option<String>>()?
                .map(PathBuf::from),
            cache_entries: spec.get_item(2)?.extract()?,
            timers: match spec.get_item(3)?.extract::<String>()?.as_str() {
                "store" => TimerStorage::InStore,
                "memory" => TimerStorage::InMemory,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "timers must be 'store' or 'memory', got '{other}'"
                    )))
                }
            },
            block_cache_bytes: spec.get_item(4)?.extract()?,
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown state backend '{other}'"
            )))
        }
    })
}

impl PlanSettings {
    /// Reads the settings dict of `superflow.datastream.StreamExecutionEnvironment`.
    pub(crate) fn read(settings: &Bound<'_, PyDict>) -> PyResult<PlanSettings> {
        let cluster: Option<(usize, Vec<String>, Option<String>)> = item(settings, "cluster")?;
        let checkpointing = match item::<Bound<'_, PyDict>>(settings, "checkpoint")? {
            Some(dict) => Some(checkpoint_config(&dict)?),
            None => None,
        };
        let restart = match item::<Bound<'_, PyAny>>(settings, "restart")? {
            Some(spec) => Some(restart_strategy(&spec)?),
            None => None,
        };
        let state_backend = match item::<Bound<'_, PyAny>>(settings, "state_backend")? {
            Some(spec) => Some(state_backend(&spec)?),
            None => None,
        };
        Ok(PlanSettings {
            parallelism: item(settings, "parallelism")?.unwrap_or(1),
            max_parallelism: item(settings, "max_parallelism")?,
            auto_watermark_interval: item(settings, "auto_watermark_interval_ms")?.map(ms),
            runtime_mode: match item::<String>(settings, "runtime_mode")?.as_deref() {
                None | Some("streaming") => RuntimeExecutionMode::Streaming,
                Some("batch") => RuntimeExecutionMode::Batch,
                Some("automatic") => RuntimeExecutionMode::Automatic,
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "unknown runtime execution mode '{other}'"
                    )))
                }
            },
            cluster: cluster.map(|(process_id, addresses, secret)| ClusterConfig {
                process_id,
                addresses,
                secret: secret
                    .as_deref()
                    .map(superflow_runtime::cluster_auth::ClusterSecret::new),
            }),
            checkpointing,
            restart,
            restore_from: item::<String>(settings, "restore_path")?.map(PathBuf::from),
            allow_non_restored_state: item(settings, "allow_non_restored_state")?.unwrap_or(false),
            state_backend,
        })
    }

    /// Sets them on a Rust environment.
    pub(crate) fn apply(self, env: &StreamExecutionEnvironment) {
        env.set_parallelism(self.parallelism);
        env.set_runtime_mode(self.runtime_mode);
        if let Some(interval) = self.auto_watermark_interval {
            env.set_auto_watermark_interval(interval);
        }
        if let Some(max) = self.max_parallelism {
            env.set_max_parallelism(max);
        }
        if let Some(cluster) = self.cluster {
            env.set_cluster(cluster);
        }
        if let Some(config) = self.checkpointing {
            env.configure_checkpoints(|c| *c = config);
        }
        if let Some(restart) = self.restart {
            env.set_restart_strategy(restart);
        }
        if let Some(path) = self.restore_from {
            env.set_restore_path(path);
        }
        env.set_allow_non_restored_state(self.allow_non_restored_state);
        if let Some(backend) = self.state_backend {
            env.set_state_backend(backend);
        }
    }
}
