"""Who is calling: an app (API key), a buyer or creator, or staff (tokens); per-object scoping."""
