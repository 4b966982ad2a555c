"""The HTTP surface: the FastAPI application, /api/v1 and the console's login pages."""
