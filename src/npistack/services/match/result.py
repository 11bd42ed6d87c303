"""What record matching answers (``services.match``): a :class:`MatchResult` per record, with its
:class:`Candidate` s, and the calibration that maps a candidate's posterior probability to the
confidence shown (``CALIBRATION``, fitted by ``npistack match-eval --fit``: ``services.match.eval``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Logistic recalibration of the posterior: conf = sigmoid(A * logit(p) + B), fitted by
# ``npistack match-eval --fit`` on a synthetic store (docs/matching.md).
CALIBRATION = (1.4617, 1.3159)


@dataclass
class Candidate:
    npi: str
    confidence: float
    name: str
    status: str
    city: str
    state: str
    evidence: dict[str, list[str]]


@dataclass
class MatchResult:
    match_status: str  # "matched" | "ambiguous" | "no_match"
    match_confidence: float
    npi: str | None
    provider_status: str | None
    deactivation_date: str | None
    candidates: list[Candidate] = field(default_factory=list)
    evidence: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """As ``dataclasses.asdict`` gives it (tests/test_match.py checks), built directly: asdict deep-copies
        every value and took ~1 ms a result, the bulk of a 1,000-record answer's assembly."""
        return {
            "match_status": self.match_status,
            "match_confidence": self.match_confidence,
            "npi": self.npi,
            "provider_status": self.provider_status,
            "deactivation_date": self.deactivation_date,
            "candidates": [
                {
                    "npi": c.npi,
                    "confidence": c.confidence,
                    "name": c.name,
                    "status": c.status,
                    "city": c.city,
                    "state": c.state,
                    "evidence": {k: list(v) for k, v in c.evidence.items()},
                }
                for c in self.candidates
            ],
            "evidence": {k: list(v) for k, v in self.evidence.items()},
            "notes": list(self.notes),
        }


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def calibrate(p: float) -> float:
    a, b = CALIBRATION
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return _sigmoid(a * math.log(p / (1.0 - p)) + b)
