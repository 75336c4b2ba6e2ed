"""Job records behind /v1/jobs/{id}: anything asynchronous a client may poll."""
