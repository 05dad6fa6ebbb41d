"""The celestial-ssh command line: click for arguments, rich for the display.

It imports the library; the library never imports it.
"""
