"""The benchmarks' report: the bf16 verdict `--record` stores and the cost table every `eval` prints."""

from __future__ import annotations

import pytest


def test_bf16_verdict_covers_every_benchmark_recorded():
    from aetools.bench.report import Bf16Check

    check = Bf16Check.of([(30.0, 29.99), (28.0, 28.005)], "kodak24_inpaint")  # bf16 0.01 dB lower at most
    assert check.metric == "kodak24_inpaint_bf16_max_loss" and check.loss == pytest.approx(0.01)
    assert check.metrics({}) == {"kodak24_inpaint_bf16_max_loss": 0.01, "bf16_auto": True}
    # an earlier benchmark of the same weights lost more than the tolerance: auto stays fp32
    assert check.metrics({"cbsd68_bf16_max_loss": 0.05, "cbsd68_sigma25_psnr": 31.0})["bf16_auto"] is False
    # the same benchmark measured again: its new figure replaces the old one
    assert check.metrics({"kodak24_inpaint_bf16_max_loss": 0.05})["bf16_auto"] is True
    assert Bf16Check.of([], "set5").loss == 0.0


def test_cost_table_compares_each_network_with_the_reference_in_the_same_precision():
    from aetools.bench.reference import CostRow, cost_table

    rows = [
        CostRow("ours", 2_300_000, {"fp32": 0.3, "bf16": 1.2}),
        CostRow("DnCNN-shaped (17 conv, 64 ch)", 560_000, {"fp32": 0.1, "bf16": 0.3}),
    ]
    table = cost_table("CPU cost, 512x512 input", rows, ["fp32", "bf16"], "MP/s")
    assert table.columns == [
        "network", "params", "MP/s fp32", "MP/s bf16", "bf16 / fp32", "vs DnCNN-shaped, fp32", "vs DnCNN-shaped, bf16"
    ]  # fmt: skip
    assert table.rows[0] == ["ours", "2.30 M", "0.300", "1.200", "4.0x", "3.0x", "4.0x"]
    assert table.rows[1][-2:] == ["1.0x", "1.0x"]
    assert table.title.startswith("CPU cost, 512x512 input (") and table.notes[0].startswith("Precision: ")
    one = cost_table("CPU cost", rows, ["fp32"], "MP/s")
    assert one.columns == ["network", "params", "MP/s fp32", "vs DnCNN-shaped, fp32"]
