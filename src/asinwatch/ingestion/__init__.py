"""Getting data in: sources (Apify, simulator), normalisation, staging, promotion, tasks."""
