//! Connects the processes of a job before timely takes the sockets over. Timely's own
//! setup polls its listener once a second and prints while it waits, so a job whose
//! processes start a few milliseconds apart lost a second; here every process listens
//! first, then connects to the lower-indexed ones with short retries, and hands the
//! sockets to timely's `initialize_networking_from_sockets`. Every other process also
//! opens a control connection to process 0 (`cluster_control.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use superflow_core::JobError;
use timely::communication::allocator::zero_copy::initialize::{
    initialize_networking_from_sockets, CommsGuard,
};
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

use crate::cluster_auth::{self, Challenge, ClusterSecret, Side, PROOF_BYTES};
use crate::cluster_control::{ControlLink, ControlRole};
use crate::cluster_error::ClusterError;
use crate::control::JobControl;
use crate::ClusterConfig;

/// How long a process waits for the others to come up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_millis(5);

/// This process's connections to the others, kept to sever them when its job fails:
/// a process whose job failed would otherwise wait for the others to close their
/// sockets, and they would go on waiting for its records.
#[derive(Debug)]
pub struct ClusterLinks {
    sockets: Vec<TcpStream>,
}

impl ClusterLinks {
    /// Closes every connection, so that the other processes see this one gone.
    pub fn sever(&self) {
        for socket in &self.sockets {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// This process's connections to the others, before timely starts.
pub struct ClusterSockets {
    /// One data socket per other process, by process index (`None` for this one).
    data: Vec<Option<TcpStream>>,
    /// The control connections (to every follower on process 0, to process 0 on the
    /// others).
    pub control: ControlRole,
}

/// Connects this process to the others: the data connections timely will use, and the
/// control connections. A cancellation of the job (`control`) stops the waiting.
/// `shape` describes the job this process runs (`JobPlan::shape`): a process that
/// connects with another shape (a different program, or another parallelism) is
/// refused, naming the first difference.
pub fn connect(
    cluster: &ClusterConfig,
    control: &JobControl,
    given_up: Option<&dyn Fn() -> Option<String>>,
    shape: &str,
) -> Result<ClusterSockets, JobError> {
    if cluster.secret.is_none() {
        crate::notice::warn_user_once(format!(
            "process {} connects to the job's other processes without authentication: give every process the same {}",
            cluster.process_id,
            crate::executor::ENV_SECRET
        ));
    }
    sockets(cluster, control, given_up, shape)
}

/// How often a process reconnecting to process 0 checks whether it gave the job up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(250);

/// Starts timely's network on the data sockets and builds this process's workers'
/// allocators. The guard joins the network threads when dropped.
pub fn start_network(
    cluster: &ClusterConfig,
    sockets: Vec<Option<TcpStream>>,
    threads: usize,
) -> Result<(Vec<AllocatorBuilder>, CommsGuard, ClusterLinks), JobError> {
    let links = ClusterLinks {
        sockets: sockets
            .iter()
            .flatten()
            .map(TcpStream::try_clone)
            .collect::<Result<_, _>>()
            .map_err(|e| ClusterError::network("cannot keep a socket", e))?,
    };
    let hooks = Hooks::default();
    let process =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(process, sockets, cluster.process_id, threads, hooks)
            .map_err(|e| ClusterError::network("cannot start the network", e))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        guard,
        links,
    ))
}

impl ClusterSockets {
    /// The data sockets, for `start_network`.
    pub fn take_data(&mut self) -> Vec<Option<TcpStream>> {
        std::mem::take(&mut self.data)
    }
}

/// What a connection is for, sent after the connecting process's index.
const DATA: u64 = 0;
const CONTROL: u64 = 1;

/// The most a job's shape may take in a handshake.
const MAX_SHAPE_BYTES: usize = 1 << 20;

/// What a handshake starts with: a connection without it is not a Superflow process
/// (a port scan, a health check) and is dropped, not taken for a peer.
const HELLO_MAGIC: &[u8; 8] = b"SFLOW\x00\x00\x01";

/// How long an accepted connection may take to send its handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends this process's index, the connection's kind, a challenge when the job has a
/// secret, and the job's shape; then, with a secret, checks the other process's answer
/// and answers its challenge. Fails if the other process does not know the secret.
fn handshake(
    stream: &mut TcpStream,
    me: usize,
    kind: u64,
    shape: &str,
    secret: Option<&ClusterSecret>,
) -> std::io::Result<()> {
    let mine = secret.map(|_| cluster_auth::challenge()).transpose()?;
    let mut hello = Vec::with_capacity(29 + PROOF_BYTES + shape.len());
    hello.extend_from_slice(HELLO_MAGIC);
    hello.extend_from_slice(&(me as u64).to_le_bytes());
    hello.extend_from_slice(&kind.to_le_bytes());
    hello.push(u8::from(mine.is_some()));
    if let Some(challenge) = &mine {
        hello.extend_from_slice(challenge);
    }
    hello.extend_from_slice(&(shape.len() as u32).to_le_bytes());
    hello.extend_from_slice(shape.as_bytes());
    stream.set_nodelay(true)?;
    stream.write_all(&hello)?;
    let (Some(secret), Some(mine)) = (secret, mine) else {
        return Ok(());
    };
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut answer = [0u8; PROOF_BYTES];
    let mut theirs: Challenge = [0u8; PROOF_BYTES];
    stream.read_exact(&mut answer)?;
    stream.read_exact(&mut theirs)?;
    if !secret.accepts(Side::Acceptor, &mine, me, kind, &answer) {
        return Err(std::io::Error::other(
            "it could not prove that it belongs to this job (its cluster secret differs)",
        ));
    }
    stream.write_all(&secret.answer(Side::Connector, &theirs, me, kind))?;
    stream.set_read_timeout(None)
}

/// A connecting process's handshake.
struct Hello {
    /// Its process index.
    id: usize,
    /// What the connection is for.
    kind: u64,
    /// Its challenge, when it has a cluster secret.
    challenge: Option<Challenge>,
    /// The shape of its job.
    shape: String,
}

/// Reads a handshake.
fn read_handshake(stream: &mut TcpStream) -> std::io::Result<Hello> {
    let mut word = [0u8; 8];
    stream.read_exact(&mut word)?;
    if &word != HELLO_MAGIC {
        return Err(std::io::Error::other(
            "it did not start with a Superflow handshake",
        ));
    }
    stream.read_exact(&mut word)?;
    let id = u64::from_le_bytes(word) as usize;
    stream.read_exact(&mut word)?;
    let kind = u64::from_le_bytes(word);
    let mut flag = [0u8; 1];
    stream.read_exact(&mut flag)?;
    let challenge = match flag[0] {
        0 => None,
        _ => {
            let mut challenge: Challenge = [0u8; PROOF_BYTES];
            stream.read_exact(&mut challenge)?;
            Some(challenge)
        }
    };
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_SHAPE_BYTES {
        return Err(std::io::Error::other(format!(
            "a job shape of {length} bytes (not a Superflow process of this version?)"
        )));
    }
    let mut shape = vec![0u8; length];
    stream.read_exact(&mut shape)?;
    Ok(Hello {
        id,
        kind,
        challenge,
        shape: String::from_utf8_lossy(&shape).into_owned(),
    })
}

/// Why a connection was refused as a peer.
#[derive(Debug, thiserror::Error)]
enum NotAPeer {
    #[error("it did not prove that it belongs to this job (it has no cluster secret; set the same SUPERFLOW_CLUSTER_SECRET on every process)")]
    NoSecret,
    #[error("it has a cluster secret and this process has none (set the same SUPERFLOW_CLUSTER_SECRET on every process)")]
    UnexpectedSecret,
    #[error("it did not prove that it belongs to this job (its cluster secret differs)")]
    WrongSecret,
    #[error("it did not answer the challenge: {0}")]
    NoAnswer(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// With a secret, proves to the connecting process that this one belongs to the job
/// and has it prove the same; `Err` says why the connection is not a peer.
fn authenticate(
    stream: &mut TcpStream,
    hello: &Hello,
    secret: Option<&ClusterSecret>,
) -> Result<(), NotAPeer> {
    let (secret, theirs) = match (secret, &hello.challenge) {
        (None, None) => return Ok(()),
        (Some(secret), Some(theirs)) => (secret, theirs),
        (Some(_), None) => return Err(NotAPeer::NoSecret),
        (None, Some(_)) => return Err(NotAPeer::UnexpectedSecret),
    };
    let mine = cluster_auth::challenge()?;
    let mut reply = Vec::with_capacity(2 * PROOF_BYTES);
    reply.extend_from_slice(&secret.answer(Side::Acceptor, theirs, hello.id, hello.kind));
    reply.extend_from_slice(&mine);
    stream.write_all(&reply)?;
    let mut answer = [0u8; PROOF_BYTES];
    stream.read_exact(&mut answer).map_err(NotAPeer::NoAnswer)?;
    if secret.accepts(Side::Connector, &mine, hello.id, hello.kind, &answer) {
        Ok(())
    } else {
        Err(NotAPeer::WrongSecret)
    }
}

/// Says that process `me` dropped a connection from `from` that is not a peer.
fn ignore_stray(me: usize, from: std::net::SocketAddr, why: &str) {
    crate::notice::warn_user(format!(
        "process {me} ignored a connection from {from} that is not a process of this job: {why}"
    ));
}

/// The first line where two job shapes differ, as an error of process `me`.
fn shape_mismatch(me: usize, peer: usize, mine: &str, theirs: &str) -> JobError {
    let (mut here, mut there) = (mine.lines(), theirs.lines());
    let difference = loop {
        match (here.next(), there.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => break format!("process {peer} has {b}, process {me} has {a}"),
            (Some(a), None) => break format!("process {me} has {a}, process {peer} has not"),
            (None, Some(b)) => break format!("process {peer} has {b}, process {me} has not"),
            (None, None) => break "they differ".to_string(),
        }
    };
    ClusterError::AnotherJob {
        me,
        peer,
        difference,
    }
    .into()
}

fn connect_with_retries(
    me: usize,
    index: usize,
    address: &str,
    deadline: Instant,
    control: &JobControl,
    given_up: Option<&dyn Fn() -> Option<String>>,
) -> Result<TcpStream, JobError> {
    let mut next_check = Instant::now();
    loop {
        if control.is_cancelled() {
            return Err(ClusterError::Cancelled {
                me,
                doing: format!("was connecting to process {index} at {address}"),
            }
            .into());
        }
        if let Some(given_up) = given_up.filter(|_| Instant::now() >= next_check) {
            if let Some(cause) = given_up() {
                return Err(ClusterError::GaveUp(cause).into());
            }
            next_check = Instant::now() + GIVE_UP_CHECK;
        }
        match TcpStream::connect(address) {
            Ok(stream) => return Ok(stream),
            Err(source) if Instant::now() >= deadline => {
                return Err(ClusterError::Unreachable {
                    me,
                    peer: index,
                    address: address.to_string(),
                    source,
                }
                .into())
            }
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

/// Connects to the lower-indexed processes and accepts the higher-indexed ones.
/// `given_up` (on a restart, with checkpoint storage) says whether process 0 gave up the
/// job, with its error: then connecting to process 0 stops.
fn sockets(
    cluster: &ClusterConfig,
    job: &JobControl,
    given_up: Option<&dyn Fn() -> Option<String>>,
    shape: &str,
) -> Result<ClusterSockets, JobError> {
    let me = cluster.process_id;
    let addresses = &cluster.addresses;
    let own = addresses.get(me).ok_or(ClusterError::NoAddress(me))?;
    let listener = TcpListener::bind(own.as_str())
        .map_err(|e| ClusterError::network(format!("process {me} cannot listen on {own}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ClusterError::network(format!("listener on {own}"), e))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut data: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();
    let mut control: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();
    for (index, address) in addresses.iter().enumerate().take(me) {
        let kinds: &[u64] = if index == 0 {
            &[DATA, CONTROL]
        } else {
            &[DATA]
        };
        for &kind in kinds {
            let watch = given_up.filter(|_| index == 0);
            let mut stream = connect_with_retries(me, index, address, deadline, job, watch)?;
            handshake(&mut stream, me, kind, shape, cluster.secret.as_ref())
                .map_err(|e| ClusterError::network(format!("handshake with process {index}"), e))?;
            let slot = if kind == DATA {
                &mut data
            } else {
                &mut control
            };
            slot[index] = Some(stream);
        }
    }
    let higher = addresses.len() - me - 1;
    let mut missing = if me == 0 { 2 * higher } else { higher };
    while missing > 0 {
        match listener.accept() {
            Ok((mut stream, from)) => {
                // A connection that is not a peer of this job (garbage, silence past
                // the timeout, a kind or index no peer has) is dropped with a warning,
                // and the wait goes on: a port scan must not end the job.
                let hello = stream
                    .set_nonblocking(false)
                    .and_then(|_| stream.set_nodelay(true))
                    .and_then(|_| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
                    .and_then(|_| read_handshake(&mut stream));
                let hello = match hello {
                    Ok(hello) => hello,
                    Err(e) => {
                        let why = match e.kind() {
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                                format!(
                                    "it sent no handshake within {} s",
                                    HANDSHAKE_TIMEOUT.as_secs()
                                )
                            }
                            std::io::ErrorKind::UnexpectedEof => {
                                "it closed before a whole handshake".to_string()
                            }
                            _ => e.to_string(),
                        };
                        ignore_stray(me, from, &why);
                        continue;
                    }
                };
                // Nothing the connection said counts before it proved it belongs to
                // the job: an impostor cannot end the job with a wrong shape either.
                let proven = authenticate(&mut stream, &hello, cluster.secret.as_ref())
                    .and_then(|()| Ok(stream.set_read_timeout(None)?));
                if let Err(why) = proven {
                    ignore_stray(me, from, &why.to_string());
                    continue;
                }
                let Hello {
                    id,
                    kind,
                    shape: theirs,
                    ..
                } = hello;
                let slot = match kind {
                    DATA => &mut data,
                    CONTROL if me == 0 => &mut control,
                    _ => {
                        ignore_stray(me, from, &format!("a connection of unknown kind {kind}"));
                        continue;
                    }
                };
                if id <= me || id >= addresses.len() || slot[id].is_some() {
                    ignore_stray(
                        me,
                        from,
                        &format!(
                            "a connection from process {id}, which this process does not expect"
                        ),
                    );
                    continue;
                }
                if theirs != shape {
                    return Err(shape_mismatch(me, id, shape, &theirs));
                }
                slot[id] = Some(stream);
                missing -= 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if job.is_cancelled() {
                    return Err(ClusterError::Cancelled {
                        me,
                        doing: format!(
                            "waited for {missing} connection(s) from the other process(es)"
                        ),
                    }
                    .into());
                }
                if Instant::now() >= deadline {
                    return Err(ClusterError::Waited {
                        me,
                        seconds: CONNECT_TIMEOUT.as_secs(),
                        missing,
                    }
                    .into());
                }
                std::thread::sleep(RETRY);
            }
            Err(e) => return Err(ClusterError::network(format!("accept on {own}"), e).into()),
        }
    }
    let link = |(peer, socket): (usize, TcpStream)| {
        ControlLink::new(peer, socket).map_err(|source| ClusterError::Control { peer, source })
    };
    let mut control = control
        .into_iter()
        .enumerate()
        .filter_map(|(peer, s)| s.map(|s| (peer, s)))
        .map(link)
        .collect::<Result<Vec<_>, _>>()?;
    let control = if me == 0 {
        ControlRole::Leader(control)
    } else {
        ControlRole::Follower(control.pop().ok_or(ClusterError::NoLeader)?)
    };
    Ok(ClusterSockets { data, control })
}
