"""Authentication (Supabase-style JWT) and role-based authorisation for the API."""
