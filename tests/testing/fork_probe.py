"""Run by ``tests/testing/test_forkserver.py`` as ``python -m tests.testing.fork_probe``: it
prints what the child sees (its PID, parent, directory, umask, open-files limit, a setting,
standard input) as JSON, then exits with the code its first argument names, or sleeps when
it is "wait"."""

import json
import os
import resource
import sys
import time

if __name__ == "__main__":
    umask = os.umask(0)
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "cwd": os.getcwd(),
                "umask": umask,
                "setting": os.environ.get("FORK_PROBE"),
                "stdin": sys.stdin.read(),
                "argv": sys.argv[1:],
                "open_files": resource.getrlimit(resource.RLIMIT_NOFILE),
            }
        ),
        flush=True,
    )
    print("to stderr", file=sys.stderr, flush=True)
    if sys.argv[1] == "wait":
        time.sleep(60)
    sys.exit(int(sys.argv[1]))
