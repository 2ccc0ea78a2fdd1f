"""``JobClient``, ``JobStatus`` and ``JobID`` (``pyflink.common``): a job started with
``execute_async`` runs on a thread of this process (and its worker processes) while the
caller goes on; the client cancels it, takes savepoints, and hands over its result.
As in PyFlink, each request returns a future (``concurrent.futures.Future``:
``result()``, ``done()``, ``exception()``)."""

import threading
import uuid
from concurrent.futures import Future
from enum import Enum
from typing import Any, Callable, Optional


class JobStatus(Enum):
    """The states of a job, as Flink names them."""
    INITIALIZING = 0
    CREATED = 1
    RUNNING = 2
    FAILING = 3
    FAILED = 4
    CANCELLING = 5
    CANCELED = 6
    FINISHED = 7
    RESTARTING = 8
    SUSPENDED = 9
    RECONCILING = 10

    def is_globally_terminal_state(self) -> bool:
        return self in (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.FINISHED)

    def is_terminal_state(self) -> bool:
        return self.is_globally_terminal_state() or self is JobStatus.SUSPENDED


class JobID:
    """The id of a job: 32 hex digits."""

    def __init__(self, hex_string: Optional[str] = None):
        self._hex = hex_string or uuid.uuid4().hex

    def to_hex_string(self) -> str:
        return self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobID) and self._hex == other._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"JobID({self._hex})"


def _in_background(call: Callable[[], Any]) -> Future:
    """Runs ``call`` on a thread of its own; its outcome completes the future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(e)

    threading.Thread(target=run, name="superflow-job-client", daemon=True).start()
    return future


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class JobClient:
    """A job running in the background (``StreamExecutionEnvironment.execute_async``)."""

    def __init__(self, job_id: JobID, handle: Any, outcome: Future,
                 savepoint_dir: Optional[str]):
        self._job_id = job_id
        self._handle = handle
        self._outcome = outcome
        self._savepoint_dir = savepoint_dir
        self._cancelled = False

    def get_job_id(self) -> JobID:
        return self._job_id

    def get_job_status(self) -> Future:
        """RUNNING until the job ends; then FINISHED (a stop with a savepoint too),
        CANCELED after ``cancel()``, or FAILED."""
        if not self._outcome.done():
            return _done(JobStatus.RUNNING)
        if self._outcome.exception() is not None:
            return _done(JobStatus.FAILED)
        return _done(JobStatus.CANCELED if self._cancelled else JobStatus.FINISHED)

    def cancel(self) -> Future:
        """Stops the job's sources; the job ends with the records already read, and its
        result says what it did. The future completes once the request is made."""
        self._cancelled = True
        return _in_background(self._handle.cancel)

    def _directory(self, savepoint_directory: Optional[str]) -> str:
        directory = savepoint_directory or self._savepoint_dir
        if not directory:
            raise ValueError(
                "no savepoint directory: pass savepoint_directory, or set "
                "execution.checkpointing.savepoint-dir in the environment's Configuration")
        return str(directory)

    def trigger_savepoint(self, savepoint_directory: Optional[str] = None,
                          formatType: Any = None) -> Future:
        """Takes a savepoint into the directory (or object store URL) while the job runs;
        the future's result is its path. Superflow writes one savepoint format, whatever
        ``formatType`` says."""
        directory = self._directory(savepoint_directory)
        return _in_background(lambda: self._handle.savepoint(directory))

    def stop_with_savepoint(self, advance_to_end_of_time: bool = False,
                            savepoint_directory: Optional[str] = None,
                            formatType: Any = None) -> Future:
        """Takes a savepoint and stops the job there; the future's result is its path.
        With ``advance_to_end_of_time`` the sources first send the final watermark, so
        every event-time timer and window fires before the savepoint (``stop --drain``);
        without it they stay pending, and a job restored from the savepoint fires them."""
        directory = self._directory(savepoint_directory)
        drain = bool(advance_to_end_of_time)
        return _in_background(lambda: self._handle.savepoint(directory, True, drain))

    def get_job_execution_result(self) -> Future:
        """Completes with the job's ``JobExecutionResult`` when it ends, or with its
        error (``JobExecutionError``)."""
        return self._outcome


__all__ = ["JobClient", "JobID", "JobStatus"]
