"""Runs a plan on one process, or on several: this process is process 0 and starts the
others (``python -m superflow._worker``), which connect to each other over loopback
(timely's cluster mode). Each writes its outcome to a file in a shared job directory;
the first user error of any process is the one raised here, with its traceback.

While the job runs, this process supervises the others, as Flink's resource manager
does its task managers: a worker process that dies without an outcome (killed, out of
memory) is started again when the job checkpoints and may restart (every process
then resumes from the last checkpoint); otherwise, or past the restart budget, the job
is cancelled with an error naming the process."""

import os
import pickle
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import cloudpickle

from superflow import _superflow

JobExecutionError = _superflow.JobExecutionError

# How long the other processes may take to end after this one's job ended.
_CHILD_GRACE_S = 30.0


def _free_ports(count: int) -> List[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_JOB_DIR_PREFIX = "superflow-job-"


def _remove_job_dirs_of_ended_drivers() -> None:
    """Removes the job directories (``superflow-job-...-<pid>``) of drivers that have
    ended: a killed driver cannot remove its own."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(_JOB_DIR_PREFIX):
            continue
        pid = name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except OSError:
            pass  # it lives (as another user): not ours to remove


def run(job_name: str, nodes: List[Dict[str, Any]], settings: Dict[str, Any],
        processes: int, handle: Optional[Any] = None) -> Dict[str, Any]:
    """Runs the job; returns the driver's result with every process's collected
    records merged. ``handle`` (a ``_superflow.JobHandle``) lets another thread cancel
    the job or take savepoints; on several processes they go through this one."""
    if processes <= 1:
        return _superflow.execute(job_name, nodes, settings, None, handle)
    _remove_job_dirs_of_ended_drivers()
    # Named after this process, so that the next driver removes it if this one is killed.
    job_dir = tempfile.mkdtemp(prefix=_JOB_DIR_PREFIX, suffix=f"-{os.getpid()}")
    try:
        return _run_cluster(job_name, nodes, settings, processes, job_dir, handle)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _run_cluster(job_name: str, nodes: List[Dict[str, Any]], settings: Dict[str, Any],
                 processes: int, job_dir: str, handle: Optional[Any]) -> Dict[str, Any]:
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(processes)]
    # The processes prove to each other that they belong to this job with a secret made
    # for it; it reaches the workers in the job file, which only this user can read.
    secret = secrets.token_hex(32)
    try:
        payload = cloudpickle.dumps({
            "job_name": job_name, "nodes": nodes, "settings": settings,
            "addresses": addresses, "secret": secret, "sys_path": list(sys.path),
        })
    except Exception as e:  # noqa: BLE001 - any pickling failure names the culprit
        raise JobExecutionError(
            f"the job cannot be sent to its {processes} worker processes: a function or "
            f"record of the job cannot be pickled ({type(e).__name__}: {e})") from e
    job_file = os.path.join(job_dir, "job.pkl")
    with open(job_file, "wb") as f:
        f.write(payload)
    def spawn(index: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "superflow._worker", job_dir, str(index)],
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
        )

    children = [spawn(index) for index in range(1, processes)]
    supervisor = _Supervisor(children, spawn, job_dir, _respawn_budget(settings))
    own_error: Optional[BaseException] = None
    result: Dict[str, Any] = {}
    try:
        result = _superflow.execute(job_name, nodes, dict(settings, cluster=(0, addresses, secret)),
                                    supervisor, handle)
    except BaseException as e:  # noqa: BLE001 - re-raised below, after the children
        own_error = e
    outcomes = _wait(children, job_dir, kill=own_error is not None)
    errors: List[Tuple[int, str]] = [(i, o["error"]) for i, o in outcomes if "error" in o]
    if own_error is not None or errors:
        if isinstance(own_error, KeyboardInterrupt):
            raise own_error
        raise JobExecutionError(_pick_error(own_error, errors)) from None
    collected = result.setdefault("collected", {})
    for _, outcome in outcomes:
        for node, records in outcome.get("collected", {}).items():
            collected.setdefault(node, []).extend(records)
        if outcome.get("bench") and result.get("bench"):
            result["bench"] = tuple(a + b for a, b in zip(result["bench"], outcome["bench"]))
    return result


def _respawn_budget(settings: Dict[str, Any]) -> int:
    """How many times worker processes may be started again: only a job that
    checkpoints and may restart can take a new process in."""
    restart = settings.get("restart")
    if settings.get("checkpoint") is None or (restart is not None and restart[0] == "none"):
        return 0
    if restart is not None and restart[0] == "fixed_delay":
        return int(restart[1])
    return 10


def _result_path(job_dir: str, index: int) -> str:
    return os.path.join(job_dir, f"result-{index}.pkl")


class _Supervisor:
    """Called by the running job every 50 ms: starts again a worker process that died
    without an outcome (within the budget), and returns the error that ends the job when
    one cannot go on."""

    def __init__(self, children: List[subprocess.Popen],
                 spawn: Callable[[int], subprocess.Popen], job_dir: str, budget: int):
        self.children = children
        self.spawn = spawn
        self.job_dir = job_dir
        self.budget = budget

    def __call__(self) -> Optional[str]:
        for slot, child in enumerate(self.children):
            index = slot + 1
            code = child.poll()
            if code is None:
                continue
            outcome = _read_outcome(self.job_dir, index)
            if outcome is not None:
                # A worker that ended with an error gave up (its restarts are spent).
                return None if "error" not in outcome else \
                    f"(in worker process {index}) {outcome['error']}"
            if self.budget <= 0:
                return f"worker process {index} exited with code {code} without a result"
            self.budget -= 1
            sys.stderr.write(f"warning: worker process {index} exited with code {code}; "
                             f"starting it again (the job resumes from its last checkpoint)\n")
            self.children[slot] = self.spawn(index)
        return None


def _read_outcome(job_dir: str, index: int) -> Optional[Dict[str, Any]]:
    try:
        with open(_result_path(job_dir, index), "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def _wait(children: List[subprocess.Popen], job_dir: str, kill: bool
          ) -> List[Tuple[int, Dict[str, Any]]]:
    outcomes = []
    for index, child in enumerate(children, start=1):
        try:
            child.wait(timeout=5.0 if kill else _CHILD_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        outcome = _read_outcome(job_dir, index)
        if outcome is None:
            outcome = {"error": f"worker process {index} exited with code "
                                f"{child.returncode} without a result"}
        outcomes.append((index, outcome))
    return outcomes


def _is_connection_loss(message: str) -> bool:
    return "lost the connection to another process" in message or "cluster error" in message


def _pick_error(own: Optional[BaseException], errors: List[Tuple[int, str]]) -> str:
    """The error that explains the failure: a user function's over the connection
    losses it caused in the other processes."""
    candidates = ([(0, str(own))] if own is not None else []) + errors
    for index, message in candidates:
        if not _is_connection_loss(message):
            return message if index == 0 else f"(in worker process {index}) {message}"
    return candidates[0][1]
