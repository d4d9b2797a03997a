"""Programme rules of the KMO-portefeuille: pure functions, no I/O.

Everything here is safe to import from a Temporal workflow.
"""
