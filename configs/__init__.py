"""Task definitions (tasks.yaml) and prompt templates (templates/), shipped as package data."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent
