"""Converters from public dataset layouts to a layout one of clinsynth's schemas describes."""
