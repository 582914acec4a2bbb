"""Linear layer forward and backward, float32, 2 threads: the cases of fasttrain.bench.linear
(its docstring: contenders, the bare "sgemm" GEMMs, the 2·N·C·OC roofline) under
pytest-benchmark. extra_info: GFLOP/s. The interleaved run behind the README's table:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels linear \
        --backends c,numba,numpy,torch,sgemm --rounds 9
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import linear as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_linear(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)
