"""Emergency response: incidents (stored burst analyses) and, later, what dispatchers do with them."""
