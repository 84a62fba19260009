"""GGUF (llama.cpp) files: bounded header parsing and chat-template injection checks."""

from scanner.analyzers.gguf.analyzer import GGUFAnalyzer

__all__ = ["GGUFAnalyzer"]
