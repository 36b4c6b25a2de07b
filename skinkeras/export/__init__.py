"""Exporting trained models: SavedModel for servers (TFLite for phones comes with issue 5)."""
