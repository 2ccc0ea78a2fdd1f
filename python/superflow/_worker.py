"""A worker process of a job of several processes: runs the job's plan as process
``index`` and writes its outcome (collected records, or the error) for the driver."""

import os
import pickle
import sys
import threading

# How long a worker whose driver died may take to stop its job before it ends itself.
_ORPHAN_GRACE_S = 1.0


def main() -> int:
    job_dir, index = sys.argv[1], int(sys.argv[2])
    with open(os.path.join(job_dir, "job.pkl"), "rb") as f:
        raw = f.read()
    outcome = {}
    code = 0
    try:
        job = pickle.loads(raw)
        for path in job["sys_path"]:
            if path not in sys.path:
                sys.path.append(path)
        from superflow import _superflow
        settings = dict(job["settings"], cluster=(index, job["addresses"], job["secret"]))
        driver = os.getppid()
        orphaned = []

        def driver_alive():
            # Re-parented: the driver died, and with it the job. The job is cancelled;
            # a user function that holds a batch for long (or for ever) must not keep
            # the process alive with nobody to report to: it ends a second later. What
            # it leaves (its run's store, the job directory) the next run removes.
            if os.getppid() == driver:
                return None
            if not orphaned:
                orphaned.append(True)
                threading.Timer(_ORPHAN_GRACE_S, os._exit, args=(1,)).start()
            return "the driver process is gone"

        result = _superflow.execute(job["job_name"], job["nodes"], settings, driver_alive)
        outcome = {"collected": result.get("collected", {}), "bench": result.get("bench")}
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the driver
        outcome = {"error": str(e) if str(e) else repr(e)}
        code = 1
    path = os.path.join(job_dir, f"result-{index}.pkl")
    try:
        import cloudpickle
        data = cloudpickle.dumps(outcome)
    except Exception as e:  # noqa: BLE001
        data = pickle.dumps({"error": f"worker process {index}: its collected records "
                                      f"cannot be pickled: {e}"})
        code = 1
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return code


if __name__ == "__main__":
    sys.exit(main())
