"""ipywidgets front ends composed from the library; every control calls a plain function."""
