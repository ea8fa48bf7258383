"""A training or validation batch: what the trainer feeds a model and what the loss compares with.

A leaf: data streams build batches, tasks make them from clean crops, the trainer moves them to a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """inputs: keyword arguments of the model's forward; target: what the loss compares its output with;
    reference: the clean image, for tasks whose target is not one (colorize: target = ab bins' source)."""

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor
    reference: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        inputs = {k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}
        return Batch(inputs, self.target.to(device), self.reference)
