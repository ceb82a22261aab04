"""The main window's pages; each is a `desktop.pages.base.Page`."""
