"""Gateway credentials stored encrypted at rest, overlaid on the settings at start-up."""
