"""Type stubs of the native module (crates/superflow-python)."""

from typing import Any, Dict, List

class JobExecutionError(RuntimeError):
    """A job failed: a user function raised, or the engine could not run it."""

def execute(job_name: str, plan: List[Dict[str, Any]], settings: Dict[str, Any]) -> Dict[str, Any]:
    """Runs a plan on this process; returns ``net_runtime_ms``, ``collected``,
    ``operators`` and ``bench``."""
