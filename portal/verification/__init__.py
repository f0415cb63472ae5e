"""SMS one-time codes: proving a phone for registration, login and password resets."""
