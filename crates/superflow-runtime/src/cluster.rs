//! Connects the processes of a job before timely takes the sockets over. Timely's own
//! setup polls its listener once a second and prints while it waits, so a job whose
//! processes start a few milliseconds apart lost a second; here every process listens
//! first, then connects to the lower-indexed ones with short retries, and hands the
//! sockets to timely's `initialize_networking_from_sockets`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use superflow_core::JobError;
use timely::communication::allocator::zero_copy::initialize::{
    initialize_networking_from_sockets, CommsGuard,
};
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

use crate::ClusterConfig;

/// How long a process waits for the others to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_millis(5);

/// This process's connections to the others, kept to sever them when its job fails:
/// a process whose job failed would otherwise wait for the others to close their
/// sockets, and they would go on waiting for its records.
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

/// Connects this process to the others and builds its workers' allocators. The guard
/// joins the network threads when dropped.
pub fn connect(
    cluster: &ClusterConfig,
    threads: usize,
) -> Result<(Vec<AllocatorBuilder>, CommsGuard, ClusterLinks), JobError> {
    let sockets = sockets(cluster)?;
    let links = ClusterLinks {
        sockets: sockets
            .iter()
            .flatten()
            .map(TcpStream::try_clone)
            .collect::<Result<_, _>>()
            .map_err(|e| cluster_error(format!("cannot keep a socket: {e}")))?,
    };
    let hooks = Hooks::default();
    let process =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(process, sockets, cluster.process_id, threads, hooks)
            .map_err(|e| JobError::Cluster(format!("cannot start the network: {e}")))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        guard,
        links,
    ))
}

fn cluster_error(what: String) -> JobError {
    JobError::Cluster(what)
}

/// One socket per other process, by process index (`None` for this process).
fn sockets(cluster: &ClusterConfig) -> Result<Vec<Option<TcpStream>>, JobError> {
    let me = cluster.process_id;
    let addresses = &cluster.addresses;
    let own = addresses
        .get(me)
        .ok_or_else(|| cluster_error(format!("process {me} has no address")))?;
    let listener = TcpListener::bind(own.as_str())
        .map_err(|e| cluster_error(format!("process {me} cannot listen on {own}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| cluster_error(format!("listener on {own}: {e}")))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut sockets: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();
    for (index, address) in addresses.iter().enumerate().take(me) {
        let stream = loop {
            match TcpStream::connect(address.as_str()) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(cluster_error(format!(
                        "process {me} cannot connect to process {index} at {address}: {e}"
                    )))
                }
                Err(_) => std::thread::sleep(RETRY),
            }
        };
        let mut stream = stream;
        stream
            .set_nodelay(true)
            .and_then(|_| stream.write_all(&(me as u64).to_ne_bytes()))
            .map_err(|e| cluster_error(format!("handshake with process {index}: {e}")))?;
        sockets[index] = Some(stream);
    }
    let mut missing = addresses.len() - me - 1;
    while missing > 0 {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let mut id = [0u8; 8];
                stream
                    .set_nonblocking(false)
                    .and_then(|_| stream.set_nodelay(true))
                    .and_then(|_| stream.read_exact(&mut id))
                    .map_err(|e| cluster_error(format!("handshake on {own}: {e}")))?;
                let id = u64::from_ne_bytes(id) as usize;
                if id <= me || id >= addresses.len() || sockets[id].is_some() {
                    return Err(cluster_error(format!(
                        "process {me} got a connection from an unexpected process {id}"
                    )));
                }
                sockets[id] = Some(stream);
                missing -= 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(cluster_error(format!(
                        "process {me} waited {}s for {missing} other process(es) to connect",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(RETRY);
            }
            Err(e) => return Err(cluster_error(format!("accept on {own}: {e}"))),
        }
    }
    Ok(sockets)
}
