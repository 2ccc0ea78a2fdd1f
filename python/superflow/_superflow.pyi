"""Type stubs of the native module (crates/superflow-python)."""

from typing import Any, Callable, Dict, List, Optional

class JobExecutionError(RuntimeError):
    """A job failed: a user function raised, or the engine could not run it."""

def execute(job_name: str, plan: List[Dict[str, Any]], settings: Dict[str, Any],
            watch: Optional[Callable[[], Optional[str]]] = None) -> Dict[str, Any]:
    """Runs a plan on this process; returns ``net_runtime_ms``, ``collected``,
    ``operators`` and ``bench``. ``watch`` is called every 50 ms while the job runs; a
    string it returns cancels the job and is raised as its error."""
