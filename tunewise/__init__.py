"""tunewise: choose, run, evaluate and report LLM specialisation with measured numbers.

This package must stay import-light: `tunewise advise` and `tunewise estimate` answer
in a fraction of a second and never import torch.
"""

__version__ = "0.1.0"
