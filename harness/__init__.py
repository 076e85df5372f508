"""Prompt-recovery evaluation harness.

The public surface is small on purpose (see DESIGN.md): suites (`harness.data`), candidates
(`harness.candidates`), embedders (`harness.embedders`), the metric (`harness.metric`), statistics
(`harness.stats`) and `harness.evaluate.evaluate`. Importing this package loads no model and touches no
network: heavy libraries (torch, sentence-transformers) are imported only when an embedder first embeds.
"""

__version__ = "0.1.0"
