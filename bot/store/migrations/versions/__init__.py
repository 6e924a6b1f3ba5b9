"""One module per schema revision; never edit a released one, add the next (down_revision = head)."""
