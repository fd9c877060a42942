"""matplotlib figures and overlays: pure functions, data in, Figure out."""
