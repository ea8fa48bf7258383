"""What a benchmark returns: a `Report` of tables, already formatted, and the metrics `--record` stores in
the weights. A benchmark module measures and builds its report; `aetools eval` (aetools/cli/evaluate.py)
only parses options, calls it, renders the tables in the chosen `--format` and records the metrics.

Metric names follow one scheme, `<benchmark>_<condition>_<measure>` (`metric_name`):
  benchmark  the set the figure was measured on, as its folder is named: `cbsd68`, `set5`, `kodak24`;
             with the variant where one set serves several (`set5_real`, `fashion_test`)
  condition  what it was measured under, where there is more than one: `sigma25`, `x4`, `holes20`
  measure    `psnr`, `y_psnr`, `y_ssim`, `colourfulness_ratio`, `elbo`, ...
e.g. `cbsd68_sigma25_psnr`, `set14_x4_y_ssim`, `kodak24_holes20_psnr`, `fashion_test_iwae`. bf16 against
fp32 is `<benchmark>_bf16_max_loss` (the task appended where two tasks share a set: `kodak24_inpaint`), and
the verdict over every benchmark recorded in a weights file is `bf16_auto`, which `--precision auto` reads.
Shipped weights hold these names: a benchmark may add a name, never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# `auto` may use bf16 for a head whose benchmark loses at most this much PSNR in it (dB).
BF16_PSNR_TOLERANCE = 0.02

Metrics = dict[str, float | int | bool]


@dataclass
class Table:
    """One result table.

    Args:
        title: the line above the table.
        columns: the header; the first column names the rows (a method, a network, a model).
        rows: the cells as text, formatted as they print ("-" where a figure is missing).
        notes: paragraphs printed below the table (what a timing ran on, the processor's capability line).
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class Bf16Check:
    """How far ours in bf16 fell behind ours in fp32 on one benchmark, for `--precision auto`'s verdict.

    Args:
        benchmark: the metrics' prefix (`cbsd68`, `set5_real`, `kodak24_colorize`).
        loss: the largest fp32 - bf16 difference over the benchmark's (fp32, bf16) pairs of
            higher-is-better figures (0 if bf16 never lost).
        tolerance: the largest loss `auto` accepts.
    """

    benchmark: str
    loss: float
    tolerance: float = BF16_PSNR_TOLERANCE

    @classmethod
    def of(cls, pairs: list[tuple[float, float]], benchmark: str, tolerance: float = BF16_PSNR_TOLERANCE) -> Bf16Check:
        """pairs of (fp32 figure, bf16 figure), higher is better."""
        return cls(benchmark, max((a - b for a, b in pairs), default=0.0), tolerance)

    @property
    def metric(self) -> str:
        return metric_name(self.benchmark, "bf16_max_loss")

    def metrics(self, recorded: Metrics) -> Metrics:
        """What `--record` stores: this benchmark's loss, and `bf16_auto`, whether every bf16 loss recorded
        in the weights (`recorded`, their metrics so far; this one included) is within the tolerance."""
        from aetools.pipeline import BF16_METRIC

        losses = {k: v for k, v in recorded.items() if k.endswith("_bf16_max_loss")}
        losses[self.metric] = round(self.loss, 4)
        return {self.metric: round(self.loss, 4), BF16_METRIC: all(v <= self.tolerance for v in losses.values())}


@dataclass
class Report:
    """A benchmark's result.

    Args:
        tables: printed in order.
        metrics: what `--record` stores, per weights file (a model's `weights_path`): names as in
            `metric_name`, values rounded as they are stored.
        bf16: per weights file, how bf16 did against fp32 here (recorded with the verdict it implies).
    """

    tables: list[Table]
    metrics: dict[Path, Metrics] = field(default_factory=dict)
    bf16: dict[Path, Bf16Check] = field(default_factory=dict)


def metric_name(benchmark: str, *parts: str) -> str:
    """`metric_name("cbsd68", "sigma25", "psnr")` -> "cbsd68_sigma25_psnr": the one scheme of recorded names."""
    return "_".join((benchmark, *parts))
