"""The graph model: snapshot format, relation vocabulary and the CSR engine."""
