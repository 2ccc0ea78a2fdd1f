//! The end of a finished job on the coordinator thread.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::checkpoint::storage::{write_metadata, PartMetadata};
use crate::checkpoint::CheckpointError;
use crate::cluster_control::ControlMessage;

use super::writer::write_part_file;
use super::{CoordinatorThread, EndAction, Message};

/// The end of a finished job: every process writes its subtasks' final state into one
/// last checkpoint, process 0 completes it, and then every process runs its end actions
/// (transactional sinks commit). A crash in between restores that checkpoint, whose
/// sinks then commit on restart.
impl CoordinatorThread {
    pub(super) fn end_deadline(&self) -> Instant {
        Instant::now()
            + self
                .settings
                .config
                .as_ref()
                .map_or(Duration::from_secs(60), |c| c.timeout)
    }

    pub(super) fn take_end_actions(&self) -> Vec<EndAction> {
        self.shared
            .end_actions
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    /// Writes this process's final parts into `dir`.
    pub(super) fn write_finals(
        &self,
        dir: &std::path::Path,
    ) -> Result<Vec<PartMetadata>, CheckpointError> {
        let compression = self.compression();
        let mut parts = Vec::new();
        for report in self.finals.values() {
            parts.extend(write_part_file(dir, report, compression, Instant::now())?);
        }
        Ok(parts)
    }

    /// Process 0 (or the only one).
    pub(super) fn finish_job(&mut self, receiver: &Receiver<Message>) {
        let actions = self.take_end_actions();
        let deadline = self.end_deadline();
        let followers = self.peers.follower_ids();
        let mut any_actions = !actions.is_empty();
        let mut problems = Vec::new();
        for &peer in &followers {
            let answer = self.wait_for(receiver, deadline, |p, m| {
                p == peer
                    && matches!(
                        m,
                        ControlMessage::Finishing { .. }
                            | ControlMessage::Ended { .. }
                            | ControlMessage::Disconnected(_)
                    )
            });
            match answer {
                Some((_, ControlMessage::Finishing { end_actions })) => any_actions |= end_actions,
                Some((_, ControlMessage::Disconnected(reason))) => {
                    problems.push(format!("process {peer} is gone ({reason})"))
                }
                Some(_) => problems.push(format!("process {peer} failed or was cancelled")),
                None => problems.push(format!("process {peer} did not finish in time")),
            }
        }
        if let Some(reason) = Self::unfinished(&problems) {
            return self.abandon_end(reason);
        }
        if let (true, Some(storage)) = (any_actions, &self.storage) {
            let id = self.shared.triggered.load(Ordering::Acquire) + 1;
            let dir = storage.checkpoint_dir(id);
            self.peers.broadcast(&ControlMessage::FinalCheckpoint {
                id,
                dir: dir.clone(),
            });
            let mut parts = match self.write_finals(&dir) {
                Ok(parts) => parts,
                Err(e) => return self.abandon_end(e.to_string()),
            };
            let mut problems = Vec::new();
            for &peer in &followers {
                let answer = self.wait_for(receiver, deadline, |p, m| {
                    let for_this = matches!(m,
                        ControlMessage::Parts { id: i, .. } | ControlMessage::PartFailed { id: i, .. } if *i == id);
                    p == peer && (for_this || matches!(m, ControlMessage::Disconnected(_)))
                });
                match answer {
                    Some((_, ControlMessage::Parts { parts: theirs, .. })) => parts.extend(theirs),
                    Some((_, ControlMessage::PartFailed { reason, .. })) => {
                        problems.push(format!("process {peer}: {reason}"))
                    }
                    Some(_) => problems.push(format!("process {peer} is gone")),
                    None => problems.push(format!("process {peer} did not write its part in time")),
                }
            }
            if let Some(reason) = Self::unfinished(&problems) {
                return self.abandon_end(reason);
            }
            parts.sort_by_key(|p| (p.node, p.subtask));
            let metadata = self.metadata(id, false, crate::time::processing_time_now(), parts);
            if let Err(e) = write_metadata(&dir, &metadata) {
                return self.abandon_end(e.to_string());
            }
            self.peers.broadcast(&ControlMessage::Completed { id });
        } else {
            self.peers.broadcast(&ControlMessage::NoFinalCheckpoint);
        }
        for action in actions {
            if let Err(e) = action() {
                self.end_error(e.to_string());
            }
        }
        if !any_actions {
            return;
        }
        for &peer in &followers {
            let answer = self.wait_for(receiver, deadline, |p, m| {
                p == peer
                    && matches!(
                        m,
                        ControlMessage::EndDone { .. } | ControlMessage::Disconnected(_)
                    )
            });
            match answer {
                Some((_, ControlMessage::EndDone { errors })) => {
                    for e in errors {
                        self.end_error(format!("process {peer}: {e}"));
                    }
                }
                _ => self.end_error(format!(
                    "process {peer} did not report that it committed its output"
                )),
            }
        }
    }

    /// Why the job's end cannot go on, given what went wrong on other processes.
    pub(super) fn unfinished(problems: &[String]) -> Option<String> {
        (!problems.is_empty()).then(|| {
            format!(
                "the job did not finish on every process: {}",
                problems.join("; ")
            )
        })
    }

    /// Process 0 gives up the end of the job: no process commits.
    pub(super) fn abandon_end(&mut self, reason: String) {
        tracing::warn!("the final checkpoint could not be written: {reason}");
        self.peers.broadcast(&ControlMessage::EndAbandoned {
            reason: reason.clone(),
        });
        self.end_error(format!(
            "the final checkpoint could not be written ({reason}); the output of the end of the job is not committed"
        ));
    }

    /// Any process but process 0: takes part in the final checkpoint process 0 asks
    /// for, then commits.
    pub(super) fn finish_as_follower(&mut self, receiver: &Receiver<Message>) {
        let actions = self.take_end_actions();
        let deadline = self.end_deadline();
        self.peers.send_to_leader(&ControlMessage::Finishing {
            end_actions: !actions.is_empty(),
        });
        let instruction = self.wait_for(receiver, deadline, |_, m| {
            matches!(
                m,
                ControlMessage::FinalCheckpoint { .. }
                    | ControlMessage::NoFinalCheckpoint
                    | ControlMessage::EndAbandoned { .. }
                    | ControlMessage::Disconnected(_)
            )
        });
        match instruction {
            Some((_, ControlMessage::FinalCheckpoint { id, dir })) => {
                let written = self
                    .own_dir(id, dir, false)
                    .and_then(|dir| self.write_finals(&dir));
                match written {
                    Ok(parts) => self
                        .peers
                        .send_to_leader(&ControlMessage::Parts { id, parts }),
                    Err(e) => {
                        let reason = e.to_string();
                        self.peers
                            .send_to_leader(&ControlMessage::PartFailed { id, reason: reason.clone() });
                        return self.end_error(format!(
                            "the final checkpoint could not be written ({reason}); the output of the end of the job is not committed"
                        ));
                    }
                }
                let answer = self.wait_for(receiver, deadline, |_, m| {
                    matches!(m, ControlMessage::Completed { id: i } if *i == id)
                        || matches!(
                            m,
                            ControlMessage::EndAbandoned { .. } | ControlMessage::Disconnected(_)
                        )
                });
                if !matches!(answer, Some((_, ControlMessage::Completed { .. }))) {
                    return self.end_error(format!(
                        "process 0 did not complete the final checkpoint ({answer:?}); the output of the end of the job is not committed"
                    ));
                }
            }
            Some((_, ControlMessage::NoFinalCheckpoint)) => {}
            Some((_, ControlMessage::EndAbandoned { reason })) => {
                return self.end_error(format!(
                    "{reason}; the output of the end of the job is not committed"
                ))
            }
            other => {
                return self.end_error(format!(
                    "process 0 did not end the job ({other:?}); the output of the end of the job is not committed"
                ))
            }
        }
        let mut errors = Vec::new();
        for action in actions {
            if let Err(e) = action() {
                errors.push(e.to_string());
            }
        }
        self.peers.send_to_leader(&ControlMessage::EndDone {
            errors: errors.clone(),
        });
        for e in errors {
            self.end_error(e);
        }
    }

    pub(super) fn end_errors_empty(&self) -> bool {
        self.shared.end_errors.lock().is_ok_and(|e| e.is_empty())
    }

    pub(super) fn end_error(&self, error: String) {
        if let Ok(mut errors) = self.shared.end_errors.lock() {
            errors.push(error);
        }
    }
}
