"""Modal screens: help, text prompts, confirmation, index stats, adding a folder."""
