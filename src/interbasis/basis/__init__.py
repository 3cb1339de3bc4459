"""Bases, interaction graphs and ablations (the algorithm lives here and nowhere else)."""
