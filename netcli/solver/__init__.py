"""Training: the Solver loop, update rules and learning-rate policies."""
from .solver import Solver, TrainingDiverged

__all__ = ["Solver", "TrainingDiverged"]
