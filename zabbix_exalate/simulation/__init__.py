"""A simulated Exalate node over real HTTP, and the demo that shows the checks against it."""
