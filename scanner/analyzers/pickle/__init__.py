"""Pickle-family analysis without unpickling (plain, PyTorch legacy, joblib, nested)."""

from scanner.analyzers.pickle.analyzer import PickleAnalyzer

__all__ = ["PickleAnalyzer"]
