"""Alembic migrations of the store's schema; bot.store.migrate runs them inside Store.open()."""
