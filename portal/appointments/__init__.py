"""预约: booking a half-day slot at a hall window, for on-site handling or a pickup."""
