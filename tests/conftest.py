import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def debug_cfg():
    from pixwizard.config import preset

    return preset("debug")


@pytest.fixture(params=["fp32", "bf16"])
def precision(request):
    """An explicit precision for precision-sensitive tests: fp32 everywhere, bf16 too where the CPU
    runs it natively (AVX512-BF16/AMX; emulated bf16 is ~100x slower). ``auto`` picks either by
    machine, so a test never relies on it when it compares numbers."""
    from pixwizard.runtime import cpu_has_native_bf16

    if request.param == "bf16" and not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    return request.param
