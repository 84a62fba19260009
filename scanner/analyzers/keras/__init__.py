"""Keras model configurations (config.json in .keras archives, standalone configs)."""

from scanner.analyzers.keras.config import KerasConfigAnalyzer, KerasWeightsAnalyzer

__all__ = ["KerasConfigAnalyzer", "KerasWeightsAnalyzer"]
