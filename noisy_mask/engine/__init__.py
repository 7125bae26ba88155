"""Training: the trainer and its set-up, atomic checkpoints, non-finite loss reports."""
