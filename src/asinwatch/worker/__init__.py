"""The Celery application, its beat schedule and the worker-wide settings."""
