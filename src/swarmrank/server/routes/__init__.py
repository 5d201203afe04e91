"""One router per resource: chat completions, models, rounds and health."""
