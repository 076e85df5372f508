"""Candidates: anything that answers a suite's rows with recovered prompts.

Each kind lives in its own module; `registry` builds them from `candidates.toml` entries or inline specs
(`mean:TEXT`, `template:TEXT`, `file:PATH.csv`, read by `parse_spec`); `schema` declares each kind's keys.
"""

from harness.candidates.base import Candidate, CandidateContext, StreamingCandidate
from harness.candidates.constant import ConstantCandidate
from harness.candidates.predictions_file import MissingPredictionsError, PredictionsFileCandidate
from harness.candidates.registry import (
    CandidateRegistry,
    load_candidate_registry,
    parse_spec,
    resolve_candidate,
)
from harness.candidates.template import TemplateCandidate

__all__ = [
    "Candidate",
    "CandidateContext",
    "StreamingCandidate",
    "CandidateRegistry",
    "ConstantCandidate",
    "MissingPredictionsError",
    "PredictionsFileCandidate",
    "TemplateCandidate",
    "load_candidate_registry",
    "parse_spec",
    "resolve_candidate",
]
