"""Tables, engine and load paths."""
