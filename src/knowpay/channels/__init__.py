"""Gateway adapters: pure protocol code behind one Channel interface."""
