"""Experiment tracking (W&B), never required: ``make_tracker("none")`` is a no-op tracker.

Importing this package does not import wandb; that happens when a W&B run starts.
"""

from interbasis.tracking.wandb_tracker import (
    TRACKER_KINDS,
    Tracker,
    WandbTracker,
    make_tracker,
    wandb_api_key_configured,
)

__all__ = ["TRACKER_KINDS", "Tracker", "WandbTracker", "make_tracker", "wandb_api_key_configured"]
