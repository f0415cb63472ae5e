"""改革成效: live figures of the reform, computed from the cases."""
