"""mlscan: a model supply-chain integrity scanner.

Static analysis only: mlscan never loads, unpickles or runs the artifacts it scans.
"""

__version__ = "0.1.0"
