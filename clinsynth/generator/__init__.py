"""DP sequence generator: ``SequenceSynthesizer`` (fit on real stays, sample synthetic ones)."""

from clinsynth.generator.synthesizer import SequenceSynthesizer

__all__ = ["SequenceSynthesizer"]
