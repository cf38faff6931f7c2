"""Pictures: net drawings (draw.py: SVG, DOT, PNG) and matplotlib figures (plot.py: learning
curves, confusion matrices)."""
