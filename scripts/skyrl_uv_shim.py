"""A stand-in for `uv run` in a pip-installed SkyRL venv.

scripts/skyrl_conformance.sh copies this file to VENV/bin/uv with VENV's
python in its #! line. SkyRL's Tinker API is started as
`uv run [uv flags] -m skyrl.tinker.api ...`; it reads its parent's command
line to find those flags and starts its engine as
`uv run [flags] --extra tinker --extra jax -m skyrl.tinker.engine ...`. A pip
install has no uv, and the packages are already in this venv, so every
`uv run ... -m MODULE ARGS` here becomes `python -m MODULE ARGS` with the
flags dropped.

The API must keep a parent whose command line reads `... -m
skyrl.tinker.api` (SkyRL refuses to start otherwise), so for the API this
process stays as that parent: it forwards SIGTERM and SIGINT and exits with
the API's status. Every other module (the engine) replaces this process.
Each child gets a parent-death signal, so killing the launcher outright
(kill -9) takes the API, and the API's death takes the engine, with it
instead of leaving a JAX engine running.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
API_MODULE = "skyrl.tinker.api"


def die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the launcher's process-group stop still applies


def main(argv):
    if not argv or argv[0] != "run":
        sys.stderr.write("uv (asearcher's SkyRL shim): only `uv run [flags] -m MODULE ARGS` is supported\n")
        return 2
    # SkyRL passes its parent's words after "uv run" back as flags; when the
    # parent is this script they start with "run" again. Everything up to
    # -m is a uv flag here.
    try:
        m = argv.index("-m")
    except ValueError:
        sys.stderr.write("uv (asearcher's SkyRL shim): no -m MODULE in %r\n" % (argv,))
        return 2
    if m + 1 >= len(argv):
        sys.stderr.write("uv (asearcher's SkyRL shim): -m without a module\n")
        return 2
    cmd = [sys.executable] + argv[m:]
    if argv[m + 1] != API_MODULE:
        die_with_parent()
        os.execv(sys.executable, cmd)
    die_with_parent()
    child = subprocess.Popen(cmd, preexec_fn=die_with_parent)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
