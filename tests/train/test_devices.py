"""Devices (`gpt2_edu.train.devices`): device names refused by name."""

import pytest
import torch

from gpt2_edu.train.devices import pick_device


@pytest.mark.parametrize(
    "spec, expected", [("nonsense", "must be 'auto', 'cpu', 'cuda', 'cuda:N'"), ("cuda:abc", "device='cuda:abc'")]
)
def test_pick_device_refuses_bad_spellings(spec, expected):
    with pytest.raises(ValueError, match=expected):
        pick_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_pick_device_without_cuda():
    with pytest.raises(ValueError, match="sees no CUDA GPU; use device 'cpu'"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        pick_device("cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_pick_device_without_mps():
    with pytest.raises(ValueError, match="MPS backend is not available here; use device 'cpu'"):
        pick_device("mps")
