"""12345 consultations and complaints, forwarded to the bureau and answered there."""
