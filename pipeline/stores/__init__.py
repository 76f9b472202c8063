"""The two Store backends."""
