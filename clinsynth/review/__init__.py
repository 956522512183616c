"""Clinician plausibility review: printable sheets, verdict forms, and scoring the filled forms."""

from clinsynth.review.pack import ReviewPack, make_review_pack, score_review
from clinsynth.review.scoring import ReviewScore

__all__ = ["ReviewPack", "ReviewScore", "make_review_pack", "score_review"]
