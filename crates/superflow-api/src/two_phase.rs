//! The stage that runs a [`TwoPhaseCommitSink`]: one transaction per checkpoint interval,
//! pre-committed when the checkpoint is taken, committed when it completes (the stage
//! looks every 50 ms), and committed after the final checkpoint when the job finishes.

use std::time::Instant;

use superflow_core::Data;
use superflow_runtime::checkpoint::OperatorSnapshot;
use superflow_runtime::sink::{TransactionContext, TwoPhaseCommitSink};
use superflow_runtime::{processing_time_now, OneInputStage, Records, Stage, StageContext, WakeUp};

/// The name of the pre-committed transactions in checkpoints.
const PENDING_STATE: &str = "pending-transactions";

/// How often the stage looks for completed checkpoints and ticks the sink.
const POLL_MS: i64 = 50;

pub(crate) struct TwoPhaseCommitStage<T, S: TwoPhaseCommitSink<T>> {
    ctx: StageContext,
    sink: Option<S>,
    wake: WakeUp,
    current: Option<S::Transaction>,
    /// Pre-committed transactions and the checkpoint each belongs to.
    pending: Vec<(u64, S::Transaction)>,
    _in: std::marker::PhantomData<fn(T)>,
}

impl<T: Data, S: TwoPhaseCommitSink<T>> TwoPhaseCommitStage<T, S> {
    pub(crate) fn new(ctx: &StageContext, wake: WakeUp, sink: S) -> Self {
        TwoPhaseCommitStage {
            ctx: ctx.clone(),
            sink: Some(sink),
            wake,
            current: None,
            pending: Vec::new(),
            _in: std::marker::PhantomData,
        }
    }

    fn transaction_context(&self) -> TransactionContext {
        TransactionContext {
            subtask: self.ctx.subtask,
            parallelism: self.ctx.parallelism,
            run_id: self.ctx.checkpoints.run_id(),
            lineage: self.ctx.checkpoints.lineage(),
            restored: self
                .ctx
                .restored
                .as_ref()
                .map(|r| (r.checkpoint, r.path.display().to_string())),
        }
    }

    fn sink(&mut self) -> &mut S {
        match self.sink.as_mut() {
            Some(sink) => sink,
            None => self
                .ctx
                .fail("the sink was used after the end of its input"),
        }
    }

    fn check<R>(&self, result: Result<R, superflow_core::UserError>) -> R {
        match result {
            Ok(r) => r,
            Err(e) => self.ctx.fail_with(e),
        }
    }

    /// Recovers: commits the restored checkpoint's transactions of this subtask, after
    /// subtask 0 removed what earlier runs left beyond them; starts a transaction.
    fn recover(&mut self) {
        let tctx = self.transaction_context();
        let mine: Vec<(u64, S::Transaction)> =
            self.ctx.restore_list(PENDING_STATE).unwrap_or_default();
        let all: Vec<S::Transaction> = match &self.ctx.restored {
            Some(restored) if self.ctx.subtask == 0 => {
                let id = self.ctx.state_id(PENDING_STATE);
                let all: Result<Vec<(u64, S::Transaction)>, _> = restored.list(&id, 0, 1);
                self.check(all.map_err(Into::into))
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect()
            }
            _ => Vec::new(),
        };
        let ctx = self.ctx.clone();
        let sink = self.sink();
        let result = ctx.guard(|| {
            sink.recover(&tctx, &all)?;
            for (checkpoint, transaction) in mine {
                sink.commit(checkpoint, transaction)?;
            }
            sink.begin_transaction(&tctx)
        });
        self.current = Some(self.check(result));
    }

    /// Commits every pre-committed transaction whose checkpoint completed.
    fn commit_completed(&mut self) {
        let completed = self.ctx.completed_checkpoint();
        if !self.pending.iter().any(|(id, _)| *id <= completed) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _)| *id <= completed);
        self.pending = later;
        let ctx = self.ctx.clone();
        let sink = self.sink();
        let result = ctx.guard(|| {
            for (checkpoint, transaction) in due {
                sink.commit(checkpoint, transaction)?;
            }
            Ok(())
        });
        self.check(result);
    }

    fn current(&mut self) -> S::Transaction {
        match self.current.take() {
            Some(t) => t,
            None => self.ctx.fail("the sink has no open transaction"),
        }
    }
}

impl<T: Data, S: TwoPhaseCommitSink<T>> OneInputStage<T> for TwoPhaseCommitStage<T, S> {
    fn push(&mut self, batch: &mut Records<T>) {
        self.ctx.counters.add_in(batch.len());
        let (ctx, sink, current) = (&self.ctx, &mut self.sink, &mut self.current);
        let result = ctx.guard(|| match (sink.as_mut(), current.as_mut()) {
            (Some(sink), Some(transaction)) => sink.invoke(transaction, &mut batch.values),
            _ => Err("the sink has no open transaction".into()),
        });
        self.check(result);
        batch.clear();
    }
}

impl<T: Data, S: TwoPhaseCommitSink<T>> Stage for TwoPhaseCommitStage<T, S> {
    fn next_stage(&mut self) -> Option<&mut dyn Stage> {
        None
    }

    fn open(&mut self) {
        self.recover();
        // Look soon, for checkpoints completed meanwhile, and then every POLL_MS.
        self.wake.request(processing_time_now());
    }

    fn on_processing_time(&mut self, now: i64) {
        if self.sink.is_none() {
            return;
        }
        self.commit_completed();
        let (ctx, sink, current) = (&self.ctx, &mut self.sink, &mut self.current);
        let result = ctx.guard(|| match (sink.as_mut(), current.as_mut()) {
            (Some(sink), Some(transaction)) => sink.tick(transaction, Instant::now()),
            _ => Ok(()),
        });
        self.check(result);
        self.wake.request(now + POLL_MS);
    }

    fn snapshot(&mut self, out: &mut OperatorSnapshot) {
        if let (Some(id), Some(_)) = (out.checkpoint(), self.sink.as_ref()) {
            let mut transaction = self.current();
            let tctx = self.transaction_context();
            let ctx = self.ctx.clone();
            let sink = self.sink();
            let result = ctx.guard(|| {
                sink.pre_commit(&mut transaction)?;
                Ok((transaction, sink.begin_transaction(&tctx)?))
            });
            let (done, next) = self.check(result);
            self.pending.push((id, done));
            self.current = Some(next);
        }
        if let Err(e) = out.add_list(self.ctx.state_id(PENDING_STATE), &self.pending, false) {
            self.ctx.fail(format!(
                "cannot write the sink's transactions to a checkpoint: {e}"
            ));
        }
    }

    fn finish(&mut self) {
        let mut transaction = self.current();
        let ctx = self.ctx.clone();
        let sink = self.sink();
        let result = ctx.guard(|| sink.pre_commit(&mut transaction));
        self.check(result);
        self.pending.push((u64::MAX, transaction));
        // The final snapshot (taken next) records every pending transaction; they are
        // committed once the job has finished and its final checkpoint is written.
        let (Some(mut sink), pending) = (self.sink.take(), self.pending.clone()) else {
            return;
        };
        let name = self.ctx.name.to_string();
        self.ctx.checkpoints.on_finish(Box::new(move || {
            for (checkpoint, transaction) in pending {
                sink.commit(checkpoint, transaction).map_err(|cause| {
                    superflow_runtime::checkpoint::CommitError {
                        sink: name.clone(),
                        cause,
                    }
                })?;
            }
            Ok(())
        }));
    }
}
