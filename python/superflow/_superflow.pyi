"""Type stubs of the native module (crates/superflow-python)."""

from typing import Any, Callable, Dict, List, Optional

class JobExecutionError(RuntimeError):
    """A job failed: a user function raised, or the engine could not run it."""

class JobHandle:
    """A running job, for another Python thread: ``execute`` hands it the job once the
    job starts, and marks it ended however the job ends."""

    def __init__(self) -> None: ...

    def cancel(self) -> None:
        """Stops the job's sources (waits for the job to start)."""

    def savepoint(self, dir: str, stop: bool = False, drain: bool = False) -> str:
        """Takes a savepoint into ``dir``; with ``stop`` the job ends there, after the
        final watermark if ``drain``. Returns the savepoint's path."""

    def is_ended(self) -> bool: ...

def execute(job_name: str, plan: List[Dict[str, Any]], settings: Dict[str, Any],
            watch: Optional[Callable[[], Optional[str]]] = None,
            handle: Optional[JobHandle] = None) -> Dict[str, Any]:
    """Runs a plan on this process; returns ``net_runtime_ms``, ``collected``,
    ``operators`` and ``bench``. ``watch`` is called every 50 ms while the job runs; a
    string it returns cancels the job and is raised as its error. ``handle`` learns of
    the job's start and end."""
