"""WriteIt: write an article with several LLMs while staying in charge of it."""

__version__ = "0.1.0"
