"""Preprocessing: HU windows, resampling, lung mask, crops in world space, the crop cache.

Never imports torch or draws anything."""
