"""tag.device: resolved per machine, batches sized per device; the CUDA path where a GPU is present."""

from __future__ import annotations

import pytest
import torch

from healthner.corpus.labels import TAGS
from healthner.corpus.vocab import CharVocab
from healthner.model.devices import resolve_device, tag_device, to_device
from healthner.model.encoders import build_encoder
from healthner.model.network import NerTagger
from healthner.model.precision import resolve_precision
from healthner.model.predict import SlotPredictor
from healthner.sections.model import EncoderParams
from healthner.sections.tagging import TagParams

CHARS = list("病人發燒頭痛咳嗽三天")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_auto_is_the_gpu_when_torch_sees_one(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu" and tag_device(TagParams()) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda" and tag_device(TagParams(device="auto")) == "cuda"
    assert tag_device(TagParams(device="cpu")) == "cpu"


def test_batches_are_sized_per_device() -> None:
    tag = TagParams(batch_chars=1000, batch_chars_cuda=50_000)
    assert tag.batches_for("cpu")["batch_chars"] == 1000
    assert tag.batches_for("cuda")["batch_chars"] == tag.batches_for("cuda:1")["batch_chars"] == 50_000


def test_forward_passes_are_cache_sized_on_the_cpu_only() -> None:
    tag = TagParams(batch_chars=8000, forward_batch_chars=1000, batch_chars_cuda=50_000)
    assert tag.batches_for("cpu") == {"batch_chars": 8000, "forward_batch_chars": 1000}
    assert tag.batches_for("cuda:0") == {"batch_chars": 50_000, "forward_batch_chars": 50_000}


def test_cpu_copies_are_plain() -> None:
    tensor = torch.arange(6).reshape(2, 3)
    moved = to_device(tensor, torch.device("cpu"))
    assert moved.device.type == "cpu" and torch.equal(moved, tensor)


def test_bfloat16_is_auto_on_cuda_only_where_it_is_native() -> None:
    assert resolve_precision("auto", "cuda") == "bfloat16"
    assert resolve_precision("float32", "cuda") == "float32"


def _predictor(device: str, precision: str = "float32") -> SlotPredictor:
    torch.manual_seed(0)
    vocab = CharVocab.build([CHARS])
    config = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    encoder = build_encoder(EncoderParams(family="bert", config=config), vocab, max_positions=16)
    model = NerTagger(encoder, len(TAGS), True, 8, 1, 0.1, True).to(device).eval()
    return SlotPredictor(model, vocab, 10, 2, device, 4096, None, precision)


@needs_cuda
def test_cuda_tags_like_the_cpu() -> None:
    sentences = [CHARS, CHARS[:4], CHARS * 3]
    cpu, gpu = _predictor("cpu"), _predictor("cuda")
    for a, b in zip(cpu.emissions(sentences), gpu.emissions(sentences), strict=True):
        torch.testing.assert_close(torch.from_numpy(b), torch.from_numpy(a), atol=1e-4, rtol=1e-3)
    assert cpu.decode(sentences) == gpu.decode(sentences)


@needs_cuda
def test_cuda_bfloat16_runs_under_autocast_with_float32_emissions() -> None:
    half = _predictor("cuda", "bfloat16")
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}  # autocast, weights untouched
    (emissions,) = half.emissions([CHARS])
    assert emissions.dtype.name == "float32" and emissions.shape == (len(CHARS), len(TAGS))


@needs_cuda
def test_host_batches_go_to_the_gpu_pinned() -> None:
    moved = to_device(torch.ones(3), torch.device("cuda"))
    assert moved.device.type == "cuda" and float(moved.sum()) == 3.0


def test_auto_precision_is_float32_on_every_cpu() -> None:
    """bfloat16 changes a member's tags on CPUs that run it natively: auto keeps the CPU exact."""
    from healthner.model.precision import resolve_precision

    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
