"""The bench's machine facts that need no trained model."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench import cpu_runs_bfloat16


def test_bfloat16_is_native_only_with_its_cpu_flags(tmp_path: Path) -> None:
    plain, native = tmp_path / "plain", tmp_path / "native"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n", encoding="utf-8")
    native.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n", encoding="utf-8")
    assert not cpu_runs_bfloat16(plain)  # AVX-512 alone: bfloat16 emulated, float32 is faster
    assert cpu_runs_bfloat16(native)
    assert not cpu_runs_bfloat16(tmp_path / "missing")
