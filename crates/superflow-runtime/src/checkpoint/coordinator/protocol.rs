//! The coordinator and the other processes of the job: process 0 leads (it triggers,
//! and completes once every process reported its parts), the others follow over the
//! control channel.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use superflow_core::OperatorFailure;

use crate::cluster_control::{ControlMessage, ControlRole, ControlWriter};
use crate::control::JobControl;

use super::{CoordinatorThread, Message};

/// The other processes of the job, as the coordinator talks to them.
pub(super) enum Peers {
    Alone,
    Leader(Vec<ControlWriter>),
    Follower(ControlWriter),
}

impl Peers {
    /// Starts a reader thread per control connection, delivering into the coordinator's
    /// channel (a cancellation is applied at once).
    pub(super) fn connect(
        role: ControlRole,
        sender: &Sender<Message>,
        control: &Arc<JobControl>,
    ) -> Self {
        let split = |link: crate::cluster_control::ControlLink| {
            let sender = sender.clone();
            let control = Arc::clone(control);
            let peer = link.peer();
            link.split(move |peer, message| {
                if message == ControlMessage::Cancel {
                    control.cancel();
                }
                let _ = sender.send(Message::Remote(peer, message));
            })
            .map_err(|e| (peer, e))
        };
        let result = match role {
            ControlRole::Alone => Ok(Peers::Alone),
            ControlRole::Leader(links) => links
                .into_iter()
                .map(split)
                .collect::<Result<Vec<_>, _>>()
                .map(Peers::Leader),
            ControlRole::Follower(link) => split(link).map(Peers::Follower),
        };
        result.unwrap_or_else(|(peer, e)| {
            control.fail(OperatorFailure {
                fatal: false,
                operator: "<checkpoint coordinator>".into(),
                subtask: 0,
                cause: format!("control connection to process {peer}: {e}"),
                location: None,
            });
            Peers::Alone
        })
    }

    pub(super) fn followers(&self) -> usize {
        match self {
            Peers::Leader(followers) => followers.len(),
            _ => 0,
        }
    }

    /// The process indexes of the followers (process 0).
    pub(super) fn follower_ids(&self) -> Vec<usize> {
        match self {
            Peers::Leader(followers) => followers.iter().map(|f| f.peer).collect(),
            _ => Vec::new(),
        }
    }

    pub(super) fn is_follower(&self) -> bool {
        matches!(self, Peers::Follower(_))
    }

    /// Sends `message` to every follower (process 0); a follower that is gone makes its
    /// run fail on its own.
    pub(super) fn broadcast(&mut self, message: &ControlMessage) {
        if let Peers::Leader(followers) = self {
            for follower in followers {
                if let Err(e) = follower.send(message) {
                    tracing::debug!("control message not sent: {e}");
                }
            }
        }
    }

    /// Sends `message` to process 0 (a follower).
    pub(super) fn send_to_leader(&mut self, message: &ControlMessage) {
        if let Peers::Follower(leader) = self {
            if let Err(e) = leader.send(message) {
                tracing::debug!("control message not sent: {e}");
            }
        }
    }

    pub(super) fn close(&self) {
        match self {
            Peers::Alone => {}
            Peers::Leader(followers) => followers.iter().for_each(ControlWriter::close),
            Peers::Follower(leader) => leader.close(),
        }
    }
}

impl CoordinatorThread {
    pub(super) fn handle_remote(&mut self, peer: usize, message: ControlMessage) {
        match message {
            ControlMessage::Ready => {
                self.ready += 1;
                self.schedule_first();
            }
            ControlMessage::Trigger {
                id,
                dir,
                savepoint,
                after,
            } => match self.own_dir(id, dir, savepoint) {
                Ok(dir) => self.begin(id, dir, savepoint, after, None),
                Err(e) => self.peers.send_to_leader(&ControlMessage::PartFailed {
                    id,
                    reason: e.to_string(),
                }),
            },
            ControlMessage::Parts { id, parts } => match self.pending.get_mut(&id) {
                Some(pending) => {
                    pending.remote_parts.extend(parts);
                    pending.waiting.remove(&peer);
                    self.check_done(id);
                }
                // The final checkpoint's parts, or a checkpoint abandoned meanwhile.
                None => self
                    .inbox
                    .push_back((peer, ControlMessage::Parts { id, parts })),
            },
            ControlMessage::PartFailed { id, reason } => {
                if self.pending.contains_key(&id) {
                    self.fail(id, format!("process {peer}: {reason}"));
                } else {
                    self.inbox
                        .push_back((peer, ControlMessage::PartFailed { id, reason }));
                }
            }
            ControlMessage::Completed { id } => match self.pending.remove(&id) {
                Some(mut pending) => {
                    let metadata = self.metadata_of(id, &mut pending);
                    self.record(id, &pending, &metadata, None);
                    self.shared.completed.fetch_max(id, Ordering::AcqRel);
                }
                None => self
                    .inbox
                    .push_back((peer, ControlMessage::Completed { id })),
            },
            ControlMessage::Aborted { id } => {
                if let Some(mut pending) = self.pending.remove(&id) {
                    let metadata = self.metadata_of(id, &mut pending);
                    let reason = "process 0 abandoned it".to_string();
                    self.record(id, &pending, &metadata, Some(reason));
                }
            }
            ControlMessage::Disconnected(reason) => {
                // Gone without ending its run (killed): this run cannot go on, and the
                // data connections may take seconds to tell. A process that ended its
                // run said so first, and one that cancelled the job sent `Cancel` first.
                if !self.gone.contains(&peer) && !self.control.is_cancelled() {
                    self.control.fail(OperatorFailure {
                        operator: "<network>".into(),
                        subtask: 0,
                        cause: format!(
                            "lost the connection to process {peer} of the job ({reason})"
                        ),
                        location: None,
                        fatal: false,
                    });
                }
                self.fail_waiting_on(peer, &format!("process {peer} is gone ({reason})"));
                self.inbox
                    .push_back((peer, ControlMessage::Disconnected(reason)));
            }
            ControlMessage::Ended { failure } => {
                self.fail_waiting_on(peer, &format!("process {peer} ended its run"));
                self.inbox
                    .push_back((peer, ControlMessage::Ended { failure }));
            }
            // Applied by the reader thread.
            ControlMessage::Cancel | ControlMessage::Start { .. } => {}
            end => self.inbox.push_back((peer, end)),
        }
    }

    /// Fails the pending checkpoints that wait for parts of process `peer`, which will
    /// send none in this run.
    pub(super) fn fail_waiting_on(&mut self, peer: usize, reason: &str) {
        self.gone.insert(peer);
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.contains(&peer))
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            self.end_pending(id, reason.to_string(), false);
        }
    }

    /// Waits until `deadline` for a message of another process that `accept` takes,
    /// handling everything else meanwhile.
    pub(super) fn wait_for(
        &mut self,
        receiver: &Receiver<Message>,
        deadline: Instant,
        accept: impl Fn(usize, &ControlMessage) -> bool,
    ) -> Option<(usize, ControlMessage)> {
        loop {
            if let Some(at) = self.inbox.iter().position(|(p, m)| accept(*p, m)) {
                return self.inbox.remove(at);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return None;
            }
            match receiver.recv_timeout(wait) {
                Ok(Message::Remote(peer, message)) if accept(peer, &message) => {
                    return Some((peer, message))
                }
                Ok(Message::Shutdown(_)) => {}
                Ok(message) => self.handle(message),
                Err(_) => return None,
            }
        }
    }

    /// When this process's run failed only because another process went away, waits a
    /// moment for the others to say which of their operators failed, so that the job
    /// reports the cause rather than the lost connection.
    pub(super) fn learn_remote_failure(&mut self, receiver: &Receiver<Message>) {
        if self.control.failure().is_some_and(|f| is_own_failure(&f)) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..self.peers.followers() {
            let answer = self.wait_for(receiver, deadline, |_, m| {
                matches!(
                    m,
                    ControlMessage::Ended { .. } | ControlMessage::Disconnected(_)
                )
            });
            match answer {
                Some((_, ControlMessage::Ended { failure: Some(f) })) => {
                    if let Ok(mut slot) = self.shared.remote_failure.lock() {
                        *slot = Some(f);
                    }
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}

/// Whether a failure started in this process, rather than being the lost connection
/// to a process that failed (seen by the network, or by a worker whose network
/// operations panicked).
pub(super) fn is_own_failure(failure: &OperatorFailure) -> bool {
    failure.operator != "<network>" && failure.operator != "<worker>"
}
