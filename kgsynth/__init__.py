"""kgsynth: verified multi-hop reasoning data from biomedical knowledge graphs."""

__version__ = "0.1.0"
