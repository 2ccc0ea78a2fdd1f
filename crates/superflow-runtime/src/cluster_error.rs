//! [`ClusterError`]: why the processes of a job could not form their cluster, or lost
//! each other while the job ran. A job ends with it as [`JobError::Cluster`].

use superflow_core::JobError;

use crate::cluster_config::{ENV_HOSTFILE, ENV_PROCESSES, ENV_PROCESS_ID};

/// Why the processes of a job could not form their cluster, or lost each other.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// An environment variable of the cluster is not a number.
    #[error("{variable} must be {expected}, got '{value}'")]
    NotANumber {
        /// The variable.
        variable: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        value: String,
    },
    /// Several processes, but not which one this is.
    #[error("{ENV_PROCESSES}={processes} needs {ENV_PROCESS_ID}")]
    NoProcessId {
        /// The number of processes.
        processes: usize,
    },
    /// The host file cannot be read.
    #[error("cannot read {ENV_HOSTFILE} '{path}': {source}")]
    HostFile {
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not one address per process.
    #[error("{processes} processes need {processes} addresses, got {}: {addresses:?}", addresses.len())]
    AddressCount {
        /// The number of processes.
        processes: usize,
        /// The addresses given.
        addresses: Vec<String>,
    },
    /// This process's index is not below the number of processes.
    #[error("{ENV_PROCESS_ID}={process_id} is out of range for {processes} processes")]
    ProcessIdOutOfRange {
        /// The index.
        process_id: usize,
        /// The number of processes.
        processes: usize,
    },
    /// A socket or the network could not be set up.
    #[error("{what}: {source}")]
    Network {
        /// What failed, naming the process or address.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another process could not be reached in time.
    #[error("process {me} cannot connect to process {peer} at {address}: {source}")]
    Unreachable {
        /// This process.
        me: usize,
        /// The other process.
        peer: usize,
        /// Its address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not every other process connected in time.
    #[error(
        "process {me} waited {seconds}s for {missing} connection(s) from the other process(es)"
    )]
    Waited {
        /// This process.
        me: usize,
        /// How long.
        seconds: u64,
        /// The connections still missing.
        missing: usize,
    },
    /// The job was cancelled while the processes connected.
    #[error("cancelled while process {me} {doing}")]
    Cancelled {
        /// This process.
        me: usize,
        /// What it was doing.
        doing: String,
    },
    /// The other process runs another job (or the same at another parallelism).
    #[error("process {peer} runs another job than process {me}: {difference}; start every process of a job with the same program and settings")]
    AnotherJob {
        /// This process.
        me: usize,
        /// The other process.
        peer: usize,
        /// The first difference of their shapes.
        difference: String,
    },
    /// Process 0 gave the job up (this process restarted to rejoin it).
    #[error("process 0 gave the job up: {0}")]
    GaveUp(String),
    /// Process 0 did not send the start of the run.
    #[error("process 0 did not start the run (it failed or is gone)")]
    NotStarted,
    /// The control connection to another process failed.
    #[error("control connection to process {peer}: {source}")]
    Control {
        /// The other process.
        peer: usize,
        /// Why.
        source: std::io::Error,
    },
    /// A follower has no control connection to process 0.
    #[error("no control connection to process 0")]
    NoLeader,
    /// Another process of the job went away while it ran.
    #[error("lost the connection to another process of the job ({0})")]
    Lost(String),
    /// A process has no address among the cluster's.
    #[error("process {0} has no address")]
    NoAddress(usize),
    /// The network failed while the job ran, as the worker or the control connection
    /// told it.
    #[error("{0}")]
    Failed(String),
    /// A control message could not be sent to another process.
    #[error(transparent)]
    Send(#[from] crate::cluster_control::ControlError),
}

impl ClusterError {
    /// A socket or network failure: `what` names the process or address.
    pub(crate) fn network(what: impl Into<String>, source: std::io::Error) -> ClusterError {
        ClusterError::Network {
            what: what.into(),
            source,
        }
    }
}

impl From<ClusterError> for JobError {
    fn from(e: ClusterError) -> JobError {
        JobError::Cluster(Box::new(e))
    }
}
