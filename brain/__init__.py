"""brain: a personal LLM command line that asks Apex first and this laptop when Apex is away."""

__version__ = "0.1.0"
