//! The logical job graph the API builds, and the physical plan `execute()` derives
//! from it: resolved parallelism, resolved partitioners and operator chains.

use std::fmt;
use std::sync::Arc;

use superflow_core::{JobError, UPPER_BOUND_MAX_PARALLELISM};

use crate::build::NodeBuilder;
use crate::exchange::{PartitionKind, StreamPartitioner};

/// Index of a node in its job graph.
pub type NodeId = usize;

/// What role a node plays; decides whether it can join a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Produces records; always starts an operator.
    Source,
    /// A one-input operator (map, filter, process, keyed reduce...): can be chained.
    Operator,
    /// Consumes records; can be chained after its input.
    Sink,
    /// Merges streams of one type.
    Union,
    /// Two inputs (connect): starts an operator, can head a chain.
    TwoInput,
    /// A broadcast fan-out or another helper the planner inserts.
    Internal,
}

/// How a node may be chained with its neighbours (Flink's chaining strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainingStrategy {
    /// Chain with the input and the output where possible.
    #[default]
    Always,
    /// Start a new chain here, but let later operators chain to this one.
    Head,
    /// Never chain with anything.
    Never,
}

/// One input of a node.
#[derive(Clone, Debug)]
pub struct InputEdge {
    /// The producing node.
    pub from: NodeId,
    /// The partitioner the user chose (forward when none).
    pub partitioner: StreamPartitioner,
    /// Whether the user chose forward explicitly (then a parallelism change is an error).
    pub explicit_forward: bool,
    /// The round-robin used when a forward edge changes parallelism.
    pub implicit_rebalance: StreamPartitioner,
}

/// A node of the job graph.
#[derive(Clone)]
pub struct Node {
    /// The node's index.
    pub id: NodeId,
    /// Display name.
    pub name: String,
    /// Stable identifier for matching state across job versions.
    pub uid: Option<String>,
    /// Parallelism set by the user; `None` takes the job default.
    pub parallelism: Option<usize>,
    /// The largest parallelism the node supports (1 for non-parallel sources).
    pub max_parallelism: Option<usize>,
    /// The operator's own max parallelism (Flink's per-operator `setMaxParallelism`):
    /// the number of key groups its keyed state and timers are split into, and so the
    /// bound of its parallelism; `None` takes the job's.
    pub key_groups: Option<usize>,
    /// The node's role.
    pub kind: NodeKind,
    /// Chaining strategy.
    pub chaining: ChainingStrategy,
    /// Inputs, in order.
    pub inputs: Vec<InputEdge>,
    /// Builds the node's physical operator(s).
    pub builder: Arc<dyn NodeBuilder>,
    /// Checks, before the job runs, that the node can start (sources).
    pub prepare: Option<PrepareFn>,
    /// For sources: whether they resume from checkpointed positions.
    pub replayable: bool,
    /// Whether the operator may keep state, and so wants a uid (map, filter and print
    /// sinks keep none).
    pub keeps_state: bool,
    /// For sources: whether their input ends ([`SourceFunction::is_bounded`]); true for
    /// every other node.
    ///
    /// [`SourceFunction::is_bounded`]: crate::SourceFunction::is_bounded
    pub bounded: bool,
    /// A node of an earlier job of the same environment that this job does not run. It
    /// keeps its place, so that node ids stay what the program's streams hold, but has
    /// no inputs, is never built, and is left out of the plan's operators and results.
    pub dormant: bool,
}

/// A check run before the job starts; the error says what is missing.
pub type PrepareFn = Arc<dyn Fn() -> Result<(), crate::source::SourceError> + Send + Sync>;

impl Node {
    /// This node as a dormant one ([`Node::dormant`]).
    pub fn into_dormant(self) -> Node {
        Node {
            kind: NodeKind::Internal,
            parallelism: Some(1),
            max_parallelism: None,
            key_groups: None,
            inputs: Vec::new(),
            prepare: None,
            keeps_state: false,
            dormant: true,
            ..self
        }
    }

    /// The name the node's state is stored under in checkpoints: its uid, or one made
    /// of its id and name (which changes when the program's shape does).
    pub fn state_uid(&self) -> String {
        self.uid
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.id, self.name))
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("parallelism", &self.parallelism)
            .field("kind", &self.kind)
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// The logical job: nodes in creation order (which is a topological order).
#[derive(Clone, Debug, Default)]
pub struct JobGraph {
    /// All nodes.
    pub nodes: Vec<Node>,
    /// Problems found while the program built the graph (bad field positions...).
    pub problems: Vec<String>,
}

/// The physical plan of a job graph.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// Number of workers (the job's parallelism).
    pub workers: usize,
    /// The job's max parallelism (key groups of operators that set none).
    pub max_parallelism: usize,
    /// Key groups per node: its own max parallelism, or the job's.
    pub key_groups: Vec<usize>,
    /// Effective parallelism per node.
    pub parallelism: Vec<usize>,
    /// Effective partitioner per node input.
    pub edges: Vec<Vec<StreamPartitioner>>,
    /// Whether the node is chained into its (single) input's operator.
    pub chained_to_input: Vec<bool>,
    /// Number of consumers per node.
    pub consumers: Vec<usize>,
    /// The nodes nothing consumes: sinks (materialized, and probed for flow control).
    pub sinks: Vec<NodeId>,
}

impl JobPlan {
    /// Derives the plan, validating the graph. `default_parallelism` is the job's.
    pub fn new(
        graph: &JobGraph,
        default_parallelism: usize,
        max_parallelism: usize,
        processes: usize,
    ) -> Result<JobPlan, JobError> {
        if let Some(problem) = graph.problems.first() {
            return Err(JobError::InvalidJob(problem.clone()));
        }
        check_max_parallelism("the job", max_parallelism)?;
        check_parallelism("the job", default_parallelism, max_parallelism)?;
        if graph.nodes.is_empty() {
            return Err(JobError::InvalidJob(
                "no operators defined in the job; add a source and a sink such as print()".into(),
            ));
        }

        let n = graph.nodes.len();
        let mut parallelism = Vec::with_capacity(n);
        let mut key_groups = Vec::with_capacity(n);
        for node in &graph.nodes {
            let what = format!("operator '{}'", node.name);
            let groups = match node.key_groups {
                Some(groups) => {
                    check_max_parallelism(&what, groups)?;
                    groups
                }
                None => max_parallelism,
            };
            let p = match (node.parallelism, node.max_parallelism) {
                (Some(p), _) => p,
                (None, Some(limit)) => default_parallelism.min(limit),
                (None, None) => default_parallelism,
            };
            check_parallelism(&what, p, groups)?;
            if let Some(limit) = node.max_parallelism {
                if p > limit {
                    return Err(JobError::InvalidParallelism(format!(
                        "operator '{}' is not parallel: its parallelism must be at most {limit}, got {p}",
                        node.name
                    )));
                }
            }
            parallelism.push(p);
            key_groups.push(groups);
        }

        let mut consumers = vec![0usize; n];
        for node in &graph.nodes {
            for input in &node.inputs {
                consumers[input.from] += 1;
            }
        }

        let mut edges = Vec::with_capacity(n);
        for node in &graph.nodes {
            let mut resolved = Vec::new();
            for input in &node.inputs {
                let (up, down) = (parallelism[input.from], parallelism[node.id]);
                let mut partitioner = input.partitioner.clone();
                if partitioner.kind == PartitionKind::Forward && up != down {
                    if input.explicit_forward {
                        return Err(JobError::InvalidJob(format!(
                            "forward partitioning does not allow a change of parallelism: '{}' (operator {}) has parallelism {up}, '{}' (operator {}) has {down}",
                            graph.nodes[input.from].name, input.from, node.name, node.id
                        )));
                    }
                    partitioner = input.implicit_rebalance.clone();
                }
                if processes > 1 && !partitioner.crosses_processes() {
                    return Err(JobError::InvalidJob(format!(
                        "the edge from '{}' to '{}' redistributes records of a type that cannot be serialized, \
                         so it cannot run on {processes} processes; use a serde type and an explicit partitioner (such as .rebalance())",
                        graph.nodes[input.from].name, node.name
                    )));
                }
                resolved.push(partitioner);
            }
            edges.push(resolved);
        }

        let chained_to_input = graph
            .nodes
            .iter()
            .map(|node| {
                let [input] = node.inputs.as_slice() else {
                    return false;
                };
                let upstream = &graph.nodes[input.from];
                matches!(node.kind, NodeKind::Operator | NodeKind::Sink)
                    && matches!(upstream.kind, NodeKind::Operator | NodeKind::TwoInput)
                    && edges[node.id][0].kind == PartitionKind::Forward
                    && parallelism[node.id] == parallelism[input.from]
                    && consumers[input.from] == 1
                    && node.chaining == ChainingStrategy::Always
                    && upstream.chaining != ChainingStrategy::Never
            })
            .collect();

        let sinks: Vec<NodeId> = (0..n)
            .filter(|id| consumers[*id] == 0 && !graph.nodes[*id].dormant)
            .collect();
        if !graph.nodes.iter().any(|node| node.kind == NodeKind::Sink) {
            return Err(JobError::InvalidJob(
                "the job has no sink, so it would compute nothing; add print(), add_sink() or collect the results".into(),
            ));
        }

        let workers = parallelism
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .max(default_parallelism);
        Ok(JobPlan {
            workers,
            max_parallelism,
            key_groups,
            parallelism,
            edges,
            chained_to_input,
            consumers,
            sinks,
        })
    }
}

impl JobPlan {
    /// What the processes of one job must agree on, a line each: the number of
    /// processes and workers, and every node that runs with its parallelism and key
    /// groups. The cluster handshake compares it, so that processes started with
    /// different programs or settings are refused, naming the first difference.
    pub fn shape(&self, graph: &JobGraph, processes: usize) -> String {
        // The version first: processes of different builds may encode records apart.
        let mut lines = vec![
            format!("Superflow {}", env!("CARGO_PKG_VERSION")),
            format!("{processes} processes and {} workers", self.workers),
        ];
        for node in graph.nodes.iter().filter(|n| !n.dormant) {
            lines.push(format!(
                "operator {} '{}' at parallelism {} with {} key groups",
                node.id, node.name, self.parallelism[node.id], self.key_groups[node.id]
            ));
        }
        lines.join("\n")
    }

    /// The operators the plan runs: each a chain of node ids, head first.
    pub fn chains(&self, graph: &JobGraph) -> Vec<Vec<NodeId>> {
        let n = graph.nodes.len();
        let mut chained_successor = vec![None; n];
        for node in &graph.nodes {
            if self.chained_to_input[node.id] {
                chained_successor[node.inputs[0].from] = Some(node.id);
            }
        }
        (0..n)
            .filter(|id| !self.chained_to_input[*id] && !graph.nodes[*id].dormant)
            .map(|head| {
                let mut chain = vec![head];
                while let Some(next) = chained_successor[*chain.last().unwrap_or(&head)] {
                    chain.push(next);
                }
                chain
            })
            .collect()
    }
}

fn check_max_parallelism(what: &str, max_parallelism: usize) -> Result<(), JobError> {
    if max_parallelism == 0 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
        return Err(JobError::InvalidParallelism(format!(
            "the max parallelism of {what} must be between 1 and {UPPER_BOUND_MAX_PARALLELISM}, got {max_parallelism}"
        )));
    }
    Ok(())
}

fn check_parallelism(what: &str, p: usize, max_parallelism: usize) -> Result<(), JobError> {
    if p == 0 {
        return Err(JobError::InvalidParallelism(format!(
            "the parallelism of {what} must be at least 1, got 0"
        )));
    }
    if p > max_parallelism {
        return Err(JobError::InvalidParallelism(format!(
            "the parallelism of {what} is {p}, which exceeds the max parallelism {max_parallelism}"
        )));
    }
    Ok(())
}
