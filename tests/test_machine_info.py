"""tools.machine_info: what chose the float kernels, read and printed, nothing changed."""

import os
import subprocess
import sys

from conftest import ROOT
from tools.machine_info import SIMD_FLAGS, cpu_summary, machine_info

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni
"""


def test_cpu_summary_names_the_model_and_the_kernel_flags():
    s = cpu_summary(CPUINFO)
    assert s == {"model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
                 "simd": "sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni", "logical_cpus": "2"}
    assert cpu_summary("")["simd"].startswith("none of ") and cpu_summary("")["model"] == "unknown"
    assert "fpu" not in SIMD_FLAGS  # only flags that choose float kernels


def test_machine_info_reports_the_environment_without_changing_it(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    info = machine_info()
    assert info["OPENBLAS_CORETYPE"] == "Haswell" and os.environ["OPENBLAS_CORETYPE"] == "Haswell"
    assert {"model", "simd", "numpy", "onnxruntime", "torch"} <= set(info)
    assert "onnxruntime_providers" in info and "CPUExecutionProvider" in info["onnxruntime_providers"]


def test_cpu_only_runs_on_the_standard_library():
    out = subprocess.run([sys.executable, "-c", "import sys, tools.machine_info as m; m.main(['--cpu']); "
                          "print(sorted({'numpy', 'onnxruntime', 'torch', 'cv2'} & set(sys.modules)))"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "model" in out.stdout and "OPENBLAS_CORETYPE" in out.stdout and out.stdout.rstrip().endswith("[]")
