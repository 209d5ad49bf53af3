"""The numba grid against its numpy reference and the phase tables (one kernel compile)."""
import numpy as np
import pytest

from varcas.errors import VarcasError
from varcas.roofline import decode, grid, grid_reference, hardware, model, prefill

CASES = [(hardware("t4"), model("llama-2-7b", "awq")),
         (hardware("h100"), model("mixtral-8x7b", "fp16", attention="naive")),
         (hardware("l4"), model("qwen2.5-7b", "fp8", kv="fp8"))]
BATCH = np.array([1, 2, 3, 8, 64, 511])
LENGTH = np.array([1, 7, 128, 1000, 4096])


@pytest.mark.parametrize("hw, m", CASES)
@pytest.mark.parametrize("kind", ["prefill", "decode"])
@pytest.mark.parametrize("realistic", [False, True])
def test_kernel_matches_numpy_reference(hw, m, kind, realistic):
    fast = grid(hw, m, kind, BATCH, LENGTH, realistic=realistic)
    ref = grid_reference(hw, m, kind, BATCH, LENGTH, realistic=realistic)
    for name in ("time_s", "flops", "bytes"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-12)
    assert fast.time_s.shape == (BATCH.size, LENGTH.size)


@pytest.mark.parametrize("hw, m", CASES)
def test_grid_points_are_the_phase_table_rows(hw, m):
    g = grid(hw, m, "decode", BATCH, LENGTH)
    p = grid(hw, m, "prefill", BATCH, LENGTH, realistic=True)
    for i, b in enumerate(BATCH):
        for j, s in enumerate(LENGTH):
            d = decode(hw, m, int(b), int(s))
            assert (g.flops[i, j], g.bytes[i, j]) == pytest.approx((d.flops, d.bytes), rel=1e-12)
            assert g.time_s[i, j] == pytest.approx(d.time_s, rel=1e-12)
            assert g.ai[i, j] == pytest.approx(d.ai, rel=1e-12)
            assert p.time_s[i, j] == pytest.approx(prefill(hw, m, int(b), int(s)).realistic_time_s, rel=1e-12)


@pytest.mark.parametrize("batches, lengths, kind, message", [
    ([], [1], "decode", "batches"), ([[1, 2]], [1], "decode", "batches"),
    ([1], [0], "decode", "lengths"), ([1], [np.nan], "decode", "lengths"),
    ([1], [1], "train", "phase"),
])
def test_bad_grid_inputs(batches, lengths, kind, message):
    with pytest.raises(VarcasError, match=message):
        grid(*CASES[0], kind, batches, lengths)
