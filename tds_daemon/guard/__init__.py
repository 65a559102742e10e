"""What every stage consults or raises: the circuit breakers and the alerts."""
