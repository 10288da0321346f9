"""benchmarks/bench.py's GEMM report (``--gemm``): the products it times are the conv's im2col GEMMs,
with the conv's nominal flops. (Timings are never asserted; the script itself needs PyTorch, these
parts do not.)"""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
bench = pytest.importorskip("bench")


@pytest.mark.parametrize("name", ["depthwise", "inception"])
def test_conv_gemms_count_the_layers_nominal_flops(name):
    N, C, H, W, Cout, (KH, KW), stride, padding, groups = bench.LAYERS[name]
    (PH, PW), (SH, SW) = bench.as_pair(padding), bench.as_pair(stride)
    OH, OW = bench.conv_output_size(H, KH, SH, PH), bench.conv_output_size(W, KW, SW, PW)
    seconds, flops = bench.conv_gemms(name, "cpu", None, reps=1)
    assert flops == 3 * 2 * N * Cout * OH * OW * (C // groups) * KH * KW
    assert seconds > 0


def test_the_matmul_peak_is_a_positive_rate_of_a_square_product():
    peak, n = bench.matmul_peak("cpu", None, reps=1)
    assert n == 2048 and 0 < peak < 1e3          # TFLOP/s: no CPU here does a petaflop
