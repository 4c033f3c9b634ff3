"""HTTP only: the app, the push fast path, the API, sign-in, limits and the dashboard."""
