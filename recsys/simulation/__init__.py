"""Simulated engagement data with a known ground truth (no real data exists on this machine).

`simulate` writes offers, events and profiles in the canonical schema plus `truth/`, the hidden
traits from which the oracle ranks (`truth.load_truth`, `truth.expected_utility`). See
docs/simulator.md for the generative story.
"""

from __future__ import annotations

from recsys.simulation.config import GENERATOR_VERSION, PRESETS, SimulationConfig, get_preset
from recsys.simulation.simulator import read_manifest, simulate
from recsys.simulation.truth import Truth, expected_utility, load_truth

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SimulationConfig",
    "Truth",
    "expected_utility",
    "get_preset",
    "load_truth",
    "read_manifest",
    "simulate",
]
