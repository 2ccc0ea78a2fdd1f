//! [`ClusterConfig`]: where the processes of a multi-process job are, from the
//! environment (`SUPERFLOW_*`) or set by the program.

use superflow_core::JobError;

use crate::cluster_error::ClusterError;

/// Environment variable: number of processes of a multi-process job.
pub const ENV_PROCESSES: &str = "SUPERFLOW_PROCESSES";
/// Environment variable: this process's index (0-based).
pub const ENV_PROCESS_ID: &str = "SUPERFLOW_PROCESS_ID";
/// Environment variable: comma-separated `host:port` of every process, in index order.
pub const ENV_ADDRESSES: &str = "SUPERFLOW_ADDRESSES";
/// Environment variable: a file with one `host:port` per line (instead of the list).
pub const ENV_HOSTFILE: &str = "SUPERFLOW_HOSTFILE";
/// The secret the processes of a job share, to prove to each other that they belong to it.
pub const ENV_SECRET: &str = "SUPERFLOW_CLUSTER_SECRET";

/// Where the processes of a multi-process job are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This process's index.
    pub process_id: usize,
    /// `host:port` of every process.
    pub addresses: Vec<String>,
    /// The secret every process of the job proves it knows when it connects
    /// (`SUPERFLOW_CLUSTER_SECRET`). Without one, the connections are not
    /// authenticated, and each process warns.
    pub secret: Option<crate::cluster_auth::ClusterSecret>,
}

impl ClusterConfig {
    /// Reads the cluster configuration from the environment; `None` means one process.
    pub fn from_env() -> Result<Option<ClusterConfig>, JobError> {
        let Ok(processes) = std::env::var(ENV_PROCESSES) else {
            return Ok(None);
        };
        let processes: usize = processes
            .trim()
            .parse()
            .map_err(|_| ClusterError::NotANumber {
                variable: ENV_PROCESSES,
                expected: "a positive number",
                value: processes.clone(),
            })?;
        if processes <= 1 {
            return Ok(None);
        }
        let id =
            std::env::var(ENV_PROCESS_ID).map_err(|_| ClusterError::NoProcessId { processes })?;
        let process_id: usize = id.trim().parse().map_err(|_| ClusterError::NotANumber {
            variable: ENV_PROCESS_ID,
            expected: "a number",
            value: id.clone(),
        })?;
        let addresses: Vec<String> = if let Ok(list) = std::env::var(ENV_ADDRESSES) {
            list.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        } else if let Ok(path) = std::env::var(ENV_HOSTFILE) {
            let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::HostFile {
                path: path.clone(),
                source,
            })?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        } else {
            (0..processes)
                .map(|i| format!("127.0.0.1:{}", 2101 + i))
                .collect()
        };
        if addresses.len() != processes {
            return Err(ClusterError::AddressCount {
                processes,
                addresses,
            }
            .into());
        }
        if process_id >= processes {
            return Err(ClusterError::ProcessIdOutOfRange {
                process_id,
                processes,
            }
            .into());
        }
        let secret = std::env::var(ENV_SECRET)
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| crate::cluster_auth::ClusterSecret::new(&s));
        Ok(Some(ClusterConfig {
            process_id,
            addresses,
            secret,
        }))
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }
}
