"""Stop signals: a handler that can never deadlock the loop it is meant to stop."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# A stage's main thread lives in ``stop.wait(timeout)``. Signals are fired at it 5000 times a
# second for 3 s, so some land while ``wait`` holds the event's internal lock; a handler that
# calls ``stop.set()`` itself then blocks on that lock (seen in CI as a supervisor that ignored
# SIGTERM). A watchdog thread reports a main loop that stops turning.
_STORM = textwrap.dedent("""
    import os, signal, sys, threading, time
    from streamcam.lifecycle import install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop, signals=(signal.SIGALRM,))
    turns, seen = 0, 0

    def watchdog():
        last = -1
        while True:
            time.sleep(1.0)
            if turns == last:
                print("main loop stuck after", turns, "turns", flush=True)
                os._exit(3)
            last = turns

    threading.Thread(target=watchdog, daemon=True).start()
    signal.setitimer(signal.ITIMER_REAL, 2e-4, 2e-4)
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        if stop.wait(0.00005):
            seen += 1
            stop.clear()
        turns += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    print("turns", turns, "stops seen", seen, flush=True)
""")


def test_a_signal_storm_never_deadlocks_the_waiting_main_thread():
    proc = subprocess.run([sys.executable, "-c", _STORM], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    turns, seen = (int(w) for w in proc.stdout.split()[1::3][:2])
    assert seen > 100, proc.stdout  # the signals did reach the event: about 15000 were sent


def test_sigterm_sets_the_stop_event_of_a_waiting_process():
    script = textwrap.dedent("""
        import os, signal, threading, time
        from streamcam.lifecycle import install_stop_handlers
        stop = threading.Event()
        install_stop_handlers(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        print("stopped" if stop.wait(5.0) else "still running", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "stopped", proc.stdout + proc.stderr


_FAULTS = """
import resource, sys
import numpy as np
from streamcam.lifecycle import steady_frame_memory
steady = sys.argv[1] == "1" and steady_frame_memory()
def frame():  # what a stage does per frame: several frame-sized buffers, touched, then freed
    bufs = [np.ones((576, 768, 3), np.uint8) for _ in range(5)]
    return sum(int(b[0, 0, 0]) for b in bufs)
for _ in range(5):
    frame()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    frame()
print(int(steady), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 50)
"""


def test_steady_frame_memory_stops_per_frame_page_faults():
    """With the frame heap policy, a frame's buffers are reused from the heap: (almost) no page
    faults per frame, where glibc's own policy gives the five 1.3 MB buffers back at the end of the
    frame and faults their ~1,600 pages in again on the next."""
    def faults(steady: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, steady], capture_output=True, text=True, timeout=60,
                             check=True)
        on, n = out.stdout.split()
        return on, float(n)

    on, with_policy = faults("1")
    if on != "1":
        pytest.skip("no glibc mallopt here")
    _, without = faults("0")
    assert with_policy < 50, f"{with_policy} page faults per frame with the frame heap policy"
    assert without > 10 * max(with_policy, 1.0), f"{without} faults without it: the test no longer shows the effect"


def test_a_stage_process_keeps_numpy_s_blas_to_one_thread():
    """The stage setup (streamcam/cli.py's _stage_setup) limits OpenBLAS as it does OpenCV: a fresh
    process with its BLAS at two threads (a 2-core machine's default), then at one."""
    code = textwrap.dedent("""
        import json, numpy, threadpoolctl
        from streamcam.lifecycle import single_threaded_blas

        blas = lambda: [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        before = blas()
        assert single_threaded_blas()
        print(json.dumps([before, blas()]))
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    before, after = json.loads(p.stdout)
    assert before and all(n == 2 for n in before), p.stdout
    assert after and all(n == 1 for n in after), p.stdout
